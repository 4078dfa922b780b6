"""Video reconstruction / prediction metrics on clips (B, C, T, H, W) in [-1, 1], OpenSTL definitions.

Everything is computed on pixels mapped to [0, 1] ((x + 1) / 2), as OpenSTL does for Moving MNIST
(`chengtan9907/OpenSTL openstl/core/metrics.py`), and averaged per clip, then over the batch.

- ``frame_psnr``: mean over frames of the per-frame PSNR (peak 1); ``psnr_of_mean_mse`` pools the MSE
  first, so it is the lower of the two whenever frames differ in quality.
- ``openstl_mse`` / ``openstl_mae``: per-frame SUM over C*H*W of squared / absolute error, then the mean
  over frames (all-zeros on moving digits gives about 175).
- ``frame_ssim``: per-frame SSIM, vectorised over frames, in two variants:
  ``window="gaussian"`` (11x11 Gaussian, sigma 1.5, population covariance, data_range 1: the Wang et al.
  settings; equal to skimage ``gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
  data_range=1``), and ``window="uniform"`` (7x7 box, sample covariance, data_range 2: what OpenSTL
  gets from scikit-image <= 0.16 when it calls SSIM on floats with no data_range).
  Both average the SSIM map over the "valid" region (where the window fits), as skimage does.
  torchmetrics 1.9 (used by ``vqfuse.metrics.image.ssim``) instead reflect-pads and averages the whole
  frame, so its value differs slightly (about 5e-4 on 32x32 noise; more where borders are busy).
- ``temporal_mae`` / ``temporal_psnr``: how well the output's frame-to-frame changes follow the input's:
  with d(x)[t] = x[t+1] - x[t], the mean |d(y) - d(x)| and 10 log10(1 / mean (d(y) - d(x))^2). Both are
  0 / +inf when the output moves exactly like the input (even if offset by a constant), and a frozen
  output scores the mean |d(x)| of the input's motion.

PSNR and SSIM clip the outputs to [-1, 1] first; MSE and MAE use them as given (as OpenSTL does:
it clips after computing MSE/MAE).

Masks (repair protocols, research/video-anchors.md 1.6): a boolean ``mask`` (B, 1|C, T, H, W) restricts
every error to the masked pixels. Frame statistics then run over the frames with at least one masked
pixel: MSE/MAE are the per-frame sums over the masked pixels (e.g. over a 24x24 hole, or over whole
missing frames), PSNR uses the mean over the masked pixels of each frame, SSIM averages its map over
the masked pixels of the valid region, and the temporal terms use the pixel pairs (t, t+1) where
either end is masked (so the seams into and out of a repaired gap count).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor

__all__ = [
    "frame_psnr",
    "psnr_of_mean_mse",
    "openstl_mse",
    "openstl_mae",
    "frame_ssim",
    "temporal_mae",
    "temporal_psnr",
    "video_metrics",
]

Reduction = Literal["mean", "none"]
Window = Literal["gaussian", "uniform"]


def _prepare(outputs: Tensor, inputs: Tensor, mask: Tensor | None, clamp: bool) -> tuple[Tensor, Tensor, Tensor]:
    """[0, 1] float copies of both clips and a boolean mask broadcast to (B, C, T, H, W)."""
    if outputs.shape != inputs.shape:
        raise ValueError(f"shape mismatch: outputs {tuple(outputs.shape)} vs inputs {tuple(inputs.shape)}")
    if inputs.dim() != 5:
        raise ValueError(f"expected clips (B, C, T, H, W), got {tuple(inputs.shape)}")
    # float64 keeps the per-frame sums exact enough to compare with NumPy references; MPS lacks it
    dtype = torch.float64 if inputs.device.type in ("cpu", "cuda") else torch.float32
    y = outputs.detach().to(dtype)
    x = inputs.detach().to(dtype)
    if clamp:  # decoders overshoot; PSNR/SSIM are defined on the valid range
        y = y.clamp(-1, 1)
    y, x = (y + 1) / 2, (x + 1) / 2
    if mask is None:
        m = torch.ones_like(x, dtype=torch.bool)
    else:
        if mask.dtype != torch.bool:
            raise ValueError(f"mask must be boolean, got {mask.dtype}")
        if (
            mask.dim() != 5
            or mask.shape[1] not in (1, x.shape[1])
            or mask.shape[0] != x.shape[0]
            or mask.shape[2:] != x.shape[2:]
        ):
            raise ValueError(f"mask must be (B, 1|C, T, H, W) for clips {tuple(x.shape)}, got {tuple(mask.shape)}")
        m = mask.to(x.device).expand_as(x)
    return y, x, m


def _per_clip(frame_values: Tensor, frame_used: Tensor, reduction: Reduction) -> Tensor:
    """Mean over the used frames of each clip (B, T) -> (B,), then optionally over the batch.

    A clip with no used frame (empty mask) gives NaN rather than a silent 0.
    """
    used = frame_used.to(frame_values.dtype)
    values = torch.where(frame_used, frame_values, torch.zeros_like(frame_values))
    per_clip = values.sum(1) / used.sum(1)  # (B,); inf stays inf where an unmasked frame is perfect
    per_clip = torch.where(used.sum(1) > 0, per_clip, torch.full_like(per_clip, math.nan))
    return per_clip.mean() if reduction == "mean" else per_clip


def _frame_sums(err: Tensor, m: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Per-frame (B, T) sum of err over masked pixels, masked-pixel count, and whether the frame is used."""
    e = torch.where(m, err, torch.zeros_like(err))
    total = e.sum(dim=(1, 3, 4))  # (B, T)
    count = m.sum(dim=(1, 3, 4)).to(err.dtype)  # (B, T)
    return total, count, count > 0


def openstl_mse(outputs: Tensor, inputs: Tensor, mask: Tensor | None = None, reduction: Reduction = "mean") -> Tensor:
    """OpenSTL MSE: per-frame sum over C*H*W (masked pixels only) of squared [0, 1] error, mean over frames."""
    y, x, m = _prepare(outputs, inputs, mask, clamp=False)
    total, _, used = _frame_sums((y - x) ** 2, m)
    return _per_clip(total, used, reduction)


def openstl_mae(outputs: Tensor, inputs: Tensor, mask: Tensor | None = None, reduction: Reduction = "mean") -> Tensor:
    """OpenSTL MAE: per-frame sum over C*H*W (masked pixels only) of absolute [0, 1] error, mean over frames."""
    y, x, m = _prepare(outputs, inputs, mask, clamp=False)
    total, _, used = _frame_sums((y - x).abs(), m)
    return _per_clip(total, used, reduction)


def _psnr_from_mse(mse: Tensor) -> Tensor:
    # peak 1 on [0, 1] pixels; mse 0 -> +inf (as OpenSTL's PSNR returns inf)
    return 10 * torch.log10(1.0 / mse)


def frame_psnr(
    outputs: Tensor, inputs: Tensor, mask: Tensor | None = None, reduction: Reduction = "mean", clamp: bool = True
) -> Tensor:
    """Mean of per-frame PSNRs (dB, [0, 1] pixels, peak 1) per clip, then over clips (reduction='mean').

    A perfectly reconstructed frame is +inf, so identical clips give +inf.
    """
    y, x, m = _prepare(outputs, inputs, mask, clamp)
    total, count, used = _frame_sums((y - x) ** 2, m)
    mse = total / count.clamp_min(1)  # (B, T) per-pixel MSE of each frame
    return _per_clip(_psnr_from_mse(mse), used, reduction)


def psnr_of_mean_mse(outputs: Tensor, inputs: Tensor, mask: Tensor | None = None, clamp: bool = True) -> Tensor:
    """PSNR of the per-pixel MSE pooled over all (masked) pixels of the batch: a scalar, <= frame_psnr."""
    y, x, m = _prepare(outputs, inputs, mask, clamp)
    err = torch.where(m, (y - x) ** 2, torch.zeros_like(y))
    return _psnr_from_mse(err.sum() / m.sum().clamp_min(1))


def _window(window: Window, dtype: torch.dtype, device: torch.device) -> tuple[Tensor, float]:
    """1D window (taps,) and the covariance normalisation of that SSIM variant."""
    if window == "gaussian":
        # skimage: radius int(3.5 * sigma + 0.5) = 5 -> 11 taps; torchmetrics: kernel 11, sigma 1.5
        r = torch.arange(-5, 6, dtype=dtype, device=device)
        g = torch.exp(-(r**2) / (2 * 1.5**2))
        return g / g.sum(), 1.0
    if window == "uniform":
        n = 7  # old skimage default win_size; sample covariance (N / (N - 1)) as skimage does by default
        return torch.full((n,), 1.0 / n, dtype=dtype, device=device), n * n / (n * n - 1)
    raise ValueError(f"window must be 'gaussian' or 'uniform', got {window!r}")


def _band(n: int, k: Tensor) -> Tensor:
    """(n - taps + 1, n) matrix whose rows are the window k shifted one step each: a valid 1D filter."""
    m, taps = n - k.numel() + 1, k.numel()
    band = torch.zeros(m, n, dtype=k.dtype, device=k.device)
    cols = torch.arange(m, device=k.device)[:, None] + torch.arange(taps, device=k.device)  # (m, taps)
    band[torch.arange(m, device=k.device)[:, None], cols] = k
    return band


def _ssim_map(y: Tensor, x: Tensor, window: Window, data_range: float) -> Tensor:
    """SSIM map over the valid region: frames (N, C, H, W) -> (N, H - 2p, W - 2p), mean over channels."""
    k, cov_norm = _window(window, x.dtype, x.device)
    taps, (h, w) = k.numel(), x.shape[-2:]
    if h < taps or w < taps:
        raise ValueError(f"frames of {(h, w)} are smaller than the {taps}x{taps} SSIM window")
    # valid separable filtering (= skimage's filter-then-crop on the interior) as two matmuls with banded
    # matrices: BLAS does this ~5x faster than a depthwise conv2d on CPU, and in float64
    band_h, band_w = _band(h, k), _band(w, k)  # (H', H), (W', W)

    def filt(z: Tensor) -> Tensor:  # (..., H, W) -> (..., H', W')
        return band_h @ z @ band_w.T

    # all five local moments in one batched pass: (5N, C, H, W)
    n = x.shape[0]
    moments = filt(torch.cat([x, y, x * x, y * y, x * y]))
    ux, uy, uxx, uyy, uxy = moments.split(n)
    vx = cov_norm * (uxx - ux * ux)
    vy = cov_norm * (uyy - uy * uy)
    vxy = cov_norm * (uxy - ux * uy)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return s.mean(1)  # equal-size channel maps, so this is skimage's mean of per-channel means


def frame_ssim(
    outputs: Tensor,
    inputs: Tensor,
    mask: Tensor | None = None,
    window: Window = "gaussian",
    data_range: float | None = None,
    reduction: Reduction = "mean",
    clamp: bool = True,
) -> Tensor:
    """Per-frame SSIM on [0, 1] pixels, mean over frames per clip, then over clips.

    window='gaussian' (default data_range 1) is the current standard; window='uniform' (default
    data_range 2) reproduces OpenSTL's old-skimage figures, which come out 0.015-0.025 higher.
    """
    y, x, m = _prepare(outputs, inputs, mask, clamp)
    if data_range is None:
        data_range = 1.0 if window == "gaussian" else 2.0
    b, c, t, h, w = x.shape
    frames = lambda z: z.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)  # noqa: E731  (B*T, C, H, W)
    s = _ssim_map(frames(y), frames(x), window, data_range)  # (B*T, H', W')
    p = (h - s.shape[-2]) // 2
    fm = frames(m).any(1)[:, p : h - p, p : w - p]  # (B*T, H', W') masked pixels of the valid region
    sums = torch.where(fm, s, torch.zeros_like(s)).sum((1, 2)).view(b, t)
    count = fm.sum((1, 2)).view(b, t)
    return _per_clip(sums / count.clamp_min(1), count > 0, reduction)


def _temporal(outputs: Tensor, inputs: Tensor, mask: Tensor | None, clamp: bool) -> tuple[Tensor, Tensor]:
    """Difference of frame-to-frame changes e = d(y) - d(x) (B, C, T-1, H, W) and the pair mask."""
    y, x, m = _prepare(outputs, inputs, mask, clamp)
    if x.shape[2] < 2:
        raise ValueError(f"temporal metrics need at least 2 frames, got T={x.shape[2]}")
    e = (y[:, :, 1:] - y[:, :, :-1]) - (x[:, :, 1:] - x[:, :, :-1])
    pair = m[:, :, 1:] | m[:, :, :-1]  # a change counts when either of its frames is masked
    return e, pair


def _pair_mean(values: Tensor, pair: Tensor) -> Tensor:
    """Per-clip mean of values over the used pixel pairs (B, C, T-1, H, W) -> (B,); NaN with none used."""
    total = torch.where(pair, values, torch.zeros_like(values)).flatten(1).sum(1)
    count = pair.flatten(1).sum(1)
    return torch.where(count > 0, total / count.clamp_min(1), torch.full_like(total, math.nan))


def temporal_mae(
    outputs: Tensor, inputs: Tensor, mask: Tensor | None = None, reduction: Reduction = "mean", clamp: bool = True
) -> Tensor:
    """Per-clip mean |d(y) - d(x)| over (masked) pixel pairs, d = next frame minus frame, [0, 1] pixels."""
    e, pair = _temporal(outputs, inputs, mask, clamp)
    per_clip = _pair_mean(e.abs(), pair)  # (B,)
    return per_clip.mean() if reduction == "mean" else per_clip


def temporal_psnr(
    outputs: Tensor, inputs: Tensor, mask: Tensor | None = None, reduction: Reduction = "mean", clamp: bool = True
) -> Tensor:
    """Per-clip 10 log10(1 / mean (d(y) - d(x))^2) (peak 1, like frame_psnr); +inf for identical motion."""
    e, pair = _temporal(outputs, inputs, mask, clamp)
    per_clip = _psnr_from_mse(_pair_mean(e * e, pair))  # (B,)
    return per_clip.mean() if reduction == "mean" else per_clip


def video_metrics(outputs: Tensor, inputs: Tensor, mask: Tensor | None = None) -> dict[str, float]:
    """All video metrics of this module for clips (B, C, T, H, W) in [-1, 1], as floats.

    Keys: psnr (mean per-frame PSNR), psnr_of_mean_mse, mse_per_frame / mae_per_frame (OpenSTL per-frame
    sums; the evaluator's own "mse" / "l1" are per element), ssim
    (Gaussian 11x11, data_range 1), ssim_openstl (uniform 7x7, data_range 2), temporal_mae and
    temporal_psnr (present when T >= 2). SSIM is omitted for frames smaller than its window.
    """
    out = {
        "psnr": frame_psnr(outputs, inputs, mask),
        "psnr_of_mean_mse": psnr_of_mean_mse(outputs, inputs, mask),
        "mse_per_frame": openstl_mse(outputs, inputs, mask),
        "mae_per_frame": openstl_mae(outputs, inputs, mask),
    }
    if min(inputs.shape[-2:]) >= 11:
        out["ssim"] = frame_ssim(outputs, inputs, mask, window="gaussian")
    if min(inputs.shape[-2:]) >= 7:
        out["ssim_openstl"] = frame_ssim(outputs, inputs, mask, window="uniform")
    if inputs.shape[2] >= 2:
        out["temporal_mae"] = temporal_mae(outputs, inputs, mask)
        out["temporal_psnr"] = temporal_psnr(outputs, inputs, mask)
    return {k: float(v) for k, v in out.items()}
