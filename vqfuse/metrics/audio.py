"""Audio reconstruction metrics: SI-SNR, STOI, log-mel L1 and multi-resolution STFT distance.

Inputs are ``(B, C, T)``, ``(B, T)`` or ``(T,)`` (estimate first, reference second); every metric is
computed per item (channels folded into the item) and, with ``reduction="mean"``, averaged over items.
"""

from __future__ import annotations

from typing import Literal, Sequence

import numpy as np
import torch
from torch import Tensor
from torchmetrics.functional.audio import scale_invariant_signal_noise_ratio

from vqfuse.losses.reconstruction import mel_spectrogram, multi_resolution_stft_loss

__all__ = ["si_snr", "stoi", "log_mel_l1", "mr_stft_distance"]

Reduction = Literal["mean", "none"]


def _items(est: Tensor, ref: Tensor) -> tuple[Tensor, Tensor]:
    """Check shapes and fold to ``(N, T)`` float32 (N = B, or B x C for multichannel items)."""
    if est.shape != ref.shape:
        raise ValueError(f"shape mismatch: estimate {tuple(est.shape)} vs reference {tuple(ref.shape)}")
    if est.dim() == 0 or est.shape[-1] == 0:
        raise ValueError(f"audio needs a non-empty time axis, got shape {tuple(est.shape)}")
    if est.dim() == 1:
        est, ref = est[None], ref[None]
    return est.detach().float().reshape(-1, est.shape[-1]), ref.detach().float().reshape(-1, ref.shape[-1])


def _n_items(x: Tensor) -> int:
    return 1 if x.dim() == 1 else x.shape[0]


def _reduce(per_row: Tensor, like: Tensor, reduction: Reduction) -> Tensor:
    """(N,) per row -> (B,) per item (mean over channels) -> mean or (B,)."""
    per_item = per_row.reshape(_n_items(like), -1).mean(dim=1)  # (B,)
    if reduction == "mean":
        return per_item.mean()
    if reduction == "none":
        return per_item
    raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")


def si_snr(est: Tensor, ref: Tensor, reduction: Reduction = "mean") -> Tensor:
    """Scale-invariant signal-to-noise ratio in dB (higher is better); both signals are zero-meaned.

    Identical signals give a very large value (~ +100 dB or more), independent noise about -20 dB or lower.
    """
    e, r = _items(est, ref)
    per_row = scale_invariant_signal_noise_ratio(e, r)  # (N,)
    return _reduce(per_row, est, reduction)


def stoi(est: Tensor, ref: Tensor, sample_rate: int, extended: bool = False, reduction: Reduction = "mean") -> Tensor:
    """Short-time objective intelligibility (pystoi), 0..1 (higher is better); ``extended`` gives ESTOI.

    Computed per item in numpy. STOI needs about 0.4 s of non-silent audio; for shorter or silent
    references pystoi returns ~1e-5 (with a warning, silenced here).
    """
    import warnings

    from pystoi import stoi as _stoi

    e, r = _items(est, ref)
    values = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for ei, ri in zip(e.cpu().numpy().astype(np.float64), r.cpu().numpy().astype(np.float64)):
            values.append(float(_stoi(ri, ei, int(sample_rate), extended=extended)))
    return _reduce(torch.tensor(values, dtype=torch.float32), est, reduction)


def log_mel_l1(
    est: Tensor,
    ref: Tensor,
    sample_rate: int,
    n_mels: int = 80,
    n_fft: int = 1024,
    hop_length: int = 256,
    eps: float = 1e-5,
    reduction: Reduction = "mean",
) -> Tensor:
    """Mean |log(max(mel(est), eps)) - log(max(mel(ref), eps))| over mels and frames (lower is better).

    Mel magnitude spectrogram from :func:`vqfuse.losses.reconstruction.mel_spectrogram` (HTK scale).
    """
    e, r = _items(est, ref)
    me = mel_spectrogram(e, sample_rate, n_fft=n_fft, n_mels=n_mels, hop_length=hop_length)  # (N, M, F)
    mr = mel_spectrogram(r, sample_rate, n_fft=n_fft, n_mels=n_mels, hop_length=hop_length)
    per_row = (me.clamp_min(eps).log() - mr.clamp_min(eps).log()).abs().mean(dim=(1, 2))  # (N,)
    return _reduce(per_row, est, reduction)


def mr_stft_distance(
    est: Tensor, ref: Tensor, fft_sizes: Sequence[int] = (512, 1024, 2048), reduction: Reduction = "mean"
) -> Tensor:
    """Multi-resolution STFT distance (spectral convergence + log magnitude L1, averaged over
    resolutions; :func:`multi_resolution_stft_loss`) per item (lower is better, 0 for identical)."""
    e, r = _items(est, ref)
    per_row = torch.stack([multi_resolution_stft_loss(ei, ri, fft_sizes=fft_sizes) for ei, ri in zip(e, r)])  # (N,)
    return _reduce(per_row, est, reduction)
