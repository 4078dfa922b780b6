"""vqfuse: vector-quantized tokenizers for images, audio and video, and multimodal fusion on tokens."""

__version__ = "0.1.0"
