"""Building blocks of run reports: reading run files, markdown documents, training curves and the previews
a trainer or evaluation wrote (grouped the way `Modality.save_samples` names them).

Every helper takes `out` (the folder the report is written to) and stores media paths relative to it.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Any, Callable

from vqfuse.report.media import REPORT_VIDEO_SUFFIX, as_report_video, media_kind
from vqfuse.report.model import Media, Section, Table, markdown_blocks

log = logging.getLogger("vqfuse.report")

ASSETS = "report"  # the report's own files (plots, converted videos) go to out/report/
MAX_STEP_PREVIEWS = 8  # previews written during training shown (evenly spaced, the last always)
MAX_GALLERY = 24  # media files shown from one folder of previews (the rest are named in a note)
_CLIP = re.compile(r"^(?P<stem>.+)-(?P<i>\d+)-(?P<role>input|output)$")


def rel(path: Path, out: Path) -> str:
    """`path` relative to the report folder, POSIX style."""
    return Path(os.path.relpath(Path(path).resolve(), Path(out).resolve())).as_posix()


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object, or None when the file is absent or unreadable (a report shows what there is)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_yaml(path: Path) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def add_markdown(section: Section, path: Path, caption_prefix: str = "") -> bool:
    """The paragraphs and tables of a markdown file (headings become table captions); False if absent."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return False
    for block in markdown_blocks(text):
        if isinstance(block, Table):
            if caption_prefix:
                block.caption = f"{caption_prefix}: {block.caption}" if block.caption else caption_prefix
            section.add_table(block)
        else:
            section.add_text(block.text)
    return True


def describe_data(data: dict[str, Any]) -> str:
    """A data section in one line: `spec` (key=value, ...)."""
    spec = data.get("train", "?")
    options = ", ".join(f"{k}={v}" for k, v in data.items() if k not in ("train", "test") and v is not None)
    return f"`{spec}`" + (f" ({options})" if options else "")


def add_curves(section: Section, run: Path, out: Path, name: str = "training-curves.png") -> bool:
    """The training curves of `run/logs/train.jsonl`, plotted into out/report/<name>."""
    from vqfuse.report.plots import plot_training_curves

    jsonl = run / "logs" / "train.jsonl"
    if not jsonl.is_file():
        section.add_text("No training log (`logs/train.jsonl`) in this run.")
        return False
    try:
        png = plot_training_curves(jsonl, out / ASSETS / name)
    except Exception as exc:  # a torn or empty log must not stop the report
        section.add_text(f"The training log could not be plotted: {exc}")
        return False
    section.add_image(rel(png, out), caption="training losses and statistics, averaged over each log window")
    return True


def report_media(path: Path, out: Path, caption: str) -> Media | None:
    """A file as report Media: videos that are not WebM are converted to WebM under out/report/."""
    kind = media_kind(path)
    if kind is None:
        return None
    if kind == "video" and path.suffix.lower() != REPORT_VIDEO_SUFFIX:
        name = "-".join(Path(rel(path, out)).with_suffix("").parts).replace("..", "up") + REPORT_VIDEO_SUFFIX
        try:
            path = as_report_video(path, out / ASSETS / name)
        except Exception as exc:
            log.warning("report: cannot convert %s to WebM (%s); it is left out", path, exc)
            return None
    return Media(kind, rel(path, out), caption)


def _groups(folder: Path) -> dict[str, dict[str, Any]]:
    """Preview files by stem: {stem: {"files": [image / video paths], "clips": {i: {role: path}}}}."""
    groups: dict[str, dict[str, Any]] = {}
    for p in sorted(folder.iterdir()) if folder.is_dir() else []:
        if not p.is_file() or media_kind(p) is None:
            continue
        stem = p.name[: -len(p.suffix)]
        m = _CLIP.match(stem)
        if m and media_kind(p) in ("audio", "video"):
            g = groups.setdefault(m["stem"], {"files": [], "clips": {}})
            g["clips"].setdefault(int(m["i"]), {})[m["role"]] = p
        else:
            groups.setdefault(stem, {"files": [], "clips": {}})["files"].append(p)
    return groups


def _evenly(items: list[Any], n: int) -> list[Any]:
    if len(items) <= n:
        return items
    picks = sorted({round(i * (len(items) - 1) / (n - 1)) for i in range(n)})
    return [items[i] for i in picks]


Caption = Callable[[str, Path], str]


def add_previews(
    section: Section,
    folder: Path,
    out: Path,
    caption: Caption,
    roles: tuple[str, str] = ("held-out input", "reconstruction"),
    first: str = "final",
) -> int:
    """The previews in `folder`: the `first` stem's files at full width, its clips as rows (input | output),
    then every other stem. Stems named step-NNNNNN (written during training) share one grid of at most
    MAX_STEP_PREVIEWS pictures. Returns the number of files shown."""
    groups = _groups(folder)
    shown = 0
    steps = sorted(s for s in groups if re.fullmatch(r"step-\d+", s))
    order = ([first] if first in groups else []) + sorted(s for s in groups if s != first and s not in steps)
    for stem in order:
        g = groups[stem]
        for p in g["files"]:
            m = report_media(p, out, caption(stem, p))
            if m is None:
                continue
            if m.kind == "image":
                section.add_image(m.path, m.caption)
            else:
                section.add_media_row("", [m])
            shown += 1
        for i, clip in sorted(g["clips"].items()):
            items = [report_media(clip[r], out, label) for r, label in zip(("input", "output"), roles) if r in clip]
            items = [m for m in items if m is not None]
            if items:
                section.add_media_row(f"{stem}: clip {i}" if stem != first else f"clip {i}", items)
                shown += len(items)
    stills = [(s, p) for s in steps for p in groups[s]["files"] if media_kind(p) == "image" and p.suffix == ".png"]
    if stills:
        picked = _evenly(stills, MAX_STEP_PREVIEWS)
        items = [Media("image", rel(p, out), f"step {int(s.split('-')[1])}") for s, p in picked]
        note = f" ({len(picked)} of {len(stills)})" if len(picked) < len(stills) else ""
        section.add_media_row(f"during training{note}", items)
        shown += len(items)
    return shown


def add_gallery(section: Section, folder: Path, out: Path, skip: tuple[str, ...] = ()) -> int:
    """Every picture, clip and video in `folder` (not recursive): pictures at full width, sound and video in
    rows of four, named by file; at most MAX_GALLERY files, the rest counted in a note."""
    files = [p for p in sorted(folder.iterdir()) if p.is_file() and media_kind(p) and p.name not in skip]
    shown = files[:MAX_GALLERY]
    row: list[Media] = []
    for p in shown:
        m = report_media(p, out, p.name)
        if m is None:
            continue
        if m.kind == "image":
            section.add_image(m.path, m.caption)
        else:
            row.append(m)
            if len(row) == 4:
                section.add_media_row("", row)
                row = []
    if row:
        section.add_media_row("", row)
    if len(files) > len(shown):
        section.add_text(f"{len(files) - len(shown)} more files in `{rel(folder, out)}/`.")
    return len(shown)


def facts_table(caption: str, rows: list[tuple[str, Any]]) -> Table:
    """A two-column table of (what, value), rows whose value is None left out."""
    return Table(caption=caption, header=["setting", "value"], rows=[[k, v] for k, v in rows if v is not None])


__all__ = [
    "ASSETS",
    "rel",
    "read_json",
    "read_yaml",
    "add_markdown",
    "add_curves",
    "add_previews",
    "add_gallery",
    "report_media",
    "describe_data",
    "facts_table",
]
