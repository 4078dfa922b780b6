"""The built-in judge kinds: small CNNs on images and on log-mel spectrograms of speech (see
:mod:`vqfuse.fusion.judges` for the interface).

- :class:`ImageJudge`: a small CNN on ``(N, 3, S, S)`` images in [-1, 1] (any ``S >= 8``).
- :class:`AudioJudge`: a small CNN on log-mel spectrograms of ``(N, 1, T)`` / ``(N, T)`` audio in
  [-1, 1] (16 kHz, about 1 s; any length works, the time axis is pooled).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vqfuse.fusion.judges import Judge
from vqfuse.losses.reconstruction import mel_spectrogram

__all__ = ["ImageJudge", "AudioJudge", "log_mel_features"]


# ----------------------------------------------------------------------------------------------
# Networks


class _ImageNet(nn.Module):
    """(N, 3, s, s) -> features (N, D) -> logits (N, C). Three 3x3 convs, two 2x pools, a 4x4 adaptive pool."""

    def __init__(self, num_classes: int, channels: int = 16, feature_dim: int = 128, dropout: float = 0.2) -> None:
        super().__init__()
        c = channels
        self.body = nn.Sequential(
            nn.Conv2d(3, c, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(c, c, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(c, 2 * c, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveMaxPool2d(4),
            nn.Flatten(),
            nn.Linear(2 * c * 16, feature_dim),
            nn.ReLU(),
        )
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(feature_dim, num_classes))

    def features(self, x: Tensor) -> Tensor:
        return self.body(x)  # (N, D)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.body(x))  # (N, C)


class _AudioNet(nn.Module):
    """Log-mel (N, 1, M, T') -> features (N, D) -> logits (N, C).

    Three 1-D convolutions over time with the mel bins as channels (keyword-spotting style, cheap on a CPU),
    then mean and max over time, so clips of any length and any position of the word work."""

    def __init__(
        self, num_classes: int, n_mels: int, channels: int = 32, feature_dim: int = 128, dropout: float = 0.2
    ) -> None:
        super().__init__()
        c = channels
        self.convs = nn.Sequential(
            nn.Conv1d(n_mels, c, 5, padding=2),
            nn.BatchNorm1d(c),
            nn.ReLU(),
            nn.Conv1d(c, c, 3, padding=2, dilation=2),
            nn.BatchNorm1d(c),
            nn.ReLU(),
            nn.Conv1d(c, 2 * c, 3, padding=1),
            nn.BatchNorm1d(2 * c),
            nn.ReLU(),
        )
        self.proj = nn.Sequential(nn.Linear(4 * c, feature_dim), nn.ReLU())
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(feature_dim, num_classes))

    def features(self, x: Tensor) -> Tensor:
        h = self.convs(x[:, 0])  # (N, 2c, T')
        return self.proj(torch.cat([h.mean(dim=-1), h.amax(dim=-1)], dim=1))  # (N, D)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))  # (N, C)


# ----------------------------------------------------------------------------------------------
# Image judge


class ImageJudge(Judge):
    """Small CNN on images ``(N, 3, S, S)`` in [-1, 1]; reaches ~98-99% on held-out real av-digits images.

    Images are area-resized to ``input_size`` (16: av-digits are 8x8 digits upscaled, so nothing is lost).
    Options: ``channels`` (16), ``feature_dim`` (128), ``dropout`` (0.2); training augmentation is a random
    small affine warp (rotation, scale, shift), the border filled with black (-1).
    """

    kind = "image"
    defaults = {
        "input_size": 16,
        "channels": 16,
        "feature_dim": 128,
        "dropout": 0.2,
        "max_rotation": 10.0,
        "max_shift": 0.1,
        "max_scale": 0.1,
    }

    def _build(self) -> nn.Module:
        c = self.config
        return _ImageNet(self.num_classes, int(c["channels"]), int(c["feature_dim"]), float(c["dropout"]))

    def _inputs(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != 3 or min(x.shape[-2:]) < 8:
            raise ValueError(f"ImageJudge expects (N, 3, S, S) images with S >= 8, got {tuple(x.shape)}")
        size = int(self.config["input_size"])
        x = x.float()
        return x if tuple(x.shape[-2:]) == (size, size) else F.interpolate(x, size=(size, size), mode="area")

    def _augment(self, x: Tensor, gen: torch.Generator) -> Tensor:
        n = x.shape[0]
        c = self.config
        u = torch.rand(n, 4, generator=gen).to(x.device) * 2 - 1  # (N, 4) in [-1, 1]
        angle = u[:, 0] * math.radians(float(c["max_rotation"]))
        scale = 1 + u[:, 1] * float(c["max_scale"])
        shift = u[:, 2:] * float(c["max_shift"]) * 2  # grid units: the image spans [-1, 1]
        cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
        theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)  # (N, S, S, 2)
        return F.grid_sample(x + 1, grid, align_corners=False, padding_mode="zeros") - 1  # border: black


# ----------------------------------------------------------------------------------------------
# Audio judge


def log_mel_features(
    audio: Tensor,
    sample_rate: int = 16000,
    n_mels: int = 32,
    n_fft: int = 512,
    hop_length: int = 320,
    floor_db: float = 80.0,
) -> Tensor:
    """Audio (N, 1, T) or (N, T) -> normalised log-mel (N, 1, n_mels, frames), roughly in [-2, 2].

    Each clip is scaled so its loudest mel bin is 0 dB and floored ``floor_db`` below it (gain-invariant).
    """
    if audio.dim() == 3:
        if audio.shape[1] != 1:
            raise ValueError(f"expected mono audio (N, 1, T), got {tuple(audio.shape)}")
        audio = audio[:, 0]
    if audio.dim() != 2:
        raise ValueError(f"expected audio (N, 1, T) or (N, T), got {tuple(audio.shape)}")
    mel = mel_spectrogram(audio.float(), sample_rate, n_fft=n_fft, n_mels=n_mels, hop_length=hop_length)  # (N, M, T')
    db = 10.0 * torch.log10(mel.clamp_min(1e-10) ** 2)
    db = db - db.amax(dim=(1, 2), keepdim=True)
    db = db.clamp_min(-floor_db)
    return ((db + floor_db / 2) / (floor_db / 4)).unsqueeze(1)  # (N, 1, M, T')


class AudioJudge(Judge):
    """Small 1-D CNN on log-mel spectrograms of 16 kHz audio ``(N, 1, T)``; see :func:`log_mel_features`.

    Options: ``sample_rate`` (16000), ``n_mels`` (32), ``n_fft`` (512), ``hop_length`` (320), ``channels`` (32),
    ``feature_dim`` (128), ``dropout`` (0.2). Training augmentation (SpecAugment-like): a random time shift,
    a shift of up to ``max_mel_shift`` mel bins (a crude voice change), one frequency and one time mask.
    """

    kind = "audio"
    defaults = {
        "sample_rate": 16000,
        "n_mels": 32,
        "n_fft": 512,
        "hop_length": 320,
        "channels": 32,
        "feature_dim": 128,
        "dropout": 0.2,
        "max_time_shift": 10,
        "max_mel_shift": 2,
        "freq_mask": 5,
        "time_mask": 8,
    }

    def _build(self) -> nn.Module:
        c = self.config
        return _AudioNet(
            self.num_classes, int(c["n_mels"]), int(c["channels"]), int(c["feature_dim"]), float(c["dropout"])
        )

    def _inputs(self, x: Tensor) -> Tensor:
        c = self.config
        return log_mel_features(x, int(c["sample_rate"]), int(c["n_mels"]), int(c["n_fft"]), int(c["hop_length"]))

    def _augment(self, x: Tensor, gen: torch.Generator) -> Tensor:
        n, _, m, t = x.shape
        c = self.config
        floor = x.amin()
        out = x.clone()

        def ints(high: int) -> Tensor:  # (N,) in [-high, high]
            return torch.randint(-high, high + 1, (n,), generator=gen) if high > 0 else torch.zeros(n, dtype=torch.long)

        frames = torch.arange(t)  # index tensors stay on the CPU generator's device, moved below
        bins = torch.arange(m)
        dt, dm = ints(int(c["max_time_shift"])), ints(int(c["max_mel_shift"]))
        src_t = frames[None] - dt[:, None]  # (N, T')
        src_m = (bins[None] - dm[:, None]).clamp(0, m - 1)  # (N, M): edge bins repeated
        rows, src_m, src_tc = torch.arange(n)[:, None, None], src_m[:, :, None], src_t.clamp(0, t - 1)[:, None, :]
        out = out[rows.to(x.device), 0, src_m.to(x.device), src_tc.to(x.device)].unsqueeze(1)  # (N, 1, M, T')
        outside = ((src_t < 0) | (src_t >= t))[:, None, None, :].to(x.device)  # (N, 1, 1, T')
        out = out.masked_fill(outside, float(floor))
        fw = torch.randint(0, int(c["freq_mask"]) + 1, (n,), generator=gen)
        f0 = (torch.rand(n, generator=gen) * (m - fw + 1)).long()
        tw = torch.randint(0, int(c["time_mask"]) + 1, (n,), generator=gen)
        t0 = (torch.rand(n, generator=gen) * (t - tw + 1)).long()
        fmask = (bins[None] >= f0[:, None]) & (bins[None] < (f0 + fw)[:, None])  # (N, M)
        tmask = (frames[None] >= t0[:, None]) & (frames[None] < (t0 + tw)[:, None])  # (N, T')
        mask = (fmask[:, :, None] | tmask[:, None, :])[:, None].to(x.device)  # (N, 1, M, T')
        return out.masked_fill(mask, float(floor))
