"""Dimension-generic building blocks: 1D (audio), 2D (images) and 3D (video) are one code path.

Conventions:
- Tensors are channel-first: (B, C, *spatial) with 1 to 3 spatial axes.
- The time axis, when `causal=True`, is always the first spatial axis: the only one for audio (B, C, T),
  the frame axis for video (B, C, T, H, W). Causal layers pad only on the past side of that axis and
  compute normalisation statistics per time step, so an output never depends on a later input.
- Strides may be one int (same on every axis) or one int per axis, e.g. (1, 2, 2) to downsample video
  in space only.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from einops import pack, rearrange, unpack
from torch import Tensor, nn

IntOrTuple = int | Sequence[int]

_CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
_CONV_T = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}
_AVG_POOL = {1: nn.AvgPool1d, 2: nn.AvgPool2d, 3: nn.AvgPool3d}
PAD_MODES = ("zeros", "replicate")


def _check_dims(dims: int) -> None:
    if dims not in (1, 2, 3):
        raise ValueError(f"dims must be 1, 2 or 3 (number of spatial axes), got {dims}")


def conv_nd(dims: int, *args, transpose: bool = False, **kwargs) -> nn.Module:
    """nn.Conv{1,2,3}d (or nn.ConvTranspose{1,2,3}d) for `dims` spatial axes; other args pass through."""
    _check_dims(dims)
    return (_CONV_T if transpose else _CONV)[dims](*args, **kwargs)


def avg_pool_nd(dims: int, *args, **kwargs) -> nn.Module:
    """nn.AvgPool{1,2,3}d for `dims` spatial axes."""
    _check_dims(dims)
    return _AVG_POOL[dims](*args, **kwargs)


def to_tuple(value: IntOrTuple, dims: int, name: str = "value") -> tuple[int, ...]:
    """An int, or a sequence of `dims` ints, as a tuple of `dims` ints."""
    if isinstance(value, int):
        return (value,) * dims
    out = tuple(int(v) for v in value)
    if len(out) != dims:
        raise ValueError(f"{name} needs 1 or {dims} values (one per spatial axis), got {tuple(value)}")
    return out


def stride_kernel(stride: IntOrTuple, dims: int) -> tuple[int, ...]:
    """Kernel paired with a resampling stride: 2*s on axes with s > 1 (overlapping windows), 3 where s == 1."""
    return tuple(2 * s if s > 1 else 3 for s in to_tuple(stride, dims, "stride"))


def norm_groups_for(channels: int, groups: int) -> int:
    """Largest group count <= `groups` that divides `channels` (GroupNorm needs an exact division)."""
    groups = max(1, min(groups, channels))
    while channels % groups:
        groups -= 1
    return groups


class PaddedConv(nn.Module):
    """Convolution (or transposed convolution) whose padding keeps sizes an exact multiple of the stride.

    A conv maps length L to L / s and a transposed conv maps L to L * s, whenever L is divisible by s.
    The padding (trim, for transposed convs) totals k - s per axis. It is split evenly, or, on the time
    axis of a causal layer, put entirely on the past side (conv) or trimmed from the future side
    (transposed conv), so output step t only sees inputs up to the end of its own stride window.

    Args:
        dims: number of spatial axes (1, 2 or 3).
        kernel_size, stride: one int or one int per axis; kernel_size >= stride on every axis.
        causal: causal along the first spatial axis.
        transpose: use a transposed convolution (upsampling by `stride`).
        pad_mode: "zeros" or "replicate" (both keep causality; replicate repeats the first frame).
    """

    def __init__(
        self,
        dims: int,
        in_channels: int,
        out_channels: int,
        kernel_size: IntOrTuple = 3,
        stride: IntOrTuple = 1,
        causal: bool = False,
        transpose: bool = False,
        pad_mode: str = "zeros",
        bias: bool = True,
    ) -> None:
        super().__init__()
        _check_dims(dims)
        if pad_mode not in PAD_MODES:
            raise ValueError(f"pad_mode must be one of {PAD_MODES}, got {pad_mode!r}")
        if transpose and pad_mode != "zeros":
            raise ValueError("transposed convs trim instead of padding: use pad_mode='zeros'")
        kernel = to_tuple(kernel_size, dims, "kernel_size")
        strides = to_tuple(stride, dims, "stride")
        if any(k < s for k, s in zip(kernel, strides)):
            raise ValueError(f"kernel_size {kernel} must be >= stride {strides} on every axis")
        self.dims, self.causal, self.transpose, self.pad_mode = dims, causal, transpose, pad_mode
        # (left, right) padding / trim per axis, first spatial axis first.
        self.pads: list[tuple[int, int]] = []
        for axis, (k, s) in enumerate(zip(kernel, strides)):
            total = k - s
            left = total if (causal and axis == 0) else total // 2
            if causal and axis == 0 and transpose:
                left = 0  # trim everything from the future side
            self.pads.append((left, total - left))
        # Symmetric zero padding is done by the conv itself, which skips a copy of the input.
        self.native = pad_mode == "zeros" and all(l == r for l, r in self.pads)
        padding = tuple(l for l, _ in self.pads) if self.native else 0
        self.conv = conv_nd(
            dims, in_channels, out_channels, kernel, stride=strides, padding=padding, bias=bias, transpose=transpose
        )

    @property
    def weight(self) -> Tensor:
        return self.conv.weight

    def forward(self, x: Tensor) -> Tensor:
        # x: (B, C_in, *spatial)
        if self.native:
            return self.conv(x)
        if self.transpose:
            y = self.conv(x)
            index = [slice(None), slice(None)] + [slice(l, y.shape[2 + i] - r) for i, (l, r) in enumerate(self.pads)]
            return y[tuple(index)]
        # F.pad takes (left, right) pairs starting from the LAST axis.
        flat = [p for pair in reversed(self.pads) for p in pair]
        mode = "constant" if self.pad_mode == "zeros" else self.pad_mode
        return self.conv(F.pad(x, flat, mode=mode))


class Norm(nn.Module):
    """GroupNorm over (B, C, *spatial); with `causal`, statistics are taken per time step.

    Per time step means over (channels in group, other spatial axes). With no other spatial axes (dims == 1)
    a group would hold only C / G numbers, so causal 1D uses a single group (a LayerNorm over channels).
    """

    def __init__(self, dims: int, channels: int, groups: int = 32, causal: bool = False, eps: float = 1e-6) -> None:
        super().__init__()
        _check_dims(dims)
        if causal and dims == 1:
            groups = 1
        self.causal = causal
        self.norm = nn.GroupNorm(norm_groups_for(channels, groups), channels, eps=eps)

    def forward(self, x: Tensor) -> Tensor:
        if not self.causal:
            return self.norm(x)
        b = x.shape[0]
        y = self.norm(rearrange(x, "b c t ... -> (b t) c ..."))  # (B*T, C, *rest)
        return rearrange(y, "(b t) c ... -> b c t ...", b=b)


class ResBlock(nn.Module):
    """(Norm, SiLU, conv3) twice plus a residual path; a 1x1 conv matches channels when they change."""

    def __init__(
        self,
        dims: int,
        in_channels: int,
        out_channels: int | None = None,
        norm_groups: int = 32,
        dropout: float = 0.0,
        causal: bool = False,
        pad_mode: str = "zeros",
    ) -> None:
        super().__init__()
        out_channels = out_channels or in_channels
        self.norm1 = Norm(dims, in_channels, norm_groups, causal)
        self.conv1 = PaddedConv(dims, in_channels, out_channels, 3, causal=causal, pad_mode=pad_mode)
        self.norm2 = Norm(dims, out_channels, norm_groups, causal)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = PaddedConv(dims, out_channels, out_channels, 3, causal=causal, pad_mode=pad_mode)
        self.skip = conv_nd(dims, in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        # x: (B, C_in, *spatial) -> (B, C_out, *spatial)
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h


class Downsample(nn.Module):
    """Strided conv dividing each axis by its stride (kernel 2*s, e.g. 4 for s=2, 10 for s=5)."""

    def __init__(
        self,
        dims: int,
        in_channels: int,
        out_channels: int | None = None,
        stride: IntOrTuple = 2,
        causal: bool = False,
        pad_mode: str = "zeros",
    ) -> None:
        super().__init__()
        self.stride = to_tuple(stride, dims, "stride")
        self.conv = PaddedConv(
            dims,
            in_channels,
            out_channels or in_channels,
            stride_kernel(self.stride, dims),
            self.stride,
            causal=causal,
            pad_mode=pad_mode,
        )

    def forward(self, x: Tensor) -> Tensor:
        # (B, C, *spatial) -> (B, C_out, *spatial / stride)
        return self.conv(x)


UPSAMPLE_MODES = ("nearest", "transpose")


class Upsample(nn.Module):
    """Multiply each axis by its stride: nearest interpolation + conv3, or a transposed conv (kernel 2*s)."""

    def __init__(
        self,
        dims: int,
        in_channels: int,
        out_channels: int | None = None,
        stride: IntOrTuple = 2,
        mode: str = "nearest",
        causal: bool = False,
        pad_mode: str = "zeros",
    ) -> None:
        super().__init__()
        if mode not in UPSAMPLE_MODES:
            raise ValueError(f"upsample mode must be one of {UPSAMPLE_MODES}, got {mode!r}")
        out_channels = out_channels or in_channels
        self.mode = mode
        self.stride = to_tuple(stride, dims, "stride")
        if mode == "nearest":
            self.conv = PaddedConv(dims, in_channels, out_channels, 3, causal=causal, pad_mode=pad_mode)
        else:
            self.conv = PaddedConv(
                dims,
                in_channels,
                out_channels,
                stride_kernel(self.stride, dims),
                self.stride,
                causal=causal,
                transpose=True,
            )

    def forward(self, x: Tensor) -> Tensor:
        # (B, C, *spatial) -> (B, C_out, *spatial * stride)
        if self.mode == "nearest":
            # Nearest is causal: output step j copies input step j // s.
            x = F.interpolate(x, scale_factor=self.stride, mode="nearest")
        return self.conv(x)


class AttnBlock(nn.Module):
    """Residual multi-head self-attention over all spatial positions (no positional encoding).

    With `causal`, a position attends only to positions at the same or an earlier time step (the first
    spatial axis): a plain causal mask in 1D, a block-causal mask over frames in 3D.
    """

    def __init__(self, dims: int, channels: int, heads: int = 1, norm_groups: int = 32, causal: bool = False) -> None:
        super().__init__()
        if channels % heads:
            raise ValueError(f"channels ({channels}) must be divisible by heads ({heads})")
        self.heads, self.causal = heads, causal
        self.norm = Norm(dims, channels, norm_groups, causal)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.proj = nn.Linear(channels, channels)

    def _mask(self, spatial: tuple[int, ...], device: torch.device) -> Tensor | None:
        """(N, N) bool mask, True where attention is allowed; None when no mask is needed."""
        if not self.causal or spatial[0] == 1:
            return None
        per_step = math.prod(spatial[1:])
        step = torch.arange(spatial[0], device=device).repeat_interleave(per_step)  # (N,) time step of each position
        return step[:, None] >= step[None, :]

    def forward(self, x: Tensor) -> Tensor:
        # x: (B, C, *spatial)
        spatial = tuple(x.shape[2:])
        h, packed_shape = pack([self.norm(x)], "b c *")  # (B, C, N)
        h = rearrange(h, "b c n -> b n c")
        q, k, v = rearrange(self.qkv(h), "b n (three h d) -> three b h n d", three=3, h=self.heads)  # (B, H, N, D) each
        mask = self._mask(spatial, x.device)
        h = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, H, N, D)
        h = self.proj(rearrange(h, "b h n d -> b n (h d)"))  # (B, N, C)
        [h] = unpack(rearrange(h, "b n c -> b c n"), packed_shape, "b c *")  # (B, C, *spatial)
        return x + h
