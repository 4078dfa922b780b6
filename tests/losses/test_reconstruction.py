"""Pixel and spectral reconstruction losses, mel filterbank."""

from __future__ import annotations

import math

import pytest
import torch

from vqfuse.losses.reconstruction import (
    hz_to_mel,
    mel_filterbank,
    mel_spectrogram,
    mel_to_hz,
    multi_resolution_stft_loss,
    multi_scale_mel_loss,
    reconstruction_loss,
    stft_magnitude,
)

SR = 16000


def tone(freq: float, n: int = 4096, batch: int = 2) -> torch.Tensor:
    t = torch.arange(n) / SR
    return torch.sin(2 * math.pi * freq * t).repeat(batch, 1)  # (B, T)


@pytest.mark.parametrize("shape", [(2, 3, 8, 8), (2, 1, 100), (1, 3, 4, 8, 8)])
def test_reconstruction_loss_kinds_any_shape(shape: tuple[int, ...]) -> None:
    x = torch.randn(shape)
    x_hat = x + 0.5
    assert reconstruction_loss(x_hat, x, "l1").item() == pytest.approx(0.5)
    assert reconstruction_loss(x_hat, x, "l2").item() == pytest.approx(0.25)
    assert reconstruction_loss(x_hat, x, "l1+l2").item() == pytest.approx(0.75)
    with pytest.raises(ValueError):
        reconstruction_loss(x_hat, x, "huber")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        reconstruction_loss(x_hat[..., :-1], x)


def test_stft_magnitude_shape() -> None:
    mag = stft_magnitude(torch.randn(2, 3, 1000), n_fft=256)
    assert mag.shape == (6, 129, 1000 // 64 + 1)
    assert (mag > 0).all()
    # short signal (shorter than n_fft // 2) still works with zero padding
    assert stft_magnitude(torch.randn(1, 100), n_fft=512).shape[1] == 257


def test_stft_loss_zero_for_identical_positive_otherwise_and_grads() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 1, 4096)
    assert multi_resolution_stft_loss(x, x.clone()).item() == pytest.approx(0.0, abs=1e-6)
    x_hat = (x + 0.1 * torch.randn_like(x)).requires_grad_(True)
    loss = multi_resolution_stft_loss(x_hat, x)
    assert loss.item() > 0
    loss.backward()
    assert x_hat.grad is not None and torch.isfinite(x_hat.grad).all() and x_hat.grad.abs().sum() > 0
    # silence vs silence: finite (no 0 / 0)
    z = torch.zeros(1, 2048, requires_grad=True)
    loss0 = multi_resolution_stft_loss(z, torch.zeros(1, 2048))
    loss0.backward()
    assert torch.isfinite(loss0) and torch.isfinite(z.grad).all()
    # 1D input and custom resolutions
    assert multi_resolution_stft_loss(x[0, 0], -x[0, 0] + 1, fft_sizes=(64, 128), hop_sizes=(16, 32)).item() > 0


def test_mel_scale_round_trip() -> None:
    f = torch.tensor([0.0, 200.0, 999.0, 1000.0, 4000.0, 8000.0], dtype=torch.float64)
    for scale in ("htk", "slaney"):
        assert torch.allclose(mel_to_hz(hz_to_mel(f, scale), scale), f, atol=1e-6)  # type: ignore[arg-type]
    assert hz_to_mel(torch.tensor(1000.0), "slaney").item() == pytest.approx(15.0)
    assert hz_to_mel(torch.tensor(700.0), "htk").item() == pytest.approx(2595.0 * math.log10(2.0))


@pytest.mark.parametrize("scale", ["htk", "slaney"])
def test_mel_filterbank_is_sensible(scale: str) -> None:
    n_fft, n_mels = 1024, 64
    fb = mel_filterbank(n_fft, n_mels, SR, mel_scale=scale)  # type: ignore[arg-type]
    assert fb.shape == (n_mels, n_fft // 2 + 1)
    assert (fb >= 0).all()
    assert (fb.sum(dim=1) > 0).all(), "no empty mel band"
    assert fb.max() <= 1.0 + 1e-6, "unnormalised triangles peak at <= 1"
    # band centres increase with the mel index
    centres = (fb * torch.arange(fb.shape[1])).sum(1) / fb.sum(1)
    assert (centres[1:] > centres[:-1]).all()
    # between the first and last band centre, adjacent triangles overlap to sum to ~1
    cover = fb.sum(dim=0)
    lo, hi = int(centres[1]), int(centres[-2])
    assert torch.allclose(cover[lo:hi], torch.ones(hi - lo), atol=0.05)
    # slaney normalisation: equal-area triangles (area in Hz ~ 1 each)
    fb_n = mel_filterbank(n_fft, n_mels, SR, mel_scale=scale, norm="slaney")  # type: ignore[arg-type]
    hz_per_bin = SR / n_fft
    assert torch.allclose(fb_n.sum(1) * hz_per_bin, torch.ones(n_mels), rtol=0.15)


def test_mel_spectrogram_picks_right_band() -> None:
    mel = mel_spectrogram(tone(1000.0), SR, n_fft=1024, n_mels=40)
    assert mel.shape[:2] == (2, 40)
    peak = mel.mean(-1)[0].argmax().item()
    centre_hz = mel_to_hz(torch.linspace(0, float(hz_to_mel(torch.tensor(SR / 2.0))), 42))[1 + peak]
    assert abs(centre_hz.item() - 1000.0) < 150.0


def test_mel_loss_decreases_as_signal_approaches_target() -> None:
    torch.manual_seed(0)
    target = tone(440.0) + 0.3 * tone(2500.0)
    noise = torch.randn_like(target)
    losses = [
        multi_scale_mel_loss(target + a * noise, target, SR, n_mels=(32, 64, 80)).item() for a in (1.0, 0.3, 0.1, 0.01)
    ]
    assert all(b < a for a, b in zip(losses, losses[1:])), losses
    assert multi_scale_mel_loss(target, target.clone(), SR).item() == pytest.approx(0.0, abs=1e-6)

    x_hat = (target + 0.1 * noise).requires_grad_(True)
    multi_scale_mel_loss(x_hat, target, SR, n_mels=40, fft_sizes=(256, 512)).backward()
    assert x_hat.grad is not None and torch.isfinite(x_hat.grad).all() and x_hat.grad.abs().sum() > 0
    with pytest.raises(ValueError):
        multi_scale_mel_loss(target, target, SR, n_mels=(10, 20))
