"""H.264 at a bits-per-pixel budget (vqfuse.baselines.video.h264_at_bpp); the curves are tested in
tests/test_video_anchors.py."""

from __future__ import annotations

import numpy as np
import pytest

from vqfuse.baselines.video import codec_at_bpp, encode_clip_details, h264_at_bpp

pytestmark = pytest.mark.usefixtures("single_thread")


def _clip(frames: int = 6, h: int = 32, w: int = 48) -> np.ndarray:
    """A colour texture with a red square moving 2-3 px/frame: (T, H, W, 3) uint8."""
    yy, xx = np.mgrid[0:h, 0:w]
    clip = np.zeros((frames, h, w, 3), np.uint8)
    for t in range(frames):
        clip[t] = np.stack([(xx * 5 + t * 7) % 256, (yy * 7) % 256, np.full_like(xx, 90)], axis=-1)
        clip[t, 8 + 2 * t : 20 + 2 * t, 6 + 3 * t : 18 + 3 * t] = (230, 40, 40)
    return clip


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255.0**2 / np.mean((a.astype(np.float64) - b) ** 2)))


def test_stays_at_or_under_the_budget_with_the_right_shape() -> None:
    clip = _clip()
    psnrs = []
    for bpp in (0.3, 1.0):
        decoded, actual = h264_at_bpp(clip, bpp)
        assert decoded.shape == clip.shape and decoded.dtype == np.uint8
        assert 0.5 * bpp < actual <= bpp
        psnrs.append(_psnr(decoded, clip))
    assert psnrs[1] > psnrs[0] + 2.0


def test_the_search_finds_the_lowest_crf_that_fits() -> None:
    clip = _clip()
    pixels = clip[..., 0].size
    encoded, crf = codec_at_bpp(clip, "h264", 0.3)
    assert 0 < crf < 51
    assert encoded.bits_without_sei <= 0.3 * pixels
    assert encode_clip_details(clip, "h264", crf - 1).bits_without_sei > 0.3 * pixels  # one step better: too big
    decoded, actual = h264_at_bpp(clip, 0.3)
    assert np.array_equal(decoded, encoded.decoded) and actual == encoded.bits_without_sei / pixels


def test_unreachable_budget_gives_crf_51_and_its_rate() -> None:
    clip = _clip()
    decoded, actual = h264_at_bpp(clip, 0.001)
    assert decoded.shape == clip.shape
    assert actual == encode_clip_details(clip, "h264", 51).bits_without_sei / clip[..., 0].size > 0.001


@pytest.mark.parametrize(
    ("frames", "match"),
    [
        (np.zeros((4, 16, 16, 3), np.float32), "uint8"),  # wrong dtype
        (np.zeros((16, 16, 3, 2), np.uint8), "1\\|3"),  # channels last axis of 2
        (np.zeros((16, 16), np.uint8), "uint8 frames"),  # one image, no time axis
        (np.zeros((0, 16, 16, 3), np.uint8), "empty"),
        (np.zeros((4, 15, 16, 3), np.uint8), "even"),
    ],
)
def test_bad_frames_raise_value_error(frames: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        h264_at_bpp(frames, 0.5)


def test_bad_rate_raises_value_error() -> None:
    with pytest.raises(ValueError, match="bpp"):
        h264_at_bpp(_clip(2), -1.0)
