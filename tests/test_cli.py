"""The `vqfuse` command line, run in-process through `main([...])` and once as a subprocess."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.files import pixels, wav_samples, write_png, write_wav
from tests.helpers.models import fake_evaluate_tokenizer, make_audio_model, make_model
from vqfuse.cli import main
from vqfuse.io.tokenfile import read_tokens

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("cli") / "run"
    make_model(d / "model")  # a run directory holding model/
    return d


@pytest.fixture(scope="module")
def audio_dir(tmp_path_factory) -> Path:
    """A tiny audio model: 50 frames/s, 4 residual stages of 1024 codes (0.5, 1, 1.5, 2 kbit/s)."""
    d = tmp_path_factory.mktemp("cli-audio") / "model"
    make_audio_model(d)
    return d


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def error_line(err: str) -> str:
    """The last stderr line, which must be the one `error: ...` line (no traceback)."""
    assert "Traceback" not in err
    return err.strip().splitlines()[-1]


@pytest.fixture
def fake_trainer(monkeypatch) -> list:
    """Replace vqfuse.train.trainer.train with one that writes what the real one leaves in config.out:
    model/ (a tiny untrained model), samples/final.png, metrics.md and metrics.json."""
    calls: list = []
    mod = types.ModuleType("vqfuse.train.trainer")

    def train(config, resume: bool = False, progress: bool = True) -> Path:
        calls.append((config, resume, progress))
        run_dir = Path(config.out)
        (make_audio_model if config.modality == "audio" else make_model)(run_dir / "model")
        write_png(run_dir / "samples" / "final.png", 8, 8)
        (run_dir / "metrics.md").write_text("| metric | value |\n|---|---|\n| psnr | 12.5 |\n")
        (run_dir / "metrics.json").write_text(json.dumps({"heldout": {"psnr": 12.5}}))
        return run_dir

    mod.train = train
    monkeypatch.setitem(sys.modules, "vqfuse.train.trainer", mod)
    return calls


def test_encode_decode_round_trip_equals_reconstruct(model_dir, tmp_path, capsys):
    src = write_png(tmp_path / "odd.png", 37, 23)
    code, out, err = run(capsys, "encode", model_dir, src, tmp_path / "odd.png.vqf")
    assert code == 0, err
    assert out.startswith("encoded 1 file: 228 tokens, ") and "bits/pixel" in out and out.count("\n") == 1
    code, out, err = run(capsys, "decode", model_dir, tmp_path / "odd.png.vqf", tmp_path / "dec.png")
    assert code == 0 and out.startswith("decoded 1 file: 228 tokens"), err
    code, out, err = run(capsys, "reconstruct", model_dir, src, tmp_path / "rec.png")
    assert code == 0 and out.startswith("reconstructed 1 file"), err
    assert pixels(tmp_path / "dec.png").shape == (23, 37, 3)
    np.testing.assert_array_equal(pixels(tmp_path / "dec.png"), pixels(tmp_path / "rec.png"))


def test_directory_recursion_and_a_corrupt_file(model_dir, tmp_path, capsys):
    src = tmp_path / "in"
    write_png(src / "a.png", 16, 16)
    write_png(src / "x" / "y" / "b.png", 12, 20)
    (src / "x" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    code, out, err = run(capsys, "encode", model_dir, src, tmp_path / "tok")
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 2 and "Traceback" not in err
    assert lines[0].startswith(f"error: {src / 'x' / 'broken.jpg'}: ") and "image" in lines[0]
    assert lines[1] == "error: 1 of 3 files failed"
    assert out.startswith("encoded 2 files: ") and out.strip().endswith("; 1 failed")
    assert sorted(p.relative_to(tmp_path / "tok").as_posix() for p in (tmp_path / "tok").rglob("*.vqf")) == [
        "a.png.vqf",
        "x/y/b.png.vqf",
    ]
    code, out, err = run(capsys, "decode", model_dir, tmp_path / "tok", tmp_path / "dec")
    assert code == 0, err
    assert pixels(tmp_path / "dec" / "x" / "y" / "b.png").shape == (20, 12, 3)
    code, out, err = run(capsys, "reconstruct", model_dir, src, tmp_path / "rec")
    assert code == 1 and (tmp_path / "rec" / "x" / "y" / "b.png").is_file()
    np.testing.assert_array_equal(pixels(tmp_path / "rec" / "a.png"), pixels(tmp_path / "dec" / "a.png"))


def test_token_file_errors(model_dir, tmp_path, capsys):
    write_png(tmp_path / "a.png", 8, 8)
    other = make_model(tmp_path / "other", seed=3)
    assert run(capsys, "encode", tmp_path / "other", tmp_path / "a.png", tmp_path / "a.vqf")[0] == 0
    code, _, err = run(capsys, "decode", model_dir, tmp_path / "a.vqf", tmp_path / "out.png")
    model_id = json.loads((model_dir / "model" / "config.json").read_text())["model_id"]
    assert code == 1
    assert error_line(err) == f"error: {tmp_path / 'a.vqf'} was encoded by model {other.model_id}, not {model_id}"
    data = (tmp_path / "a.vqf").read_bytes()
    (tmp_path / "cut.vqf").write_bytes(data[:20])
    code, _, err = run(capsys, "decode", model_dir, tmp_path / "cut.vqf", tmp_path / "out.png")
    assert code == 1 and error_line(err).startswith(f"error: {tmp_path / 'cut.vqf'}: truncated")
    (tmp_path / "junk.vqf").write_bytes(b"\x00" * 50)
    code, _, err = run(capsys, "decode", model_dir, tmp_path / "junk.vqf", tmp_path / "out.png")
    assert code == 1 and error_line(err) == f"error: {tmp_path / 'junk.vqf'}: not a vqfuse token file (bad magic bytes)"
    assert not (tmp_path / "out.png").exists()


def test_input_errors(model_dir, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code, _, err = run(capsys, "encode", model_dir, tmp_path / "empty", tmp_path / "out")
    assert code == 1 and error_line(err).startswith(f"error: {tmp_path / 'empty'}: no image files (")
    code, _, err = run(capsys, "reconstruct", model_dir, tmp_path / "missing.png", tmp_path / "o.png")
    assert code == 1 and error_line(err) == f"error: {tmp_path / 'missing.png'}: does not exist"
    code, _, err = run(capsys, "info", tmp_path / "nomodel")
    assert code == 1 and error_line(err).startswith(
        f"error: {tmp_path / 'nomodel'}: model directory does not exist (built-in models: "
    )
    code, _, err = run(capsys, "--debug", "info", tmp_path / "nomodel")
    assert code == 1 and "Traceback" in err and err.strip().splitlines()[-1].startswith("error: ")
    code, _, err = run(capsys, "encode", model_dir)
    assert code == 2 and "Missing argument" in err


def test_info(model_dir, capsys):
    code, out, _ = run(capsys, "info", model_dir)
    assert code == 0
    fields = dict(
        line.split(":", 1) for line in out.splitlines() if ":" in line and not line.startswith((" ", "{", "}"))
    )
    model_id = json.loads((model_dir / "model" / "config.json").read_text())["model_id"]
    assert fields["model id"].strip() == model_id
    assert fields["quantizer"].strip() == "vq, codebook size 32"
    assert fields["tokens per item"].strip() == "64"
    assert fields["bits per item"].strip() == "320 (1.25 bits/pixel)"
    assert '"codebook_size": 32' in out


def test_train_unknown_preset_and_overrides(fake_trainer, tmp_path, capsys):
    code, _, err = run(capsys, "train", "no-such-preset")
    assert code == 1 and error_line(err).startswith("error: no-such-preset: no such config file or preset (presets: ")
    assert not fake_trainer
    code, out, err = run(
        capsys,
        "train",
        "image-emoji32",
        "steps=5",
        f"out={tmp_path / 'r'}",
        "train.lr=1e-3",
        "--resume",
        "--no-progress",
    )
    assert code == 0, err
    ((config, resume, progress),) = fake_trainer
    assert config.train.steps == 5 and config.train.lr == 1e-3 and resume and not progress
    assert out.strip().splitlines()[-1] == str(tmp_path / "r")
    code, _, err = run(capsys, "train", "image-emoji32", "steps")
    assert code == 1 and error_line(err) == "error: override 'steps' is not key=value"


def test_evaluate(model_dir, tmp_path, capsys, monkeypatch):
    for i in range(3):
        write_png(tmp_path / "imgs" / f"{i}.png", 20, 20, seed=i)
    code, out, err = run(
        capsys,
        "evaluate",
        model_dir,
        "--data",
        f"folder:{tmp_path / 'imgs'}",
        "--split",
        "all",
        "--batch-size",
        "2",
        "--out",
        tmp_path / "ev",
    )
    assert code == 0, err
    assert "| metric | value |" in out and "| psnr |" in out and "| bits_per_pixel | 1.25 |" in out
    report = json.loads((tmp_path / "ev" / "evaluation.json").read_text())
    assert report["split"] == "all" and report["items"] == 3 and (tmp_path / "ev" / "evaluation.md").is_file()
    monkeypatch.setattr("vqfuse.evaluate.evaluate_tokenizer", fake_evaluate_tokenizer)
    code, out, err = run(capsys, "evaluate", model_dir)  # the training data's test split, into the run directory
    assert code == 0, err
    report = json.loads((model_dir / "evaluation.json").read_text())
    assert report["dataset"] == "digits" and report["split"] == "test" and report["items"] > 100
    code, _, err = run(capsys, "evaluate", model_dir, "--data", "nope")
    assert code == 1 and error_line(err).startswith("error: unknown dataset 'nope'")


def test_subprocess_exit_codes_and_stderr(tmp_path):
    """Through a real process: one `error:` line and exit 1 for a user error, exit 2 for a usage error.
    (Both fail before torch is imported, so this stays fast.)"""
    cmd = [sys.executable, "-m", "vqfuse"]
    p = subprocess.run(
        cmd + ["train", str(tmp_path / "nope.yaml"), "steps=1"], capture_output=True, text=True, timeout=120
    )
    assert p.returncode == 1 and p.stdout == ""
    (line,) = p.stderr.splitlines()
    assert line.startswith(f"error: {tmp_path / 'nope.yaml'}: no such config file or preset (presets: ")
    p = subprocess.run(cmd + ["encode", "model"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "Missing argument" in p.stderr and "Traceback" not in p.stderr


# ----------------------------------------------------------------------------------------------- audio

AUDIO_SUMMARY = (
    r"(\d+) tokens, ([\d.]+) kbit/s, ([\d.]+) tokens/s, ([\d.]+) s of audio in \d+\.\d\d s \(([\d.]+)x real time\)"
)


def test_audio_bitrate_options_and_summary_lines(audio_dir, tmp_path, capsys):
    src = write_wav(tmp_path / "talk.wav", 2.5)  # 125 frames
    code, out, err = run(capsys, "encode", audio_dir, src, tmp_path / "talk.wav.vqf", "--kbps", "1.2")
    assert code == 0, err
    m = re.fullmatch(f"encoded 1 file: {AUDIO_SUMMARY}\n", out)
    assert m and m.group(1, 2, 3, 4) == ("250", "1", "100", "2.5") and float(m.group(5)) > 0, out
    assert read_tokens(tmp_path / "talk.wav.vqf").shape == (2, 125)
    code, out, err = run(capsys, "decode", audio_dir, tmp_path / "talk.wav.vqf", tmp_path / "dec.wav")
    assert code == 0, err
    m = re.fullmatch(f"decoded 1 file: {AUDIO_SUMMARY}\n", out)
    assert m and m.group(1, 2, 3, 4) == ("250", "1", "100", "2.5"), out
    code, out, err = run(capsys, "reconstruct", audio_dir, src, tmp_path / "rec.wav", "--kbps", "1.2")
    assert code == 0 and re.fullmatch(f"reconstructed 1 file: {AUDIO_SUMMARY}\n", out), err
    np.testing.assert_array_equal(wav_samples(tmp_path / "dec.wav"), wav_samples(tmp_path / "rec.wav"))
    code, out, err = run(capsys, "reconstruct", audio_dir, src, tmp_path / "rec3.wav", "--n-q", "3")
    m = re.fullmatch(f"reconstructed 1 file: {AUDIO_SUMMARY}\n", out)
    assert code == 0 and m and m.group(1, 2, 3) == ("375", "1.5", "150"), err
    assert wav_samples(tmp_path / "rec3.wav").shape == (40000,)
    code, out, _ = run(capsys, "info", audio_dir)
    assert code == 0 and "bitrates (kbit/s): 0.5, 1, 1.5, 2 (--n-q 1..4)" in out and "frames per second: 50" in out


def test_audio_option_and_file_errors(audio_dir, model_dir, tmp_path, capsys):
    src = write_wav(tmp_path / "a.wav", 1.0)
    code, out, err = run(capsys, "encode", audio_dir, src, tmp_path / "a.vqf", "--kbps", "0.2")
    assert code == 1 and out == ""
    assert (
        error_line(err) == "error: --kbps 0.2 is below the lowest bitrate of this model; allowed: 0.5, 1, 1.5, 2 kbit/s"
    )
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "a.vqf").exists()
    code, _, err = run(capsys, "reconstruct", audio_dir, src, tmp_path / "r.wav", "--kbps", "1", "--n-q", "2")
    assert code == 1 and error_line(err) == "error: give --n-q or --kbps, not both"
    code, _, err = run(capsys, "encode", audio_dir, src, tmp_path / "a.vqf", "--n-q", "5")
    assert code == 1 and error_line(err) == "error: --n-q must be in 1..4, got 5"
    write_png(tmp_path / "p.png", 8, 8)
    code, _, err = run(capsys, "encode", model_dir, tmp_path / "p.png", tmp_path / "p.vqf", "--kbps", "1")
    assert (
        code == 1
        and error_line(err)
        == "error: --kbps needs a model rated in kbit/s; this image model is rated in bits/pixel (use --n-q)"
    )
    (tmp_path / "bad.wav").write_bytes(b"RIFF not really audio")
    code, _, err = run(capsys, "encode", audio_dir, tmp_path / "bad.wav", tmp_path / "bad.vqf", "--kbps", "2")
    assert code == 1 and error_line(err).startswith(f"error: {tmp_path / 'bad.wav'}: ")
    assert len(err.strip().splitlines()) == 1
    # image tokens given to the audio model: one line naming the token file
    assert run(capsys, "encode", model_dir, tmp_path / "p.png", tmp_path / "p.vqf")[0] == 0
    code, _, err = run(capsys, "decode", audio_dir, tmp_path / "p.vqf", tmp_path / "p.wav")
    assert (
        code == 1 and error_line(err) == f"error: {tmp_path / 'p.vqf'} holds image tokens, but the model is for audio"
    )


def test_evaluate_a_shipped_model_writes_into_the_working_directory(tmp_path, capsys, monkeypatch):
    from vqfuse.pretrained import builtin_model

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("vqfuse.evaluate.evaluate_tokenizer", fake_evaluate_tokenizer)
    code, out, err = run(capsys, "evaluate", "emoji32")
    assert code == 0, err
    assert (tmp_path / "evaluation-emoji32" / "evaluation.md").is_file()
    assert not [p for p in builtin_model("emoji32").iterdir() if p.name.startswith("evaluation")]


def test_evaluate_fusion_sections_are_checked(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "fusion.json").write_text("{}")
    code, _, err = run(capsys, "evaluate", tmp_path / "run", "--sections", "coherence,bogus")
    assert code == 1
    assert error_line(err) == "error: --sections: unknown bogus; choose from coherence, classification, repair"
