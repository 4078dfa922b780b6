"""The ``pairs:PATH`` paired dataset: your own image + audio pairs from a CSV file."""

from __future__ import annotations

import csv
import io
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from PIL import Image

from vqfuse.data.audio import fit_length, int16_to_tensor, load_audio_file, to_int16
from vqfuse.data.files import report_skipped
from vqfuse.data.image_files import check_image_size, fit_square, load_image_file, tensor_to_uint8, uint8_to_tensor
from vqfuse.data.paired.base import MODALITY, PairedDataset, clip_length, paired_factory
from vqfuse.data.registry import register_dataset
from vqfuse.data.split import check_split, select_split
from vqfuse.errors import InputFileError, PathLike
from vqfuse.io.atomic import describe_os_error

# Pairs whose decoded images + audio take at most this many bytes are kept in memory.
PAIRS_IN_MEMORY_BYTES = 2 * 1024**3

_IMAGE_HEADERS = {"image", "images", "image_path", "image path", "imagepath", "image_file", "img", "picture", "photo"}
_AUDIO_HEADERS = {"audio", "audio_path", "audio path", "audiopath", "audio_file", "wav", "sound", "speech"}
CSV_FORMAT = "rows of: image path, audio path[, label]"


@dataclass(frozen=True)
class PairRow:
    """One row of a pairs CSV: resolved paths, the image path as written (the split key), the label text."""

    image: Path
    audio: Path
    label: str | None
    line: int
    image_key: str


def _resolve(text: str, base: Path) -> Path:
    p = Path(text).expanduser()
    return p if p.is_absolute() else base / p


def _is_header(cells: list[str], base: Path) -> bool:
    """A first row is a header when it names the columns rather than pointing at files."""
    if _resolve(cells[0], base).is_file():
        return False
    if cells[0].lower() in _IMAGE_HEADERS or cells[1].lower() in _AUDIO_HEADERS:
        return True
    return not Path(cells[0]).suffix and not Path(cells[1]).suffix


def read_pairs_csv(path: PathLike) -> list[PairRow]:
    """Parse a pairs CSV: ``image path, audio path[, label]`` per row, header row optional.

    Relative paths are resolved against the CSV's folder; blank lines and lines starting with ``#``
    are ignored. Raises :class:`InputFileError` naming the file for an unreadable, empty or malformed CSV.
    """
    path = Path(path).expanduser()
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputFileError(path, describe_os_error(exc, path)) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputFileError(path, f"not a UTF-8 text CSV file (expected {CSV_FORMAT})") from None
    base = path.resolve().parent
    rows: list[tuple[int, list[str]]] = []
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        for cells in reader:
            cells = [c.strip() for c in cells]
            while cells and not cells[-1]:
                cells.pop()
            if not cells or cells[0].startswith("#"):
                continue
            rows.append((reader.line_num, cells))
    except csv.Error as exc:
        raise InputFileError(path, f"invalid CSV (line {reader.line_num}: {exc})") from None
    if rows and len(rows[0][1]) >= 2 and _is_header(rows[0][1], base):
        rows = rows[1:]
    if not rows:
        raise InputFileError(path, f"empty CSV: no pairs (expected {CSV_FORMAT})")
    out: list[PairRow] = []
    for line, cells in rows:
        if not 2 <= len(cells) <= 3 or not cells[0] or not cells[1]:
            got = f"{len(cells)} column(s): {','.join(cells)[:80]!r}"
            raise InputFileError(path, f"line {line}: expected image path, audio path[, label]; got {got}")
        label = cells[2] if len(cells) == 3 and cells[2] else None
        key = cells[0].replace("\\", "/")
        out.append(PairRow(_resolve(cells[0], base), _resolve(cells[1], base), label, line, key))
    return out


def _parse_labels(rows: Sequence[PairRow], path: Path) -> tuple[list[int], list[str] | None]:
    """Integer labels as they are (-1 when absent); text labels become indices of the sorted class names."""
    texts = [r.label for r in rows]
    try:
        ints = [-1 if t is None else int(t) for t in texts]
    except ValueError:
        names = sorted({t for t in texts if t is not None})
        index = {n: c for c, n in enumerate(names)}
        return [-1 if t is None else index[t] for t in texts], names
    bad = [(r.line, v) for r, v in zip(rows, ints) if v < -1]
    if bad:
        line, value = bad[0]
        raise InputFileError(path, f"line {line}: label {value} is negative (use -1 or leave it empty for none)")
    return ints, None


class PairsCSVDataset(PairedDataset):
    """Your own image + audio pairs from a CSV of ``image path, audio path[, label]`` rows.

    Images are read with :func:`~vqfuse.data.image_files.load_image_file` and resized (shorter side, then a
    centre crop) to ``size``; audio with :func:`~vqfuse.data.audio.load_audio_file` (mono, resampled to
    ``sample_rate``) and centred in ``segment_seconds``. All files of the split are decoded at
    construction: a missing or unreadable file is logged once as ``skipping <file>: <problem>``,
    recorded in ``.skipped`` and every row using it is left out. Labels are integers (-1 or empty:
    none) or text class names (indices into ``.class_names``, sorted).

    The split is by the image path as written (about ``fraction`` held out, at least one image when
    there are two or more), so all pairs of one image are on the same side.

    Raises:
        InputFileError: the CSV is missing, empty or malformed, the split is empty, or no pair can be read.
    """

    def __init__(
        self,
        path: PathLike,
        split: str = "train",
        size: int = 32,
        sample_rate: int = 16000,
        segment_seconds: float | None = 1.0,
        fraction: float = 0.1,
        in_memory: bool | None = None,
        workers: int | None = None,
    ) -> None:
        check_split(split)
        check_image_size(size)
        self.segment_length = clip_length(segment_seconds, sample_rate)
        self.path = Path(path).expanduser()
        self.split, self.size, self.sample_rate = split, size, int(sample_rate)
        all_rows = read_pairs_csv(self.path)
        all_labels, self.class_names = _parse_labels(all_rows, self.path)
        keys = sorted({r.image_key for r in all_rows})
        chosen = set(select_split(keys, lambda k: "pairs/" + k, split, fraction, min_heldout=1))
        rows = [(r, lab) for r, lab in zip(all_rows, all_labels) if r.image_key in chosen]
        if not rows:
            raise InputFileError(
                self.path, f"the '{split}' split is empty ({len(all_rows)} pair(s) in all); use split 'all'"
            )
        image_files = list(dict.fromkeys(r.image for r, _ in rows))
        audio_files = list(dict.fromkeys(r.audio for r, _ in rows))
        if in_memory is None:
            per_audio = 2 * (self.segment_length or 30 * self.sample_rate)
            in_memory = len(image_files) * size * size * 3 + len(audio_files) * per_audio <= PAIRS_IN_MEMORY_BYTES
        self.in_memory = in_memory
        n_workers = workers or min(4, os.cpu_count() or 1)
        with ThreadPoolExecutor(max_workers=n_workers) as pool:
            images = dict(zip(image_files, pool.map(partial(self._try, self._load_image), image_files)))
            audios = dict(zip(audio_files, pool.map(partial(self._try, self._load_audio), audio_files)))
        self.skipped: list[tuple[Path, str]] = []
        for f, r in [*images.items(), *audios.items()]:
            if isinstance(r, str):
                report_skipped(self.skipped, f, r)
        readable = lambda r: not isinstance(images[r.image], str) and not isinstance(audios[r.audio], str)  # noqa: E731
        good = [(r, lab) for r, lab in rows if readable(r)]
        if not good:
            first, why = self.skipped[0]
            raise InputFileError(self.path, f"none of the {len(rows)} pairs could be read (e.g. {first}: {why})")
        self.image_files: list[Path] = list(dict.fromkeys(r.image for r, _ in good))
        self.audio_files: list[Path] = list(dict.fromkeys(r.audio for r, _ in good))
        img_pos = {f: j for j, f in enumerate(self.image_files)}
        aud_pos = {f: k for k, f in enumerate(self.audio_files)}
        self.rows: list[PairRow] = [r for r, _ in good]
        self.pairs = [(img_pos[r.image], aud_pos[r.audio]) for r in self.rows]
        self.labels = [lab for _, lab in good]
        self._images = np.stack([images[f] for f in self.image_files]) if in_memory else None  # (N, S, S, 3) uint8
        self._audio = [audios[f] for f in self.audio_files] if in_memory else None  # int16 (L,)
        if self.class_names is not None:
            self.num_classes: int | None = len(self.class_names)
        else:
            self.num_classes = max(all_labels) + 1 if max(all_labels) >= 0 else None

    # file loading: an array, or the problem as a string
    def _load_image(self, f: Path) -> np.ndarray:
        pil = Image.fromarray(tensor_to_uint8(load_image_file(f)), "RGB")
        return np.asarray(fit_square(pil, self.size))  # (S, S, 3) uint8

    def _load_audio(self, f: Path) -> np.ndarray:
        x = load_audio_file(f, self.sample_rate)  # (1, T)
        if self.segment_length is not None:
            x = fit_length(x, self.segment_length)
        return to_int16(x[0].numpy())

    def _try(self, load: Callable[[Path], np.ndarray], f: Path) -> np.ndarray | str:
        """``load(f)`` (an empty array unless kept in memory), or the file's problem."""
        try:
            a = load(f)
        except InputFileError as exc:
            return exc.problem
        return a if self.in_memory else np.zeros(0, a.dtype)

    def image(self, j: int) -> torch.Tensor:
        a = self._images[j] if self._images is not None else self._load_image(self.image_files[j])
        return uint8_to_tensor(a)

    def audio(self, k: int) -> torch.Tensor:
        a = self._audio[k] if self._audio is not None else self._load_audio(self.audio_files[k])
        return int16_to_tensor(a)

    def describe(self, i: int) -> dict[str, Any]:
        r = self.rows[i]
        return {**super().describe(i), "image_file": str(r.image), "audio_file": str(r.audio), "line": r.line}


def _pairs_factory(arg: str | None, **options: Any) -> Any:
    """``pairs:PATH``: a CSV of image path, audio path[, label] rows, or one whose header names any other set
    of modalities (see :mod:`vqfuse.data.paired.named_csv`)."""
    from vqfuse.data.paired.named_csv import NamedColumnsDataset, named_columns

    names = named_columns(arg) if arg else None
    if names is not None and names != ["image", "audio"]:
        return NamedColumnsDataset(arg, **options)
    return paired_factory(PairsCSVDataset, takes_path=True)(arg, **options)


register_dataset(
    MODALITY,
    "pairs",
    _pairs_factory,
    arg="PATH",
    help="a CSV of image path, audio path[, label] rows, or with a header naming its modality columns",
)

__all__ = ["PAIRS_IN_MEMORY_BYTES", "CSV_FORMAT", "PairRow", "read_pairs_csv", "PairsCSVDataset"]
