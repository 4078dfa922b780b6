"""Rendering a Report as one static HTML page, and report.json to and from disk.

The page opens from the file system with no server and no network: the CSS is inline, there is no script,
media are referenced by relative URLs. Every text is HTML-escaped. A media file that does not exist when the
report is written is an error naming the file (`on_missing="error"`, the default: a report that silently
lost its pictures is worse than none), or, with `on_missing="note"`, a visible note in its place.
"""

from __future__ import annotations

import html
import json
import os
import re
from pathlib import Path
from typing import Literal
from urllib.parse import quote

from vqfuse.errors import InputFileError, PathLike
from vqfuse.io.atomic import atomic_write_text
from vqfuse.report.model import Image, Media, MediaRow, Report, Section, Table, Text
from vqfuse.report.style import CSS

REPORT_JSON, INDEX_HTML = "report.json", "index.html"
SMALL_IMAGE = 512  # narrower images are shown scaled up by a whole factor (pixelated): sample grids are tiny
OnMissing = Literal["error", "note"]


class MissingMediaError(InputFileError):
    """A media file the report shows does not exist."""


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def _inline(text: str) -> str:
    """Escaped text with `code` spans (backticks are never HTML, so escaping first is safe)."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", _esc(text))


def _url(path: str) -> str:
    """A media path as an attribute value: absolute paths as file:// URLs, relative ones percent-encoded."""
    if os.path.isabs(path):
        return _esc(Path(path).as_uri())
    return _esc(quote(path, safe="/._-~"))


def _slug(index: int, title: str) -> str:
    words = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
    return f"s{index + 1}-{words[:40]}" if words else f"s{index + 1}"


def _format(value: object) -> str:
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value).lower()
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _is_number(value: object) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return True
    try:
        float(str(value).replace(",", ""))
        return True
    except ValueError:
        return False


class _Renderer:
    """Renders one report against the folder it will live in (to check media and read image sizes)."""

    def __init__(self, out_dir: Path, on_missing: OnMissing) -> None:
        self.out_dir, self.on_missing = out_dir, on_missing
        self.section = ""

    def _file(self, path: str) -> Path:
        """Where a media path points (lexically: the report folder may not exist yet)."""
        return Path(os.path.normpath(self.out_dir / path))

    def _exists(self, path: str) -> bool:
        full = self._file(path)
        if full.is_file():
            return True
        if self.on_missing == "error":
            raise MissingMediaError(full, f"media file missing (shown in section '{self.section}' of the report)")
        return False

    def _missing(self, path: str) -> str:
        return f'<div class="missing">missing file: <code>{_esc(path)}</code></div>'

    def _img_width(self, path: str) -> str:
        """A width attribute scaling a small image up by a whole factor ("" for large or unreadable ones)."""
        try:
            from PIL import Image as PILImage

            with PILImage.open(self._file(path)) as im:
                w = im.size[0]
        except Exception:  # not readable by PIL (e.g. an SVG): let the browser size it
            return ""
        if w <= 0 or SMALL_IMAGE // w < 2:
            return ""
        return f' width="{w * (SMALL_IMAGE // w)}" class="pixel"'

    def media(self, m: Media) -> str:
        if not self._exists(m.path):
            body = self._missing(m.path)
        elif m.kind == "image":
            body = f'<img src="{_url(m.path)}" alt="{_esc(m.caption or m.path)}"{self._img_width(m.path)}>'
        elif m.kind == "audio":
            body = f'<audio controls preload="auto" src="{_url(m.path)}"></audio>'
        else:
            body = f'<video controls muted loop preload="auto" src="{_url(m.path)}"></video>'
        caption = f"<figcaption>{_inline(m.caption)}</figcaption>" if m.caption else ""
        return f'<figure class="media {m.kind}">{body}{caption}</figure>'

    def image(self, b: Image) -> str:
        if not self._exists(b.path):
            body = self._missing(b.path)
        else:
            body = (
                f'<a href="{_url(b.path)}"><img src="{_url(b.path)}" alt="{_esc(b.caption or b.path)}"'
                f"{self._img_width(b.path)}></a>"
            )
        caption = f"<figcaption>{_inline(b.caption)}</figcaption>" if b.caption else ""
        return f'<figure class="single">{body}{caption}</figure>'

    def media_row(self, b: MediaRow) -> str:
        title = f"<h3>{_inline(b.title)}</h3>" if b.title else ""
        items = "".join(self.media(m) for m in b.items)
        return f'<div class="row">{title}<div class="grid">{items}</div></div>'

    def table(self, t: Table) -> str:
        out = ['<div class="table-wrap"><table>']
        if t.caption:
            out.append(f"<caption>{_inline(t.caption)}</caption>")
        if t.header:
            out.append("<thead><tr>" + "".join(f"<th>{_inline(h)}</th>" for h in t.header) + "</tr></thead>")
        out.append("<tbody>")
        # a column of numbers only is right-aligned (a mixed one, e.g. of a settings table, stays left)
        numeric = (
            [all(_is_number(r[j]) or r[j] in ("", None) for r in t.rows) for j in range(len(t.rows[0]))]
            if t.rows
            else []
        )
        for row in t.rows:
            cells = "".join(
                f'<td class="num">{_inline(_format(c))}</td>' if numeric[j] else f"<td>{_inline(_format(c))}</td>"
                for j, c in enumerate(row)
            )
            out.append(f"<tr>{cells}</tr>")
        out.append("</tbody></table></div>")
        return "".join(out)

    def text(self, b: Text) -> str:
        paragraphs = [p.strip() for p in re.split(r"\n\s*\n", b.text) if p.strip()]
        return "".join(f"<p>{_inline(p)}</p>" for p in paragraphs)

    def section_html(self, index: int, s: Section) -> str:
        self.section = s.title
        parts = []
        for b in s.blocks:
            if isinstance(b, Text):
                parts.append(self.text(b))
            elif isinstance(b, Image):
                parts.append(self.image(b))
            elif isinstance(b, MediaRow):
                parts.append(self.media_row(b))
            else:
                parts.append(self.table(b))
        return f'<section id="{_slug(index, s.title)}"><h2>{_inline(s.title)}</h2>{"".join(parts)}</section>'


def _timings_html(timings: list[tuple[str, float]]) -> str:
    if not timings:
        return ""
    total = sum(s for _, s in timings) or 1.0
    rows = "".join(
        f'<tr><td>{_esc(name)}</td><td class="num">{s:.1f}</td><td class="num">{_clock(s)}</td>'
        f'<td class="bar"><span style="width:{100 * s / total:.1f}%"></span></td></tr>'
        for name, s in timings
    )
    total_row = (
        f'<tr class="total"><td>total</td><td class="num">{sum(s for _, s in timings):.1f}</td>'
        f'<td class="num">{_clock(sum(s for _, s in timings))}</td><td></td></tr>'
        if len(timings) > 1
        else ""
    )
    return (
        '<div class="table-wrap timings"><table><caption>time per stage</caption><thead><tr><th>stage</th>'
        f"<th>seconds</th><th>h:mm:ss</th><th></th></tr></thead><tbody>{rows}{total_row}</tbody></table></div>"
    )


def _clock(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def render_html(report: Report, out_dir: PathLike, on_missing: OnMissing = "error") -> str:
    """The page of `report` as it will sit in `out_dir` (media paths are relative to it)."""
    from vqfuse import __version__

    r = _Renderer(Path(out_dir), on_missing)
    sections = "".join(r.section_html(i, s) for i, s in enumerate(report.sections))
    toc = "".join(
        f'<li><a href="#{_slug(i, s.title)}">{_inline(s.title)}</a></li>' for i, s in enumerate(report.sections)
    )
    subtitle = f'<p class="subtitle">{_inline(report.subtitle)}</p>' if report.subtitle else ""
    head_credits = (
        '<p class="credits-line">' + " &middot; ".join(_inline(c) for c in report.credits) + "</p>"
        if report.credits
        else ""
    )
    foot_credits = (
        "<h2>Credits</h2><ul>" + "".join(f"<li>{_inline(c)}</li>" for c in report.credits) + "</ul>"
        if report.credits
        else ""
    )
    nav = f'<nav class="toc"><h2>Contents</h2><ol>{toc}</ol></nav>' if report.sections else ""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_esc(report.title)}</title><style>{CSS}</style></head><body>"
        f'<header><div class="wrap"><h1>{_inline(report.title)}</h1>{subtitle}{head_credits}</div></header>'
        f'<main class="wrap">{_timings_html(report.timings)}{nav}{sections}</main>'
        f'<footer><div class="wrap">{foot_credits}<p class="made">Made by vqfuse {_esc(__version__)}; '
        f"the report's content is in <code>{REPORT_JSON}</code> beside this page.</p></div></footer>"
        "</body></html>\n"
    )


def write_report(report: Report, out_dir: PathLike, on_missing: OnMissing = "error") -> Path:
    """Write `out_dir/report.json` and `out_dir/index.html`; returns the path of index.html.

    The page is rendered (and every media file checked) before anything is written, so a missing file
    leaves an existing report as it was. Raises MissingMediaError (one line naming the file) when a media
    file is missing and `on_missing` is "error"."""
    out = Path(out_dir)
    page = render_html(report, out, on_missing)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / REPORT_JSON, json.dumps(report.to_dict(), indent=2, allow_nan=False) + "\n")
    atomic_write_text(out / INDEX_HTML, page)
    return out / INDEX_HTML


def load_report(out_dir: PathLike) -> Report:
    """The Report in `out_dir/report.json` (or a path to the JSON file itself)."""
    path = Path(out_dir)
    if path.is_dir():
        path = path / REPORT_JSON
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputFileError(path, "no such file (not a report folder)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputFileError(path, f"cannot read the report ({exc})") from None
    try:
        return Report.from_dict(data)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InputFileError(path, f"not a valid report ({exc})") from None


def rebase(report: Report, old_dir: PathLike, new_dir: PathLike) -> Report:
    """A copy of `report` whose relative media paths point from `new_dir` to the files under `old_dir`
    (to write a report somewhere else than where its media paths were made for)."""
    old, new = Path(old_dir).resolve(), Path(new_dir).resolve()
    moved = Report.from_dict(report.to_dict())

    def fix(path: str) -> str:
        if os.path.isabs(path):
            return path
        return Path(os.path.relpath(old / path, new)).as_posix()

    for s in moved.sections:
        for b in s.blocks:
            if isinstance(b, Image):
                b.path = fix(b.path)
            elif isinstance(b, MediaRow):
                for m in b.items:
                    m.path = fix(m.path)
    return moved


__all__ = ["write_report", "load_report", "render_html", "rebase", "MissingMediaError", "REPORT_JSON", "INDEX_HTML"]
