"""LocalLPIPS: random tiny weights round trip through safetensors; never downloads."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from vqfuse.losses.perceptual import LocalLPIPS, LPIPSNetwork

TINY = (4, 8, 8, 16, 16)


def _random_tiny(seed: int = 0) -> LPIPSNetwork:
    torch.manual_seed(seed)
    net = LPIPSNetwork(widths=TINY)
    with torch.no_grad():
        for k in range(5):  # lpips heads are non-negative
            getattr(net, f"lin{k}").model[1].weight.uniform_(0.0, 1.0)
    return net


def test_missing_file_raises_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.safetensors"
    with pytest.raises(FileNotFoundError, match="supplied locally") as info:
        LocalLPIPS(str(missing))
    assert str(missing) in str(info.value)


def test_round_trip_tiny_random_weights(tmp_path: Path) -> None:
    net = _random_tiny()
    path = tmp_path / "lpips_tiny.safetensors"
    state = net.state_dict()
    assert "features.0.weight" in state and "features.28.weight" in state and "lin4.model.1.weight" in state
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))

    loaded = LocalLPIPS(path)
    assert loaded.widths == TINY
    for k, v in state.items():
        assert torch.equal(loaded.state_dict()[k], v), k
    assert not any(p.requires_grad for p in loaded.parameters())
    loaded.train()
    assert not loaded.training

    torch.manual_seed(1)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    y = (x + 0.3 * torch.randn_like(x)).clamp(-1, 1)
    assert torch.allclose(loaded(y, x), net(y, x))
    assert loaded(x, x).item() == pytest.approx(0.0, abs=1e-7)
    per = loaded(y, x, reduction="none")
    assert per.shape == (2,) and (per > 0).all()

    # gradient flows to the reconstruction (used as a training loss)
    y_req = y.clone().requires_grad_(True)
    loaded(y_req, x).backward()
    assert y_req.grad is not None and y_req.grad.abs().sum() > 0

    # video: frames folded into the batch, per-sample mean over frames
    v = torch.rand(2, 3, 3, 16, 16) * 2 - 1
    v_hat = v.flip(-1)
    frames = torch.stack([loaded(v_hat[:, :, t], v[:, :, t], reduction="none") for t in range(3)], 1).mean(1)
    assert torch.allclose(loaded(v_hat, v, reduction="none"), frames, atol=1e-6)


def test_lpips_package_key_names_accepted(tmp_path: Path) -> None:
    net = _random_tiny()
    slice_of = {0: 1, 2: 1, 5: 2, 7: 2, 10: 3, 12: 3, 14: 3, 17: 4, 19: 4, 21: 4, 24: 5, 26: 5, 28: 5}
    state = {}
    for k, v in net.state_dict().items():
        if k.startswith("features."):
            _, idx, name = k.split(".")
            k = f"net.slice{slice_of[int(idx)]}.{idx}.{name}"
        state[k] = v.contiguous()
    path = tmp_path / "lpips_named.safetensors"
    save_file(state, str(path))
    loaded = LocalLPIPS(path)
    x, y = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16)
    assert torch.allclose(loaded(x, y), net(x, y))


def test_incomplete_or_invalid_file_rejected(tmp_path: Path) -> None:
    state = {k: v.contiguous() for k, v in _random_tiny().state_dict().items() if k != "lin2.model.1.weight"}
    path = tmp_path / "partial.safetensors"
    save_file(state, str(path))
    with pytest.raises(ValueError, match="lin2"):
        LocalLPIPS(path)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="safetensors"):
        LocalLPIPS(bad)
