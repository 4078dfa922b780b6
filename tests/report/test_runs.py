import json
import shutil

import numpy as np
import pytest

import vqfuse.report.runs as runs
from vqfuse.errors import InputFileError
from vqfuse.report import Table, load_report, report_for_run, write_report
from vqfuse.report.model import Image, MediaRow

pytestmark = pytest.mark.usefixtures("single_thread")


def _media(rep) -> list[str]:
    return [p for s in rep.sections for p in s.media_paths()]


def _titles(rep) -> list[str]:
    return [s.title for s in rep.sections]


def test_the_trainer_leaves_a_report(tokenizer_run):
    run = tokenizer_run
    for name in ("index.html", "report.json", "report/training-curves.png", "report/code-usage.png"):
        assert (run / name).is_file(), name
    rep = load_report(run)
    assert rep.title == "tiny" and "4 steps" in rep.subtitle
    assert _titles(rep) == ["What ran", "Training curves", "Samples", "Held-out metrics", "Codebook usage"]
    assert [name for name, _ in rep.timings] == ["training", "report"]
    media = _media(rep)
    assert "samples/final.png" in media and "samples/step-000002.png" in media
    assert all((run / p).is_file() for p in media)
    metrics = [b for b in rep.sections[3].blocks if isinstance(b, Table)]
    assert metrics[0].header == ["metric", "value"] and "psnr" in [r[0] for r in metrics[0].rows]
    facts = dict(r for r in rep.sections[0].blocks[1].rows)
    assert facts["modality"] == "image" and facts["steps"] == "4 of 4" and facts["parameters"]
    assert "tinytest" in (run / "index.html").read_text()


def test_report_for_run_into_another_folder(tokenizer_run, tmp_path):
    out = tmp_path / "elsewhere"
    rep = report_for_run(tokenizer_run, out)
    assert (out / "report" / "training-curves.png").is_file() and (out / "report" / "code-usage.png").is_file()
    assert all((out / p).resolve().is_file() for p in _media(rep))
    assert write_report(rep, out).is_file()


def test_code_counts_cover_the_held_out_items(tokenizer_run):
    from vqfuse.tokenizer import Tokenizer

    tok = Tokenizer.from_pretrained(tokenizer_run)
    counts, n = runs.code_counts(tok, {"train": "tinytest", "size": 16})
    assert n == 12 and len(counts) == 1 and counts[0].shape == (32,)
    assert int(counts[0].sum()) == 12 * 8 * 8  # 8x8 tokens per 16x16 image
    counts, n = runs.code_counts(tok, None, max_items=5)  # the dataset the model records
    assert n == 5 and int(counts[0].sum()) == 5 * 64


def test_a_run_still_training_gets_a_report(tokenizer_run, tmp_path):
    run = tmp_path / "running"
    run.mkdir()
    for part in ("config.yaml", "logs", "samples"):
        src = tokenizer_run / part
        shutil.copytree(src, run / part) if src.is_dir() else shutil.copy(src, run / part)
    (run / "samples" / "final.png").unlink()
    rep = report_for_run(run)
    assert "in progress" in rep.subtitle and "Codebook usage" not in _titles(rep)
    assert "Training has not finished" in rep.sections[0].blocks[0].text


def test_not_a_run_is_a_clear_error(tmp_path):
    with pytest.raises(InputFileError, match="not a run directory"):
        report_for_run(tmp_path)
    with pytest.raises(InputFileError, match="no such directory"):
        report_for_run(tmp_path / "nope")


def test_a_failing_report_is_one_warning_and_no_error(tokenizer_run, monkeypatch):
    def broken(run_dir, out_dir=None):
        raise RuntimeError("disk on fire\nsecond line")

    monkeypatch.setattr(runs, "report_for_run", broken)
    said: list[str] = []
    assert runs.leave_report(tokenizer_run, said.append) is None
    assert len(said) == 1 and "\n" not in said[0] and "disk on fire second line" in said[0]


def test_fusion_run_report(tokenizer_run, tmp_path):
    """A fusion run's layout (pipeline.py's docstring) made by hand from the tiny tokenizer run: its
    tokenizers, fusion.json, metrics, samples (generated across modalities, joint ones with an mp4 video
    that the report converts to WebM) and an evaluation folder."""
    import av
    import soundfile as sf
    import torch

    from vqfuse.data.video_write import write_video

    run = tmp_path / "fusion"
    shutil.copytree(tokenizer_run, run / "tokenizers" / "image")
    shutil.copytree(tokenizer_run / "logs", run / "logs")
    fusion = {
        "format": "vqfuse-fusion/1",
        "kind": "maskgit",
        "order": ["image", "audio"],
        "tokenizers": {
            "image": {
                "path": "tokenizers/image/model",
                "model_id": "abc",
                "vocab": 32,
                "stages": 1,
                "token_shape": [8, 8],
            },
            "audio": {
                "path": "tokenizers/audio/model",
                "model_id": "def",
                "vocab": 16,
                "stages": 2,
                "token_shape": [32],
            },
        },
        "data": {"train": "tinypairs", "size": 16},
        "name": "tinyfusion",
    }
    (run / "fusion.json").write_text(json.dumps(fusion))
    (run / "metrics.json").write_text(json.dumps({"steps": 6, "wall_time_s": 2.5, "parameters": 1234}))
    (run / "metrics.md").write_text(
        "# tinyfusion\n\n| task | loss | accuracy |\n|---|---|---|\n| image\\|audio | 3.1 | 0.2 |\n"
    )
    samples = run / "samples"
    (samples / "joint").mkdir(parents=True)
    shutil.copy(tokenizer_run / "samples" / "final.png", samples / "image-from-audio.png")
    tone = (0.2 * np.sin(np.arange(800) / 3)).astype(np.float32)
    for role in ("input", "output"):
        sf.write(samples / f"audio-from-image-0-{role}.wav", tone, 8000)
    shutil.copy(tokenizer_run / "samples" / "final.png", samples / "joint" / "sample-000-image.png")
    write_video(torch.rand(3, 6, 16, 16) * 2 - 1, samples / "joint" / "sample-000-video.mp4", fps=4)
    (run / "evaluation").mkdir()
    (run / "evaluation" / "evaluation.md").write_text(
        "## coherence\n\n| direction | accuracy |\n|---|---|\n| a | 1 |\n"
    )
    shutil.copy(tokenizer_run / "report" / "code-usage.png", run / "evaluation" / "robustness.png")

    rep = report_for_run(run)
    assert rep.title == "tinyfusion" and "image + audio" in rep.subtitle
    assert _titles(rep) == [
        "What ran",
        "Tokenizers",
        "Training curves (prior)",
        "Samples",
        "Held-out token metrics",
        "Evaluation (vqfuse evaluate)",
    ]
    assert [n for n, _ in rep.timings] == ["image tokenizer", "prior"]
    media = _media(rep)
    assert all((run / p).is_file() for p in media)
    assert "report/samples-joint-sample-000-video.webm" in media  # the mp4 converted for browsers
    samples_sec = rep.sections[3]
    rows = [b for b in samples_sec.blocks if isinstance(b, MediaRow)]
    assert [r.title for r in rows] == ["audio-from-image: clip 0", "joint sample 0"]
    assert [m.caption for m in rows[1].items] == ["image", "video"]
    assert any(isinstance(b, Image) and b.path == "evaluation/robustness.png" for b in rep.sections[5].blocks)
    token_table = next(b for b in rep.sections[4].blocks if isinstance(b, Table))
    assert token_table.rows == [["image|audio", "3.1", "0.2"]]
    assert write_report(rep, run).is_file()
    with av.open(str(run / "report" / "samples-joint-sample-000-video.webm")) as c:
        assert c.duration and c.duration > 0 and c.streams.video[0].codec_context.name == "vp9"


def test_leaving_a_report_keeps_the_random_streams(tmp_path, monkeypatch):
    """The fusion pipeline trains on after a tokenizer's report: the report must not move any RNG."""
    import random

    import torch

    def consuming(run_dir, out_dir=None):
        torch.rand(3), np.random.rand(3), random.random()
        return tmp_path / "index.html"

    monkeypatch.setattr(runs, "write_run_report", consuming)
    torch.manual_seed(1), np.random.seed(1), random.seed(1)
    expected = (torch.rand(2).tolist(), np.random.rand(2).tolist(), random.random())
    torch.manual_seed(1), np.random.seed(1), random.seed(1)
    assert runs.leave_report(tmp_path) == tmp_path / "index.html"
    assert (torch.rand(2).tolist(), np.random.rand(2).tolist(), random.random()) == expected
