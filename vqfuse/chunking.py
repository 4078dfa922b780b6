"""Run a network over a long signal in overlapping windows along one axis (time), without seams.

A signal of ``n`` frames is cut into near-equal *centre* spans of at most ``chunk`` frames. Each window
adds ``margin`` frames of context on both sides (clipped at the ends of the signal), the network runs on
the window, and only the centre of its output is kept. When the margin covers the network's receptive
field plus the crossfade (below), the result equals running the network on the whole signal (up to
float rounding); memory depends on the window length only, not on the signal's length.

``crossfade`` (frames, at most ``margin``) blends neighbouring windows over ``2 * crossfade`` frames
around each boundary with complementary sin^2 / cos^2 weights (they sum to 1). For networks whose
receptive field is unbounded (e.g. GroupNorm statistics taken over the whole window), this hides the
small jumps that hard cuts would leave; for networks with a bounded receptive field it changes nothing.

"Frames" are steps of the coarse (latent) rate. The network maps ``in_step`` input steps per frame to
``out_step`` output steps per frame: an encoder with total stride ``hop`` has ``in_step=hop, out_step=1``,
its decoder ``in_step=1, out_step=hop``. Window boundaries are therefore always multiples of the hop on
the fine axis, so that every window's frames line up with the whole signal's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

# Long inputs are processed in windows of CHUNK_SECONDS plus MARGIN_SECONDS of context on each side, and
# neighbouring windows are crossfaded over 2 * CROSSFADE_SECONDS. The waveform speech codec's encoder and decoder
# convolutions each see 8 frames (0.16 s) either side of a frame, well inside MARGIN - CROSSFADE; only
# non-causal GroupNorm, whose statistics span the whole window, makes windows differ from one pass. The
# spectral codec's decoder sees 25 frames (0.5 s = MARGIN - CROSSFADE) either side and normalises each
# frame on its own, so its windows match one pass.
CHUNK_SECONDS = 10.0
MARGIN_SECONDS = 1.0
CROSSFADE_SECONDS = 0.5


@dataclass(frozen=True)
class Chunking:
    """How to cut the time axis, in frames (latent steps).

    Args:
        chunk: centre frames per window (at most; the centres are spread evenly).
        margin: context frames on each side of a centre; should cover the network's receptive field plus
            ``crossfade`` (blended frames reach ``crossfade`` frames into the neighbour's centre).
        crossfade: frames blended on each side of a boundary (clamped to ``margin`` and to half the
            shortest centre).
    """

    chunk: int
    margin: int = 0
    crossfade: int = 0

    def __post_init__(self) -> None:
        if self.chunk < 1 or self.margin < 0 or self.crossfade < 0:
            raise ValueError(f"need chunk >= 1, margin >= 0, crossfade >= 0; got {self}")

    @property
    def window(self) -> int:
        """Longest window the network sees, in frames; shorter signals run in one go."""
        return self.chunk + 2 * self.margin

    @classmethod
    def from_seconds(cls, frames_per_second: float, chunk: float, margin: float, crossfade: float = 0.0) -> "Chunking":
        """Durations in seconds -> whole frames (so every boundary is a multiple of the hop)."""
        return cls(
            chunk=max(1, round(chunk * frames_per_second)),
            margin=max(0, math.ceil(margin * frames_per_second - 1e-9)),  # at least the time asked
            crossfade=max(0, round(crossfade * frames_per_second)),
        )


@dataclass(frozen=True)
class Window:
    """One window, in frames: the network sees ``[start, stop)``, and ``[keep_start, keep_stop)`` is its
    centre (the part of the signal this window is responsible for)."""

    start: int
    stop: int
    keep_start: int
    keep_stop: int


def plan_windows(n: int, chunking: Chunking) -> list[Window]:
    """Windows covering ``n`` frames: centres partition ``[0, n)`` into ``ceil(n / chunk)`` near-equal
    spans; one window (the whole signal) when ``n <= chunking.window``."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if n <= chunking.window:
        return [Window(0, n, 0, n)]
    count = math.ceil(n / chunking.chunk)
    bounds = [round(k * n / count) for k in range(count + 1)]
    return [
        Window(max(0, a - chunking.margin), min(n, b + chunking.margin), a, b) for a, b in zip(bounds[:-1], bounds[1:])
    ]


def _ramp(length: int, like: Tensor) -> Tensor:
    """(length,) rising weights sin^2 on sample centres; ``1 - ramp`` is the matching falling one."""
    pos = (torch.arange(length, device=like.device, dtype=torch.float64) + 0.5) / length
    return torch.sin(0.5 * math.pi * pos).square().to(like.dtype)


def apply_chunked(
    fn: Callable[[Tensor], Tensor],
    x: Tensor,
    chunking: Chunking | None,
    in_step: int = 1,
    out_step: int = 1,
    axis: int = -1,
) -> Tensor:
    """``fn(x)`` computed window by window along ``axis``.

    Args:
        fn: maps a slice of ``m`` frames (``m * in_step`` steps along ``axis``) to ``m * out_step`` steps
            along the same axis; other axes may change size, but alike for every window.
        x: e.g. (B, C, T) or (C, T); its length along ``axis`` must be a multiple of ``in_step``.
        chunking: how to cut; ``None`` runs ``fn`` once on the whole of ``x``.
        in_step, out_step: input and output steps per frame (hop, 1 for an encoder; 1, hop for a decoder).
        axis: the time axis.

    Returns:
        The output, ``n * out_step`` long along ``axis`` where ``n = x.shape[axis] // in_step``.
    """
    axis = axis % x.dim()
    length = x.shape[axis]
    if length % in_step:
        raise ValueError(f"length {length} along axis {axis} is not a multiple of the step {in_step}")
    n = length // in_step
    windows = plan_windows(n, chunking) if chunking is not None else [Window(0, n, 0, n)]
    if len(windows) == 1:
        return fn(x)
    # Crossfade ramps of one window must not overlap each other, nor reach past its context.
    fade = min(chunking.crossfade, chunking.margin, min(w.keep_stop - w.keep_start for w in windows) // 2)
    out: Tensor | None = None
    for k, w in enumerate(windows):
        y = fn(x.narrow(axis, w.start * in_step, (w.stop - w.start) * in_step))  # (..., (stop-start)*out_step, ...)
        if y.shape[axis] != (w.stop - w.start) * out_step:
            raise ValueError(
                f"fn gave {y.shape[axis]} steps for {w.stop - w.start} frames, expected {out_step} per frame"
            )
        first, last = k == 0, k == len(windows) - 1
        lo = w.keep_start - (0 if first else fade)  # frames this window contributes to
        hi = w.keep_stop + (0 if last else fade)
        part = y.narrow(axis, (lo - w.start) * out_step, (hi - lo) * out_step)
        if out is None:
            shape = list(y.shape)
            shape[axis] = n * out_step
            out = y.new_zeros(shape)
        if fade:
            weight = torch.ones(part.shape[axis], device=part.device, dtype=part.dtype)
            ramp = _ramp(2 * fade * out_step, part)
            if not first:
                weight[: ramp.numel()] = ramp
            if not last:
                weight[weight.numel() - ramp.numel() :] = 1 - ramp
            view = [1] * part.dim()
            view[axis] = -1
            part = part * weight.view(view)
        out.narrow(axis, lo * out_step, (hi - lo) * out_step).add_(part)
        del y, part
    assert out is not None
    return out


def pad_to_multiple(x: Tensor, factors: tuple[int, ...]) -> Tensor:
    """(C, *spatial) -> (C, *padded): each axis padded at its end by replicating the edge, up to a
    multiple of its factor."""
    spatial = x.shape[1:]
    extra = [(-n) % f for n, f in zip(spatial, factors)]
    if not any(extra):
        return x
    pad: list[int] = []
    for e in reversed(extra):  # F.pad lists the last axis first
        pad += [0, e]
    return F.pad(x.unsqueeze(0), pad, mode="replicate").squeeze(0)


__all__ = [
    "Chunking",
    "Window",
    "plan_windows",
    "apply_chunked",
    "pad_to_multiple",
    "CHUNK_SECONDS",
    "MARGIN_SECONDS",
    "CROSSFADE_SECONDS",
]
