"""Video file I/O: write -> read round trips, resampling, audio tracks, and every bad input as one clear error."""

from __future__ import annotations

import logging
import math
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from vqfuse.data.video_files import from_uint8_frames, probe_video, read_video, to_uint8_frames
from vqfuse.data.video_write import write_video
from vqfuse.errors import InputFileError, VqfuseError


def _clip(c: int = 3, t: int = 12, h: int = 32, w: int = 48) -> torch.Tensor:
    """A smooth moving pattern (C, T, H, W) in [-1, 1]: codecs keep it well, so PSNR is a fair check."""
    tt = torch.linspace(0, 1, t)[None, :, None, None]
    yy = torch.linspace(-1, 1, h)[None, None, :, None]
    xx = torch.linspace(-1, 1, w)[None, None, None, :]
    x = torch.cat(
        [torch.sin(3 * xx + 6 * tt) * torch.cos(2 * yy), 0.8 * torch.cos(3 * yy - 4 * tt) + 0 * xx, xx * yy + 0 * tt], 0
    )
    return x[:c].clamp(-1, 1)


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return 10 * math.log10(4.0 / ((a - b) ** 2).mean().item())  # peak-to-peak 2 in [-1, 1]


@pytest.mark.parametrize("ext,threshold", [(".mp4", 30.0), (".webm", 30.0), (".gif", 28.0)])
def test_round_trip(tmp_path: Path, ext: str, threshold: float) -> None:
    x = _clip()
    path = tmp_path / f"clip{ext}"
    assert write_video(x, path, 25.0) == ""
    y, info = read_video(path)
    assert y.shape == x.shape and y.dtype == torch.float32
    assert info.frames == 12 and info.fps == pytest.approx(25.0) and (info.width, info.height) == (48, 32)
    assert _psnr(y, x) > threshold
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # the temp file was renamed, none left


def test_odd_size_mp4_is_padded_webm_is_not(tmp_path: Path) -> None:
    x = _clip(h=33, w=47)
    write_video(x, tmp_path / "a.mp4", 25)
    y, _ = read_video(tmp_path / "a.mp4")
    assert y.shape[2:] == (34, 48)  # padded to even by repeating the last row/column
    assert _psnr(y[:, :, :33, :47], x) > 30
    write_video(x, tmp_path / "a.webm", 25)
    assert read_video(tmp_path / "a.webm")[0].shape[2:] == (33, 47)


def test_grey_and_fitting(tmp_path: Path) -> None:
    g = _clip(c=1)
    write_video(g, tmp_path / "g.mp4", 10)
    y, _ = read_video(tmp_path / "g.mp4", channels=1)
    assert y.shape == (1, 12, 32, 48) and _psnr(y, g) > 35
    y, _ = read_video(tmp_path / "g.mp4", size=16, max_frames=5)
    assert y.shape == (3, 5, 16, 16)
    assert read_video(tmp_path / "g.mp4", size=(8, 20))[0].shape == (3, 12, 8, 20)


def test_resampling_by_time(tmp_path: Path) -> None:
    write_video(_clip(), tmp_path / "a.mp4", 10)  # 12 frames, 1.2 s
    assert read_video(tmp_path / "a.mp4", fps=5)[0].shape[1] == 6
    assert read_video(tmp_path / "a.mp4", fps=25)[0].shape[1] == 30


def test_variable_frame_rate_picks_the_frame_on_screen(tmp_path: Path) -> None:
    times_ms = [0, 100, 300, 350, 400, 700]  # frame k is a flat grey of level 40 * k
    path = tmp_path / "vfr.mkv"
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=1000, options={"crf": "0"})
        s.width = s.height = 16
        s.pix_fmt = "yuv420p"
        s.time_base = Fraction(1, 1000)
        for k, ms in enumerate(times_ms):
            f = av.VideoFrame.from_ndarray(np.full((16, 16, 3), 40 * k, np.uint8), format="rgb24")
            f.pts, f.time_base = ms, Fraction(1, 1000)
            out.mux(s.encode(f))
        out.mux(s.encode(None))
    y, _ = read_video(path, fps=20, channels=1)  # targets every 50 ms
    levels = ((y[0, :, 8, 8] + 1) * 127.5 / 40).round().int().tolist()
    on_screen = [max(k for k, ms in enumerate(times_ms) if ms <= 50 * j) for j in range(len(levels))]
    assert levels == on_screen and len(levels) >= 14


def test_uint8_conversions_are_inverse() -> None:
    frames = np.random.default_rng(0).integers(0, 256, (4, 5, 6, 3), dtype=np.uint8)
    assert from_uint8_frames(frames).shape == (3, 4, 5, 6)
    assert np.array_equal(to_uint8_frames(from_uint8_frames(frames)), frames)


def _clip_with_audio(path: Path, codec: str = "aac", fmt: str | None = None) -> float:
    """A 1 s clip with a 440 Hz audio track; returns the audio duration in seconds."""
    with av.open(str(path), "w", format=fmt) as out:
        v = out.add_stream("libx264", rate=25)
        v.width, v.height, v.pix_fmt = 32, 32, "yuv420p"
        a = out.add_stream(codec, rate=16000)
        a.layout = "mono"
        for i in range(25):
            f = av.VideoFrame.from_ndarray(np.full((32, 32, 3), 10 * i, np.uint8), format="rgb24")
            f.pts = i
            out.mux(v.encode(f))
        out.mux(v.encode(None))
        t = np.arange(16000) / 16000
        frame = av.AudioFrame.from_ndarray(
            (0.3 * np.sin(2 * np.pi * 440 * t))[None].astype(np.float32), format="flt", layout="mono"
        )
        frame.sample_rate, frame.pts = 16000, 0
        out.mux(a.encode(frame))
        out.mux(a.encode(None))
    return _audio(path)[1]


def _audio(path: Path) -> tuple[str, float]:
    with av.open(str(path)) as c:
        a = c.streams.audio[0]
        packets = [p for p in c.demux(a) if p.dts is not None]
        end = max(float((p.pts + p.duration) * p.time_base) for p in packets)
        start = min(float(p.pts * p.time_base) for p in packets)
        return a.codec_context.name, end - start


def test_audio_track_copied(tmp_path: Path) -> None:
    src = tmp_path / "src.mp4"
    seconds = _clip_with_audio(src)
    x, info = read_video(src)
    assert info.has_audio
    note = write_video(x, tmp_path / "out.mp4", 25, audio_from=src)
    assert "copied unchanged" in note
    codec, out_seconds = _audio(tmp_path / "out.mp4")
    assert codec == "aac" and out_seconds == pytest.approx(seconds, abs=1e-3)
    assert probe_video(tmp_path / "out.mp4").has_audio


def test_audio_track_reencoded_or_dropped(tmp_path: Path) -> None:
    src = tmp_path / "src.mkv"
    _clip_with_audio(src, codec="pcm_s16le", fmt="matroska")
    x, _ = read_video(src)
    note = write_video(x, tmp_path / "out.mp4", 25, audio_from=src)
    assert "re-encoded as AAC" in note and _audio(tmp_path / "out.mp4")[0] == "aac"
    note = write_video(x, tmp_path / "out.webm", 25, audio_from=src)
    assert "re-encoded as Opus" in note and _audio(tmp_path / "out.webm")[0] == "opus"
    assert "dropped" in write_video(x, tmp_path / "out.gif", 25, audio_from=src)
    silent = tmp_path / "silent.mp4"
    write_video(x, silent, 25)
    assert "no audio" in write_video(x, tmp_path / "o2.mp4", 25, audio_from=silent)


def test_bad_inputs_are_one_clear_error(tmp_path: Path) -> None:
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 20)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    cases = {
        text: "not a video file",
        empty: "empty",
        tmp_path / "missing.mp4": "does not exist",
        tmp_path: "is a folder",
    }
    for path, words in cases.items():
        with pytest.raises(InputFileError, match=words) as err:
            read_video(path)
        assert err.value.path == str(path)


def test_truncated_files(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    x = torch.rand(3, 40, 32, 32) * 2 - 1  # noise: the bytes spread evenly over the frames
    full = tmp_path / "full.mp4"
    write_video(x, full, 25)  # index at the front (faststart)
    data = full.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with caplog.at_level(logging.WARNING, logger="vqfuse.data"):
        y, info = read_video(cut)
    assert 5 <= y.shape[1] < 40 and info.frames == y.shape[1]
    assert "truncated" in caplog.text
    # the index at the end and cut off: nothing can be decoded
    moov_last = tmp_path / "moov_last.mp4"
    with av.open(str(moov_last), "w") as out:
        s = out.add_stream("libx264", rate=25)
        s.width = s.height = 32
        s.pix_fmt = "yuv420p"
        for i, arr in enumerate(to_uint8_frames(x)):
            f = av.VideoFrame.from_ndarray(arr, format="rgb24")
            f.pts = i
            out.mux(s.encode(f))
        out.mux(s.encode(None))
    data = moov_last.read_bytes()
    moov_last.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputFileError, match="corrupt or truncated"):
        read_video(moov_last)


def test_too_large_is_refused_before_decoding(tmp_path: Path) -> None:
    write_video(_clip(), tmp_path / "a.mp4", 25)
    with pytest.raises(InputFileError, match="too large"):
        read_video(tmp_path / "a.mp4", max_pixels=32 * 48 * 5)
    assert read_video(tmp_path / "a.mp4", max_pixels=32 * 48 * 5, max_frames=5)[0].shape[1] == 5


def test_unknown_output_extension(tmp_path: Path) -> None:
    with pytest.raises(VqfuseError, match=r"out\.avi.*\.mp4, \.webm, \.gif"):
        write_video(_clip(), tmp_path / "out.avi", 25)
    assert not list(tmp_path.iterdir())
