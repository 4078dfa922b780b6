"""End to end: `vqfuse demo --quick` in a subprocess as a new user runs it, and its report in headless
Chromium: every image loaded, every audio and video element playable with a positive duration, tables
present, no console error; every section filled (a section per shipped model and per trained kind, none
failed)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers.files import write_png, write_wav
from vqfuse.pretrained import builtin_models


@pytest.fixture(scope="module")
def quick_demo(tmp_path_factory) -> tuple[Path, float]:
    root = tmp_path_factory.mktemp("demo")
    mine = root / "mine"
    write_png(mine / "photo.png", 48, 40)
    write_wav(mine / "talk.wav", 1.5)
    out = root / "quick"
    cmd = [sys.executable, "-m", "vqfuse", "demo", "--quick", "--out", str(out), "--no-progress", "--inputs", str(mine)]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    return out, time.perf_counter() - start


def test_quick_demo_report_in_chromium(chromium, quick_demo, tmp_path):
    from vqfuse.report import load_report
    from vqfuse.report.browser import check_report

    out, seconds = quick_demo
    assert check_report(out / "index.html", tmp_path / "screenshot.png") == []
    assert (tmp_path / "screenshot.png").stat().st_size > 10_000
    report = load_report(out)
    titles = [s.title for s in report.sections]
    assert not [t for t in titles if t.startswith("Failed")]
    for name in builtin_models():
        assert any(name in t for t in titles), f"no section for the shipped model {name}"
    for kind in ("image VQ-GAN", "speech codec", "video tokenizer", "fusion prior"):
        assert any(t.startswith("Trained here from scratch") and kind in t for t in titles), kind
    assert "Your files" in titles
    stages = dict(report.timings)
    assert {"train image", "train audio", "train video", "train fusion", "your files"} <= set(stages)
    assert seconds < 1200
