"""Damage and its measures: missing-region masks, noise at a chosen SNR, masked PSNR, measured SNR, and
the token cells a mask of missing elements touches."""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

# ---- masks and metrics ----------------------------------------------------------------------------------


def random_box_mask(
    batch: int,
    height: int,
    width: int,
    frac_range: tuple[float, float] = (0.25, 0.5),
    generator: torch.Generator | None = None,
) -> Tensor:
    """(B, 1, H, W) bool, True = missing: per item one axis-aligned rectangle whose area is a fraction of
    the image within `frac_range` (exactly, after rounding to pixels), aspect ratio in [1/2, 2] where
    possible, placed uniformly at random."""
    lo, hi = frac_range
    if not 0 < lo <= hi <= 1:
        raise ValueError(f"frac_range must satisfy 0 < lo <= hi <= 1, got {frac_range}")
    area = height * width
    # box heights h for which some width w in [1, W] gives lo <= h w / area <= hi
    heights = torch.arange(1, height + 1)
    w_min = torch.ceil(lo * area / heights - 1e-9).clamp(min=1)
    w_max = torch.floor(hi * area / heights + 1e-9).clamp(max=width)
    valid = w_min <= w_max
    if not bool(valid.any()):
        raise ValueError(f"no box of a {height}x{width} image covers a fraction within {frac_range}")
    mask = torch.zeros(batch, 1, height, width, dtype=torch.bool)
    for i in range(batch):
        u = torch.rand(4, generator=generator).tolist()
        frac = lo + (hi - lo) * u[0]
        aspect = 2.0 ** (2 * u[1] - 1)  # h / w
        want_h = math.sqrt(frac * area * aspect)
        cost = (heights - want_h).abs().masked_fill(~valid, float("inf"))
        h = int(heights[cost.argmin()])
        w = int(min(max(round(frac * area / h), int(w_min[h - 1])), int(w_max[h - 1])))
        top = int(u[2] * (height - h + 1))
        left = int(u[3] * (width - w + 1))
        mask[i, 0, top : top + h, left : left + w] = True
    return mask


def free_form_mask(
    batch: int,
    height: int,
    width: int,
    generator: torch.Generator | None = None,
    strokes: tuple[int, int] = (1, 3),
    vertices: tuple[int, int] = (2, 5),
    brush: tuple[float, float] = (0.06, 0.14),
    step: float = 0.3,
) -> Tensor:
    """(B, 1, H, W) bool, True = missing: brush strokes (random polylines of `vertices` points, segments of
    up to `step` x the image side, round brush of radius `brush` x the shorter side), as in free-form
    inpainting (Yu et al. 2019). Every item has at least one missing pixel."""
    side = min(height, width)
    ys = torch.arange(height, dtype=torch.float32)[:, None]  # (H, 1)
    xs = torch.arange(width, dtype=torch.float32)[None, :]  # (1, W)
    mask = torch.zeros(batch, 1, height, width, dtype=torch.bool)

    def randint(lo: int, hi: int) -> int:
        return int(torch.randint(lo, hi + 1, (1,), generator=generator))

    for i in range(batch):
        for _ in range(randint(*strokes)):
            radius = max(0.5, (brush[0] + (brush[1] - brush[0]) * float(torch.rand(1, generator=generator))) * side)
            p = torch.rand(2, generator=generator) * torch.tensor([height - 1.0, width - 1.0])
            for _ in range(randint(*vertices) - 1):
                angle = float(torch.rand(1, generator=generator)) * 2 * math.pi
                length = float(torch.rand(1, generator=generator)) * step * side
                q = p + length * torch.tensor([math.sin(angle), math.cos(angle)])
                q = torch.minimum(torch.maximum(q, torch.zeros(2)), torch.tensor([height - 1.0, width - 1.0]))
                d = q - p
                t = (((ys - p[0]) * d[0] + (xs - p[1]) * d[1]) / d.pow(2).sum().clamp(min=1e-9)).clamp(0, 1)  # (H, W)
                dist2 = (ys - p[0] - t * d[0]) ** 2 + (xs - p[1] - t * d[1]) ** 2
                mask[i, 0] |= dist2 <= radius**2
                p = q
        if not bool(mask[i].any()):
            mask[i, 0, int(p[0]), int(p[1])] = True
    return mask


def masked_psnr(
    output: Tensor, target: Tensor, mask: Tensor, data_range: float = 2.0, reduction: Literal["mean", "none"] = "mean"
) -> Tensor:
    """PSNR in dB over the masked (missing) pixels only: 10 log10(range^2 / mse), mse over the pixels
    where mask (B, 1 or C, H, W) is True and every channel. Per item, then the batch mean (items without
    masked pixels are NaN and skipped by the mean) or the (B,) values."""
    if output.shape != target.shape:
        raise ValueError(f"shape mismatch: output {tuple(output.shape)} vs target {tuple(target.shape)}")
    m = mask.bool().expand_as(target).float()
    err = (output.detach().double() - target.detach().double()).pow(2) * m
    dims = tuple(range(1, target.dim()))
    mse = err.sum(dims) / m.sum(dims)  # (B,), NaN where nothing is masked
    per_item = (10 * torch.log10(data_range**2 / mse)).float()
    if reduction == "none":
        return per_item
    if reduction != "mean":
        raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
    return per_item.nanmean()


def token_mask_from_elements(mask: Tensor, grid: tuple[int, ...], dilation: int = 1,
                             factors: tuple[int, ...] | None = None, lead: int = 0) -> Tensor:  # fmt: skip
    """mask (B, 1, *item) bool (True = missing) -> (B, *grid) bool: the tokens whose cell holds a missing
    element, dilated by `dilation` cells (the encoder's and decoder's receptive fields spread past one cell).
    1D, 2D and 3D items.

    A cell is `factors` elements per axis (the tokenizer's downsampling), after `lead` copies of the first
    step along the first axis (a video tokenizer coding its first frame alone: latent frame 0 is frame 0,
    latent frame j 0-based frames 4j-3 .. 4j at factor 4) and padding at the end; without `factors`, item / grid.
    """
    dims = len(grid)
    if mask.dim() != dims + 2 or mask.shape[1] != 1 or dims not in (1, 2, 3):
        raise ValueError(f"expected a mask (B, 1, *item) for a {dims}-axis grid, got {tuple(mask.shape)}")
    if dilation < 0:
        raise ValueError(f"dilation must be >= 0, got {dilation}")
    pool = (F.max_pool1d, F.max_pool2d, F.max_pool3d)[dims - 1]
    m = mask.float()
    cells = None
    if factors is not None:
        if lead:
            m = torch.cat([m[:, :, :1].expand(-1, -1, lead, *m.shape[3:]), m], dim=2)
        pads = [p for f, n in reversed(list(zip(factors, m.shape[2:]))) for p in (0, -n % f)]
        cells = pool(F.pad(m, pads), tuple(factors), stride=tuple(factors))  # (B, 1, *grid')
        cells = cells[(slice(None), slice(None), *(slice(0, g) for g in grid))]
    if cells is None or tuple(cells.shape[2:]) != tuple(grid):
        adaptive = (F.adaptive_max_pool1d, F.adaptive_max_pool2d, F.adaptive_max_pool3d)[dims - 1]
        cells = adaptive(mask.float(), grid)  # (B, 1, *grid)
    if dilation:
        cells = pool(cells, 2 * dilation + 1, stride=1, padding=dilation)
    return cells[:, 0] > 0


def add_noise(
    clean: Tensor,
    snr_db: float,
    generator: torch.Generator | None = None,
    kind: Literal["white", "babble"] = "white",
    talkers: int = 4,
) -> Tensor:
    """clean (B, C, *spatial) plus noise scaled per item to exactly `snr_db` (10 log10 of clean power over
    noise power, over the whole item).

    kind "white": Gaussian noise. "babble": `talkers` other items of the batch (or the item itself when the
    batch has one), each circularly shifted along the last axis by a random offset, summed.
    """
    if clean.dim() < 3:
        raise ValueError(f"expected items (B, C, *spatial), got {tuple(clean.shape)}")
    b = clean.shape[0]
    x = clean.detach().double()
    if kind == "white":
        noise = torch.randn(x.shape, generator=generator, dtype=torch.float64).to(x.device)
    elif kind == "babble":
        noise = torch.zeros_like(x)
        for i in range(b):
            others = [j for j in range(b) if j != i] or [i]
            for k in range(talkers):
                j = others[int(torch.randint(len(others), (1,), generator=generator))]
                shift = int(torch.randint(x.shape[-1], (1,), generator=generator))
                noise[i] += x[j].roll(shift, -1) * (1 if k % 2 == 0 else -1)
        noise = noise + 1e-6 * torch.randn(x.shape, generator=generator, dtype=torch.float64).to(x.device)
    else:
        raise ValueError(f"unknown noise kind {kind!r} (white or babble)")
    dims = tuple(range(1, x.dim()))
    p_clean = x.pow(2).mean(dims)  # (B,)
    p_noise = noise.pow(2).mean(dims).clamp(min=1e-30)
    scale = torch.sqrt(p_clean / (p_noise * 10 ** (snr_db / 10)))  # (B,)
    return (x + scale.reshape(-1, *[1] * len(dims)) * noise).to(clean.dtype)


def measured_snr_db(noisy: Tensor, clean: Tensor) -> Tensor:
    """(B,) 10 log10(clean power / (noisy - clean) power) per item."""
    x, n = clean.double(), (noisy.double() - clean.double())
    dims = tuple(range(1, x.dim()))
    return (10 * torch.log10(x.pow(2).sum(dims) / n.pow(2).sum(dims))).float()


__all__ = [
    "random_box_mask",
    "free_form_mask",
    "masked_psnr",
    "token_mask_from_elements",
    "add_noise",
    "measured_snr_db",
]
