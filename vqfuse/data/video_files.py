"""Video files through PyAV: read (resampled in time, fitted in space), write (mp4, webm, gif), convert.

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
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch
from av.audio.stream import AudioStream

from vqfuse.errors import InputFileError, PathLike, VqfuseError
from vqfuse.io.atomic import atomic_path

log = logging.getLogger("vqfuse.data")

VIDEO_EXTENSIONS: tuple[str, ...] = (".mp4", ".webm", ".mkv", ".avi", ".mov", ".mpg", ".mpeg", ".gif")
WRITE_EXTENSIONS: tuple[str, ...] = (".mp4", ".webm", ".gif")
# Default cap on T*H*W of a returned clip: 2**27 pixels is 1.5 GiB as float32 RGB.
MAX_CLIP_PIXELS = 2**27
MAX_FRAME_PIXELS = 8192 * 8192  # a larger frame is a bogus header or a decompression bomb
# Audio codecs each written container takes as they are (anything else is re-encoded).
_AUDIO_COPY_OK = {".mp4": {"aac", "mp3", "alac", "ac3", "eac3", "opus", "flac"}, ".webm": {"opus", "vorbis"}}
_AUDIO_ENCODER = {".mp4": ("aac", "AAC"), ".webm": ("libopus", "Opus")}


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


def _open_input(path: Path) -> av.container.InputContainer:
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
        raise InputFileError(path, f"not a video file, or corrupt or truncated ({_av_text(exc)})") from None


def _av_text(exc: BaseException) -> str:
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
    with _open_input(path) as c:
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
    with _open_input(path) as c:
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
            raise InputFileError(path, f"too large: about {expected} frames of {dims[2]}x{dims[3]} exceed "
                                 f"max_pixels={max_pixels} ({limit} frames); lower fps, size or max_frames")
        stream.thread_type = "AUTO"  # frame + slice threads; the decoder still returns frames in order
        frames, decoded, problem = _decode(c, stream, dims, channels, fps, max_frames, limit, path)
    if not frames:
        raise InputFileError(path, f"no frame could be decoded ({problem})" if problem else "video has no frames")
    if problem:
        log.warning("%s: decoding stopped after %d frames (%s); keeping those", path, decoded, problem)
    elif max_frames is None or len(frames) < max_frames:  # read to the end: the count is now known
        if info.frames > decoded:  # FFmpeg stops quietly at a cut; the header still counts every frame
            log.warning("%s: only %d of the %d frames its header lists could be decoded (truncated?); "
                        "keeping those", path, decoded, info.frames)
        info = VideoInfo(info.fps, decoded, info.width, info.height, info.duration, info.has_audio, info.codec)
    return from_uint8_frames(np.stack(frames)), info  # (C, T, H, W)


def _decode(c: av.container.InputContainer, stream: av.video.stream.VideoStream, dims: tuple[int, int, int, int],
            channels: int, fps: float | None, max_frames: int | None, limit: int,
            path: Path) -> tuple[list[np.ndarray], int, str]:  # fmt: skip
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
        problem = _av_text(exc)
        if "decoder" in problem.lower() and not out and prev is None:
            raise InputFileError(path, f"unsupported video codec '{stream.codec_context.name}'") from None
    if fps is not None and prev is not None:  # the last frame stays on screen for its duration
        while next_t < last_t + src_step - eps:
            if not emit(prev):
                break
            next_t += step
    return out, decoded, problem


# ----------------------------------------------------------------------------------------------
# Writing


def _even(frames: np.ndarray) -> np.ndarray:
    """Pad ``(T, H, W, 3)`` to even H and W by repeating the last row/column (yuv420p needs even sizes)."""
    t, h, w, _ = frames.shape
    if h % 2 == 0 and w % 2 == 0:
        return frames
    return np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")


def _gif_frame(rgb: np.ndarray) -> av.VideoFrame:
    """``(H, W, 3)`` uint8 -> a pal8 frame with its own adaptive 256-colour palette (PIL median cut)."""
    from PIL import Image

    img = Image.fromarray(rgb, "RGB").quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    pal = np.zeros((256, 4), np.uint8)
    rgb_pal = np.asarray(img.getpalette()[: 256 * 3], np.uint8).reshape(-1, 3)
    pal[: len(rgb_pal), 1:] = rgb_pal  # PyAV takes the palette as (256, 4) columns A, R, G, B
    pal[:, 0] = 255
    return av.VideoFrame.from_ndarray((np.asarray(img), pal), format="pal8")


def _add_audio(out: av.container.OutputContainer, src: av.container.InputContainer | None, ext: str,
               audio_from: Path | None) -> tuple[AudioStream | None, AudioStream | None, bool, str]:  # fmt: skip
    """The output audio stream (or None), the input one, whether to copy packets, and the user's note."""
    if src is None:
        return None, None, False, ""
    if not src.streams.audio:
        return None, None, False, f"{audio_from} has no audio track; the video has none"
    a = src.streams.audio[0]
    name = a.codec_context.name
    if ext == ".gif":
        return None, None, False, f"gif holds no audio: the {name} track of {audio_from} was dropped"
    if name in _AUDIO_COPY_OK[ext]:
        return out.add_stream_from_template(a), a, True, f"audio: the {name} track of {audio_from} copied unchanged"
    codec, label = _AUDIO_ENCODER[ext]
    rate = 48000 if codec == "libopus" else (a.rate or 48000)  # Opus encodes only at 8-48 kHz steps
    o = out.add_stream(codec, rate=rate)
    o.layout = "mono" if a.channels == 1 else "stereo"
    return o, a, False, f"audio: the {name} track of {audio_from} re-encoded as {label} ({ext} cannot hold {name})"


def _mux_audio(out: av.container.OutputContainer, o: AudioStream, a: AudioStream,
               copy: bool) -> None:  # fmt: skip
    """Append the input track ``a`` to ``out`` as ``o``: its packets as they are, or decoded and re-encoded."""
    if copy:
        for pkt in a.container.demux(a):
            if pkt.dts is not None:  # the demuxer's final empty packet
                pkt.stream = o
                out.mux(pkt)
        return
    for frame in a.container.decode(a):
        frame.pts = None  # the encoder numbers its own samples
        out.mux(o.encode(frame))
    out.mux(o.encode(None))


def _write_av(frames: np.ndarray, tmp: Path, ext: str, fps: float, crf: int, audio_from: Path | None) -> str:
    rate = Fraction(fps).limit_denominator(1001)  # 29.97 -> 30000/1001
    if ext == ".mp4":
        fmt, codec, pix = "mp4", "libx264", "yuv420p"
        frames = _even(frames)
        opts = {"crf": str(crf), "preset": "medium"}
    elif ext == ".webm":
        fmt, codec, pix = "webm", "libvpx-vp9", "yuv420p"
        opts = {"crf": str(crf), "b:v": "0", "deadline": "good", "cpu-used": "4", "row-mt": "1"}
    else:
        fmt, codec, pix, opts = "gif", "gif", "pal8", {}
    src = _open_input(audio_from) if audio_from is not None else None
    try:
        container_opts = {"movflags": "+faststart"} if ext == ".mp4" else {}  # index first: cut files still play
        with av.open(str(tmp), mode="w", format=fmt, options=container_opts) as out:
            vs = out.add_stream(codec, rate=rate, options=opts)
            vs.pix_fmt, vs.height, vs.width = pix, frames.shape[1], frames.shape[2]
            ao, ai, copy, note = _add_audio(out, src, ext, audio_from)
            for i, arr in enumerate(frames):
                frame = _gif_frame(arr) if ext == ".gif" else av.VideoFrame.from_ndarray(arr, format="rgb24")
                frame.pts, frame.time_base = i, 1 / rate
                out.mux(vs.encode(frame))
            out.mux(vs.encode(None))
            if ao is not None:
                _mux_audio(out, ao, ai, copy)
    finally:
        if src is not None:
            src.close()
    return note


def write_video(x: torch.Tensor, path: PathLike, fps: float, *, audio_from: PathLike | None = None,
                crf: int = 18) -> str:  # fmt: skip
    """Write a clip ``(C, T, H, W)`` in [-1, 1] as a video file, atomically (temp file, then rename).

    The format comes from the extension: ``.mp4`` H.264 (libx264, yuv420p, ``crf``; an odd height or
    width is padded to even by repeating the last row/column, so the file is at most one pixel larger),
    ``.webm`` VP9 (libvpx-vp9, constant quality ``crf``), ``.gif`` (one adaptive palette per frame; gif
    delays are in 1/100 s, so the rate is approximate). Grey clips are written as RGB.

    With ``audio_from``, that file's first audio track goes into the output: copied packet for packet
    when the container takes its codec, else re-encoded (AAC in mp4, Opus in webm); gif has no audio.

    Returns:
        A one-line note about the audio track for the user ("" when ``audio_from`` is None).

    Raises:
        VqfuseError: unknown extension or bad clip shape. InputFileError: ``audio_from`` unreadable, or the
            file cannot be written.
    """
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in WRITE_EXTENSIONS:
        raise VqfuseError(f"{path}: cannot write '{path.suffix or '(no extension)'}' video; use "
                          + ", ".join(WRITE_EXTENSIONS))  # fmt: skip
    if not fps > 0:
        raise VqfuseError(f"fps must be positive, got {fps}")
    frames = to_uint8_frames(x)  # (T, H, W, C)
    if frames.shape[0] == 0:
        raise VqfuseError(f"{path}: the clip has no frames")
    if frames.shape[-1] == 1:
        frames = np.repeat(frames, 3, axis=-1)
    audio = Path(audio_from) if audio_from is not None else None
    try:
        with atomic_path(path) as tmp:
            return _write_av(np.ascontiguousarray(frames), tmp, ext, fps, crf, audio)
    except av.error.FFmpegError as exc:
        raise InputFileError(path, f"cannot write video ({_av_text(exc)})") from None
    except OSError as exc:
        raise InputFileError(path, f"cannot write video ({exc.strerror or exc})") from None


__all__ = [
    "VIDEO_EXTENSIONS",
    "WRITE_EXTENSIONS",
    "MAX_CLIP_PIXELS",
    "VideoInfo",
    "probe_video",
    "read_video",
    "write_video",
    "to_uint8_frames",
    "from_uint8_frames",
]
