"""Audio GAN discriminators: multi-scale STFT (EnCodec) and multi-period (HiFi-GAN).

Both follow the output contract of :mod:`vqfuse.nets.discriminators`: a set of sub-discriminators
returns ``(list_of_logits, list_of_feature_lists)``, so :class:`CombinedDiscriminator`, the adversarial
losses and feature matching take them unchanged. Widths are configurable and small by default (CPU).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm, weight_norm

from .discriminators import DiscriminatorOutput, MultiDiscriminatorOutput

__all__ = ["STFTDiscriminator", "MultiScaleSTFTDiscriminator", "PeriodDiscriminator", "MultiPeriodDiscriminator"]

AUDIO_DISC_NORMS = ("weight", "spectral", "none")


def _normed(conv: nn.Module, norm: str) -> nn.Module:
    if norm == "weight":
        return weight_norm(conv)
    if norm == "spectral":
        return spectral_norm(conv)
    if norm == "none":
        return conv
    raise ValueError(f"norm must be one of {AUDIO_DISC_NORMS}, got {norm!r}")


def _same_padding(kernel: tuple[int, int], dilation: tuple[int, int] = (1, 1)) -> tuple[int, int]:
    return ((kernel[0] - 1) * dilation[0] // 2, (kernel[1] - 1) * dilation[1] // 2)


class STFTDiscriminator(nn.Module):
    """One EnCodec-style STFT discriminator: complex STFT as real/imag channels, 2D convs over (time, freq).

    Layout: conv(3x9) -> [conv(3x9), stride 2 on freq, dilation d on time] for d in dilations -> conv 3x3
    -> conv 3x3 to one logit per (frame, frequency bin). LeakyReLU(0.2) after every conv but the last.

    Args:
        n_fft: FFT size (window = n_fft, Hann); hop = n_fft // 4 unless given.
        in_channels: audio channels; each gives a real and an imaginary input plane.
        channels: width of every conv layer.
    """

    def __init__(
        self,
        n_fft: int = 1024,
        hop_length: int | None = None,
        in_channels: int = 1,
        channels: int = 32,
        dilations: Sequence[int] = (1, 2, 4),
        kernel: tuple[int, int] = (3, 9),
        norm: str = "weight",
    ) -> None:
        super().__init__()
        self.n_fft, self.hop_length = n_fft, hop_length or n_fft // 4
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        layers = [_normed(nn.Conv2d(2 * in_channels, channels, kernel, padding=_same_padding(kernel)), norm)]
        for d in dilations:
            layers.append(
                _normed(
                    nn.Conv2d(
                        channels,
                        channels,
                        kernel,
                        stride=(1, 2),
                        dilation=(d, 1),
                        padding=_same_padding(kernel, (d, 1)),
                    ),
                    norm,
                )
            )
        layers.append(
            _normed(
                nn.Conv2d(channels, channels, (kernel[0], kernel[0]), padding=_same_padding((kernel[0],) * 2)), norm
            )
        )
        self.convs = nn.ModuleList(layers)
        self.out = _normed(
            nn.Conv2d(channels, 1, (kernel[0], kernel[0]), padding=_same_padding((kernel[0],) * 2)), norm
        )

    def forward(self, x: Tensor) -> DiscriminatorOutput:
        # x: (B, C, T)
        if x.shape[-1] < self.n_fft:
            raise ValueError(
                f"STFT discriminator with n_fft={self.n_fft} needs at least {self.n_fft} samples, got {x.shape[-1]}"
            )
        b = x.shape[0]
        spec = torch.stft(
            x.reshape(-1, x.shape[-1]).float(),
            self.n_fft,
            self.hop_length,
            window=self.window,
            center=False,
            normalized=True,
            return_complex=True,
        )  # (B*C, F, frames)
        spec = rearrange(spec, "(b c) f t -> b c t f", b=b)
        z = torch.cat([spec.real, spec.imag], dim=1).to(x.dtype)  # (B, 2C, frames, F)
        features: list[Tensor] = []
        for conv in self.convs:
            z = F.leaky_relu(conv(z), 0.2)
            features.append(z)
        return self.out(z), features  # logits (B, 1, frames, F / 2**len(dilations))


class MultiScaleSTFTDiscriminator(nn.Module):
    """EnCodec's MS-STFT discriminator: one :class:`STFTDiscriminator` per FFT size.

    Returns ``(list_of_logits, list_of_feature_lists)``, one entry per FFT size.
    """

    def __init__(
        self,
        n_ffts: Sequence[int] = (1024, 512, 256),
        channels: int = 32,
        in_channels: int = 1,
        hop_lengths: Sequence[int] | None = None,
        norm: str = "weight",
        **kwargs,
    ) -> None:
        super().__init__()
        hops = list(hop_lengths) if hop_lengths is not None else [n // 4 for n in n_ffts]
        if not n_ffts or len(hops) != len(n_ffts):
            raise ValueError("n_ffts must be non-empty and hop_lengths (if given) of the same length")
        self.discriminators = nn.ModuleList(
            STFTDiscriminator(n, h, in_channels=in_channels, channels=channels, norm=norm, **kwargs)
            for n, h in zip(n_ffts, hops)
        )

    def forward(self, x: Tensor) -> MultiDiscriminatorOutput:
        # x: (B, C, T)
        outs = [disc(x) for disc in self.discriminators]
        return [o[0] for o in outs], [o[1] for o in outs]


class PeriodDiscriminator(nn.Module):
    """HiFi-GAN period discriminator: the waveform folded to ``(T / p, p)``, 2D convs along time only.

    Layout: [conv (k x 1), stride (s x 1)] with widths ``channels * mults`` -> conv (k x 1) -> conv (3 x 1)
    to one logit per (step, phase). LeakyReLU(0.1) after every conv but the last.
    """

    def __init__(
        self,
        period: int,
        in_channels: int = 1,
        channels: int = 32,
        mults: Sequence[int] = (1, 2, 4, 4),
        kernel: int = 5,
        stride: int = 3,
        norm: str = "weight",
    ) -> None:
        super().__init__()
        if period < 1:
            raise ValueError(f"period must be >= 1, got {period}")
        self.period = period
        widths = [in_channels] + [channels * m for m in mults]
        pad = (kernel - 1) // 2
        layers = [
            _normed(nn.Conv2d(c_in, c_out, (kernel, 1), (stride, 1), padding=(pad, 0)), norm)
            for c_in, c_out in zip(widths[:-1], widths[1:])
        ]
        layers.append(_normed(nn.Conv2d(widths[-1], widths[-1], (kernel, 1), 1, padding=(pad, 0)), norm))
        self.convs = nn.ModuleList(layers)
        self.out = _normed(nn.Conv2d(widths[-1], 1, (3, 1), 1, padding=(1, 0)), norm)

    def forward(self, x: Tensor) -> DiscriminatorOutput:
        # x: (B, C, T)
        t = x.shape[-1]
        if t < self.period:
            raise ValueError(
                f"period discriminator with period {self.period} needs at least {self.period} samples, got {t}"
            )
        if t % self.period:
            n_pad = self.period - t % self.period
            x = F.pad(x, (0, n_pad), mode="reflect" if n_pad < t else "constant")
        z = rearrange(x, "b c (n p) -> b c n p", p=self.period)  # (B, C, T / p, p)
        features: list[Tensor] = []
        for conv in self.convs:
            z = F.leaky_relu(conv(z), 0.1)
            features.append(z)
        return self.out(z), features  # logits (B, 1, ~T / (p * stride**len(mults)), p)


class MultiPeriodDiscriminator(nn.Module):
    """HiFi-GAN's MPD: one :class:`PeriodDiscriminator` per (prime) period.

    Returns ``(list_of_logits, list_of_feature_lists)``, one entry per period.
    """

    def __init__(
        self,
        periods: Sequence[int] = (2, 3, 5, 7, 11),
        channels: int = 32,
        in_channels: int = 1,
        norm: str = "weight",
        **kwargs,
    ) -> None:
        super().__init__()
        if not periods:
            raise ValueError("periods must be non-empty")
        self.discriminators = nn.ModuleList(
            PeriodDiscriminator(p, in_channels=in_channels, channels=channels, norm=norm, **kwargs) for p in periods
        )

    def forward(self, x: Tensor) -> MultiDiscriminatorOutput:
        # x: (B, C, T)
        outs = [disc(x) for disc in self.discriminators]
        return [o[0] for o in outs], [o[1] for o in outs]
