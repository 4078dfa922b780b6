"""One convolutional encoder/decoder pair for 1D, 2D and 3D signals (VQ-GAN layout).

Encoder: conv_in -> per level [ResBlock x blocks_per_level, Downsample] -> mid [Res, (Attn), Res]
         -> Norm, SiLU, conv_out(latent_dim).
Decoder: the mirror image, ending in `conv_out`, whose weight (`last_layer_weight`) the VQ-GAN adaptive
         loss weight differentiates against.

Causal video (`causal=True`, `first_frame_alone=True`, dims 3): the first frame is coded on its own, as in
MAGVIT-v2 and Cosmos, so one model tokenizes images (T = 1) and clips of 1 + f*k frames (f the temporal
factor) with one vocabulary. The encoder repeats frame 0 (f - 1) times in front, so f*(k+1) frames give
k + 1 latent frames and, the convs being causal, latent frame 0 depends on frame 0 only; the decoder
gives f*(k+1) frames and drops the first f - 1. `forward_aligned` runs either net without that step, for
callers that pad once and then window the time axis (the tokenizer).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .blocks import PAD_MODES, UPSAMPLE_MODES, AttnBlock, Downsample, Norm, PaddedConv, ResBlock, Upsample, to_tuple

Stride = int | tuple[int, ...]


def _tupled(value: Any) -> Any:
    """JSON lists -> tuples, recursively (config fields are tuples)."""
    if isinstance(value, (list, tuple)):
        return tuple(_tupled(v) for v in value)
    return value


@dataclass
class AutoencoderConfig:
    """Shape of an Encoder/Decoder pair.

    Args:
        dims: spatial axes: 1 audio (B, C, T), 2 images (B, C, H, W), 3 video (B, C, T, H, W).
        in_channels: channels of the signal (3 for RGB, 1 for mono audio).
        channels: width of the full-rate level; keep it small (e.g. 16) for audio, where it dominates cost.
        channel_mults: width multiplier per level; the number of levels.
        blocks_per_level: ResBlocks per level.
        strides: downsampling factor between consecutive levels (len(channel_mults) - 1 entries), each one
            int or one int per axis, e.g. (1, 2, 2) for space-only video downsampling. Default 2 each.
        latent_dim: channels of the latent the quantizer sees.
        attention: self-attention in the middle (lowest resolution) block.
        attention_heads: heads of that attention.
        norm_groups: GroupNorm groups, clamped to divide each width.
        causal: causal along the first spatial axis (time) for streaming audio / causal video.
        dropout: dropout inside ResBlocks.
        upsample: "nearest" (interpolate + conv) or "transpose" (transposed conv) in the decoder.
        pad_mode: "zeros" or "replicate" padding of convs.
        first_frame_alone: code the first time step on its own (needs `causal`): inputs have 1 + f*k steps
            along time (f = downsample_factors[0]) and give 1 + k latent steps; see the module docstring.
    """

    dims: int = 2
    in_channels: int = 3
    channels: int = 64
    channel_mults: tuple[int, ...] = (1, 2, 2)
    blocks_per_level: int = 1
    strides: tuple[Stride, ...] | None = None
    latent_dim: int = 64
    attention: bool = False
    attention_heads: int = 1
    norm_groups: int = 32
    causal: bool = False
    dropout: float = 0.0
    upsample: str = "nearest"
    pad_mode: str = "zeros"
    first_frame_alone: bool = False

    def __post_init__(self) -> None:
        self.channel_mults = _tupled(self.channel_mults)
        self.strides = _tupled(self.strides)
        if self.dims not in (1, 2, 3):
            raise ValueError(f"dims must be 1, 2 or 3, got {self.dims}")
        if not self.channel_mults or min(self.channel_mults) < 1:
            raise ValueError(f"channel_mults must be a non-empty tuple of positive ints, got {self.channel_mults}")
        if self.blocks_per_level < 1:
            raise ValueError(f"blocks_per_level must be >= 1, got {self.blocks_per_level}")
        if self.strides is not None and len(self.strides) != len(self.channel_mults) - 1:
            raise ValueError(
                f"strides needs len(channel_mults) - 1 = {len(self.channel_mults) - 1} entries "
                f"(one per downsampling step), got {self.strides}"
            )
        if any(s < 1 for level in self.level_strides for s in level):
            raise ValueError(f"strides must be >= 1, got {self.strides}")
        if self.upsample not in UPSAMPLE_MODES:
            raise ValueError(f"upsample must be one of {UPSAMPLE_MODES}, got {self.upsample!r}")
        if self.pad_mode not in PAD_MODES:
            raise ValueError(f"pad_mode must be one of {PAD_MODES}, got {self.pad_mode!r}")
        if self.attention and (self.channels * self.channel_mults[-1]) % self.attention_heads:
            raise ValueError("the lowest-resolution width must be divisible by attention_heads")
        if self.first_frame_alone and not self.causal:
            # without causality later frames would leak into latent frame 0, which then is no image code
            raise ValueError("first_frame_alone needs causal: true")

    @property
    def level_strides(self) -> tuple[tuple[int, ...], ...]:
        """Per downsampling step, the stride of each spatial axis."""
        strides = self.strides if self.strides is not None else (2,) * (len(self.channel_mults) - 1)
        return tuple(to_tuple(s, self.dims, "stride") for s in strides)

    @property
    def downsample_factors(self) -> tuple[int, ...]:
        """Total downsampling of each spatial axis."""
        return tuple(math.prod(axis) for axis in zip(*self.level_strides)) or (1,) * self.dims

    @property
    def downsample_factor(self) -> int:
        """Total downsampling per axis (product of strides), when every axis is downsampled alike."""
        factors = set(self.downsample_factors)
        if len(factors) != 1:
            raise ValueError(f"axes are downsampled differently {self.downsample_factors}: use downsample_factors")
        return factors.pop()

    @property
    def widths(self) -> tuple[int, ...]:
        """Channel width of each level."""
        return tuple(self.channels * m for m in self.channel_mults)

    @property
    def time_lead(self) -> int:
        """Copies of the first time step put in front of the input (f - 1 with first_frame_alone, else 0)."""
        return self.downsample_factors[0] - 1 if self.first_frame_alone else 0

    def latent_shape(self, size: tuple[int, ...] | list[int]) -> tuple[int, ...]:
        """Latent grid of an input of spatial `size`, each axis padded up to fit (1 + k steps on time
        with first_frame_alone: 21 frames at factor 4 -> 6)."""
        lead = (self.time_lead,) + (0,) * (self.dims - 1)
        return tuple(math.ceil((n + e) / f) for n, e, f in zip(size, lead, self.downsample_factors))

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (tuples become lists)."""
        out = asdict(self) | {
            "channel_mults": list(self.channel_mults),
            "strides": None if self.strides is None else [s if isinstance(s, int) else list(s) for s in self.strides],
        }
        if not self.first_frame_alone:
            out.pop("first_frame_alone")  # configs saved before the option existed stay byte-identical
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Any:
        """An AutoencoderConfig, or a `SpectralConfig` when `data["kind"] == "spectral"`: configs without
        `kind` (every model saved before the spectral codec) stay waveform conv autoencoders."""
        kind = data.get("kind")
        if kind is not None:
            if kind != "spectral":
                raise ValueError(f"unknown autoencoder kind {kind!r}; choose 'spectral' or leave kind out")
            from .spectral import SpectralConfig

            return SpectralConfig.from_dict(data)
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown AutoencoderConfig keys {sorted(unknown)}; known keys: {sorted(known)}")
        return cls(**data)


def repeat_first_step(x: Tensor, copies: int) -> Tensor:
    """(B, C, T, *rest) -> (B, C, copies + T, *rest): `copies` repeats of step 0 in front (none for 0)."""
    if copies == 0:
        return x
    return torch.cat([x[:, :, :1].expand(-1, -1, copies, *x.shape[3:]), x], dim=2)


def drop_first_steps(x: Tensor, count: int) -> Tensor:
    """(B, C, T, *rest) -> (B, C, T - count, *rest): the inverse of `repeat_first_step` on decoder outputs."""
    return x[:, :, count:] if count else x


def causal_context(net: nn.Module, factor: int) -> int | None:
    """Past context of a causal Encoder or Decoder along time, in latent steps (`factor` input steps each).

    The most latent steps before its own that any output depends on: windows along time that start this
    many latent steps before the part they keep give exactly the one-pass result (the nets have no other
    reach: per-step GroupNorm, 1x1 skips). None when unbounded (causal attention sees the whole past).
    Derived from the modules in forward order, so it follows the layout without repeating it.
    """
    steps: list[Any] = []  # each maps an output index to the earliest input index it reads
    for m in net.modules():
        if isinstance(m, AttnBlock):
            return None
        if isinstance(m, Upsample) and m.mode == "nearest":
            steps.append(lambda t, s=m.stride[0]: t // s)  # output t copies input t // s
        elif isinstance(m, PaddedConv):
            k, s = m.conv.kernel_size[0], m.conv.stride[0]
            left = m.pads[0][0]
            if m.transpose:  # input i writes outputs [i*s, i*s + k) before trimming `left`
                steps.append(lambda t, k=k, s=s, left=left: -((k - 1 - t - left) // s))
            else:  # output i reads padded [i*s, i*s + k), i.e. inputs from i*s - left
                steps.append(lambda t, s=s, left=left: t * s - left)
    encoder = isinstance(net, Encoder)
    # latent step j owns input steps [j*f, (j+1)*f); decoder output t belongs to latent t // f
    probe = range(64 * factor, 66 * factor) if not encoder else range(64, 66)
    worst = 0
    for t in probe:
        e = t
        for step in reversed(steps):
            e = step(e)
        worst = max(worst, (t * factor - e) if encoder else (t // factor - e))
    return math.ceil(worst / factor) if encoder else worst


def _mid_block(cfg: AutoencoderConfig, width: int) -> nn.Sequential:
    """ResBlock, optional attention, ResBlock at the lowest resolution."""
    res = dict(norm_groups=cfg.norm_groups, dropout=cfg.dropout, causal=cfg.causal, pad_mode=cfg.pad_mode)
    layers: list[nn.Module] = [ResBlock(cfg.dims, width, width, **res)]
    if cfg.attention:
        layers.append(AttnBlock(cfg.dims, width, cfg.attention_heads, cfg.norm_groups, cfg.causal))
    layers.append(ResBlock(cfg.dims, width, width, **res))
    return nn.Sequential(*layers)


class Encoder(nn.Module):
    """(B, in_channels, *spatial) -> (B, latent_dim, *spatial / downsample_factors)."""

    def __init__(self, cfg: AutoencoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d, widths = cfg.dims, cfg.widths
        res = dict(norm_groups=cfg.norm_groups, dropout=cfg.dropout, causal=cfg.causal, pad_mode=cfg.pad_mode)
        self.conv_in = PaddedConv(d, cfg.in_channels, widths[0], 3, causal=cfg.causal, pad_mode=cfg.pad_mode)
        self.levels = nn.ModuleList()
        width = widths[0]
        for i, out_width in enumerate(widths):
            level = nn.Sequential()
            for _ in range(cfg.blocks_per_level):
                level.append(ResBlock(d, width, out_width, **res))
                width = out_width
            if i < len(widths) - 1:
                level.append(
                    Downsample(d, width, stride=cfg.level_strides[i], causal=cfg.causal, pad_mode=cfg.pad_mode)
                )
            self.levels.append(level)
        self.mid = _mid_block(cfg, width)
        self.norm_out = Norm(d, width, cfg.norm_groups, cfg.causal)
        self.conv_out = PaddedConv(d, width, cfg.latent_dim, 3, causal=cfg.causal, pad_mode=cfg.pad_mode)

    def forward(self, x: Tensor) -> Tensor:
        # x: (B, in_channels, *spatial); with first_frame_alone (B, C, 1 + f*k, H, W) -> (B, D, 1 + k, h, w)
        if x.dim() != self.cfg.dims + 2 or x.shape[1] != self.cfg.in_channels:
            raise ValueError(
                f"expected (B, {self.cfg.in_channels}, <{self.cfg.dims} spatial axes>), got {tuple(x.shape)}"
            )
        if self.cfg.first_frame_alone and (x.shape[2] - 1) % self.cfg.downsample_factors[0]:
            raise ValueError(
                f"first_frame_alone needs 1 + {self.cfg.downsample_factors[0]}*k frames, got {x.shape[2]}: "
                "pad the clip at its end first"
            )
        return self.forward_aligned(repeat_first_step(x, self.cfg.time_lead))

    def forward_aligned(self, x: Tensor) -> Tensor:
        """The encoder without first-frame handling: x (B, C, *spatial), every axis a multiple of its factor
        (the first frame already repeated in front when first_frame_alone)."""
        spatial, factors = tuple(x.shape[2:]), self.cfg.downsample_factors
        if any(n % f for n, f in zip(spatial, factors)):
            raise ValueError(
                f"spatial size {spatial} must be divisible by the downsampling factors {factors}: "
                "crop or pad the input first"
            )
        h = self.conv_in(x)  # (B, widths[0], *spatial)
        for level in self.levels:
            h = level(h)
        h = self.mid(h)  # (B, widths[-1], *spatial / factors)
        return self.conv_out(F.silu(self.norm_out(h)))  # (B, latent_dim, *spatial / factors)


class Decoder(nn.Module):
    """(B, latent_dim, *latent_spatial) -> (B, in_channels, *latent_spatial * downsample_factors)."""

    def __init__(self, cfg: AutoencoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d, widths = cfg.dims, cfg.widths
        res = dict(norm_groups=cfg.norm_groups, dropout=cfg.dropout, causal=cfg.causal, pad_mode=cfg.pad_mode)
        width = widths[-1]
        self.conv_in = PaddedConv(d, cfg.latent_dim, width, 3, causal=cfg.causal, pad_mode=cfg.pad_mode)
        self.mid = _mid_block(cfg, width)
        self.levels = nn.ModuleList()
        for i in reversed(range(len(widths))):
            level = nn.Sequential()
            for _ in range(cfg.blocks_per_level):
                level.append(ResBlock(d, width, widths[i], **res))
                width = widths[i]
            if i > 0:
                level.append(
                    Upsample(
                        d,
                        width,
                        stride=cfg.level_strides[i - 1],
                        mode=cfg.upsample,
                        causal=cfg.causal,
                        pad_mode=cfg.pad_mode,
                    )
                )
            self.levels.append(level)
        self.norm_out = Norm(d, width, cfg.norm_groups, cfg.causal)
        self.conv_out = PaddedConv(d, width, cfg.in_channels, 3, causal=cfg.causal, pad_mode=cfg.pad_mode)

    @property
    def last_layer_weight(self) -> Tensor:
        """Weight of the final conv (the VQ-GAN adaptive weight uses gradient norms w.r.t. it)."""
        return self.conv_out.weight

    def forward(self, z: Tensor) -> Tensor:
        # z: (B, latent_dim, *latent_spatial); with first_frame_alone (B, D, 1 + k, h, w) -> (B, C, 1 + f*k, H, W)
        return drop_first_steps(self.forward_aligned(z), self.cfg.time_lead)

    def forward_aligned(self, z: Tensor) -> Tensor:
        """The decoder without first-frame handling: (B, D, *latent) -> (B, C, *latent * factors)."""
        if z.dim() != self.cfg.dims + 2 or z.shape[1] != self.cfg.latent_dim:
            raise ValueError(
                f"expected (B, {self.cfg.latent_dim}, <{self.cfg.dims} spatial axes>), got {tuple(z.shape)}"
            )
        h = self.mid(self.conv_in(z))  # (B, widths[-1], *latent_spatial)
        for level in self.levels:
            h = level(h)
        return self.conv_out(F.silu(self.norm_out(h)))  # (B, in_channels, *latent_spatial * factors)
