"""The ``folder:PATH`` image dataset: every image file under a folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from vqfuse.data.files import FileFolderDataset, find_files, no_files_problem
from vqfuse.data.image_files import (
    IMAGE_EXTENSIONS,
    check_image_size,
    decode_image,
    fit_square,
    image_problem,
    uint8_to_tensor,
)
from vqfuse.data.registry import register_dataset
from vqfuse.data.split import check_split
from vqfuse.errors import InputFileError, PathLike

NO_IMAGES_PROBLEM = no_files_problem("image", IMAGE_EXTENSIONS)
# Files at most this many bytes in total (decoded, at the dataset size) are kept in memory.
FOLDER_IN_MEMORY_BYTES = 2 * 1024**3


def find_image_files(root: PathLike) -> list[Path]:
    """Image files under ``root`` (recursive, sorted, case-insensitive extensions; hidden entries skipped)."""
    return find_files(root, IMAGE_EXTENSIONS)


class FolderDataset(FileFolderDataset):
    """Every image file under ``path`` (recursive), as RGB ``(3, size, size)`` in [-1, 1].

    Each image is resized so its shorter side is ``size`` and centre-cropped. All files of the split
    are decoded once at construction (in threads), so a corrupt, truncated or non-image file is found
    before training starts: it is logged as a warning ``skipping <file>: <problem>``, recorded in
    ``.skipped`` as ``(path, problem)`` and left out. Decoded images are kept in memory when they fit
    in :data:`FOLDER_IN_MEMORY_BYTES` (or as ``in_memory`` says); otherwise they are re-read per item,
    and a file that breaks later is replaced by the next good item rather than crashing a run.

    The split is by relative path (about 10% held out, at least one file when there are two or more).

    Raises:
        InputFileError: the folder is missing, holds no image files, or none of them can be read.
    """

    kind = "image"
    extensions = IMAGE_EXTENSIONS
    max_workers = 8

    def __init__(
        self,
        path: PathLike,
        size: int = 64,
        split: str = "train",
        fraction: float = 0.1,
        in_memory: bool | None = None,
        workers: int | None = None,
    ) -> None:
        check_image_size(size)
        check_split(split)
        self.size, self.split = size, split
        files = self._split_files(path, split, fraction)
        if in_memory is None:
            in_memory = len(files) * size * size * 3 <= FOLDER_IN_MEMORY_BYTES
        self.in_memory = in_memory

        def check(f: Path) -> np.ndarray | None | str:
            try:
                img = fit_square(decode_image(f, draft_size=size), size)
                return np.asarray(img) if in_memory else None
            except Exception as exc:  # noqa: BLE001 - every failure is reported, none is fatal
                return image_problem(exc)

        arrays: list[np.ndarray | None] = self._read_all(files, check, workers)
        kept = [a for a in arrays if a is not None]  # all of them when in memory
        self.images: np.ndarray | None = np.stack(kept) if in_memory else None  # (N, S, S, 3) uint8

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> torch.Tensor:
        if self.images is not None:
            return uint8_to_tensor(self.images[i])  # (3, S, S)
        n = len(self.files)
        for k in range(n):  # lazy mode: a file that broke since construction is replaced, not fatal
            f = self.files[(i + k) % n]
            try:
                return uint8_to_tensor(np.asarray(fit_square(decode_image(f, self.size, verify=False), self.size)))
            except Exception as exc:  # noqa: BLE001
                if all(f != s for s, _ in self.skipped):
                    self._skip(f, image_problem(exc))
        raise InputFileError(self.root, "no image file in the dataset can be read any more")

    def __repr__(self) -> str:
        return f"FolderDataset({str(self.root)!r}, n={len(self)}, size={self.size}, skipped={len(self.skipped)})"


register_dataset(
    "image",
    "folder",
    lambda arg, size, split: FolderDataset(arg, size, split),
    arg="PATH",
    help="every image file under a folder",
)

__all__ = ["NO_IMAGES_PROBLEM", "FOLDER_IN_MEMORY_BYTES", "find_image_files", "FolderDataset"]
