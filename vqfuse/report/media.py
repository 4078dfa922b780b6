"""Media files for reports: which video format to use, and writing it.

Report videos are WebM (VP9, `vqfuse.data.video_write`'s `.webm`). Checked in headless Debian Chromium 150
(`vqfuse.report.browser`, tests/report/test_browser.py): PyAV's VP9 and VP8 WebM files carry their duration
in the header and give a finite `duration`, `videoWidth` and decode every frame; so does H.264 mp4 in
*that* build, but H.264 is a proprietary codec that open-source Chromium builds (and some distributions')
leave out, while VP9 WebM plays in every Chromium, Firefox and current Safari. GIFs are shown as images
(`Media("image", ...)`, as the video modality's sample previews are), audio as WAV (Chromium also plays
FLAC, Ogg/Opus and MP3).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vqfuse.errors import InputFileError, PathLike, VqfuseError

REPORT_VIDEO_SUFFIX = ".webm"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp", ".svg")
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".opus", ".mp3")
VIDEO_SUFFIXES = (".webm", ".mp4", ".mkv", ".mov", ".avi", ".mpg")


def media_kind(path: PathLike) -> str | None:
    """ "image", "audio" or "video" from a file's extension (None for anything else)."""
    suffix = Path(path).suffix.lower()
    for kind, suffixes in (("image", IMAGE_SUFFIXES), ("audio", AUDIO_SUFFIXES), ("video", VIDEO_SUFFIXES)):
        if suffix in suffixes:
            return kind
    return None


def write_report_video(frames: np.ndarray, path: PathLike, fps: float) -> Path:
    """Write frames (T, H, W, 3) or (T, H, W) uint8 as a VP9 WebM that plays in a report; returns the path.

    The path must end in .webm (the format every browser plays; see the module docstring)."""
    from vqfuse.data.video_files import from_uint8_frames
    from vqfuse.data.video_write import write_video

    path = Path(path)
    if path.suffix.lower() != REPORT_VIDEO_SUFFIX:
        raise VqfuseError(f"{path}: report videos are WebM (VP9); name the file *.webm")
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim not in (3, 4) or (frames.ndim == 4 and frames.shape[-1] not in (1, 3)):
        raise VqfuseError(
            f"{path}: expected uint8 frames (T, H, W, 3) or (T, H, W); got {frames.dtype} {tuple(frames.shape)}"
        )
    write_video(from_uint8_frames(frames), path, fps)  # (C, T, H, W) in [-1, 1]: exact for uint8 input
    return path


def as_report_video(src: PathLike, dst: PathLike) -> Path:
    """A copy of the video file `src` as a report WebM at `dst` (frames re-encoded, audio dropped)."""
    import av

    src, dst = Path(src), Path(dst)
    try:
        with av.open(str(src)) as c:
            stream = c.streams.video[0]
            fps = float(stream.average_rate or stream.guessed_rate or 8)
            frames = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(stream)])  # (T, H, W, 3)
    except (av.error.FFmpegError, IndexError, ValueError) as exc:
        raise InputFileError(src, f"cannot read video ({exc})") from None
    return write_report_video(frames, dst, fps)


__all__ = ["write_report_video", "as_report_video", "media_kind", "REPORT_VIDEO_SUFFIX"]
