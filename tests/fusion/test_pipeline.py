"""The fusion pipeline: paired tokens, the prior trainer (maskgit and causal), FusionModel and `vqfuse generate`.

Everything runs on tiny in-memory data (16 px images, 0.064 s clips at 8 kHz) with tiny tokenizers, so a
whole run takes a few seconds."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from tests.helpers.configs import fusion_config, reuse
from tests.helpers.data import RATE, TinyPairs
from tests.helpers.data import write_pair_inputs as write_inputs
from tests.helpers.files import run_cli as run
from vqfuse.errors import ConfigError, InputFileError, ModelMismatchError, VqfuseError
from vqfuse.fusion.model import FusionModel
from vqfuse.fusion.pipeline import train_fusion
from vqfuse.fusion.tokens import TokenSet, encode_set, flatten_codes, unflatten_codes
from vqfuse.fusion.trainer import FusionTrainer
from vqfuse.io.weights import load_weights
from vqfuse.tokenizer import Tokenizer
from vqfuse.train.config import RunConfig

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def causal_dir(run_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("fusion-causal") / "run"
    return train_fusion(
        fusion_config(out, reuse(run_dir), steps=4, kind="causal"), progress=False, log_fn=lambda s: None
    )


# ---- tokens -----------------------------------------------------------------------------------------


def test_flatten_codes_is_position_major_and_inverts():
    codes = torch.arange(2 * 3 * 5).reshape(2, 3, 5)  # (B, n_q, F)
    flat = flatten_codes(codes)
    assert flat.shape == (2, 15)
    assert flat[0, :3].tolist() == codes[0, :, 0].tolist()  # all stages of frame 0 first
    assert flat[1, 3:6].tolist() == codes[1, :, 1].tolist()
    assert torch.equal(unflatten_codes(flat, 3, (5,)), codes)
    grid = torch.arange(2 * 1 * 3 * 4).reshape(2, 1, 3, 4)  # one stage of a 3x4 grid: row-major
    assert torch.equal(flatten_codes(grid), grid.reshape(2, 12))
    assert torch.equal(unflatten_codes(flatten_codes(grid), 1, (3, 4)), grid)
    with pytest.raises(ValueError, match="not 4 stage"):
        unflatten_codes(flat, 4, (5,))


def test_token_set_round_trip_and_wrong_tokenizer(tmp_path):
    g = torch.Generator().manual_seed(0)
    tokens = TokenSet(
        {
            "image": torch.randint(0, 32, (5, 1, 4, 4), generator=g),
            "audio": torch.randint(0, 16, (5, 2, 8), generator=g),
        },
        torch.tensor([0, 1, 2, -1, 3]),
        model_ids={"image": "img1", "audio": "aud1"},
        vocabs={"image": 32, "audio": 16},
        info={"dataset": "x"},
    )
    path = tokens.save(tmp_path / "tokens.safetensors")
    back = TokenSet.load(path, {"image": "img1", "audio": "aud1"}, {"audio": 2})
    assert back.names == ("image", "audio") and all(torch.equal(back.codes[n], tokens.codes[n]) for n in back.names)
    assert torch.equal(back.labels, tokens.labels) and back.metadata() == tokens.metadata()
    assert back.layout().length() == 1 + 16 + 1 + 16 and back.flat("audio").shape == (5, 16)
    with pytest.raises(ModelMismatchError, match="image tokenizer img1, not by other"):
        TokenSet.load(path, {"image": "other"})
    with pytest.raises(ModelMismatchError, match="2 audio stage"):
        TokenSet.load(path, stages={"audio": 3})
    from vqfuse.io.weights import save_weights

    save_weights({"x": torch.zeros(1)}, tmp_path / "other.safetensors")
    with pytest.raises(InputFileError, match="not a vqfuse token set file"):
        TokenSet.load(tmp_path / "other.safetensors")
    with pytest.raises(ValueError, match=r"\[0, 16\)"):
        TokenSet({"audio": tokens.codes["audio"] + 16}, tokens.labels, vocabs={"audio": 16})


def test_encode_set_encodes_each_image_and_clip_once(run_dir):
    image_tok = Tokenizer.from_pretrained(run_dir / "tokenizers/image/model")
    audio_tok = Tokenizer.from_pretrained(run_dir / "tokenizers/audio/model")
    data = TinyPairs("test")
    calls = []
    image_tok.encoder.register_forward_pre_hook(lambda m, i: calls.append(i[0].shape[0]))
    tokens = encode_set(data, {"image": image_tok, "audio": audio_tok}, {"audio": 2}, batch_size=5, progress=False)
    assert sum(calls) == data.num_images  # each distinct image once, though every image is in two pairs
    assert tokens.codes["image"].shape == (len(data), 1, 8, 8) and tokens.codes["audio"].shape == (len(data), 2, 32)
    assert tokens.labels.tolist() == data.labels and tokens.model_ids["image"] == image_tok.model_id
    j, k = data.pairs[3]
    assert torch.equal(tokens.codes["image"][3, 0], image_tok.encode(data.image(j)[None])[0])
    assert torch.equal(tokens.codes["audio"][3], audio_tok.encode(data.audio(k)[None], n_q=2)[0])


# ---- training ---------------------------------------------------------------------------------------


def test_fusion_run_directory_is_a_self_contained_model(run_dir):
    for rel in (
        "tokenizers/image/model/model.safetensors",
        "tokenizers/audio/model/config.json",
        "prior/config.json",
        "prior/model.safetensors",
        "tokens/train.safetensors",
        "tokens/test.safetensors",
        "checkpoints/last/state.json",
        "metrics.json",
        "metrics.md",
        "config.yaml",
        "logs/train.jsonl",
        "samples/image-from-audio.png",
        "samples/audio-from-image-1-output.wav",
        "samples/audio-from-image.png",
        "samples/joint/sample-001.png",
        "samples/joint/sample-001.wav",
    ):
        assert (run_dir / rel).is_file(), rel
    desc = json.loads((run_dir / "fusion.json").read_text())
    assert (
        desc["kind"] == "maskgit" and desc["tokenizers"]["audio"]["stages"] == 2 and desc["order"] == ["image", "audio"]
    )
    assert desc["tokenizers"]["image"]["path"] == "tokenizers/image/model"  # relative to the run dir
    assert desc["layout"]["segments"] == [["image", 32, 64], ["audio", 16, 64]]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["steps"] == 6 and metrics["kind"] == "maskgit"
    assert set(metrics["heldout"]) == {
        f"{t}/{m}" for t in ("image|audio", "audio|image", "joint") for m in ("loss", "accuracy")
    }
    assert all(np.isfinite(v) for v in metrics["heldout"].values())
    assert "| image\\|audio |" in (run_dir / "metrics.md").read_text()
    logged = [json.loads(line) for line in (run_dir / "logs/train.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged if r["kind"] == "train"] == [2, 4, 6]
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["task"] == "fusion"


def test_rerun_without_resume_is_an_error_and_nothing_is_retrained(run_dir):
    cfg = RunConfig.from_dict({**yaml.safe_load((run_dir / "config.yaml").read_text()), "source": ""})
    with pytest.raises(ConfigError, match="already holds a fusion run.*--resume"):
        train_fusion(cfg, progress=False, log_fn=lambda s: None)


def test_resume_continues_exactly_from_the_checkpoint(run_dir, tmp_path):
    """3 steps, then resumed to 6, gives the same weights as 6 steps in one go (same tokens, same seed)."""
    whole = train_fusion(
        fusion_config(tmp_path / "whole", reuse(run_dir), steps=6), progress=False, log_fn=lambda s: None
    )
    messages: list[str] = []
    first = train_fusion(
        fusion_config(tmp_path / "split", reuse(run_dir), steps=3), progress=False, log_fn=messages.append
    )
    resumed = train_fusion(
        fusion_config(tmp_path / "split", reuse(run_dir), steps=6), resume=True, progress=False, log_fn=messages.append
    )
    assert first == resumed
    assert any("reusing" in m and "tokens" in m for m in messages) and any("resuming" in m for m in messages)
    a = load_weights(whole / "checkpoints/last/model.safetensors")
    b = load_weights(resumed / "checkpoints/last/model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert json.loads((resumed / "metrics.json").read_text())["steps"] == 6
    steps = [
        json.loads(line)["step"]
        for line in (resumed / "logs/train.jsonl").read_text().splitlines()
        if json.loads(line)["kind"] == "train"
    ]
    assert steps == [2, 3, 4, 6]  # the first session logs 2 and its last step 3; the second 4 and 6


def test_an_interrupted_tokenizer_resumes_and_a_finished_one_is_reused(presets, run_dir, tmp_path):
    """The image tokenizer stopped after 2 of 3 steps (checkpoint, no model/): the pipeline resumes it."""
    from vqfuse.train.config import load_config
    from vqfuse.train.trainer import Trainer

    out = tmp_path / "run"
    cfg = load_config(str(presets["image"]), ["steps=2", f"out={out / 'tokenizers/image'}"])
    Trainer(cfg, progress=False).run()
    shutil.rmtree(out / "tokenizers/image/model")
    messages: list[str] = []
    tokenizers = {"image": {"preset": str(presets["image"])}, **{"audio": reuse(run_dir)["audio"]}}
    train_fusion(fusion_config(out, tokenizers, steps=1), progress=False, log_fn=messages.append)
    assert any(m.startswith("[image tokenizer] resuming") for m in messages), messages
    assert json.loads((out / "tokenizers/image/metrics.json").read_text())["steps"] == 3
    assert any(m.startswith("[audio tokenizer] copying") for m in messages)
    messages.clear()
    train_fusion(fusion_config(out, tokenizers, steps=2), resume=True, progress=False, log_fn=messages.append)
    assert [m.split("]")[0] for m in messages] == [
        "[image tokenizer",
        "[audio tokenizer",
        "[tokens",
        "[tokens",
        "[prior",
    ]
    assert all("reusing" in m for m in messages[:4]) and "resuming" in messages[4]


def test_maskgit_loss_takes_several_targets():
    from vqfuse.prior import PriorConfig, PriorTransformer, SequenceLayout, masked_token_loss, maskgit_loss, random_mask

    layout = SequenceLayout([("image", 8, 4), ("audio", 5, 6)])
    model = PriorTransformer(PriorConfig.for_layout(layout, dim=16, depth=1, heads=2, causal=False))
    g = torch.Generator().manual_seed(0)
    ids = layout.pack(
        {"image": torch.randint(0, 8, (3, 4), generator=g), "audio": torch.randint(0, 5, (3, 6), generator=g)}
    ).ids
    loss = maskgit_loss(model, layout, ids, ("image", "audio"), generator=torch.Generator().manual_seed(1))
    g = torch.Generator().manual_seed(1)
    masks = {"image": random_mask(3, 4, g), "audio": random_mask(3, 6, g)}
    torch.testing.assert_close(loss, masked_token_loss(model, layout, ids, masks))


def test_bad_fusion_configs_are_one_line_errors(run_dir, tmp_path):
    with pytest.raises(ConfigError, match="prior.kind"):
        train_fusion(fusion_config(tmp_path / "a", reuse(run_dir), kind="gpt"), progress=False)
    with pytest.raises(ConfigError, match="exactly one of preset"):
        train_fusion(
            fusion_config(tmp_path / "b", {"image": {"preset": "x", "model": "y"}, "audio": {"model": "y"}}),
            progress=False,
        )
    bad_n_q = reuse(run_dir)
    bad_n_q["audio"]["n_q"] = 5
    with pytest.raises(ConfigError, match="n_q=5"):
        train_fusion(fusion_config(tmp_path / "c", bad_n_q), progress=False, log_fn=lambda s: None)


def test_nan_loss_steps_are_skipped(run_dir, tmp_path, monkeypatch):
    cfg = fusion_config(tmp_path / "nan", reuse(run_dir), steps=3)
    pairs = TokenSet.load(run_dir / "tokens/train.safetensors")
    trainer = FusionTrainer(
        cfg,
        pairs,
        TokenSet.load(run_dir / "tokens/test.safetensors"),
        {"image": run_dir / "tokenizers/image/model", "audio": run_dir / "tokenizers/audio/model"},
        progress=False,
    )
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    monkeypatch.setattr(trainer, "loss", lambda segments: trainer.model.token_emb.weight.sum() * float("nan"))
    logs = trainer.step_batch(next(trainer.batches))[0]
    assert logs["skipped"] == 1.0 and trainer.skipped == 1 and trainer.step == 1
    assert all(torch.equal(before[k], v) for k, v in trainer.model.state_dict().items())


# ---- generation -------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["maskgit", "causal"])
def test_fusion_model_generates_both_ways_and_jointly(kind, run_dir, causal_dir):
    model = FusionModel.from_run(run_dir if kind == "maskgit" else causal_dir)
    assert model.kind == kind and model.stages == {"image": 1, "audio": 2}
    assert model.item_shapes == {"image": (16, 16), "audio": (512,)} and model.token_shapes["audio"] == (32,)
    data = TinyPairs("test")
    images = torch.stack([data.image(j) for j in range(3)])
    clips = torch.stack([data.audio(k) for k in range(3)])
    g = torch.Generator().manual_seed(0)
    audio = model.generate(images, to="audio", generator=g, cfg_scale=2.0, temperature=1.0)
    assert audio.shape == (3, 1, 512) and audio.abs().max() <= 1
    picture = model.generate(clips[..., :300], to="image", generator=g, steps=2, cfg_scale=None)  # padded to 512
    assert picture.shape == (3, 3, 16, 16)
    joint = model.sample_joint(2, generator=g)
    imgs, auds = joint["image"], joint["audio"]
    assert imgs.shape == (2, 3, 16, 16) and auds.shape == (2, 1, 512)
    seeded = [
        model.generate_tokens(model.encode("image", images), "audio", generator=torch.Generator().manual_seed(1))
        for _ in range(2)
    ]
    assert torch.equal(*seeded) and seeded[0].shape == (3, 64) and int(seeded[0].max()) < 16


@pytest.mark.parametrize("kind", ["maskgit", "causal"])
def test_rerank_keeps_the_pair_with_the_highest_pointwise_mutual_information(kind, run_dir, causal_dir):
    from vqfuse.prior.scoring import segment_log_likelihood

    model = FusionModel.from_run(run_dir if kind == "maskgit" else causal_dir)
    data = TinyPairs("test")
    codes = model.encode("image", torch.stack([data.image(j) for j in range(3)]))  # (3, 36)
    n = 4
    # rerank N samples the N candidates as one batch, candidate-major: the same draws as rerank=1 on N copies
    candidates = model.generate_tokens(
        codes.repeat(n, 1), "audio", rerank=1, generator=torch.Generator().manual_seed(2)
    )
    best = model.generate_tokens(codes, "audio", rerank=n, generator=torch.Generator().manual_seed(2))

    def pmi(pairs):  # pointwise mutual information of each pair, summed over both modalities
        return sum(
            segment_log_likelihood(model.prior, model.layout, pairs, m)
            - segment_log_likelihood(model.prior, model.layout, pairs, m, unconditional=True)
            for m in ("image", "audio")
        )

    scores = pmi({"image": codes.repeat(n, 1), "audio": candidates}).view(n, 3)
    want = candidates.view(n, 3, -1)[scores.argmax(0), torch.arange(3)]
    assert torch.equal(best, want)
    joint = model.sample_joint_tokens(2, rerank=3, generator=torch.Generator().manual_seed(0))
    pool = model.sample_joint_tokens(6, rerank=1, generator=torch.Generator().manual_seed(0))
    total = pmi(pool).view(3, 2)
    pick = total.argmax(0)
    for m in ("image", "audio"):
        assert torch.equal(joint[m], pool[m].view(3, 2, -1)[pick, torch.arange(2)])
    with pytest.raises(VqfuseError, match="rerank must be >= 1"):
        model.generate_tokens(codes, "audio", rerank=0)
    assert model.sampling["rerank"] == 8  # the default, for runs saved before reranking existed too


def test_from_run_rejects_swapped_tokenizers_and_non_fusion_dirs(run_dir, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("checkpoints", "tokens", "logs"))
    Tokenizer.from_pretrained(copy / "tokenizers/image/model")  # loads
    other = Tokenizer.from_pretrained(copy / "tokenizers/image/model")
    with torch.no_grad():
        next(other.parameters()).add_(1.0)
    other.save_pretrained(copy / "tokenizers/image/model")
    with pytest.raises(ModelMismatchError, match="not the one the prior was trained on"):
        FusionModel.from_run(copy)
    with pytest.raises(InputFileError, match="not a fusion model"):
        FusionModel.from_run(run_dir / "tokenizers")


# ---- the command line -------------------------------------------------------------------------------


def test_cli_generate_files_folders_and_joint(run_dir, tmp_path, capsys):
    src = tmp_path / "in"
    write_inputs(src)
    code, out, err = run(capsys, "generate", run_dir, "--from", src / "zero.png", "--to", "audio", tmp_path / "z.wav")
    assert code == 0 and "generated 1 audio file from image" in out
    from vqfuse.data.audio import load_audio_file

    assert load_audio_file(tmp_path / "z.wav", RATE).shape == (1, 512)
    code, out, err = run(
        capsys,
        "generate",
        run_dir,
        "--from",
        src,
        "--to",
        "image",
        tmp_path / "imgs",
        "--steps",
        "2",
        "--cfg-scale",
        "1",
        "--seed",
        "3",
    )
    assert code == 0 and "generated 2 image files from audio" in out
    assert sorted(p.relative_to(tmp_path / "imgs").as_posix() for p in (tmp_path / "imgs").rglob("*")) == [
        "sub",
        "sub/one.png",
        "zero.png",
    ]
    code, out, err = run(capsys, "generate", run_dir, "--from", src, "--to", "audio", tmp_path / "auds")
    assert code == 0 and (tmp_path / "auds/sub/one.wav").is_file()
    code, out, err = run(
        capsys, "generate", run_dir, "--joint", "3", tmp_path / "joint", "--temperature", "0.5", "--rerank", "2"
    )
    assert code == 0 and "sampled 3 image + audio pairs" in out
    assert sorted(p.name for p in (tmp_path / "joint").iterdir()) == [
        f"sample-00{i}.{e}" for i in range(3) for e in ("png", "wav")
    ]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--to", "audio"], "error: give either --from IN --to MODALITY, or --joint N"),
        (["--from", "{src}/zero.png"], "error: --from needs --to MODALITY"),
        (
            ["--from", "{src}/zero.png", "--to", "video"],
            "error: --to must be one of this model's modalities: image, audio",
        ),
        (["--from", "{src}/zero.png", "--to", "image"], "error: {src}/zero.png: not an audio file"),
        (["--from", "{src}/zero.png", "--to", "audio", "--joint", "2"], "error: give either"),
        (["--from", "{src}/missing.png", "--to", "audio"], "error: {src}/missing.png: does not exist"),
    ],
)
def test_cli_generate_errors_are_one_line(args, message, run_dir, tmp_path, capsys):
    src = tmp_path / "in"
    write_inputs(src)
    args = [a.format(src=src) for a in args]
    code, out, err = run(capsys, "generate", run_dir, *args, tmp_path / "o.wav")
    assert code == 1 and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith(message.format(src=src))


def test_cli_generate_wrong_output_suffix_and_not_a_fusion_model(run_dir, tmp_path, capsys):
    src = tmp_path / "in"
    write_inputs(src)
    code, _, err = run(capsys, "generate", run_dir, "--from", src / "zero.wav", "--to", "image", tmp_path / "x.wav")
    assert code == 1 and "should end with one of .png" in err.strip().splitlines()[-1]
    code, _, err = run(capsys, "generate", run_dir / "tokenizers/image", "--joint", "1", tmp_path / "j")
    assert code == 1 and err.strip().splitlines()[-1].endswith(
        "not a fusion model (no fusion.json; train one with a task: fusion config)"
    )


def test_cli_train_dispatches_fusion_configs(run_dir, tmp_path, capsys, presets):
    cfg = tmp_path / "fusion.yaml"
    raw = fusion_config(tmp_path / "unused", reuse(run_dir), steps=2).to_dict()
    raw.pop("source"), raw.pop("out")
    cfg.write_text(yaml.safe_dump(raw))
    code, out, err = run(capsys, "train", cfg, f"out={tmp_path / 'cli-run'}", "steps=2", "--no-progress")
    assert code == 0 and out.strip() == str(tmp_path / "cli-run")
    assert json.loads((tmp_path / "cli-run/metrics.json").read_text())["steps"] == 2
    code, out, err = run(capsys, "train", cfg, f"out={tmp_path / 'cli-run'}", "--no-progress")
    assert code == 1 and "already holds a fusion run" in err.strip().splitlines()[-1]


def test_cli_info_describes_a_fusion_run(run_dir, capsys):
    code, out, err = run(capsys, "info", run_dir)
    assert code == 0, err
    lines = dict(line.split(":", 1) for line in out.strip().splitlines())
    assert lines["prior"].strip().startswith("maskgit, ")
    model = FusionModel.from_run(run_dir)
    image, audio = model.layout.segment("image"), model.layout.segment("audio")
    assert lines["sequence"].strip() == (
        f"image: {image.n_tokens} tokens of {image.vocab_size} codes | "
        f"audio: {audio.n_tokens} tokens of {audio.vocab_size} codes"
    )
    assert (
        f"x {model.stages['audio']} stages" in lines["audio"] and model.tokenizers["audio"].model_id in lines["audio"]
    )
