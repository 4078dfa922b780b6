import json
import logging

import pytest
import torch
import yaml
from torch.utils.data import DataLoader

import vqfuse.train.objectives as objectives
from tests.helpers.configs import GAN_LOSS, tiny_config
from tests.helpers.data import TinyImages
from vqfuse.errors import ConfigError, VqfuseError
from vqfuse.evaluate import evaluate_tokenizer
from vqfuse.io.weights import load_json, load_weights
from vqfuse.modalities import get_modality
from vqfuse.tokenizer import Tokenizer
from vqfuse.train import train
from vqfuse.train.batches import InfiniteBatches, ResumableSampler
from vqfuse.train.checkpoint import latest_checkpoint
from vqfuse.train.config import RunConfig
from vqfuse.train.trainer import Trainer

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def vqvae_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "vqvae"
    return train(tiny_config(out), progress=False)


def test_vqvae_run_writes_everything(vqvae_run):
    run = vqvae_run
    for name in (
        "config.yaml",
        "metrics.json",
        "metrics.md",
        "model/config.json",
        "model/model.safetensors",
        "samples/step-000002.png",
        "samples/step-000004.png",
        "samples/final.png",
        "logs/train.jsonl",
    ):
        assert (run / name).is_file(), name
    assert list((run / "logs").glob("events.out.tfevents.*"))
    assert latest_checkpoint(run / "checkpoints") == run / "checkpoints" / "last"
    assert RunConfig.from_dict(yaml.safe_load((run / "config.yaml").read_text())).train.steps == 4

    metrics = load_json(run / "metrics.json")
    assert metrics["steps"] == 4 and metrics["skipped_steps"] == 0 and metrics["train_items_per_s"] > 0
    held = metrics["heldout"]
    assert held["n_items"] == 12
    assert held["bits_per_pixel"] == pytest.approx(8 * 8 * 5 / (16 * 16))  # 64 tokens of log2(32) bits
    assert 0 < held["codebook_usage"] <= 1 and 1 <= held["perplexity"] <= 32
    assert {"psnr", "ssim", "l1", "mse"} <= set(held)
    assert "codebook_usage" in (run / "metrics.md").read_text()

    model = Tokenizer.from_pretrained(run)
    x = TinyImages(16, "test").images[:2]
    assert model.encode(x).shape == (2, 8, 8)
    assert model.decode(model.encode(x)).shape == x.shape
    # the final model holds the EMA weights
    ema = load_weights(run / "checkpoints" / "last" / "ema.safetensors")
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, ema[k], rtol=0, atol=0)
    lines = [json.loads(line) for line in (run / "logs" / "train.jsonl").read_text().splitlines()]
    assert [l["step"] for l in lines if l["kind"] == "train"] == [2, 4]
    assert {"rec", "quant", "perplexity", "usage", "lr", "items_per_s"} <= set(lines[0])


def test_vqgan_trains_discriminator_on_schedule(tmp_path):
    logs = {}
    config = tiny_config(tmp_path / "gan", loss=GAN_LOSS, train={"sample_every": 0})
    trainer = Trainer(config, progress=False, on_step=lambda step, values: logs.__setitem__(step, values))
    disc_before = {k: v.clone() for k, v in trainer.disc.state_dict().items()}
    trainer.run()
    assert sorted(logs) == [0, 1, 2, 3]
    assert all(torch.isfinite(torch.tensor(list(v.values()))).all() for v in logs.values())
    assert logs[0]["d"] == 0 and logs[0]["gan"] == 0  # nothing adversarial yet
    assert logs[1]["d"] > 0 and logs[1]["gan"] == 0  # disc_start = 1: D trains, G does not see it
    assert logs[2]["gan"] != 0 and logs[3]["gan"] != 0  # gan_start = 2
    assert logs[2]["gan_weight"] > 0 and logs[2]["fm"] > 0
    assert any(not torch.equal(v, disc_before[k]) for k, v in trainer.disc.state_dict().items())
    assert (tmp_path / "gan" / "checkpoints" / "last" / "disc.safetensors").is_file()


class Killed(Exception):
    pass


def test_resume_is_exact(tmp_path):
    sections = dict(loss=GAN_LOSS, train={"steps": 6, "checkpoint_every": 3, "sample_every": 0, "log_every": 1})
    straight = train(tiny_config(tmp_path / "straight", **sections), progress=False)

    def kill(step, _):
        if step == 3:  # after the checkpoint at 3 steps and one more (lost) update
            raise Killed

    with pytest.raises(Killed):
        Trainer(tiny_config(tmp_path / "resumed", **sections), progress=False, on_step=kill).run()
    state = load_json(tmp_path / "resumed" / "checkpoints" / "last" / "state.json")
    assert state["step"] == 3 and state["data"] == {"epoch": 0, "position": 24}
    resumed = train(tiny_config(tmp_path / "resumed", **sections), resume=True, progress=False)

    for name in ("model.safetensors", "ema.safetensors", "disc.safetensors", "optim.safetensors"):
        a = load_weights(straight / "checkpoints" / "last" / name)
        b = load_weights(resumed / "checkpoints" / "last" / name)
        assert a.keys() == b.keys(), name
        for k in a:
            torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6, msg=f"{name}:{k}")
    s1 = load_json(straight / "checkpoints" / "last" / "state.json")
    s2 = load_json(resumed / "checkpoints" / "last" / "state.json")
    assert s1["step"] == s2["step"] == 6 and s1["data"] == s2["data"] == {"epoch": 1, "position": 8}
    assert s1["rng"] == s2["rng"]
    lines = (resumed / "logs" / "train.jsonl").read_text().splitlines()
    assert [json.loads(l)["step"] for l in lines if json.loads(l)["kind"] == "train"] == [1, 2, 3, 4, 5, 6]


def test_resume_refuses_mismatches(vqvae_run, tmp_path):
    with pytest.raises(ConfigError, match="already holds a run"):
        Trainer(tiny_config(vqvae_run), progress=False)
    with pytest.raises(ConfigError, match="nothing to resume"):
        Trainer(tiny_config(tmp_path / "empty"), resume=True, progress=False)
    wider = tiny_config(vqvae_run)
    wider.model["autoencoder"]["channels"] = 16
    with pytest.raises(ConfigError, match="model config changed.*autoencoder"):
        Trainer(wider, resume=True, progress=False)


def test_too_small_dataset_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="fewer than one batch"):
        Trainer(tiny_config(tmp_path / "r", train={"batch_size": 64}), progress=False)


def _nan_once(monkeypatch, calls):
    real = objectives.reconstruction_loss

    def patched(x_hat, x, kind="l1"):
        calls["n"] += 1
        loss = real(x_hat, x, kind)
        return loss * float("nan") if calls["n"] in calls["nan_at"] else loss

    monkeypatch.setattr(objectives, "reconstruction_loss", patched)


def _snapshot(trainer):
    state = {f"g.{k}": v.clone() for k, v in trainer.model.state_dict().items()}
    state.update({f"d.{k}": v.clone() for k, v in trainer.disc.state_dict().items()})
    state.update({f"e.{k}": v.clone() for k, v in trainer.ema.state_dict().items()})
    for i, s in trainer.opt_g.state_dict()["state"].items():
        state.update({f"o.{i}.{k}": v.clone() for k, v in s.items()})
    return state


def test_nan_loss_skips_the_update(tmp_path, monkeypatch, caplog):
    calls = {"n": 0, "nan_at": {2}}
    _nan_once(monkeypatch, calls)
    loss = {**GAN_LOSS, "disc_start": 0, "gan_start": 0}
    trainer = Trainer(tiny_config(tmp_path / "nan", loss=loss), progress=False)
    trainer.train_step(next(trainer.batches))  # a good step (initialises the codebook)
    before = _snapshot(trainer)
    with caplog.at_level(logging.WARNING, logger="vqfuse.train"):
        logs = trainer.train_step(next(trainer.batches))
    assert logs["skipped"] == 1 and trainer.skipped == 1 and trainer.consecutive == 1
    assert "step 1" in caplog.text and "skipped" in caplog.text
    after = _snapshot(trainer)
    assert before.keys() == after.keys()
    for k in before:
        assert torch.equal(before[k], after[k]), k  # weights, codebook buffers, EMA, optimizer untouched
    logs = trainer.train_step(next(trainer.batches))
    assert logs["skipped"] == 0 and trainer.consecutive == 0 and trainer.step == 3
    assert any(not torch.equal(before[k], v) for k, v in _snapshot(trainer).items())


def test_divergence_stops_after_saving_the_last_good_state(tmp_path, monkeypatch):
    calls = {"n": 0, "nan_at": set(range(1, 1000))}
    _nan_once(monkeypatch, calls)
    trainer = Trainer(tiny_config(tmp_path / "div", train={"steps": 40, "sample_every": 0}), progress=False)
    initial = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    with pytest.raises(VqfuseError, match="diverged"):
        trainer.run()
    last = tmp_path / "div" / "checkpoints" / "last"
    state = load_json(last / "state.json")
    assert state["step"] == 21 and state["skipped_steps"] == 21
    saved = load_weights(last / "model.safetensors")
    for k, v in initial.items():
        assert torch.equal(saved[k], v), k


def test_evaluate_tokenizer_on_a_split(vqvae_run):
    model = Tokenizer.from_pretrained(vqvae_run)
    image = get_modality("image")
    result = evaluate_tokenizer(model, image, TinyImages(16, "test"), batch_size=5, meta=model.config.meta)
    assert result["n_items"] == 12 and result["tokens_per_item"] == 64
    full = evaluate_tokenizer(model, image, TinyImages(16, "test"), batch_size=12, meta=model.config.meta)
    for k in ("psnr", "mse", "codebook_usage", "perplexity"):
        assert result[k] == pytest.approx(full[k], rel=1e-5), k  # independent of batching


def test_data_order_is_resumable():
    sampler = ResumableSampler(10, seed=3)
    order = sampler.permutation(0).tolist()
    assert sorted(order) == list(range(10)) and order != sampler.permutation(1).tolist()
    sampler.offset = 4
    assert list(sampler) == order[4:]

    def batches(state=None, n=5):
        s = ResumableSampler(10, seed=3)
        g = torch.Generator()
        it = InfiniteBatches(DataLoader(list(range(10)), batch_size=3, sampler=s, drop_last=True, generator=g), s, g, 3)
        if state:
            it.load_state(state)
        got = [next(it).tolist() for _ in range(n)]
        return got, it.state()

    straight, _ = batches(n=6)
    first, state = batches(n=2)
    rest, _ = batches(state, n=4)
    assert first + rest == straight
    assert state == {"epoch": 0, "position": 6}


def test_bf16_run_after_fp32_runs_in_the_same_process(tmp_path):
    logs = {}
    config = tiny_config(
        tmp_path / "bf16",
        loss={**GAN_LOSS, "disc_start": 0, "gan_start": 0},
        train={"steps": 2, "mixed_precision": "bf16", "sample_every": 0},
    )
    trainer = Trainer(config, progress=False, on_step=lambda s, v: logs.__setitem__(s, v))
    assert trainer.accelerator.mixed_precision == "bf16"
    trainer.run()
    assert logs[1]["skipped"] == 0 and all(map(torch.isfinite, map(torch.tensor, logs[1].values())))


def test_max_minutes_stops_early_and_still_saves(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="vqfuse.train"):
        run = train(tiny_config(tmp_path / "boxed", train={"steps": 50, "max_minutes": 0.0}), progress=False)
    metrics = load_json(run / "metrics.json")
    assert metrics["steps"] == 1  # the budget is checked after each step
    assert (run / "model" / "model.safetensors").is_file() and "max_minutes" in caplog.text
    assert latest_checkpoint(run / "checkpoints") is not None
