"""Evaluation metrics."""

from vqfuse.metrics.image import bits_per_pixel, psnr, ssim

__all__ = ["psnr", "ssim", "bits_per_pixel"]
