"""Tests for vqfuse.metrics.audio: SI-SNR, STOI, log-mel L1, multi-resolution STFT distance."""

from __future__ import annotations

import math

import pytest
import torch

from vqfuse.metrics.audio import log_mel_l1, mr_stft_distance, si_snr, stoi

SR = 16000


def _speechlike(batch: int = 2, seconds: float = 1.0, seed: int = 0) -> torch.Tensor:
    """Amplitude-modulated harmonic tones with noise: (B, 1, T), non-stationary like speech."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(int(SR * seconds)) / SR
    out = []
    for b in range(batch):
        f0 = 120 + 40 * b
        x = sum(torch.sin(2 * math.pi * f0 * k * t) / k for k in range(1, 8))
        env = 0.5 * (1 + torch.sin(2 * math.pi * 3 * t))
        out.append(0.3 * env * x + 0.01 * torch.randn(t.shape, generator=g))
    return torch.stack(out).unsqueeze(1)  # (B, 1, T)


def test_si_snr():
    ref = _speechlike()
    assert float(si_snr(ref, ref)) > 80
    assert float(si_snr(0.5 * ref, ref)) > 80  # scale invariant
    noisy = ref + 0.1 * torch.randn_like(ref)
    noise = torch.randn_like(ref)
    assert 0 < float(si_snr(noisy, ref)) < 30
    assert float(si_snr(noise, ref)) < float(si_snr(noisy, ref))
    assert float(si_snr(noise, ref)) < -10
    assert si_snr(noisy, ref, reduction="none").shape == (2,)


def test_stoi():
    ref = _speechlike()
    assert float(stoi(ref, ref, SR)) == pytest.approx(1.0, abs=1e-3)
    noisy = ref + 0.3 * torch.randn_like(ref)
    value = float(stoi(noisy, ref, SR))
    assert 0.0 < value < 0.99
    assert stoi(noisy, ref, SR, reduction="none").shape == (2,)
    assert 0.0 < float(stoi(noisy, ref, SR, extended=True)) < 1.0


def test_log_mel_l1():
    ref = _speechlike()
    assert float(log_mel_l1(ref, ref, SR)) == 0.0
    small = float(log_mel_l1(ref + 0.01 * torch.randn_like(ref), ref, SR))
    big = float(log_mel_l1(ref + 0.3 * torch.randn_like(ref), ref, SR))
    assert 0 < small < big
    per_item = log_mel_l1(ref + 0.01 * torch.randn_like(ref), ref, SR, reduction="none")
    assert per_item.shape == (2,)


def test_mr_stft_distance():
    ref = _speechlike()
    assert float(mr_stft_distance(ref, ref)) == pytest.approx(0.0, abs=1e-6)
    small = float(mr_stft_distance(ref + 0.01 * torch.randn_like(ref), ref))
    big = float(mr_stft_distance(torch.randn_like(ref), ref))
    assert 0 < small < big


def test_shapes_and_errors():
    ref = _speechlike(1)[0, 0]  # (T,)
    assert float(si_snr(ref, ref)) > 80
    assert float(log_mel_l1(ref[None], ref[None], SR)) == 0.0  # (B, T)
    with pytest.raises(ValueError, match="shape mismatch"):
        si_snr(ref[:100], ref[:200])
    stereo = _speechlike(2).reshape(1, 2, -1)  # (1, 2, T): channels averaged per item
    assert si_snr(stereo, stereo, reduction="none").shape == (1,)
