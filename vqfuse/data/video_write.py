"""Writing video files through PyAV: mp4 (H.264), webm (VP9) or gif by extension, atomically, with the
source's audio track copied in (or re-encoded where the container does not take its codec).

Clip tensors are float32 ``(C, T, H, W)`` in [-1, 1] (see `vqfuse.data.video_files`).
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch
from av.audio.stream import AudioStream

from vqfuse.data.video_files import WRITE_EXTENSIONS, av_text, open_input, to_uint8_frames
from vqfuse.errors import InputFileError, PathLike, VqfuseError
from vqfuse.io.atomic import atomic_path

# Audio codecs each written container takes as they are (anything else is re-encoded).
_AUDIO_COPY_OK = {".mp4": {"aac", "mp3", "alac", "ac3", "eac3", "opus", "flac"}, ".webm": {"opus", "vorbis"}}
_AUDIO_ENCODER = {".mp4": ("aac", "AAC"), ".webm": ("libopus", "Opus")}


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


def _add_audio(
    out: av.container.OutputContainer, src: av.container.InputContainer | None, ext: str, audio_from: Path | None
) -> tuple[AudioStream | None, AudioStream | None, bool, str]:
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


def _mux_audio(out: av.container.OutputContainer, o: AudioStream, a: AudioStream, copy: bool) -> None:
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
    src = open_input(audio_from) if audio_from is not None else None
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


def write_video(
    x: torch.Tensor, path: PathLike, fps: float, *, audio_from: PathLike | None = None, crf: int = 18
) -> str:
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
        raise VqfuseError(
            f"{path}: cannot write '{path.suffix or '(no extension)'}' video; use " + ", ".join(WRITE_EXTENSIONS)
        )
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
        raise InputFileError(path, f"cannot write video ({av_text(exc)})") from None
    except OSError as exc:
        raise InputFileError(path, f"cannot write video ({exc.strerror or exc})") from None


__all__ = ["write_video"]
