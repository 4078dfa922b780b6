"""Image / video reconstruction metrics (PSNR, SSIM via torchmetrics) and token bitrate.

Inputs are in [-1, 1] by default (data_range=2.0): (B, C, H, W) images or (B, C, T, H, W) videos.
"""

from __future__ import annotations

import math
from typing import Literal

from torch import Tensor
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

__all__ = ["psnr", "ssim", "bits_per_pixel"]

Reduction = Literal["mean", "none"]


def _prepare(x_hat: Tensor, x: Tensor, data_range: float, clamp: bool) -> tuple[Tensor, Tensor]:
    if x_hat.shape != x.shape:
        raise ValueError(f"shape mismatch: x_hat {tuple(x_hat.shape)} vs x {tuple(x.shape)}")
    if x.dim() < 3:
        raise ValueError(f"expected (B, C, *spatial), got {tuple(x.shape)}")
    x_hat, x = x_hat.detach().float(), x.detach().float()
    if clamp:  # assumes a range centred on 0 ([-1, 1] for data_range=2)
        x_hat = x_hat.clamp(-data_range / 2, data_range / 2)
    return x_hat, x


def psnr(
    x_hat: Tensor, x: Tensor, data_range: float = 2.0, reduction: Reduction = "mean", clamp: bool = False
) -> Tensor:
    """Per-sample PSNR in dB, 10 log10(range^2 / mse), then the mean over the batch (reduction='mean')
    or the (B,) per-sample values (reduction='none'). Identical samples give +inf.

    clamp=True first clips x_hat to [-range/2, range/2] (decoder outputs can overshoot).
    """
    x_hat, x = _prepare(x_hat, x, data_range, clamp)
    per_sample = peak_signal_noise_ratio(
        x_hat, x, data_range=data_range, reduction="none", dim=tuple(range(1, x.dim()))
    )  # (B,)
    return per_sample.mean() if reduction == "mean" else per_sample


def ssim(
    x_hat: Tensor, x: Tensor, data_range: float = 2.0, reduction: Reduction = "mean", clamp: bool = False
) -> Tensor:
    """SSIM (11-tap Gaussian, sigma 1.5): (B, C, H, W) uses 2D SSIM, (B, C, T, H, W) 3D SSIM.

    Returns the batch mean or the (B,) per-sample values. Identical inputs give 1.
    """
    x_hat, x = _prepare(x_hat, x, data_range, clamp)
    if x.dim() not in (4, 5):
        raise ValueError(f"ssim expects (B, C, H, W) or (B, C, T, H, W), got {tuple(x.shape)}")
    per_sample = structural_similarity_index_measure(x_hat, x, data_range=data_range, reduction="none")
    assert isinstance(per_sample, Tensor)
    return per_sample.mean() if reduction == "mean" else per_sample


def bits_per_pixel(n_tokens: int, codebook_size: int, n_pixels: int) -> float:
    """Bits per pixel of a fixed-length code: n_tokens * log2(codebook_size) / n_pixels.

    E.g. 16x16 tokens from a 1024-entry codebook for a 64x64 image: 256 * 10 / 4096 = 0.625.
    For residual quantizers pass n_tokens = positions * n_q.
    """
    if n_tokens < 0 or codebook_size < 1 or n_pixels < 1:
        raise ValueError(
            f"need n_tokens >= 0, codebook_size >= 1, n_pixels >= 1; got {n_tokens}, {codebook_size}, {n_pixels}"
        )
    return n_tokens * math.log2(codebook_size) / n_pixels
