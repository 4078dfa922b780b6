"""Spectral codec losses: zero for identical signals, positive and phase-sensitive otherwise."""

from __future__ import annotations

import math

import pytest
import torch

from vqfuse.losses.spectral import complex_stft_loss, dac_mel_loss, log_magnitude_loss, phase_derivative_loss

SR = 16000


def tone(freq: float, phase: float = 0.0, n: int = 3200) -> torch.Tensor:
    t = torch.arange(n) / SR
    return 0.5 * torch.sin(2 * math.pi * freq * t + phase).reshape(1, 1, n)  # (B, C, T)


LOSSES = [complex_stft_loss, phase_derivative_loss, log_magnitude_loss, lambda a, b: dac_mel_loss(a, b, SR)]


@pytest.mark.parametrize("loss", LOSSES)
def test_zero_for_identical_and_positive_for_different(loss) -> None:
    x = tone(440.0) + 0.01 * torch.randn(1, 1, 3200, generator=torch.Generator().manual_seed(0))
    assert float(loss(x, x.clone())) == pytest.approx(0.0, abs=1e-7)
    assert float(loss(tone(880.0), x)) > 1e-3


def test_complex_loss_sees_phase_and_magnitude_losses_do_not() -> None:
    fade = torch.hann_window(3200, periodic=False)  # silent ends: the edge frames do not differ
    a, b = tone(500.0) * fade, tone(500.0, phase=math.pi / 2) * fade  # same magnitudes, other phase
    other = tone(880.0) * fade
    assert float(complex_stft_loss(a, b)) > 0.5 * float(complex_stft_loss(a, other))
    assert float(log_magnitude_loss(a, b)) < 0.01 * float(log_magnitude_loss(a, other))
    assert float(dac_mel_loss(a, b, SR)) < 0.1 * float(dac_mel_loss(a, other, SR))


def test_gradients_are_finite_at_silence() -> None:
    x_hat = torch.zeros(1, 1, 1600, requires_grad=True)
    total = complex_stft_loss(x_hat, tone(300.0, n=1600)) + log_magnitude_loss(x_hat, tone(300.0, n=1600))
    total = total + phase_derivative_loss(x_hat, tone(300.0, n=1600))
    total = total + dac_mel_loss(x_hat, tone(300.0, n=1600), SR)
    total.backward()
    assert torch.isfinite(x_hat.grad).all() and x_hat.grad.abs().sum() > 0


def test_shape_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match="shape"):
        complex_stft_loss(tone(300.0), tone(300.0, n=1600))


def test_phase_derivatives_ignore_a_constant_phase_offset() -> None:
    fade = torch.hann_window(3200, periodic=False)
    a, b = tone(500.0) * fade, tone(500.0, phase=math.pi / 2) * fade
    other = tone(880.0) * fade
    assert float(phase_derivative_loss(a, b)) < 0.01 * float(phase_derivative_loss(a, other))
    noise = 0.1 * torch.randn(1, 1, 3200, generator=torch.Generator().manual_seed(1))
    assert float(phase_derivative_loss(noise, a)) > 0.1
