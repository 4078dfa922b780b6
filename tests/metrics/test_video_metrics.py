"""Video metrics: OpenSTL MSE/MAE, per-frame PSNR, both SSIM variants, temporal consistency, masks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from vqfuse.metrics.video import (
    frame_psnr,
    frame_ssim,
    openstl_mae,
    openstl_mse,
    psnr_of_mean_mse,
    temporal_mae,
    temporal_psnr,
    video_metrics,
)

pytestmark = pytest.mark.usefixtures("single_thread")


def _clip(
    b: int = 2, c: int = 1, t: int = 5, h: int = 24, w: int = 24, seed: int = 0, amp: float = 0.5
) -> torch.Tensor:
    # (B, C, T, H, W) in [-amp, amp]: room for the offsets below, so that clamping to [-1, 1] never bites
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(b, c, t, h, w, generator=g) * 2 - 1) * amp


def test_identical_clips_are_perfect() -> None:
    x = _clip()
    m = video_metrics(x, x)
    assert m["psnr"] == math.inf and m["psnr_of_mean_mse"] == math.inf and m["temporal_psnr"] == math.inf
    assert m["mse_per_frame"] == 0 and m["mae_per_frame"] == 0 and m["temporal_mae"] == 0
    assert m["ssim"] == pytest.approx(1.0) and m["ssim_openstl"] == pytest.approx(1.0)


def test_known_mse_and_psnr_on_constructed_clip() -> None:
    # [0, 1] error 0.1 everywhere in clip 0, 0.2 in clip 1 (0.2 / 0.4 on the [-1, 1] scale)
    x = torch.full((2, 3, 4, 8, 8), -0.5)
    y = x.clone()
    y[0] += 0.2
    y[1] += 0.4
    per_frame_sum = torch.tensor([0.01, 0.04]) * 3 * 8 * 8  # C*H*W pixels per frame
    assert torch.allclose(openstl_mse(y, x, reduction="none"), per_frame_sum.double())
    assert openstl_mse(y, x).item() == pytest.approx(per_frame_sum.mean().item())
    assert openstl_mae(y, x).item() == pytest.approx((0.1 + 0.2) / 2 * 192)
    assert frame_psnr(y, x).item() == pytest.approx((20 + 10 * math.log10(1 / 0.04)) / 2)
    # pooled MSE 0.025 -> 16.02 dB, below the mean of per-frame PSNRs (16.99 dB)
    assert psnr_of_mean_mse(y, x).item() == pytest.approx(10 * math.log10(1 / 0.025))
    assert psnr_of_mean_mse(y, x).item() < frame_psnr(y, x).item()


def test_psnr_is_mean_of_per_frame_values_and_clamps() -> None:
    x = torch.full((1, 1, 2, 8, 8), -1.0)
    y = x.clone()
    y[:, :, 0] += 0.2  # frame 0: [0, 1] error 0.1 -> 20 dB; frame 1 exact -> inf
    y[:, :, 1] = x[:, :, 1]
    assert frame_psnr(y, x).item() == math.inf
    y[:, :, 1] += 0.02  # frame 1: error 0.01 -> 40 dB
    assert frame_psnr(y, x).item() == pytest.approx(30.0)
    over = torch.full_like(x, 3.0)  # clamped to 1 -> [0, 1] error 1 -> 0 dB
    assert frame_psnr(over, x).item() == pytest.approx(0.0)


def test_openstl_mse_of_zeros_against_a_known_clip() -> None:
    # a "digit": 28x28 square at [0, 1] value 0.5 on a black 64x64 frame, 10 frames
    x = torch.full((1, 1, 10, 64, 64), -1.0)
    x[..., 10:38, 20:48] = 0.0
    zeros = torch.full_like(x, -1.0)  # the all-zeros predictor (black in [0, 1])
    assert openstl_mse(zeros, x).item() == pytest.approx(28 * 28 * 0.25)
    assert openstl_mae(zeros, x).item() == pytest.approx(28 * 28 * 0.5)


def test_mask_restricts_the_sums_to_masked_pixels_and_frames() -> None:
    x = _clip(b=2, c=2, t=6, h=16, w=16)
    y = x.clone()
    y[:, :, 2:4] += 0.2  # error only in frames 2-3: [0, 1] error 0.1
    y[:, :, :, :4, :4] += 0.4  # and in a corner of every frame
    missing = torch.zeros(2, 1, 6, 16, 16, dtype=torch.bool)
    missing[:, :, 2:4, 4:, 4:] = True  # frames 2-3, away from the corner
    assert openstl_mse(y, x, mask=missing).item() == pytest.approx(0.01 * 2 * 12 * 12)
    assert openstl_mae(y, x, mask=missing).item() == pytest.approx(0.1 * 2 * 12 * 12)
    assert frame_psnr(y, x, mask=missing).item() == pytest.approx(20.0)
    # a per-channel mask works too, and an untouched region scores perfectly
    hole = torch.zeros_like(x, dtype=torch.bool)
    hole[:, :, :, 8:12, 8:12] = True
    hole[:, :, 2:4] = False
    assert openstl_mse(y, x, mask=hole).item() == 0
    assert frame_ssim(y, x, mask=hole).item() == pytest.approx(1.0)
    with pytest.raises(ValueError):
        openstl_mse(y, x, mask=missing.float())


def test_empty_mask_gives_nan() -> None:
    x = _clip()
    empty = torch.zeros(2, 1, 5, 24, 24, dtype=torch.bool)
    assert math.isnan(openstl_mse(x + 0.1, x, mask=empty).item())
    assert math.isnan(temporal_mae(x + 0.1, x, mask=empty).item())


@pytest.mark.parametrize(
    "window, kwargs",
    [
        ("gaussian", {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False, "data_range": 1.0}),
        ("uniform", {"win_size": 7, "data_range": 2.0}),  # what scikit-image <= 0.16 did for floats
    ],
)
def test_ssim_matches_skimage_per_frame(window: str, kwargs: dict) -> None:
    x = _clip(b=1, c=3, t=3, h=32, w=32, seed=1, amp=1.0)
    y = (x + 0.3 * _clip(b=1, c=3, t=3, h=32, w=32, seed=2, amp=1.0)).clamp(-1, 1)
    x01, y01 = ((x + 1) / 2)[0].numpy(), ((y + 1) / 2)[0].numpy()  # (C, T, H, W)
    ref = [structural_similarity(y01[:, t], x01[:, t], channel_axis=0, **kwargs) for t in range(3)]
    assert frame_ssim(y, x, window=window).item() == pytest.approx(float(np.mean(ref)), abs=1e-6)


def test_ssim_openstl_variant_is_higher_on_a_blurred_digit() -> None:
    x = torch.full((1, 1, 2, 32, 32), -1.0)
    x[..., 8:24, 12:20] = 1.0  # a bright bar on black, like a digit stroke
    y = torch.nn.functional.avg_pool3d(x, (1, 3, 3), stride=1, padding=(0, 1, 1), count_include_pad=False)
    gauss, uni = frame_ssim(y, x).item(), frame_ssim(y, x, window="uniform").item()
    assert gauss < 0.99 and uni < 0.99
    assert uni > gauss  # data_range 2 quadruples C1, C2: the constants swamp small local variances


def test_temporal_consistency() -> None:
    x = _clip(b=1, c=1, t=6, h=16, w=16)
    shifted = x + 0.1  # same motion, constant offset: perfect temporal consistency
    assert temporal_mae(shifted, x).item() == pytest.approx(0.0, abs=1e-6)  # float32 rounding of x + 0.1
    frozen = x[:, :, :1].expand_as(x)  # output stuck on the first frame
    motion = ((x[:, :, 1:] - x[:, :, :-1]) / 2).abs().mean().item()  # input motion on [0, 1]
    assert temporal_mae(frozen, x).item() == pytest.approx(motion)
    assert temporal_mae(frozen, x).item() > 0
    assert temporal_psnr(frozen, x).item() < 30
    with pytest.raises(ValueError):
        temporal_mae(x[:, :, :1], x[:, :, :1])


def test_temporal_mask_counts_seams_of_a_gap() -> None:
    x = _clip(b=1, c=1, t=6, h=16, w=16)
    y = x.clone()
    y[:, :, 0] += 0.5  # an error outside the gap and away from its seams
    gap = torch.zeros(1, 1, 6, 16, 16, dtype=torch.bool)
    gap[:, :, 3] = True  # pairs (2, 3) and (3, 4) are used; pair (0, 1) is not
    assert temporal_mae(y, x, mask=gap).item() == pytest.approx(0.0, abs=1e-12)
    y[:, :, 4] += 0.2  # a seam out of the gap
    assert temporal_mae(y, x, mask=gap).item() > 0


def test_shape_checks() -> None:
    x = _clip()
    with pytest.raises(ValueError):
        video_metrics(x[:, :, :2], x)
    with pytest.raises(ValueError):
        frame_psnr(x[0], x[0])
