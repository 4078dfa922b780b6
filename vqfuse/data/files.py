"""Folders of data files: the tree walk, and the base of the folder datasets (skip-and-report).

A folder dataset takes every file with one of its extensions under a folder, splits them by relative
path (:mod:`vqfuse.data.split`) and reads all files of the split at construction, in threads, so a
corrupt or unreadable file is found before training starts: it is logged as a warning
``skipping <file>: <problem>``, recorded in ``.skipped`` as ``(path, problem)`` and left out.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Sequence, TypeVar

from torch.utils.data import Dataset

from vqfuse.data.split import select_split
from vqfuse.errors import InputFileError, PathLike

log = logging.getLogger("vqfuse.data")

T = TypeVar("T")


def find_files(root: PathLike, extensions: Sequence[str]) -> list[Path]:
    """Files under ``root`` ending in one of ``extensions`` (recursive, sorted, case-insensitive; hidden
    entries skipped)."""
    root = Path(root)
    if not root.exists():
        raise InputFileError(root, "folder does not exist")
    if not root.is_dir():
        raise InputFileError(root, "not a folder")
    exts = {"." + e for e in extensions}
    files: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        files.extend(
            Path(dirpath) / f for f in sorted(filenames) if not f.startswith(".") and Path(f).suffix.lower() in exts
        )
    return sorted(files)


def no_files_problem(kind: str, extensions: Sequence[str]) -> str:
    """``"no image files (png, jpg, ...) found"``: the problem of a folder without any such file."""
    return f"no {kind} files ({', '.join(extensions)}) found"


def report_skipped(skipped: list[tuple[Path, str]], path: Path, problem: str) -> None:
    """Log ``skipping <file>: <problem>`` as a warning and record ``(path, problem)`` in ``skipped``."""
    log.warning("skipping %s: %s", path, problem)
    skipped.append((path, problem))


class FileFolderDataset(Dataset):
    """Base of the datasets of every ``kind`` file under a folder (image and audio folders).

    A subclass sets :attr:`kind` and :attr:`extensions`, calls :meth:`_split_files` for the files of
    its split and :meth:`_read_all` to read them (which fills ``files``, ``keys`` and ``skipped``).
    """

    kind: str = "data"  # names the files in messages: "image", "audio"
    extensions: tuple[str, ...] = ()
    key_prefix: str = ""  # prepended to the relative path to form the split key
    max_workers: int = 4  # reader threads when ``workers`` is not given

    root: Path
    files: list[Path]  # the readable files of the split
    keys: list[str]  # their paths relative to ``root``
    skipped: list[tuple[Path, str]]

    def relative(self, f: Path) -> str:
        """The path of ``f`` relative to the folder, with ``/`` separators."""
        return f.relative_to(self.root).as_posix()

    def _split_files(self, path: PathLike, split: str, fraction: float) -> list[Path]:
        """The files of ``split`` under ``path`` (about ``fraction`` held out, at least one file of two).

        Raises :class:`InputFileError` when the folder is missing, holds no such file or the split is empty.
        """
        self.root = Path(path).expanduser()
        all_files = find_files(self.root, self.extensions)
        if not all_files:
            raise InputFileError(self.root, no_files_problem(self.kind, self.extensions))
        files = select_split(all_files, lambda f: self.key_prefix + self.relative(f), split, fraction, min_heldout=1)
        if not files:
            problem = f"the '{split}' split is empty ({len(all_files)} {self.kind} file(s) in all); use split 'all'"
            raise InputFileError(self.root, problem)
        self.skipped = []
        return files

    def _read_all(self, files: Sequence[Path], read: Callable[[Path], T | str], workers: int | None) -> list[T]:
        """``read`` every file in threads; a ``str`` result is the file's problem: it is skipped and reported.

        Returns the other results, in file order. Raises :class:`InputFileError` when no file can be read.
        """
        n_workers = workers or min(self.max_workers, os.cpu_count() or 1)
        with ThreadPoolExecutor(max_workers=n_workers) as pool:
            results = list(pool.map(read, files))
        good: list[tuple[Path, T]] = []
        for f, r in zip(files, results):
            if isinstance(r, str):
                self._skip(f, r)
            else:
                good.append((f, r))
        if not good:
            first, why = self.skipped[0]
            problem = f"none of the {len(files)} {self.kind} files could be read (e.g. {first}: {why})"
            raise InputFileError(self.root, problem)
        self.files = [f for f, _ in good]
        self.keys = [self.relative(f) for f in self.files]
        return [r for _, r in good]

    def _skip(self, f: Path, problem: str) -> None:
        report_skipped(self.skipped, f, problem)


__all__ = ["find_files", "no_files_problem", "report_skipped", "FileFolderDataset"]
