"""The report page in a real browser: headless Debian Chromium through selenium (vqfuse.report.browser)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.report.conftest import write_media
from vqfuse.report import Media, Report, Table, write_report


def _report(folder: Path) -> Path:
    paths = write_media(folder)
    rep = Report(title="browser check", subtitle="an image, a WAV, a WebM video, a table", credits=["test data"])
    sec = rep.add_section("Media", text="Everything here must load and play.")
    sec.add_image(paths["image"], caption="a picture")
    sec.add_media_row("row", [Media("audio", paths["audio"], "tone"), Media("video", paths["video"], "clip")])
    sec.add_table(Table(caption="numbers", header=["model", "PSNR"], rows=[["vqfuse", 27.1], ["WebP", 26.7]]))
    rep.timings.append(("stage", 1.5))
    return write_report(rep, folder)


def _height(png: Path) -> int:
    from PIL import Image

    with Image.open(png) as im:
        return im.size[1]


def test_a_good_report_has_no_problems(chromium, tmp_path):
    from vqfuse.report.browser import check_report

    page = _report(tmp_path / "good")
    shot = tmp_path / "shot.png"
    assert check_report(page, shot) == []
    assert shot.is_file() and shot.stat().st_size > 10_000 and _height(shot) > 600


def test_broken_media_are_reported(chromium, tmp_path):
    """A picture that is not one, a WAV that is noise bytes, a deleted video: each is a problem."""
    from vqfuse.report.browser import check_report

    folder = tmp_path / "bad"
    page = _report(folder)
    (folder / "media" / "grid.png").write_bytes(b"not a png at all")
    (folder / "media" / "tone.wav").write_bytes(b"RIFF....garbage")
    (folder / "media" / "clip.webm").unlink()
    problems = check_report(page, tmp_path / "bad.png")
    assert any(p.startswith("image did not load") and "grid.png" in p for p in problems), problems
    assert any(p.startswith("audio has no finite positive duration") and "tone.wav" in p for p in problems), problems
    assert any(p.startswith("video has no finite positive duration") and "clip.webm" in p for p in problems), problems
    assert any(p.startswith("console error") for p in problems), problems  # the missing file's failed load
    assert (tmp_path / "bad.png").is_file()

    script = Path(__file__).resolve().parents[2] / "scripts" / "screenshot_report.py"
    done = subprocess.run([sys.executable, str(script), str(page), str(tmp_path / "s.png")], capture_output=True)
    assert done.returncode == 1 and b"problem: image did not load" in done.stdout


def test_a_page_without_a_table_is_reported(chromium, tmp_path):
    from vqfuse.report.browser import check_report

    rep = Report(title="no table")
    rep.add_section("only text", text="nothing else")
    problems = check_report(write_report(rep, tmp_path), tmp_path / "s.png")
    assert problems == ["no <table> on the page"]


def test_a_trained_runs_report_passes(chromium, tokenizer_run, tmp_path):
    from vqfuse.report.browser import check_report

    assert check_report(tokenizer_run / "index.html", tmp_path / "run.png") == []
