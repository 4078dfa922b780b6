"""run_demo: stages in order into one report, a failing stage reported without hiding the others, the
user's own files, and the CLI commands `demo` and `models`."""

from __future__ import annotations

import json

import pytest

from tests.demo.conftest import TINY
from tests.helpers.files import run_cli, write_png, write_wav
from vqfuse.demo import run_demo
from vqfuse.demo.scratch import SCRATCH_RUNS, _overrides
from vqfuse.demo.user_files import user_files_part
from vqfuse.errors import VqfuseError
from vqfuse.report.model import MediaRow, Text


@pytest.fixture
def fake_parts(monkeypatch):
    """Pretrained and scratch parts that only add a section (and one that fails)."""
    import vqfuse.demo as demo
    import vqfuse.demo.showcase as showcase
    import vqfuse.demo.showcase_fusion as showcase_fusion

    calls = []

    def part(kind):
        def run(ctx, name):
            calls.append(name)
            if name == "moving-digits":
                raise RuntimeError("the video part broke")
            ctx.report.add_section(f"{kind} {name}", text="ok")

        return run

    monkeypatch.setattr(showcase, "PARTS", {k: part(k) for k in ("image", "audio", "video")})
    monkeypatch.setattr(showcase_fusion, "fusion_part", part("fusion"))
    monkeypatch.setattr(demo, "_scratch_stages", lambda ctx: [("train image", lambda: calls.append("scratch"))])
    return calls


def test_a_failing_stage_is_reported_and_the_others_still_run(fake_parts, tmp_path):
    with pytest.raises(
        VqfuseError, match=r"1 demo stage\(s\) failed \(pretrained moving-digits: the video part broke\)"
    ):
        run_demo(tmp_path / "demo", size=TINY, progress=False, log=lambda s: None)
    assert fake_parts[-1] == "scratch" and "speech16k" in fake_parts
    report = json.loads((tmp_path / "demo" / "report.json").read_text())
    titles = [s["title"] for s in report["sections"]]
    assert "Failed: pretrained moving-digits" in titles and "audio speech16k" in titles
    timed = [name for name, _ in report["timings"]]
    assert timed == [name for name, _ in report["timings"] if name.startswith(("pretrained", "train"))]
    assert timed[-1] == "train image" and "pretrained moving-digits" in timed  # a failed stage is timed too
    assert (tmp_path / "demo" / "index.html").read_text().count("<section") >= len(titles)


def test_only_runs_the_named_stages(fake_parts, tmp_path):
    run_demo(tmp_path / "demo", size=TINY, progress=False, log=lambda s: None, only=("pretrained speech16k",))
    assert fake_parts == ["speech16k"]


def test_inputs_must_be_a_folder(tmp_path):
    with pytest.raises(VqfuseError, match="--inputs must be a folder"):
        run_demo(tmp_path / "demo", inputs=tmp_path / "nope", progress=False)


def test_user_files_each_through_its_model_and_a_bad_one_noted(ctx, tmp_path):
    mine = tmp_path / "mine"
    write_png(mine / "photo.png", 40, 30)
    write_wav(mine / "talk.wav", 1.2)
    (mine / "broken.wav").write_bytes(b"RIFF....WAVEfmt garbage")
    (mine / "notes.txt").write_text("not media")
    user_files_part(ctx, mine)
    rows = [b for s in ctx.report.sections for b in s.blocks if isinstance(b, MediaRow)]
    texts = " ".join(b.text for s in ctx.report.sections for b in s.blocks if isinstance(b, Text))
    assert sorted(r.title for r in rows) == ["photo.png", "talk.wav"]
    assert "broken.wav: could not be coded" in texts and "notes.txt" not in texts
    for row in rows:
        assert all((ctx.out / m.path).is_file() for m in row.items)
    talk = next(r for r in rows if r.title == "talk.wav")
    assert "kbit/s" in talk.items[1].caption


def test_scratch_overrides_scale_the_warm_up_and_cap_the_run(ctx):
    audio = next(r for r in SCRATCH_RUNS if r.kind == "audio")
    steps = ctx.size.train_steps["audio"]
    overrides = _overrides(ctx, audio, ctx.out / "scratch" / "audio")
    assert f"train.quantizer_bypass_steps={max(1, steps // 4)}" in overrides
    assert f"steps={steps}" in overrides and f"train.max_minutes={ctx.size.train_minutes}" in overrides


def test_models_lists_the_shipped_models(capsys):
    code, out, _ = run_cli(capsys, "models")
    assert code == 0
    assert "speech16k" in out and "speech codec" in out and "MB" in out and "moving-digits" in out
