"""A fusion run's `train.max_minutes` bounds the whole run (each stage gets its share, passed down as its own
`train.max_minutes`), `prior.max_items` cuts the encoded splits, and end-of-run samples stay cheap after a
short training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from tests.helpers.configs import fusion_config, reuse
from vqfuse.fusion.budget import ItemSubset, RunBudget, cap_minutes, fit_items, sample_plan, subset
from vqfuse.fusion.pipeline import train_fusion
from vqfuse.fusion.tokens import TokenSet
from vqfuse.train.config import RunConfig, load_config

pytestmark = pytest.mark.usefixtures("single_thread")


def _config(out: Path, tokenizers: dict, minutes: float | None = None, **prior) -> RunConfig:
    config = fusion_config(out, tokenizers, **prior)
    config.train.max_minutes = minutes
    return config


def _trained(presets: dict[str, Path]) -> dict:
    return {"image": {"preset": str(presets["image"])}, "audio": {"preset": str(presets["audio"]), "n_q": 2}}


def _budget_of(run: Path) -> float | None:
    return yaml.safe_load((run / "config.yaml").read_text())["train"]["max_minutes"]


def test_run_budget_gives_each_stage_a_share_of_what_is_left():
    now = [0.0]
    budget = RunBudget(4.0, clock=lambda: now[0])
    assert budget.share(4) == 1.0 and budget.remaining() == 4.0
    now[0] = 90.0  # the first stage took 1.5 min
    assert budget.remaining() == 2.5 and budget.share(2) == 1.25
    now[0] = 600.0
    assert budget.remaining() == 0.0 and RunBudget(None).share(3) is None
    assert cap_minutes(None, 2.0) == 2.0 and cap_minutes(1.0, 2.0) == 1.0 and cap_minutes(3.0, None) == 3.0


def test_max_minutes_is_passed_down_to_every_stage(presets, tmp_path):
    """Two tokenizers to train, the encoding and the prior: the first tokenizer gets at most a quarter of the
    5 minutes, the next a third of what is left, the prior the rest; each records its own budget."""
    run = train_fusion(_config(tmp_path / "run", _trained(presets), 5.0), progress=False, log_fn=lambda s: None)
    image, audio, prior = (_budget_of(run / "tokenizers/image"), _budget_of(run / "tokenizers/audio"), _budget_of(run))
    assert 5.0 / 4 - 0.5 < image <= 5.0 / 4
    assert 5.0 / 3 - 0.5 < audio <= 5.0 / 3  # a third of what the image stage left
    assert 4.0 < prior < 5.0
    assert json.loads((run / "metrics.json").read_text())["steps"] == 6  # a budget it never reached


def test_a_spent_budget_stops_every_stage_after_one_step_and_still_saves(presets, tmp_path):
    messages: list[str] = []
    run = train_fusion(_config(tmp_path / "run", _trained(presets), 0.0), progress=False, log_fn=messages.append)
    for name in ("image", "audio"):
        assert json.loads((run / f"tokenizers/{name}/metrics.json").read_text())["steps"] == 1, name
        assert (run / f"tokenizers/{name}/model/model.safetensors").is_file()
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["steps"] == 1 and (run / "prior/model.safetensors").is_file()
    train, test = (TokenSet.load(run / f"tokens/{s}.safetensors") for s in ("train", "test"))
    assert len(train) == 8 and len(test) == 8  # one batch each: the floors of a spent encoding budget
    assert train.info["items"] == 8 and train.info["of"] == 80
    assert any("8 of 80 items" in m for m in messages)


def test_prior_max_items_cuts_both_splits_evenly_and_a_larger_cut_re_encodes(run_dir, tmp_path):
    out = tmp_path / "run"
    messages: list[str] = []
    train_fusion(_config(out, reuse(run_dir), max_items=12), progress=False, log_fn=messages.append)
    train, test = (TokenSet.load(out / f"tokens/{s}.safetensors") for s in ("train", "test"))
    full = TokenSet.load(run_dir / "tokens/train.safetensors")
    assert len(train) == 12 and len(test) == 12 and test.info["of"] == 24
    assert train.codes["image"][-1].equal(full.codes["image"][-1])  # spread over the split: the last item is in
    assert train.codes["image"][0].equal(full.codes["image"][0])
    messages.clear()
    train_fusion(
        _config(out, reuse(run_dir), steps=7, max_items=12), resume=True, progress=False, log_fn=messages.append
    )
    assert sum("[tokens] reusing" in m for m in messages) == 2
    out2 = tmp_path / "run2"
    (out2 / "tokens").mkdir(parents=True)
    for split in ("train", "test"):
        (out2 / f"tokens/{split}.safetensors").write_bytes((out / f"tokens/{split}.safetensors").read_bytes())
    messages.clear()
    train_fusion(_config(out2, reuse(run_dir), max_items=16), progress=False, log_fn=messages.append)
    assert not any("[tokens] reusing" in m for m in messages)  # 12 stored items are fewer than the 16 wanted
    assert len(TokenSet.load(out2 / "tokens/train.safetensors")) == 16


def test_item_subset_keeps_shared_items_and_labels(run_dir):
    from tests.helpers.data import TinyPairs

    data = TinyPairs("test")
    part = ItemSubset(data, [0, 1, 5])
    assert part.item_rows == [data.pairs[i] for i in (0, 1, 5)] and part.labels == [data.labels[i] for i in (0, 1, 5)]
    assert part.item("image", data.pairs[5][0]).equal(data.image(data.pairs[5][0])) and len(part) == 3
    plain = subset([{"image": torch.zeros(1), "label": i} for i in range(10)], 4)  # items without rows
    assert [plain[i]["label"] for i in range(len(plain))] == [0, 3, 6, 9]


def test_fit_items_measures_a_probe_and_keeps_the_floor():
    assert fit_items(1000, 8, None, lambda k: 1.0) == 1000  # no budget: everything
    assert fit_items(1000, 8, 100.0, lambda k: k * 0.25) == 336  # 64 items in 16 s: 84 s more hold 336
    assert fit_items(1000, 8, 0.0, lambda k: k * 0.01) == 8


def test_samples_cost_at_most_a_quarter_of_the_training():
    sampling = {"steps": 12, "joint_steps": 24, "cfg_scale": 2.0}
    lengths = {"image": 64, "audio": 100}
    assert sample_plan(8, 8, sampling, lengths, "maskgit", 3 * 1500 * 32) == (8, 8)  # fusion-av-digits, full run
    assert sample_plan(8, 8, sampling, lengths, "maskgit", 3 * 40 * 32) == (8, 1)  # steps=40: no reranking
    assert sample_plan(8, 8, sampling, lengths, "maskgit", 3 * 10 * 32) == (3, 1)  # steps=10: and 3 items
    assert sample_plan(8, 8, sampling, lengths, "maskgit", 3 * 1 * 32) == (1, 1)  # steps=1: one item
    assert sample_plan(0, 8, sampling, lengths, "maskgit", 0) == (0, 8)
    video = {"steps": 12, "joint_steps": 24, "cfg_scale": None}
    assert sample_plan(8, 1, video, {"video": 384}, "maskgit", 3 * 3000 * 32) == (8, 1)


def test_the_shipped_presets_keep_their_full_run_settings():
    for name in ("fusion-av-digits", "fusion-av-moving-digits", "video-prior-moving-digits"):
        config = load_config(name)
        assert (config.prior or {}).get("max_items") is None and config.train.max_minutes is None, name
