"""Vector quantizers over channel-first latents (B, C, *spatial) for 1D, 2D and 3D data."""

from vqfuse.quantize.base import Quantizer, QuantizerOutput, count_metrics, usage_metrics
from vqfuse.quantize.fsq import FSQ
from vqfuse.quantize.lfq import LFQ
from vqfuse.quantize.residual import ResidualVQ
from vqfuse.quantize.vq import EMAConfig, RestartConfig, VectorQuantizer, VQConfig

__all__ = [
    "Quantizer",
    "QuantizerOutput",
    "VectorQuantizer",
    "VQConfig",
    "EMAConfig",
    "RestartConfig",
    "ResidualVQ",
    "FSQ",
    "LFQ",
    "count_metrics",
    "usage_metrics",
]
