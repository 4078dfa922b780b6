"""``pairs:PATH`` with named columns: a CSV whose header names modalities (``image``, ``audio``, ``sensor``,
any registered one) and optionally ``label``, one file per modality per row::

    image,audio,sensor,label
    walk/001.png,walk/001.wav,walk/001.sensor,walking

Each file is read with its modality's ``load_file`` and fitted to the item shape the data section implies
(``Modality.meta(data)``, ``Modality.fit``). Rows whose files cannot be read are reported once per file and
left out. The split is by the first column's path as written, so rows sharing that file stay together.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from vqfuse.data.files import report_skipped
from vqfuse.data.split import check_split, select_split
from vqfuse.errors import InputFileError, PathLike, VqfuseError
from vqfuse.io.atomic import describe_os_error

LABEL = "label"


def named_columns(path: PathLike) -> list[str] | None:
    """The modality names of a CSV's header when every column but `label` names a registered modality, else
    None (a CSV in the image path, audio path[, label] format, or not readable here)."""
    from vqfuse.modalities.base import registered_modalities

    try:
        first = next(csv.reader(io.StringIO(Path(path).expanduser().read_text("utf-8-sig"), newline="")), [])
    except (OSError, UnicodeDecodeError, csv.Error):
        return None
    cells = [c.strip().lower() for c in first if c.strip()]
    names = [c for c in cells if c != LABEL]
    known = set(registered_modalities())
    return names if len(names) >= 2 and len(set(names)) == len(names) and set(names) <= known else None


class NamedColumnsDataset(Dataset):
    """Items ``{name: (C, *item_shape), ..., "label": int}`` from a CSV with a header of modality names."""

    def __init__(self, path: PathLike, split: str = "train", fraction: float = 0.1, **data: Any) -> None:
        from vqfuse.modalities import get_modality

        check_split(split)
        self.path, self.split = Path(path).expanduser(), split
        header, rows = self._read(self.path)
        self.modalities = tuple(c for c in header if c != LABEL)
        self.metas = {n: get_modality(n).meta({**data, "train": ""}) for n in self.modalities}
        label_at = header.index(LABEL) if LABEL in header else None
        at = {n: header.index(n) for n in self.modalities}
        chosen = set(
            select_split(
                sorted({r[at[self.modalities[0]]] for _, r in rows}),
                lambda k: "pairs/" + k,
                split,
                fraction,
                min_heldout=1,
            )
        )
        rows = [(line, r) for line, r in rows if r[at[self.modalities[0]]] in chosen]
        if not rows:
            raise InputFileError(self.path, f"the '{split}' split is empty; use split 'all'")
        base = self.path.resolve().parent
        self.files = {n: sorted({base / r[at[n]] for _, r in rows}) for n in self.modalities}
        loaded = {n: {f: self._load(n, f) for f in files} for n, files in self.files.items()}
        self.skipped: list[tuple[Path, str]] = []
        for n in self.modalities:
            for f, x in loaded[n].items():
                if isinstance(x, str):
                    report_skipped(self.skipped, f, x)
        good = [(line, r) for line, r in rows if not any(isinstance(loaded[n][base / r[at[n]]], str) for n in at)]
        if not good:
            first, why = self.skipped[0]
            raise InputFileError(self.path, f"none of the {len(rows)} rows could be read (e.g. {first}: {why})")
        self._items = {n: [loaded[n][f] for f in self.files[n]] for n in self.modalities}
        index = {n: {f: i for i, f in enumerate(self.files[n])} for n in self.modalities}
        self.item_rows = [tuple(index[n][base / r[at[n]]] for n in self.modalities) for _, r in good]
        self.labels, self.class_names = self._labels(
            [r[label_at] if label_at is not None and label_at < len(r) else "" for _, r in good]
        )

    @staticmethod
    def _read(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
        try:
            text = path.read_text("utf-8-sig")
        except OSError as exc:
            raise InputFileError(path, describe_os_error(exc, path)) from None
        except UnicodeDecodeError:
            raise InputFileError(path, "not a UTF-8 text CSV file") from None
        reader = csv.reader(io.StringIO(text, newline=""))
        rows: list[tuple[int, list[str]]] = []
        try:
            for cells in reader:
                cells = [c.strip() for c in cells]
                if any(cells) and not cells[0].startswith("#"):
                    rows.append((reader.line_num, cells))
        except csv.Error as exc:
            raise InputFileError(path, f"invalid CSV (line {reader.line_num}: {exc})") from None
        header = [c.lower() for c in rows[0][1] if c] if rows else []
        body = rows[1:]
        if not body:
            raise InputFileError(path, "empty CSV: a header but no rows")
        width = len([c for c in header if c != LABEL])
        for line, cells in body:
            if sum(1 for c in cells[:width] if c) < width:
                raise InputFileError(path, f"line {line}: expected a file for each of {', '.join(header[:width])}")
        return header, body

    def _load(self, name: str, f: Path) -> torch.Tensor | str:
        """Modality `name`'s file `f` fitted to its item shape, or the file's problem."""
        from vqfuse.modalities import get_modality

        modality = get_modality(name)
        try:
            return modality.fit(modality.load_file(f, self.metas[name])[None], self.metas[name])[0]
        except (InputFileError, VqfuseError) as exc:
            return exc.problem if isinstance(exc, InputFileError) else str(exc)

    @staticmethod
    def _labels(texts: list[str]) -> tuple[list[int], list[str] | None]:
        """Integer labels as they are (-1 when empty); text labels become indices of the sorted names."""
        try:
            return [int(t) if t else -1 for t in texts], None
        except ValueError:
            names = sorted({t for t in texts if t})
            return [names.index(t) if t else -1 for t in texts], names

    def item(self, name: str, index: int) -> torch.Tensor:
        return self._items[name][index]

    def __len__(self) -> int:
        return len(self.item_rows)

    def __getitem__(self, i: int) -> dict[str, Any]:
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} items")
        row = self.item_rows[i]
        return {**{n: self.item(n, k) for n, k in zip(self.modalities, row)}, "label": self.labels[i]}


__all__ = ["NamedColumnsDataset", "named_columns"]
