"""Video files through PyAV: read (resampled in time, fitted in space) and convert (writing: `video_write`).

Clip tensors are float32 ``(C, T, H, W)`` in [-1, 1] with C = 1 (luma) or 3 (RGB); frame arrays are
uint8 ``(T, H, W, C)``. Every problem with a file becomes one :class:`~vqfuse.errors.InputFileError`
naming it. Frames are fitted one at a time as they are decoded (swscale's area filter, in C), so only
the fitted clip is ever held, never the full-resolution video.

Truncated or damaged files: decoding stops at the first unrecoverable error. When some frames decoded
before it, those frames are returned and a warning is logged (a cut download still gives its first
seconds); when none did, the file is an error. An mp4 whose index (``moov``) sat at the end and was cut
off cannot be opened at all, so it is an error too.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import torch

from vqfuse.errors import InputFileError, PathLike, VqfuseError

log = logging.getLogger("vqfuse.data")

VIDEO_EXTENSIONS: tuple[str, ...] = (".mp4", ".webm", ".mkv", ".avi", ".mov", ".mpg", ".mpeg", ".gif")
WRITE_EXTENSIONS: tuple[str, ...] = (".mp4", ".webm", ".gif")
# Default cap on T*H*W of a returned clip: 2**27 pixels is 1.5 GiB as float32 RGB.
MAX_CLIP_PIXELS = 2**27
MAX_FRAME_PIXELS = 8192 * 8192  # a larger frame is a bogus header or a decompression bomb


@dataclass(frozen=True)
class VideoInfo:
    """What a video file holds (its source stream, before any resampling or fitting).

    ``frames`` counts the frames decoded when the whole file was read, else the header's count (0 when
    unknown); ``duration`` is in seconds.
    """

    fps: float
    frames: int
    width: int
    height: int
    duration: float
    has_audio: bool
    codec: str


# ----------------------------------------------------------------------------------------------
# Conversions


def to_uint8_frames(x: torch.Tensor) -> np.ndarray:
    """``(C, T, H, W)`` in [-1, 1] -> ``(T, H, W, C)`` uint8 (values clamped, rounded)."""
    if x.dim() != 4 or x.shape[0] not in (1, 3):
        raise ValueError(f"expected a clip tensor (C, T, H, W) with C 1 or 3; got {tuple(x.shape)}")
    t = ((x.detach().to("cpu", torch.float32).clamp(-1.0, 1.0) + 1.0) * 127.5).round().to(torch.uint8)
    return t.permute(1, 2, 3, 0).contiguous().numpy()  # (T, H, W, C)


def from_uint8_frames(frames: np.ndarray) -> torch.Tensor:
    """``(T, H, W, C)`` (or ``(T, H, W)``) uint8 -> ``(C, T, H, W)`` float32 in [-1, 1]."""
    if frames.ndim == 3:
        frames = frames[..., None]
    t = torch.from_numpy(np.ascontiguousarray(frames)).permute(3, 0, 1, 2)  # (C, T, H, W)
    return t.float().div_(127.5).sub_(1.0)


def _fit_dims(w: int, h: int, size: int | tuple[int, int] | None) -> tuple[int, int, int, int]:
    """(scaled w, scaled h, target w, target h): scale to cover the target, then centre-crop to it."""
    if size is None:
        return w, h, w, h
    th, tw = (size, size) if isinstance(size, int) else size
    if th < 1 or tw < 1:
        raise VqfuseError(f"video size must be positive, got {size!r}")
    scale = max(tw / w, th / h)
    return max(tw, round(w * scale)), max(th, round(h * scale)), tw, th


def _fit_frame(frame: av.VideoFrame, dims: tuple[int, int, int, int], channels: int) -> np.ndarray:
    """One decoded frame -> ``(H, W, C)`` uint8, area-resized by swscale and centre-cropped."""
    sw, sh, tw, th = dims
    fmt = "gray" if channels == 1 else "rgb24"  # gray is the luma plane, range-converted
    arr = frame.reformat(width=sw, height=sh, format=fmt, interpolation="AREA").to_ndarray()
    top, left = (sh - th) // 2, (sw - tw) // 2
    arr = arr[top : top + th, left : left + tw]
    return arr[..., None] if channels == 1 else arr


# ----------------------------------------------------------------------------------------------
# Reading


def open_input(path: Path) -> av.container.InputContainer:
    if path.is_dir():
        raise InputFileError(path, "is a folder, expected a video file")
    if not path.exists():
        raise InputFileError(path, "file does not exist")
    if path.stat().st_size == 0:
        raise InputFileError(path, "file is empty (0 bytes)")
    try:
        return av.open(str(path), mode="r")
    except PermissionError:
        raise InputFileError(path, "permission denied") from None
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise InputFileError(path, f"not a video file, or corrupt or truncated ({av_text(exc)})") from None


def av_text(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


def _stream_info(path: Path, c: av.container.InputContainer) -> tuple[av.video.stream.VideoStream, VideoInfo]:
    if not c.streams.video:
        raise InputFileError(path, "has no video stream" + (" (audio only)" if c.streams.audio else ""))
    s = c.streams.video[0]
    cc = s.codec_context
    if cc is None or not cc.name:
        raise InputFileError(path, "unsupported video codec (no decoder in this FFmpeg build)")
    rate = s.average_rate or s.guessed_rate or s.base_rate
    fps = float(rate) if rate else 0.0
    if s.duration is not None and s.time_base is not None:
        duration = float(s.duration * s.time_base)
    else:
        duration = c.duration / av.time_base if c.duration else 0.0
    frames = s.frames or (round(duration * fps) if duration and fps else 0)
    info = VideoInfo(fps, frames, s.width, s.height, duration, bool(c.streams.audio), cc.name)
    return s, info


def probe_video(path: PathLike) -> VideoInfo:
    """The header facts of a video file (nothing is decoded); raises :class:`InputFileError`."""
    path = Path(path)
    with open_input(path) as c:
        return _stream_info(path, c)[1]


def read_video(
    path: PathLike,
    *,
    fps: float | None = None,
    size: int | tuple[int, int] | None = None,
    channels: int = 3,
    max_frames: int | None = None,
    max_pixels: int = MAX_CLIP_PIXELS,
) -> tuple[torch.Tensor, VideoInfo]:
    """Decode a video file -> ``((C, T, H, W) float32 in [-1, 1], VideoInfo of the source)``.

    Args:
        fps: output frame rate; None keeps every source frame. Frames are picked by presentation time
            (output frame k shows the source frame on screen at ``t0 + k / fps``), so variable-frame-rate
            files resample correctly.
        size: ``S`` (square) or ``(H, W)``: the frame is area-scaled to cover it, then centre-cropped.
            None keeps the source size.
        channels: 3 for RGB, 1 for luma.
        max_frames: stop after this many output frames (decoding stops there too).
        max_pixels: refuse clips of more than this many pixels ``T * H * W``, checked against the header
            before decoding and again while decoding (headers can lie).

    Raises:
        InputFileError: missing, empty or not a video file, no video stream, unsupported codec, no frame
            decodable, or too large (see ``max_pixels``).
    """
    path = Path(path)
    if channels not in (1, 3):
        raise VqfuseError(f"channels must be 1 or 3, got {channels}")
    if fps is not None and not fps > 0:
        raise VqfuseError(f"fps must be positive, got {fps}")
    with open_input(path) as c:
        stream, info = _stream_info(path, c)
        if info.width * info.height > MAX_FRAME_PIXELS or info.width < 1 or info.height < 1:
            raise InputFileError(path, f"frame size {info.width}x{info.height} is not supported")
        dims = _fit_dims(info.width, info.height, size)
        out_fps = fps or info.fps or 25.0
        expected = math.ceil(info.duration * out_fps) if fps and info.duration else info.frames
        if max_frames is not None:
            expected = min(expected, max_frames)
        per_frame = dims[2] * dims[3]
        limit = max_pixels // per_frame  # the most frames that fit the budget
        if expected > limit:
            raise InputFileError(
                path,
                f"too large: about {expected} frames of {dims[2]}x{dims[3]} exceed "
                f"max_pixels={max_pixels} ({limit} frames); lower fps, size or max_frames",
            )
        stream.thread_type = "AUTO"  # frame + slice threads; the decoder still returns frames in order
        frames, decoded, problem = _decode(c, stream, dims, channels, fps, max_frames, limit, path)
    if not frames:
        raise InputFileError(path, f"no frame could be decoded ({problem})" if problem else "video has no frames")
    if problem:
        log.warning("%s: decoding stopped after %d frames (%s); keeping those", path, decoded, problem)
    elif max_frames is None or len(frames) < max_frames:  # read to the end: the count is now known
        if info.frames > decoded:  # FFmpeg stops quietly at a cut; the header still counts every frame
            log.warning(
                "%s: only %d of the %d frames its header lists could be decoded (truncated?); keeping those",
                path,
                decoded,
                info.frames,
            )
        info = VideoInfo(info.fps, decoded, info.width, info.height, info.duration, info.has_audio, info.codec)
    return from_uint8_frames(np.stack(frames)), info  # (C, T, H, W)


def _decode(
    c: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    dims: tuple[int, int, int, int],
    channels: int,
    fps: float | None,
    max_frames: int | None,
    limit: int,
    path: Path,
) -> tuple[list[np.ndarray], int, str]:
    """The fitted output frames, the number of source frames decoded, and the error that stopped it."""
    out: list[np.ndarray] = []
    decoded, problem = 0, ""
    prev: np.ndarray | None = None  # last source frame fitted (sample-and-hold across the target times)
    t0 = next_t = last_t = None
    step = 1.0 / fps if fps else 0.0
    eps = step * 1e-3
    src_step = 1.0 / float(stream.average_rate) if stream.average_rate else 0.04

    def emit(arr: np.ndarray) -> bool:  # False when the clip is full
        if len(out) >= limit:
            raise InputFileError(path, f"too large: more than {limit} frames of {dims[2]}x{dims[3]}")
        out.append(arr)
        return max_frames is None or len(out) < max_frames

    try:
        for frame in c.decode(stream):
            t = frame.time if frame.time is not None else (last_t + src_step if last_t is not None else 0.0)
            decoded += 1
            if fps is None:
                last_t = t
                if not emit(_fit_frame(frame, dims, channels)):
                    return out, decoded, ""
                continue
            if t0 is None:
                t0 = next_t = t
            # every target time before this frame shows the previous frame
            while prev is not None and next_t < t - eps:
                if not emit(prev):
                    return out, decoded, ""
                next_t += step
            last_t, prev = t, _fit_frame(frame, dims, channels)
            if frame.duration:
                src_step = float(frame.duration * frame.time_base)
    except av.error.FFmpegError as exc:
        problem = av_text(exc)
        if "decoder" in problem.lower() and not out and prev is None:
            raise InputFileError(path, f"unsupported video codec '{stream.codec_context.name}'") from None
    if fps is not None and prev is not None:  # the last frame stays on screen for its duration
        while next_t < last_t + src_step - eps:
            if not emit(prev):
                break
            next_t += step
    return out, decoded, problem


__all__ = [
    "VIDEO_EXTENSIONS",
    "WRITE_EXTENSIONS",
    "MAX_CLIP_PIXELS",
    "VideoInfo",
    "probe_video",
    "read_video",
    "to_uint8_frames",
    "from_uint8_frames",
]
