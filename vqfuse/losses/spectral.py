"""Spectral losses of the frame-rate codec (issue 17): phase-aware complex STFT, log magnitude, 7-scale mel.

All take waveforms (T,), (B, T) or (B, C, T) of equal shape and return a scalar, 0 for identical inputs.
The STFT grid is the codec's own (`vqfuse.nets.spectral.stft_same`), so the decoder's frames are
supervised where it predicts them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from vqfuse.losses.reconstruction import _check_same_shape, multi_scale_mel_loss
from vqfuse.nets.spectral import stft_same

__all__ = [
    "DAC_MEL_WINDOWS",
    "DAC_MEL_BANDS",
    "complex_stft_loss",
    "phase_derivative_loss",
    "log_magnitude_loss",
    "dac_mel_loss",
]

# DAC's 7-scale mel loss at 16 kHz: windows 32 .. 2048 samples (hop = window / 4), mels 5 .. 320
DAC_MEL_WINDOWS = (32, 64, 128, 256, 512, 1024, 2048)
DAC_MEL_BANDS = (5, 10, 20, 40, 80, 160, 320)


def _spec(x: Tensor, n_fft: int, hop: int) -> Tensor:
    """(..., T) -> complex (N, bins, frames); T is cropped to a multiple of hop."""
    sig = x.reshape(-1, x.shape[-1]).float()
    return stft_same(sig[:, : sig.shape[-1] // hop * hop], n_fft, hop)


def complex_stft_loss(x_hat: Tensor, x: Tensor, n_fft: int = 640, hop: int = 160, power: float = 0.3) -> Tensor:
    """MSE between power-law compressed complex spectra |X|^p e^{j phi} (ESC): magnitude and phase at once."""
    _check_same_shape(x_hat, x)

    return F.mse_loss(_compress(_spec(x_hat, n_fft, hop), power), _compress(_spec(x, n_fft, hop), power))


def _compress(s: Tensor, power: float) -> Tensor:
    """Complex s -> real view of |s|^p e^{j angle(s)}, (..., 2); the floor keeps the gradient finite at 0."""
    return torch.view_as_real(s * s.abs().clamp_min(1e-5) ** (power - 1.0))


def phase_derivative_loss(x_hat: Tensor, x: Tensor, n_fft: int = 640, hop: int = 160, power: float = 0.15) -> Tensor:
    """Phase differences across time (instantaneous frequency) and across frequency (group delay), compared as
    compressed complex products S_t conj(S_{t-1}) and S_f conj(S_{f-1}) (MSE, like `complex_stft_loss`).

    Unlike the absolute phase, these do not change when a bin's phase is offset by a constant, so they
    supervise what makes overlapping frames add up coherently (APCodec's instantaneous-frequency and
    group-delay terms, here without the wrapping: the products carry the phase difference and stay smooth).
    `power` 0.15 on a product of two magnitudes matches 0.3 on one.
    """
    _check_same_shape(x_hat, x)
    s_hat, s = _spec(x_hat, n_fft, hop), _spec(x, n_fft, hop)  # (N, F, L)
    total = x_hat.new_zeros(())
    for axis in (2, 1):  # time, then frequency
        n = s.shape[axis]
        d_hat = s_hat.narrow(axis, 1, n - 1) * s_hat.narrow(axis, 0, n - 1).conj()
        d = s.narrow(axis, 1, n - 1) * s.narrow(axis, 0, n - 1).conj()
        total = total + F.mse_loss(_compress(d_hat, power), _compress(d, power))
    return total / 2


def log_magnitude_loss(x_hat: Tensor, x: Tensor, n_fft: int = 640, hop: int = 160, eps: float = 1e-3) -> Tensor:
    """MSE between log(|X| + eps); `eps` (about -100 dB below a full-scale sine) keeps inaudible bins from
    dominating."""
    _check_same_shape(x_hat, x)
    return F.mse_loss(torch.log(_spec(x_hat, n_fft, hop).abs() + eps), torch.log(_spec(x, n_fft, hop).abs() + eps))


def dac_mel_loss(x_hat: Tensor, x: Tensor, sample_rate: int) -> Tensor:
    """Log-mel L1 averaged over DAC's 7 scales (the package's `multi_scale_mel_loss` at those scales)."""
    return multi_scale_mel_loss(x_hat, x, sample_rate, n_mels=DAC_MEL_BANDS, fft_sizes=DAC_MEL_WINDOWS)
