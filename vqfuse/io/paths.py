"""Files and folder trees in, files out: path mapping and a batch runner shared by every file command
(encode, decode, reconstruct, generate, repair).

Directory names mirror the input tree. A file that fails in a directory is reported through ``on_error``
and skipped; the others are still written. For a single file its error is the command's error.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from vqfuse.errors import InputFileError, PathLike, VqfuseError

ErrorHandler = Callable[[Path, VqfuseError], None]


@dataclass
class FileResult:
    """One file done: how many tokens it took and how many bits those carry.

    ``bits`` is ``tokens * log2(K)`` (the information in the codes, not the packed file size);
    ``extent`` is how much signal the file holds in its modality's rate unit (pixels, seconds), and
    ``duration`` its seconds of signal for timed modalities (0 otherwise).
    """

    src: Path
    dst: Path
    tokens: int = 0
    bits: float = 0.0
    extent: float = 0.0
    duration: float = 0.0
    note: str = ""  # what the user should know about this file (e.g. its audio track was copied)


@dataclass
class BatchResult:
    """What a file or directory run did: files done, files that failed (path, problem), seconds."""

    done: list[FileResult] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    seconds: float = 0.0

    def total(self, field_name: str) -> Any:
        """The sum of a FileResult field over the files done."""
        return sum(getattr(r, field_name) for r in self.done)

    tokens = property(lambda self: self.total("tokens"))
    bits = property(lambda self: self.total("bits"))
    extent = property(lambda self: self.total("extent"))
    duration = property(lambda self: self.total("duration"))


def _is_hidden(name: str) -> bool:
    return name.startswith(".")


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


def map_paths(
    src: PathLike,
    dst: PathLike,
    suffixes: Iterable[str],
    rename: Callable[[str], str] = lambda name: name,
    what: str = "input",
) -> list[tuple[Path, Path]]:
    """Pairs (input, output) for a file or a directory tree.

    Args:
        src: a file, or a folder searched recursively (hidden entries skipped) for files whose suffix is
            in ``suffixes`` (case-insensitive).
        dst: for a file: the output file, or an existing folder to put ``rename(name)`` in. For a folder:
            the output folder; the tree below ``src`` is mirrored there, each file named ``rename(name)``.
        rename: output file name from input file name.
        what: how to call the files in messages ("image", "token").

    Raises:
        InputFileError: ``src`` is missing, or a folder holding no matching file; ``dst`` is a file where
            a folder is needed.
        VqfuseError: an output would overwrite its own input.
    """
    wants_folder = str(dst).endswith(("/", os.sep))
    src, dst = Path(src), Path(dst)
    exts = {s.lower() for s in suffixes}
    if not src.exists():
        raise InputFileError(src, "does not exist")
    if src.is_dir():
        if dst.exists() and not dst.is_dir():
            raise InputFileError(dst, "exists and is not a folder (the input is a folder)")
        inputs: list[Path] = []
        seen: set[Path] = set()  # real paths walked, so a symlink loop cannot recurse forever
        for dirpath, dirnames, filenames in os.walk(src, followlinks=True):
            here = Path(dirpath)
            if here.resolve() in seen:
                dirnames[:] = []
                continue
            seen.add(here.resolve())
            dirnames[:] = sorted(d for d in dirnames if not _is_hidden(d) and not _inside(here / d, dst))
            inputs += [here / f for f in sorted(filenames) if not _is_hidden(f) and Path(f).suffix.lower() in exts]
        if not inputs:
            listed = ", ".join(sorted(e.lstrip(".") for e in exts))
            raise InputFileError(src, f"no {what} files ({listed}) found in this folder or below")
        pairs = [(f, dst / f.relative_to(src).parent / rename(f.name)) for f in sorted(inputs)]
    else:
        out = dst / rename(src.name) if dst.is_dir() or wants_folder else dst
        pairs = [(src, out)]
    for a, b in pairs:
        if b.exists() and a.resolve() == b.resolve():
            raise VqfuseError(f"{b}: output would overwrite its own input; choose another output path")
    return pairs


def run_pairs(
    pairs: list[tuple[Path, Path]],
    fn: Callable[[Path, Path], FileResult],
    on_error: ErrorHandler | None = None,
    progress: bool = False,
    desc: str = "",
) -> BatchResult:
    """Apply ``fn`` to each pair; a VqfuseError on one file is recorded (and passed to ``on_error``), the
    rest go on."""
    from tqdm import tqdm

    result = BatchResult()
    start = time.perf_counter()
    bar = tqdm(pairs, desc=desc, unit="file", disable=not progress or len(pairs) < 2, leave=False, dynamic_ncols=True)
    for src, dst in bar:
        try:
            result.done.append(fn(src, dst))
        except VqfuseError as exc:
            result.failed.append((src, str(exc)))
            if on_error is not None:
                on_error(src, exc)
    bar.close()
    result.seconds = time.perf_counter() - start
    return result


def run_files(
    src: PathLike,
    pairs: list[tuple[Path, Path]],
    fn: Callable[[Path, Path], FileResult],
    on_error: ErrorHandler | None = None,
    progress: bool = False,
    desc: str = "",
) -> BatchResult:
    """`run_pairs` for a folder ``src``; for a single file its error is raised, not recorded."""
    if Path(src).is_dir():
        return run_pairs(pairs, fn, on_error, progress, desc)
    start = time.perf_counter()
    result = BatchResult(done=[fn(a, b) for a, b in pairs])
    result.seconds = time.perf_counter() - start
    return result


def guard_memory(path: PathLike, fn: Callable[[], Any]) -> Any:
    """``fn()``, with running out of memory reported as one line naming ``path``."""
    try:
        return fn()
    except MemoryError:
        raise InputFileError(path, "too large to process in memory") from None
    except RuntimeError as exc:
        if "out of memory" in str(exc).lower() or "not enough memory" in str(exc).lower():
            raise InputFileError(path, "too large to process in memory") from None
        raise


def require_file(path: Path) -> None:
    """Raise InputFileError unless ``path`` is an existing file."""
    if path.is_dir():
        raise InputFileError(path, "is a folder, expected a file")
    if not path.exists():
        raise InputFileError(path, "file does not exist")


__all__ = [
    "FileResult",
    "BatchResult",
    "ErrorHandler",
    "map_paths",
    "run_pairs",
    "run_files",
    "guard_memory",
    "require_file",
]
