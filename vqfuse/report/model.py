"""The report's content as plain data: a Report holds Sections, a Section an ordered list of blocks.

Blocks are text paragraphs, single images, media rows (a grid of images / audio / video with captions) and
tables. Everything converts to and from JSON-able dicts (`to_dict` / `from_dict`), so `report.json` holds the
whole report and `index.html` can be re-rendered from it without the run that made it. Media paths are
relative to the report's directory (POSIX separators), so a report folder can be moved or copied as a whole.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar, Union

REPORT_FORMAT = "vqfuse-report"
REPORT_VERSION = 1
MEDIA_KINDS = ("image", "audio", "video")

Cell = Union[str, int, float, bool, None]


def _path_text(path: str | os.PathLike[str]) -> str:
    """A media path as stored: POSIX separators (the HTML uses it as a URL)."""
    text = os.fspath(path).replace(os.sep, "/")
    if not text:
        raise ValueError("a media path must not be empty")
    return text


def _cell(value: Any) -> Cell:
    """A table cell JSON can hold: numpy / torch scalars become Python numbers, NaN and inf become text."""
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 0) == 0:
        value = value.item()
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    return str(value)


@dataclass
class Media:
    """One file of a media row: kind "image" (png, jpg, gif, webp), "audio" (wav, flac, ogg, mp3, opus) or
    "video" (webm: see `vqfuse.report.media` for why)."""

    kind: str
    path: str
    caption: str = ""

    def __post_init__(self) -> None:
        if self.kind not in MEDIA_KINDS:
            raise ValueError(f"media kind must be one of {', '.join(MEDIA_KINDS)}, got {self.kind!r}")
        self.path = _path_text(self.path)
        self.caption = str(self.caption)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "path": self.path, "caption": self.caption}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Media":
        return cls(str(d["kind"]), str(d["path"]), str(d.get("caption", "")))


@dataclass
class Text:
    """A paragraph (blank lines split it into several; `code` in backticks is shown as code)."""

    text: str
    block: ClassVar[str] = "text"

    def to_dict(self) -> dict[str, Any]:
        return {"block": self.block, "text": self.text}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Text":
        return cls(str(d["text"]))


@dataclass
class Image:
    """A single image shown at full width (small images are scaled up by a whole factor, pixelated)."""

    path: str
    caption: str = ""
    block: ClassVar[str] = "image"

    def __post_init__(self) -> None:
        self.path = _path_text(self.path)

    def to_dict(self) -> dict[str, Any]:
        return {"block": self.block, "path": self.path, "caption": self.caption}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Image":
        return cls(str(d["path"]), str(d.get("caption", "")))


@dataclass
class MediaRow:
    """A titled row of media shown side by side in a grid, each with its caption."""

    title: str
    items: list[Media] = field(default_factory=list)
    block: ClassVar[str] = "media_row"

    def __post_init__(self) -> None:
        for item in self.items:
            if not isinstance(item, Media):
                raise TypeError(f"a media row holds Media items, got {type(item).__name__}")

    def to_dict(self) -> dict[str, Any]:
        return {"block": self.block, "title": self.title, "items": [m.to_dict() for m in self.items]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "MediaRow":
        return cls(str(d.get("title", "")), [Media.from_dict(m) for m in d.get("items", [])])


_SEPARATOR = re.compile(r"^\|?\s*:?-{1,}:?\s*(\|\s*:?-{1,}:?\s*)*\|?$")


def _split_row(line: str) -> list[str]:
    """Cells of one markdown pipe-table line (`\\|` is a literal bar inside a cell)."""
    line = line.strip()
    if line.startswith("|"):
        line = line[1:]
    if line.endswith("|") and not line.endswith("\\|"):
        line = line[:-1]
    cells = re.split(r"(?<!\\)\|", line)
    return [c.strip().replace("\\|", "|") for c in cells]


@dataclass
class Table:
    """A table: a header row and rows of cells (text or numbers; floats are shown to 4 significant digits)."""

    caption: str = ""
    header: list[str] = field(default_factory=list)
    rows: list[list[Cell]] = field(default_factory=list)
    block: ClassVar[str] = "table"

    def __post_init__(self) -> None:
        self.caption = str(self.caption)
        self.header = [str(h) for h in self.header]
        self.rows = [[_cell(c) for c in row] for row in self.rows]
        width = len(self.header)
        for i, row in enumerate(self.rows):
            if width and len(row) != width:
                raise ValueError(f"table {self.caption!r}: row {i} has {len(row)} cells, the header {width}")

    @classmethod
    def from_markdown(cls, text: str, caption: str | None = None) -> "Table":
        """The first pipe table in a markdown text (e.g. a run's metrics.md); cells are kept as text.
        `caption` defaults to the heading above the table, if any. ValueError when there is no table."""
        for block in markdown_blocks(text):
            if isinstance(block, Table):
                if caption is not None:
                    block.caption = caption
                return block
        raise ValueError("no markdown pipe table (a header line, a |---| line, rows) in the text")

    def to_dict(self) -> dict[str, Any]:
        return {"block": self.block, "caption": self.caption, "header": self.header, "rows": self.rows}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Table":
        return cls(str(d.get("caption", "")), list(d.get("header", [])), [list(r) for r in d.get("rows", [])])


Block = Union[Text, Image, MediaRow, Table]
_BLOCKS: dict[str, Any] = {b.block: b for b in (Text, Image, MediaRow, Table)}


def markdown_blocks(text: str) -> list[Text | Table]:
    """A markdown text as paragraphs and pipe tables, in order. A heading is not shown on its own: it
    becomes the caption of the table that follows it (the section title already names the document)."""
    blocks: list[Text | Table] = []
    lines = text.splitlines()
    caption, para = "", []
    i = 0

    def flush() -> None:
        if para:
            blocks.append(Text(" ".join(para)))
            para.clear()

    while i < len(lines):
        line = lines[i].strip()
        if line.startswith("|") and i + 1 < len(lines) and _SEPARATOR.match(lines[i + 1].strip()):
            flush()
            header = _split_row(line)
            rows, i = [], i + 2
            while i < len(lines) and lines[i].strip().startswith("|"):
                cells = _split_row(lines[i])
                rows.append((cells + [""] * len(header))[: len(header)])
                i += 1
            blocks.append(Table(caption, header, rows))
            caption = ""
            continue
        if line.startswith("#"):
            flush()
            caption = line.lstrip("#").strip()
        elif not line:
            flush()
        else:
            para.append(line)
        i += 1
    flush()
    return blocks


@dataclass
class Section:
    """One part of the report, with an entry in the table of contents. The `add_*` methods append a block
    and return it."""

    title: str
    blocks: list[Block] = field(default_factory=list)

    def add_text(self, text: str) -> Text:
        block = Text(str(text))
        self.blocks.append(block)
        return block

    def add_image(self, path: str | os.PathLike[str], caption: str = "") -> Image:
        block = Image(path, caption)
        self.blocks.append(block)
        return block

    def add_media_row(self, title: str, items: list[Media]) -> MediaRow:
        block = MediaRow(title, list(items))
        self.blocks.append(block)
        return block

    def add_table(self, table: Table) -> Table:
        if not isinstance(table, Table):
            raise TypeError(f"add_table takes a Table, got {type(table).__name__}")
        self.blocks.append(table)
        return table

    def media_paths(self) -> list[str]:
        """Every file this section shows, in order."""
        paths: list[str] = []
        for b in self.blocks:
            if isinstance(b, Image):
                paths.append(b.path)
            elif isinstance(b, MediaRow):
                paths += [m.path for m in b.items]
        return paths

    def to_dict(self) -> dict[str, Any]:
        return {"title": self.title, "blocks": [b.to_dict() for b in self.blocks]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Section":
        blocks = []
        for b in d.get("blocks", []):
            kind = b.get("block")
            if kind not in _BLOCKS:
                raise ValueError(f"unknown block {kind!r} in section {d.get('title')!r}")
            blocks.append(_BLOCKS[kind].from_dict(b))
        return cls(str(d["title"]), blocks)


@dataclass
class Report:
    """A whole report: header (title, subtitle, credits), timings (stage, seconds) and sections."""

    title: str
    subtitle: str = ""
    credits: list[str] = field(default_factory=list)
    sections: list[Section] = field(default_factory=list)
    timings: list[tuple[str, float]] = field(default_factory=list)

    def add_section(self, title: str, text: str | None = None) -> Section:
        section = Section(str(title))
        if text:
            section.add_text(text)
        self.sections.append(section)
        return section

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": REPORT_FORMAT,
            "version": REPORT_VERSION,
            "title": self.title,
            "subtitle": self.subtitle,
            "credits": list(self.credits),
            "timings": [[str(name), float(s)] for name, s in self.timings],
            "sections": [s.to_dict() for s in self.sections],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Report":
        if d.get("format") != REPORT_FORMAT:
            raise ValueError(f"not a vqfuse report (format {d.get('format')!r}, expected {REPORT_FORMAT!r})")
        if int(d.get("version", 0)) > REPORT_VERSION:
            raise ValueError(f"report version {d.get('version')} is newer than this vqfuse reads ({REPORT_VERSION})")
        return cls(
            title=str(d.get("title", "")),
            subtitle=str(d.get("subtitle", "")),
            credits=[str(c) for c in d.get("credits", [])],
            sections=[Section.from_dict(s) for s in d.get("sections", [])],
            timings=[(str(name), float(s)) for name, s in d.get("timings", [])],
        )


__all__ = ["Report", "Section", "Media", "Table", "Text", "Image", "MediaRow", "Block", "markdown_blocks"]
