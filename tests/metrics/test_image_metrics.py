"""PSNR, SSIM and bits per pixel."""

from __future__ import annotations

import math

import pytest
import torch

from vqfuse.metrics import bits_per_pixel, psnr, ssim


def test_psnr_matches_closed_form_per_image() -> None:
    torch.manual_seed(0)
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    x_hat = x + torch.randn_like(x) * torch.tensor([0.01, 0.05, 0.1, 0.2]).view(4, 1, 1, 1)
    mse = (x_hat - x).pow(2).flatten(1).mean(1)  # (B,)
    expected = 10 * torch.log10(2.0**2 / mse)
    per = psnr(x_hat, x, reduction="none")
    assert per.shape == (4,)
    assert torch.allclose(per, expected, atol=1e-4)
    assert psnr(x_hat, x).item() == pytest.approx(expected.mean().item(), abs=1e-4)
    # mean of per-image PSNR, not PSNR of the pooled MSE
    assert psnr(x_hat, x).item() != pytest.approx(10 * math.log10(4.0 / mse.mean().item()), abs=1e-3)
    # other data range
    x01, x01_hat = (x + 1) / 2, (x_hat + 1) / 2
    assert torch.allclose(psnr(x01_hat, x01, data_range=1.0, reduction="none"), expected, atol=1e-4)


def test_psnr_clamp_and_video() -> None:
    x = torch.zeros(1, 3, 8, 8)
    over = torch.full_like(x, 3.0)
    assert psnr(over, x, clamp=True).item() == pytest.approx(10 * math.log10(4.0 / 1.0), abs=1e-4)
    v = torch.rand(2, 3, 4, 16, 16) * 2 - 1
    assert psnr(v + 0.1, v, reduction="none").shape == (2,)


def test_ssim_identical_is_one_and_drops_with_noise() -> None:
    torch.manual_seed(0)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    assert ssim(x, x.clone()).item() == pytest.approx(1.0, abs=1e-5)
    per = ssim(x + 0.2 * torch.randn_like(x), x, reduction="none")
    assert per.shape == (2,) and (per < 0.99).all()
    v = torch.rand(1, 3, 12, 16, 16) * 2 - 1
    assert ssim(v, v).item() == pytest.approx(1.0, abs=1e-5)


def test_bits_per_pixel() -> None:
    assert bits_per_pixel(16 * 16, 1024, 64 * 64) == pytest.approx(0.625)
    assert bits_per_pixel(32 * 32 * 4, 256, 256 * 256) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        bits_per_pixel(10, 0, 64)
