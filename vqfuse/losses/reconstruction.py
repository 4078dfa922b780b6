"""Reconstruction losses: pixel/sample losses for any tensor shape, and spectral losses for audio.

Audio tensors may be (T,), (B, T) or (B, C, T); leading dims are folded into one batch dim.
Mel filterbanks are built in plain torch (HTK or Slaney mel scale), no torchaudio needed.
"""

from __future__ import annotations

import functools
import math
from typing import Literal, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "reconstruction_loss",
    "stft_magnitude",
    "multi_resolution_stft_loss",
    "hz_to_mel",
    "mel_to_hz",
    "mel_filterbank",
    "mel_spectrogram",
    "multi_scale_mel_loss",
]

RecKind = Literal["l1", "l2", "l1+l2"]
MelScale = Literal["htk", "slaney"]


def _check_same_shape(x_hat: Tensor, x: Tensor) -> None:
    if x_hat.shape != x.shape:
        raise ValueError(f"shape mismatch: x_hat {tuple(x_hat.shape)} vs x {tuple(x.shape)}")


def reconstruction_loss(x_hat: Tensor, x: Tensor, kind: RecKind = "l1") -> Tensor:
    """Mean element-wise reconstruction loss for any shape: 'l1', 'l2' (MSE) or 'l1+l2' (their sum)."""
    _check_same_shape(x_hat, x)
    if kind == "l1":
        return F.l1_loss(x_hat, x)
    if kind == "l2":
        return F.mse_loss(x_hat, x)
    if kind == "l1+l2":
        return F.l1_loss(x_hat, x) + F.mse_loss(x_hat, x)
    raise ValueError(f"unknown reconstruction loss kind {kind!r}; expected 'l1', 'l2' or 'l1+l2'")


# ---------------------------------------------------------------------------------------------------
# STFT


def _to_batch_time(x: Tensor) -> Tensor:
    """(T,) | (B, T) | (B, C, T) | (..., T) -> (N, T)."""
    if x.dim() == 0:
        raise ValueError("audio must have a time dimension")
    return x.reshape(-1, x.shape[-1])


def stft_magnitude(
    x: Tensor, n_fft: int, hop_length: int | None = None, win_length: int | None = None, eps: float = 1e-7
) -> Tensor:
    """Magnitude STFT with a Hann window: (..., T) -> (N, n_fft // 2 + 1, frames), N = prod(leading dims).

    The magnitude is sqrt(clamp(re^2 + im^2, eps)) so its gradient is finite at silence.
    Centered framing uses reflect padding, falling back to zero padding for signals too short to reflect.
    """
    hop_length = hop_length or n_fft // 4
    win_length = win_length or n_fft
    if win_length > n_fft:
        raise ValueError(f"win_length ({win_length}) must be <= n_fft ({n_fft})")
    sig = _to_batch_time(x)
    if not sig.is_floating_point():
        sig = sig.float()
    window = torch.hann_window(win_length, device=sig.device, dtype=sig.dtype)
    pad_mode = "reflect" if sig.shape[-1] > n_fft // 2 else "constant"
    spec = torch.stft(
        sig,
        n_fft=n_fft,
        hop_length=hop_length,
        win_length=win_length,
        window=window,
        center=True,
        pad_mode=pad_mode,
        return_complex=True,
    )  # (N, F, frames) complex
    return (spec.real.pow(2) + spec.imag.pow(2)).clamp_min(eps).sqrt()


def _resolutions(
    fft_sizes: Sequence[int], hop_sizes: Sequence[int] | None, win_lengths: Sequence[int] | None
) -> list[tuple[int, int, int]]:
    hops = list(hop_sizes) if hop_sizes is not None else [n // 4 for n in fft_sizes]
    wins = list(win_lengths) if win_lengths is not None else list(fft_sizes)
    if not (len(fft_sizes) == len(hops) == len(wins)) or not fft_sizes:
        raise ValueError("fft_sizes, hop_sizes and win_lengths must be non-empty and of equal length")
    return list(zip(fft_sizes, hops, wins))


def multi_resolution_stft_loss(
    x_hat: Tensor,
    x: Tensor,
    fft_sizes: Sequence[int] = (512, 1024, 2048),
    hop_sizes: Sequence[int] | None = None,
    win_lengths: Sequence[int] | None = None,
    sc_weight: float = 1.0,
    mag_weight: float = 1.0,
    eps: float = 1e-7,
) -> Tensor:
    """Multi-resolution STFT loss (Parallel WaveGAN), averaged over resolutions.

    Per resolution: spectral convergence ||S - S_hat||_F / ||S||_F plus mean |log S - log S_hat|,
    where S is the Hann-window STFT magnitude. Defaults: hop = n_fft // 4, win = n_fft.
    Inputs: (T,), (B, T) or (B, C, T).
    """
    _check_same_shape(x_hat, x)
    total = x_hat.new_zeros(())
    res = _resolutions(fft_sizes, hop_sizes, win_lengths)
    for n_fft, hop, win in res:
        s_hat = stft_magnitude(x_hat, n_fft, hop, win, eps)  # (N, F, frames)
        s = stft_magnitude(x, n_fft, hop, win, eps)
        sc = torch.linalg.vector_norm(s - s_hat) / (torch.linalg.vector_norm(s) + eps)
        log_mag = (s.log() - s_hat.log()).abs().mean()
        total = total + sc_weight * sc + mag_weight * log_mag
    return total / len(res)


# ---------------------------------------------------------------------------------------------------
# Mel

_SLANEY_F_SP = 200.0 / 3  # Hz per mel below 1 kHz
_SLANEY_MIN_LOG_HZ = 1000.0
_SLANEY_MIN_LOG_MEL = _SLANEY_MIN_LOG_HZ / _SLANEY_F_SP  # 15
_SLANEY_LOGSTEP = math.log(6.4) / 27.0


def hz_to_mel(freq: Tensor, mel_scale: MelScale = "htk") -> Tensor:
    """Hz -> mel. HTK: 2595 log10(1 + f / 700). Slaney: linear below 1 kHz, logarithmic above."""
    if mel_scale == "htk":
        return 2595.0 * torch.log10(1.0 + freq / 700.0)
    if mel_scale == "slaney":
        lin = freq / _SLANEY_F_SP
        log = _SLANEY_MIN_LOG_MEL + torch.log(freq.clamp_min(_SLANEY_MIN_LOG_HZ) / _SLANEY_MIN_LOG_HZ) / _SLANEY_LOGSTEP
        return torch.where(freq >= _SLANEY_MIN_LOG_HZ, log, lin)
    raise ValueError(f"unknown mel_scale {mel_scale!r}; expected 'htk' or 'slaney'")


def mel_to_hz(mel: Tensor, mel_scale: MelScale = "htk") -> Tensor:
    """Inverse of `hz_to_mel`."""
    if mel_scale == "htk":
        return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)
    if mel_scale == "slaney":
        lin = _SLANEY_F_SP * mel
        log = _SLANEY_MIN_LOG_HZ * torch.exp(_SLANEY_LOGSTEP * (mel - _SLANEY_MIN_LOG_MEL))
        return torch.where(mel >= _SLANEY_MIN_LOG_MEL, log, lin)
    raise ValueError(f"unknown mel_scale {mel_scale!r}; expected 'htk' or 'slaney'")


@functools.lru_cache(maxsize=32)
def _mel_filterbank_cached(
    n_fft: int, n_mels: int, sample_rate: int, f_min: float, f_max: float, mel_scale: str, norm: str | None
) -> Tensor:
    n_freqs = n_fft // 2 + 1
    all_freqs = torch.linspace(0.0, sample_rate / 2, n_freqs, dtype=torch.float64)  # (F,)
    m_min = hz_to_mel(torch.tensor(f_min, dtype=torch.float64), mel_scale)  # type: ignore[arg-type]
    m_max = hz_to_mel(torch.tensor(f_max, dtype=torch.float64), mel_scale)  # type: ignore[arg-type]
    f_pts = mel_to_hz(torch.linspace(float(m_min), float(m_max), n_mels + 2, dtype=torch.float64), mel_scale)  # type: ignore[arg-type]
    f_diff = f_pts[1:] - f_pts[:-1]  # (n_mels + 1,)
    slopes = f_pts[None, :] - all_freqs[:, None]  # (F, n_mels + 2)
    down = -slopes[:, :-2] / f_diff[:-1]  # rising edge, (F, n_mels)
    up = slopes[:, 2:] / f_diff[1:]  # falling edge, (F, n_mels)
    fb = torch.clamp(torch.minimum(down, up), min=0.0)  # triangles, (F, n_mels)
    if norm == "slaney":
        fb = fb * (2.0 / (f_pts[2 : n_mels + 2] - f_pts[:n_mels]))[None, :]  # equal-area triangles
    elif norm is not None:
        raise ValueError(f"unknown norm {norm!r}; expected None or 'slaney'")
    return fb.T.contiguous().float()  # (n_mels, F)


def mel_filterbank(
    n_fft: int,
    n_mels: int,
    sample_rate: int,
    f_min: float = 0.0,
    f_max: float | None = None,
    mel_scale: MelScale = "htk",
    norm: Literal["slaney"] | None = None,
) -> Tensor:
    """Triangular mel filterbank, (n_mels, n_fft // 2 + 1), non-negative; apply as fb @ |STFT|.

    Matches torchaudio.functional.melscale_fbanks (transposed). norm='slaney' scales each triangle
    to unit area in Hz; with norm=None each triangle peaks at <= 1.
    """
    f_max = sample_rate / 2 if f_max is None else f_max
    if not 0.0 <= f_min < f_max <= sample_rate / 2:
        raise ValueError(f"need 0 <= f_min < f_max <= sample_rate / 2, got f_min={f_min}, f_max={f_max}")
    return _mel_filterbank_cached(n_fft, n_mels, sample_rate, float(f_min), float(f_max), mel_scale, norm).clone()


def mel_spectrogram(
    x: Tensor,
    sample_rate: int,
    n_fft: int = 1024,
    n_mels: int = 80,
    hop_length: int | None = None,
    win_length: int | None = None,
    f_min: float = 0.0,
    f_max: float | None = None,
    mel_scale: MelScale = "htk",
    norm: Literal["slaney"] | None = None,
) -> Tensor:
    """Magnitude mel spectrogram: (..., T) -> (N, n_mels, frames)."""
    mag = stft_magnitude(x, n_fft, hop_length, win_length)  # (N, F, frames)
    f_max = sample_rate / 2 if f_max is None else f_max
    fb = _mel_filterbank_cached(n_fft, n_mels, sample_rate, float(f_min), float(f_max), mel_scale, norm)
    return torch.matmul(fb.to(device=mag.device, dtype=mag.dtype), mag)  # (N, n_mels, frames)


def multi_scale_mel_loss(
    x_hat: Tensor,
    x: Tensor,
    sample_rate: int,
    n_mels: int | Sequence[int] = 80,
    fft_sizes: Sequence[int] = (512, 1024, 2048),
    hop_sizes: Sequence[int] | None = None,
    win_lengths: Sequence[int] | None = None,
    f_min: float = 0.0,
    f_max: float | None = None,
    mel_scale: MelScale = "htk",
    clamp_eps: float = 1e-5,
) -> Tensor:
    """Mean over scales of L1 between log mel spectrograms (DAC / EnCodec style).

    n_mels is one count for all scales or one per scale (use fewer mels for small FFTs so no
    filter is empty). Inputs: (T,), (B, T) or (B, C, T).
    """
    _check_same_shape(x_hat, x)
    res = _resolutions(fft_sizes, hop_sizes, win_lengths)
    mels = [n_mels] * len(res) if isinstance(n_mels, int) else list(n_mels)
    if len(mels) != len(res):
        raise ValueError(f"got {len(mels)} n_mels values for {len(res)} FFT sizes")
    total = x_hat.new_zeros(())
    for (n_fft, hop, win), m in zip(res, mels):
        kw = dict(n_fft=n_fft, n_mels=m, hop_length=hop, win_length=win, f_min=f_min, f_max=f_max, mel_scale=mel_scale)
        mel_hat = mel_spectrogram(x_hat, sample_rate, **kw)  # type: ignore[arg-type]
        mel = mel_spectrogram(x, sample_rate, **kw)  # type: ignore[arg-type]
        total = total + (mel_hat.clamp_min(clamp_eps).log() - mel.clamp_min(clamp_eps).log()).abs().mean()
    return total / len(res)
