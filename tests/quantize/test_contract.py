"""The contract every quantizer keeps, run over each kind the builder knows, in 1D, 2D and 3D."""

from __future__ import annotations

import pytest
import torch

from vqfuse.quantize.builder import KINDS, build_quantizer

SPECS = {
    "vq": {"kind": "vq", "codebook_size": 16},
    "rvq": {"kind": "rvq", "codebook_size": 16, "n_quantizers": 3},
    "fsq": {"kind": "fsq", "levels": [4, 4]},
    "lfq": {"kind": "lfq", "codebook_size": 16},
}
SHAPES = {1: (2, 8, 12), 2: (2, 8, 4, 5), 3: (2, 8, 3, 4, 2)}


def test_every_kind_has_a_contract_entry():
    assert set(SPECS) == set(KINDS)


@pytest.mark.parametrize("dims", sorted(SHAPES))
@pytest.mark.parametrize("kind", sorted(SPECS))
def test_shapes_index_round_trip_and_no_autograd(kind, dims):
    torch.manual_seed(0)
    q = build_quantizer(SPECS[kind], 8)
    x = torch.randn(SHAPES[dims], requires_grad=True)
    out = q(x)
    assert out.quantized.shape == x.shape and out.loss.dim() == 0
    out.quantized.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()  # gradients reach the encoder side
    q.eval()
    idx = q.encode(x)
    assert not idx.requires_grad and idx.dtype == torch.long
    stages = q.to_stages(idx)
    assert stages.shape == (2, q.n_stages, *SHAPES[dims][2:]) and torch.equal(q.from_stages(stages), idx)
    assert len(q.stage_sizes()) == q.n_stages and int(stages.max()) < q.codebook_size
    torch.testing.assert_close(q.decode(idx), q(x).quantized.detach(), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kind", sorted(SPECS))
def test_state_dict_round_trip(kind):
    torch.manual_seed(0)
    q = build_quantizer(SPECS[kind], 8)
    x = torch.randn(SHAPES[2])
    q(x)  # a training step changes codebooks / statistics
    twin = build_quantizer(SPECS[kind], 8)
    twin.load_state_dict(q.state_dict())
    q.eval(), twin.eval()
    assert torch.equal(twin.encode(x), q.encode(x))
