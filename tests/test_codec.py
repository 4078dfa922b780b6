"""vqfuse.codec: files and folders <-> token files with a tiny untrained tokenizer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.helpers.files import SR, pixels, tone, wav_samples, write_png, write_wav
from tests.helpers.models import fake_evaluate_tokenizer, make_audio_model, make_model
from vqfuse import codec
from vqfuse.chunking import pad_to_multiple
from vqfuse.errors import ConfigError, InputFileError, ModelMismatchError, TokenFileError, VqfuseError
from vqfuse.evaluate import evaluate_model, model_info
from vqfuse.io.paths import BatchResult, FileResult, map_paths
from vqfuse.io.tokenfile import read_tokens, write_tokens
from vqfuse.modalities import get_modality
from vqfuse.tokenizer import Tokenizer

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("model")
    make_model(d)
    return d


@pytest.fixture(scope="module")
def model(model_dir) -> Tokenizer:
    return codec.load_model(model_dir)


def test_pad_to_multiple_replicates_the_edge():
    x = torch.arange(2 * 3 * 5, dtype=torch.float32).reshape(2, 3, 5)
    y = pad_to_multiple(x, (2, 4))
    assert y.shape == (2, 4, 8)
    torch.testing.assert_close(y[:, :3, :5], x)
    torch.testing.assert_close(y[:, 3, :5], x[:, 2])  # last row repeated
    torch.testing.assert_close(y[:, :3, 7], x[:, :, 4])  # last column repeated
    assert pad_to_multiple(x[:, :2, :4], (2, 4)).shape == (2, 2, 4)  # already a multiple


def test_odd_size_round_trips_to_the_same_size(model):
    x = torch.rand(3, 23, 37) * 2 - 1
    tf = model.encode_item(x, source="odd.png")
    assert tf.shape == (12, 19) and tf.meta == {"size": [23, 37], "source": "odd.png"}
    assert tf.model_id == model.model_id and tf.codebook_size == 32
    y = model.decode_item(tf)
    assert y.shape == x.shape


def test_encode_decode_file_equals_reconstruct(model, tmp_path):
    src = write_png(tmp_path / "in.png", 37, 23)
    r = codec.encode_file(model, src, tmp_path / "in.png.vqf")
    assert r.tokens == 12 * 19 and r.extent == 37 * 23 and r.duration == 0 and r.bits == pytest.approx(12 * 19 * 5)
    codec.decode_file(model, tmp_path / "in.png.vqf", tmp_path / "dec.png")
    codec.reconstruct_file(model, src, tmp_path / "rec.png")
    assert pixels(tmp_path / "dec.png").shape == (23, 37, 3)
    np.testing.assert_array_equal(pixels(tmp_path / "dec.png"), pixels(tmp_path / "rec.png"))


def test_map_paths_mirrors_the_tree(tmp_path):
    src = tmp_path / "in"
    for rel in ["a.png", "sub/b.JPG", "sub/deeper/c.webp", "sub/notes.txt", ".hidden/d.png", "sub/.e.png"]:
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(b"x")
    exts = get_modality("image").extensions
    pairs = map_paths(src, tmp_path / "out", exts, codec.token_name)
    assert [(a.relative_to(src).as_posix(), b.relative_to(tmp_path / "out").as_posix()) for a, b in pairs] == [
        ("a.png", "a.png.vqf"),
        ("sub/b.JPG", "sub/b.JPG.vqf"),
        ("sub/deeper/c.webp", "sub/deeper/c.webp.vqf"),
    ]
    (src / "sub" / "loop").symlink_to(src)  # a symlink loop is walked once
    assert len(map_paths(src, tmp_path / "out", exts)) == 3
    (src / "sub" / "loop").unlink()
    # an output folder inside the input folder is not read back as input
    (src / "out" / "x.png").parent.mkdir()
    (src / "out" / "x.png").write_bytes(b"x")
    assert len(map_paths(src, src / "out", exts)) == 3
    # a single file into an existing folder
    (tmp_path / "dst").mkdir()
    assert map_paths(src / "a.png", tmp_path / "dst", exts, codec.token_name) == [
        (src / "a.png", tmp_path / "dst" / "a.png.vqf")
    ]


def test_map_paths_errors(tmp_path):
    exts = (".png",)
    with pytest.raises(InputFileError, match="does not exist"):
        map_paths(tmp_path / "missing", tmp_path / "out", exts)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputFileError, match=r"empty: no image files \(png\) found"):
        map_paths(tmp_path / "empty", tmp_path / "out", exts, what="image")
    write_png(tmp_path / "d" / "a.png", 4, 4)
    with pytest.raises(VqfuseError, match="overwrite its own input"):
        map_paths(tmp_path / "d", tmp_path / "d", exts)
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(InputFileError, match="not a folder"):
        map_paths(tmp_path / "d", tmp_path / "file", exts)


def test_decoded_name():
    image = get_modality("image")
    assert codec.decoded_name("cat.png.vqf", image) == "cat.png"
    assert codec.decoded_name("cat.JPG.vqf", image) == "cat.JPG"
    assert codec.decoded_name("cat.vqf", image) == "cat.png"


def test_folder_with_a_bad_file_writes_the_others(model, tmp_path):
    src = tmp_path / "in"
    write_png(src / "a.png", 16, 16, seed=1)
    write_png(src / "sub" / "b.png", 9, 13, seed=2)
    (src / "sub" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (src / "sub" / "cut.png").write_bytes(write_png(tmp_path / "whole.png", 16, 16).read_bytes()[:60])
    old = tmp_path / "out" / "sub" / "bad.png.vqf"
    old.parent.mkdir(parents=True)
    old.write_bytes(b"previous output")
    seen = []
    result = codec.encode_path(model, src, tmp_path / "out", on_error=lambda p, e: seen.append((p.name, str(e))))
    assert sorted(r.src.name for r in result.done) == ["a.png", "b.png"]
    assert [p.name for p, _ in result.failed] == ["bad.png", "cut.png"] == [n for n, _ in seen]
    assert all(str(src / "sub") in msg for _, msg in seen)
    assert old.read_bytes() == b"previous output"  # a failed file leaves its old output alone
    assert not (tmp_path / "out" / "sub" / "cut.png.vqf").exists()
    assert read_tokens(tmp_path / "out" / "sub" / "b.png.vqf").meta["size"] == [13, 9]
    dec = codec.decode_path(model, tmp_path / "out", tmp_path / "dec")
    assert [p.name for p, _ in dec.failed] == ["bad.png.vqf"]  # the old non-token file
    assert pixels(tmp_path / "dec" / "sub" / "b.png").shape == (13, 9, 3)
    assert (tmp_path / "dec" / "a.png").is_file()


def test_single_file_errors_raise(model, tmp_path):
    with pytest.raises(InputFileError, match="does not exist"):
        codec.encode_path(model, tmp_path / "nope.png", tmp_path / "x.vqf")
    (tmp_path / "text.png").write_text("hello")
    with pytest.raises(InputFileError, match="text.png: cannot identify image"):
        codec.encode_path(model, tmp_path / "text.png", tmp_path / "x.vqf")
    write_png(tmp_path / "a.png", 8, 8)
    with pytest.raises(VqfuseError, match=r"should end with \.vqf"):
        codec.encode_path(model, tmp_path / "a.png", tmp_path / "a-tokens.png")
    assert not (tmp_path / "a-tokens.png").exists()


def test_token_file_from_another_model(model, tmp_path):
    other = make_model(tmp_path / "other", seed=1)
    assert other.model_id != model.model_id
    write_png(tmp_path / "a.png", 8, 8)
    codec.encode_path(other, tmp_path / "a.png", tmp_path / "a.vqf")
    with pytest.raises(ModelMismatchError, match=f"a.vqf was encoded by model {other.model_id}, not {model.model_id}"):
        codec.decode_path(model, tmp_path / "a.vqf", tmp_path / "a.png")


def test_truncated_and_garbage_token_files(model, tmp_path):
    write_png(tmp_path / "a.png", 8, 8)
    codec.encode_path(model, tmp_path / "a.png", tmp_path / "a.vqf")
    data = (tmp_path / "a.vqf").read_bytes()
    (tmp_path / "cut.vqf").write_bytes(data[: len(data) - 7])
    with pytest.raises(TokenFileError, match="cut.vqf: truncated"):
        codec.decode_path(model, tmp_path / "cut.vqf", tmp_path / "out.png")
    (tmp_path / "junk.vqf").write_bytes(b"hello world, not tokens")
    with pytest.raises(TokenFileError, match="junk.vqf: not a vqfuse token file"):
        codec.decode_path(model, tmp_path / "junk.vqf", tmp_path / "out.png")
    assert not (tmp_path / "out.png").exists()
    # a well-formed file whose size does not fit its tokens
    tf = read_tokens(tmp_path / "a.vqf")
    tf.meta["size"] = [100, 8]
    write_tokens(tmp_path / "badsize.vqf", tf)
    with pytest.raises(TokenFileError, match="meta 'size'"):
        codec.decode_path(model, tmp_path / "badsize.vqf", tmp_path / "out.png")


def test_residual_n_q(tmp_path):
    model = make_model(tmp_path / "rvq", quantizer={"kind": "rvq", "codebook_size": 16, "n_quantizers": 3})
    write_png(tmp_path / "a.png", 10, 6)
    r = codec.encode_path(model, tmp_path / "a.png", tmp_path / "a.vqf", n_q=2)
    tf = read_tokens(tmp_path / "a.vqf")
    assert tf.shape == (2, 3, 5) and tf.codebook_size == [16, 16]
    assert r.tokens == 30 and r.bits == pytest.approx(30 * 4)
    codec.decode_path(model, tmp_path / "a.vqf", tmp_path / "a2.png")
    codec.reconstruct_path(model, tmp_path / "a.png", tmp_path / "a3.png", n_q=2)
    np.testing.assert_array_equal(pixels(tmp_path / "a2.png"), pixels(tmp_path / "a3.png"))
    with pytest.raises(ConfigError, match="1..3"):
        codec.encode_path(model, tmp_path / "a.png", tmp_path / "b.vqf", n_q=4)
    plain = make_model(tmp_path / "vq")
    with pytest.raises(ConfigError, match="residual"):
        codec.encode_path(plain, tmp_path / "a.png", tmp_path / "b.vqf", n_q=1)


def test_model_info(model_dir):
    info = model_info(model_dir)
    assert info["codebook_size"] == 32 and info["downsample_factors"] == [2, 2]
    assert info["tokens_per_item"] == 64 and info["bits_per_item"] == pytest.approx(320)
    assert info["rate"] == "1.25 bits/pixel"


def test_summary_line():
    r = BatchResult(done=[FileResult(Path("a"), Path("b"), 64, 320.0, 256)], seconds=0.5)
    assert (
        codec.summary_line("encoded", r, get_modality("image")) == "encoded 1 file: 64 tokens, 1.25 bits/pixel, 0.50 s"
    )


def test_evaluate_model_writes_json_and_markdown(model_dir, tmp_path, monkeypatch):
    monkeypatch.setattr("vqfuse.evaluate.evaluate_tokenizer", fake_evaluate_tokenizer)
    report, paths = evaluate_model(model_dir, out=tmp_path / "ev", batch_size=8)
    assert [p.name for p in paths] == ["evaluation.json", "evaluation.md"] and all(p.is_file() for p in paths)
    assert report["dataset"] == "digits" and report["split"] == "test" and "psnr" in report["metrics"]
    md = paths[1].read_text()
    assert "| psnr |" in md and "| codebook.usage | 0.5 |" in md
    with pytest.raises(VqfuseError, match="unknown dataset 'nope'"):
        evaluate_model(model_dir, data="nope", out=tmp_path / "ev")


# ----------------------------------------------------------------------------------------------
# Audio: bitrate choice, windows, summary


@pytest.fixture(scope="module")
def audio_model() -> Tokenizer:
    return make_audio_model()


def test_audio_rates_and_n_q_for_kbps(audio_model):
    m = audio_model
    assert m.frame_rate == 50
    assert m.rates() == pytest.approx([0.5, 1.0, 1.5, 2.0])
    assert m.rate(3) == pytest.approx(1.5) and m.rate() == pytest.approx(2.0)
    assert [m.n_q_for_rate(k) for k in (0.5, 0.99, 1.0, 1.2, 2.0, 6.0)] == [1, 1, 2, 2, 4, 4]
    with pytest.raises(
        ConfigError,
        match=r"^--kbps 0.3 is below the lowest bitrate of this model; "
        r"allowed: 0.5, 1, 1.5, 2 kbit/s$",
    ):
        codec.resolve_n_q(m, kbps=0.3)
    assert codec.resolve_n_q(m, kbps=1.6) == 3 and codec.resolve_n_q(m, n_q=2) == 2 and codec.resolve_n_q(m) is None
    with pytest.raises(ConfigError, match="not both"):
        codec.resolve_n_q(m, n_q=2, kbps=1)
    single = make_audio_model(quantizer={"kind": "vq", "codebook_size": 256})  # 8 bits x 50 frames/s
    assert single.rates() == [0.4]
    assert codec.resolve_n_q(single, kbps=6) is None
    with pytest.raises(ConfigError, match=r"allowed: 0.4 kbit/s"):
        codec.resolve_n_q(single, kbps=0.2)


def test_kbps_on_an_image_model_is_an_error(model, tmp_path):
    write_png(tmp_path / "a.png", 8, 8)
    with pytest.raises(
        ConfigError, match="--kbps needs a model rated in kbit/s; this image model is rated in bits/pixel"
    ):
        codec.encode_path(model, tmp_path / "a.png", tmp_path / "a.vqf", kbps=1)
    assert not (tmp_path / "a.vqf").exists()


def test_audio_file_at_a_chosen_bitrate(audio_model, tmp_path):
    src = write_wav(tmp_path / "in.wav", 1.37)  # 21920 samples -> 69 frames (padded to 22080)
    r = codec.encode_file(audio_model, src, tmp_path / "in.wav.vqf", kbps=1.2)
    tf = read_tokens(tmp_path / "in.wav.vqf")
    assert tf.shape == (2, 69) and tf.codebook_size == [1024, 1024]
    assert tf.meta == {"size": [21920], "source": "in.wav", "sample_rate": SR}
    assert (
        r.tokens == 138
        and r.bits == pytest.approx(1380)
        and r.extent == pytest.approx(21920 / SR)
        and r.duration == r.extent
    )
    d = codec.decode_file(audio_model, tmp_path / "in.wav.vqf", tmp_path / "dec.wav")
    codec.reconstruct_file(audio_model, src, tmp_path / "rec.wav", kbps=1.2)
    assert d.duration == pytest.approx(21920 / SR) and wav_samples(tmp_path / "dec.wav").shape == (21920,)
    np.testing.assert_array_equal(wav_samples(tmp_path / "dec.wav"), wav_samples(tmp_path / "rec.wav"))
    # one stage fewer when asked by n_q; all stages by default
    codec.encode_file(audio_model, src, tmp_path / "n1.vqf", n_q=1)
    codec.encode_file(audio_model, src, tmp_path / "all.vqf")
    assert read_tokens(tmp_path / "n1.vqf").shape == (1, 69) and read_tokens(tmp_path / "all.vqf").shape == (4, 69)
    with pytest.raises(ConfigError, match="allowed: 0.5, 1, 1.5, 2 kbit/s"):
        codec.reconstruct_path(audio_model, src, tmp_path / "low.wav", kbps=0.25)
    assert not (tmp_path / "low.wav").exists()


def test_long_audio_is_encoded_in_windows(audio_model, tmp_path, monkeypatch):
    """Past CHUNK_SECONDS + 2 * MARGIN_SECONDS the encoder and decoder see bounded windows only."""
    monkeypatch.setattr("vqfuse.tokenizer.CHUNK_SECONDS", 0.5)
    monkeypatch.setattr("vqfuse.tokenizer.MARGIN_SECONDS", 0.2)
    monkeypatch.setattr("vqfuse.tokenizer.CROSSFADE_SECONDS", 0.06)
    plan = audio_model.chunking()
    assert (plan.chunk, plan.margin, plan.crossfade) == (25, 10, 3)
    seen: dict[str, list[int]] = {"encoder": [], "decoder": []}
    for name in seen:
        net = getattr(audio_model, name)
        monkeypatch.setattr(net, "forward", lambda x, _f=net.forward, _n=name: seen[_n].append(x.shape[-1]) or _f(x))
    x = tone(3.3)  # 165 frames -> 7 windows of <= 25 + 2 * 10 frames
    y = audio_model.decode_item(audio_model.encode_item(x))
    assert y.shape == x.shape
    assert len(seen["encoder"]) == 7 and max(seen["encoder"]) <= 45 * 320
    assert len(seen["decoder"]) == 7 and max(seen["decoder"]) <= 45
    seen["encoder"].clear()
    audio_model.encode_item(tone(0.9))  # 45 frames: one go
    assert seen["encoder"] == [45 * 320]
    assert audio_model.chunking(False) is None
    assert make_model(tmp_path / "img").chunking() is None  # images: whole file


def test_summary_line_audio():
    audio = get_modality("audio")
    r = BatchResult(done=[FileResult(Path("a"), Path("b"), 1000, 10000.0, 10.0, 10.0)], seconds=0.5)
    assert codec.summary_line("encoded", r, audio) == (
        "encoded 1 file: 1000 tokens, 1 kbit/s, 100 tokens/s, 10 s of audio in 0.50 s (20x real time)"
    )
    r.failed.append((Path("c"), "bad"))
    assert codec.summary_line("decoded", r, audio).endswith("(20x real time); 1 failed")
    empty = BatchResult(seconds=0.1)
    assert codec.summary_line("encoded", empty, audio) == "encoded 0 files: 0 tokens, n/a, 0.10 s"


def test_model_info_audio(audio_model):
    info = model_info(audio_model)
    assert info["frames_per_second"] == 50 and info["rates"] == pytest.approx([0.5, 1, 1.5, 2])
    assert info["rate_unit"] == "kbit/s"
    assert info["rate"] == "2 kbit/s" and info["tokens_per_item"] == 200
