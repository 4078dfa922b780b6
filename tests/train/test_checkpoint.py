import random
import re
from pathlib import Path

import numpy as np
import pytest
import torch

import vqfuse.train
from vqfuse.io.weights import load_weights
from vqfuse.train import checkpoint as ckpt


def _adam_with_state():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 1))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.5, 0.9))
    for _ in range(2):
        model(torch.randn(5, 3)).pow(2).mean().backward()
        opt.step()
    return model, opt


def test_optimizer_state_round_trip():
    model, opt = _adam_with_state()
    tensors, meta = ckpt.flatten_optimizer_state(opt.state_dict(), "generator")
    assert all(k.startswith("generator.state.") for k in tensors)
    restored = ckpt.unflatten_optimizer_state(tensors, meta, "generator")
    fresh = torch.optim.AdamW(model.parameters(), lr=1.0)
    fresh.load_state_dict(restored)
    a, b = opt.state_dict(), fresh.state_dict()
    assert a["param_groups"] == b["param_groups"]
    assert a["param_groups"][0]["betas"] == (0.5, 0.9)
    for i in a["state"]:
        for name in a["state"][i]:
            torch.testing.assert_close(a["state"][i][name], b["state"][i][name], rtol=0, atol=0)


def test_rng_state_round_trip_and_packing():
    json_part, tensors = ckpt.rng_state()
    expected = (random.random(), np.random.rand(), torch.rand(3))
    packed = ckpt.pack_rng(json_part, tensors)
    json2, tensors2 = ckpt.unpack_rng(packed, tensors)
    assert json2 == json_part
    torch.testing.assert_close(tensors2["torch_cpu"], tensors["torch_cpu"], rtol=0, atol=0)
    random.random(), np.random.rand(), torch.rand(3)  # move every stream on
    ckpt.set_rng_state(json2, tensors2)
    got = (random.random(), np.random.rand(), torch.rand(3))
    assert got[0] == expected[0] and got[1] == expected[1] and torch.equal(got[2], expected[2])


def _save(root, value: float, step: int):
    weights = {"model.safetensors": {"w": torch.full((2,), value)}}
    return ckpt.save_checkpoint(root, weights, {"optim.json": {"x": 1}}, {"step": step})


def test_save_swaps_in_a_complete_checkpoint(tmp_path):
    root = tmp_path / "checkpoints"
    _save(root, 1.0, 1)
    path = _save(root, 2.0, 2)
    assert path == root / "last"
    assert sorted(p.name for p in root.iterdir()) == ["last"]  # prev and tmp removed
    weights, docs, state = ckpt.load_checkpoint(path)
    assert state["step"] == 2 and docs["optim.json"] == {"x": 1}
    assert torch.equal(weights["model.safetensors"]["w"], torch.full((2,), 2.0))


def test_failed_write_leaves_previous_checkpoint_intact(tmp_path, monkeypatch):
    root = tmp_path / "checkpoints"
    _save(root, 1.0, 1)
    calls = {"n": 0}
    real = ckpt.save_weights

    def failing(tensors, path, metadata=None):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("disk full")
        real(tensors, path, metadata=metadata)

    monkeypatch.setattr(ckpt, "save_weights", failing)
    weights = {"model.safetensors": {"w": torch.full((2,), 9.0)}, "optim.safetensors": {"m": torch.zeros(1)}}
    with pytest.raises(OSError, match="disk full"):
        ckpt.save_checkpoint(root, weights, {}, {"step": 9})
    assert sorted(p.name for p in root.iterdir()) == ["last"]  # no tmp-* left behind
    found = ckpt.latest_checkpoint(root)
    weights, _, state = ckpt.load_checkpoint(found)
    assert state["step"] == 1
    assert torch.equal(weights["model.safetensors"]["w"], torch.full((2,), 1.0))


def test_interrupted_swap_falls_back_to_prev_and_cleans_stale_tmp(tmp_path):
    root = tmp_path / "checkpoints"
    _save(root, 1.0, 1)
    (root / "last").rename(root / "prev")  # killed between the two renames
    (root / "tmp-stale").mkdir()
    (root / "tmp-stale" / "model.safetensors").write_bytes(b"half")
    assert ckpt.latest_checkpoint(root) == root / "prev"
    _save(root, 2.0, 2)
    assert sorted(p.name for p in root.iterdir()) == ["last"]
    assert ckpt.latest_checkpoint(root) == root / "last"


def test_incomplete_directory_is_not_a_checkpoint(tmp_path):
    root = tmp_path / "checkpoints"
    path = _save(root, 1.0, 1)
    (path / "model.safetensors").unlink()
    assert ckpt.latest_checkpoint(root) is None
    with pytest.raises(Exception):
        ckpt.load_checkpoint(path)


def test_no_pickle_in_training_code():
    package = Path(vqfuse.train.__file__).parent
    pattern = re.compile(r"torch\.save|torch\.load|pickle|allow_pickle")
    offenders = [
        f"{p.name}:{i}"
        for p in sorted(package.glob("*.py"))
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert offenders == []


def test_checkpoint_files_are_safetensors_and_json(tmp_path):
    path = _save(tmp_path / "c", 1.0, 1)
    assert sorted(p.name for p in path.iterdir()) == ["model.safetensors", "optim.json", "state.json"]
    assert load_weights(path / "model.safetensors")["w"].shape == (2,)


def test_rng_rows_of_a_stacked_tensor_restore_safely():
    # checkpoints stack per-process RNG states as (world, n); restoring row 1 must not read row 0
    json_part, tensors = ckpt.rng_state()
    expected = torch.rand(4)
    stacked = torch.stack([torch.zeros_like(tensors["torch_cpu"]), tensors["torch_cpu"]])
    ckpt.set_rng_state(json_part, {"torch_cpu": stacked[1]})
    assert torch.equal(torch.rand(4), expected)
