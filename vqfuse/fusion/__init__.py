"""Multimodal fusion on VQ tokens: token datasets, fused models, judges and analysis."""
