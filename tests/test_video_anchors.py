"""Codec anchors on tiny clips: decode, bit counts, SEI stripping, curves (vqfuse.baselines.video) and the
benchmarks/video_anchors.py report."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import video_anchors as va  # noqa: E402

from vqfuse.baselines import video as vb  # noqa: E402

pytestmark = pytest.mark.usefixtures("single_thread")


def _tiny_clip(channels: int = 1) -> np.ndarray:
    """4 frames of 32x32: a bright square moving 2 px/frame on black, (T, H, W, C) uint8."""
    clip = np.zeros((4, 32, 32, channels), np.uint8)
    for t in range(4):
        clip[t, 8 + 2 * t : 20 + 2 * t, 6 + 2 * t : 18 + 2 * t] = (220, 90, 40)[:channels] if channels == 3 else 220
    return clip


@pytest.mark.parametrize("codec", ["h264", "vp9"])
def test_encode_clip_decodes_every_frame(codec: str) -> None:
    clip = _tiny_clip()
    decoded, bits, bits_no_sei = vb.encode_clip(clip, codec, 30)
    assert decoded.shape == clip.shape and decoded.dtype == np.uint8
    assert 0 < bits_no_sei <= bits and bits % 8 == 0
    assert vb.encode_clip_details(clip, codec, 30).keyframes == 1  # one GOP


def _x264_sei_bytes(clip: np.ndarray, crf: int) -> int:
    """Size of the NAL unit (with its start code) holding x264's info string, found independently."""
    packets, _, _ = vb.encode_packets(clip, "h264", crf)
    stream = b"".join(packets)
    at = stream.find(b"x264 - core")
    assert at > 0
    start = stream.rfind(b"\x00\x00\x01", 0, at)
    start -= stream[start - 1] == 0 if start > 0 else 0  # 4-byte start code
    end = stream.find(b"\x00\x00\x01", at)
    end -= stream[end - 1] == 0
    return end - start


def test_sei_stripping_removes_exactly_the_x264_info_sei() -> None:
    clip = _tiny_clip()
    _, bits, bits_no_sei = vb.encode_clip(clip, "h264", 40)
    assert bits - bits_no_sei == 8 * _x264_sei_bytes(clip, 40)
    assert 400 < (bits - bits_no_sei) / 8 < 1000  # the info string is ~0.7 kB
    _, vp9_bits, vp9_no_sei = vb.encode_clip(clip, "vp9", 40)
    assert vp9_bits == vp9_no_sei


def test_strip_keeps_other_sei_and_slices() -> None:
    other_sei = b"\x00\x00\x00\x01\x06\x01\x01\x00\x80"  # payload type 1 (pic timing), 1 byte
    user_sei = b"\x00\x00\x01\x06\x05\x02\xaa\xbb\x80"  # payload type 5, 2 bytes
    slice_nal = b"\x00\x00\x01\x65\x88\x84"
    assert vb.strip_user_data_sei(other_sei + user_sei + slice_nal, "h264") == other_sei + slice_nal
    assert vb.strip_user_data_sei(user_sei, "vp9") == user_sei


def test_psnr_rises_as_crf_falls_and_rate_grows() -> None:
    clips = np.stack([_tiny_clip(), np.roll(_tiny_clip(), 3, axis=2)])
    curve = vb.rd_curve(clips, "h264", [48, 20])
    assert [p["crf"] for p in curve] == [48, 20]
    assert curve[1]["psnr"] > curve[0]["psnr"] and curve[1]["bpp"] > curve[0]["bpp"]
    assert curve[1]["mse_per_frame"] < curve[0]["mse_per_frame"]
    assert curve[0]["bpp_with_sei"] > curve[0]["bpp"]
    assert {"ssim", "ssim_openstl", "psnr_of_mean_mse", "temporal_mae"} <= set(curve[0])


def test_colour_clip_round_trip() -> None:
    clip = _tiny_clip(3)
    decoded, _, _ = vb.encode_clip(clip, "h264", 15)
    assert decoded.shape == clip.shape
    mse = np.mean((decoded.astype(float) - clip) ** 2)
    assert 10 * np.log10(255**2 / mse) > 28  # BT.601 full range both ways, chroma at half resolution
    flat = np.full((4, 4, 3), (200, 30, 90), np.uint8)
    assert np.abs(vb.yuv420_to_rgb(vb.rgb_to_yuv420(flat), 4, 4).astype(int) - flat).max() <= 1


def test_at_bpp_and_bits_factor() -> None:
    curve = [{"bpp": 0.10, "psnr": 30.0}, {"bpp": 0.063, "psnr": 20.0}, {"bpp": 0.083, "psnr": 26.0}]
    assert vb.at_bpp(curve, 0.073) == pytest.approx(23.0)
    assert vb.at_bpp(curve, 0.10) == pytest.approx(30.0)
    assert vb.at_bpp(curve, 0.05) is None  # below the lowest reachable rate
    assert vb.at_bpp(curve, 0.2) is None  # no extrapolation
    assert vb.rate_for(curve, 28.0) == pytest.approx(0.0915)
    assert vb.bits_factor_for(curve, 26.0, 0.0625) == pytest.approx(0.083 / 0.0625)
    assert vb.bits_factor_for(curve, 35.0, 0.0625) is None  # never reached
    assert vb.bits_factor_for(curve, 15.0, 0.0625) is None  # below the codec's floor: unknown


def test_main_smoke_writes_json_and_markdown(tmp_path: Path) -> None:
    data = va.main(
        [
            "--source",
            "squares",
            "--clips",
            "1",
            "--length",
            "3",
            "--codecs",
            "h264",
            "--results-dir",
            str(tmp_path),
            "--stem",
            "smoke",
        ]
    )
    assert "bouncing squares" in data["clips"]["source"]
    saved = json.loads((tmp_path / "smoke.json").read_text())
    assert len(saved["curves"]["h264"]) == len(vb.DEFAULT_CRFS["h264"])
    assert "h264" in (tmp_path / "smoke.md").read_text()


def test_moving_digit_source_gives_uint8_test_clips() -> None:
    pytest.importorskip("vqfuse.data.moving")
    clips, description = va.load_clips("moving", 2, 3, seed=0)
    assert clips.shape == (2, 3, 64, 64, 1) and clips.dtype == np.uint8
    assert "moving digits" in description and clips.max() > 200  # digit strokes reach near-white
