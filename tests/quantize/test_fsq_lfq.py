import math

import pytest
import torch
import torch.nn.functional as F

from vqfuse.quantize import FSQ, LFQ


@pytest.mark.parametrize("levels", [(8, 5, 5, 5), (4, 4, 4), (3, 2, 7)])
def test_fsq_index_code_bijection(levels):
    fsq = FSQ(levels)
    k = math.prod(levels)
    assert fsq.codebook_size == k
    idx = torch.arange(k)
    codes = fsq.indices_to_codes(idx)  # (K, d)
    assert codes.unique(dim=0).shape[0] == k
    assert torch.equal(fsq.codes_to_indices(codes), idx)
    # indices from quantizing real inputs agree with the codes the forward pass produced
    out = fsq(torch.randn(2, len(levels), 64) * 2)
    assert torch.equal(fsq.codes_to_indices(out.quantized.movedim(1, -1)), out.indices)


def test_fsq_grid_values_and_straight_through():
    fsq = FSQ((5, 4), dim=2)
    x = (torch.randn(3, 2, 50) * 3).requires_grad_()
    out = fsq(x)
    per_channel = [out.quantized[:, c].unique().numel() for c in range(2)]
    assert per_channel[0] <= 5 and per_channel[1] <= 4
    out.quantized.sum().backward()
    assert x.grad.abs().sum() > 0
    fsq.eval()
    torch.testing.assert_close(fsq.decode(fsq.encode(x)), out.quantized.detach())


@pytest.mark.parametrize("k", [2, 16, 1024])
def test_lfq_index_code_bijection(k):
    lfq = LFQ(k)
    idx = torch.arange(k)
    codes = lfq.indices_to_codes(idx)
    assert set(codes.unique().tolist()) <= {-1.0, 1.0}
    assert torch.equal(lfq.codes_to_indices(codes), idx)
    assert torch.equal(lfq.encode(lfq.decode(idx.reshape(1, k))), idx.reshape(1, k))


def test_lfq_per_sample_entropy_factorises_exactly():
    torch.manual_seed(0)
    lfq = LFQ(16, temperature=0.7)
    z = torch.randn(5, 4)
    all_codes = lfq.indices_to_codes(torch.arange(16))
    probs = F.softmax(2 * z @ all_codes.t() / 0.7, dim=-1)
    brute = -(probs * probs.log()).sum(-1).mean()
    p = torch.sigmoid(4 * z / 0.7)
    factorised = -(p * p.log() + (1 - p) * (1 - p).log()).sum(-1).mean()
    torch.testing.assert_close(factorised, brute, atol=1e-5, rtol=1e-5)


def test_lfq_entropy_penalty_spreads_codes():
    torch.manual_seed(0)
    lfq = LFQ(16, dim=8, entropy_weight=1.0)
    with torch.no_grad():  # a collapsed projection: every input lands on one code before training
        lfq.project_in.weight.mul_(0.1)
        lfq.project_in.bias.fill_(2.0)
    opt = torch.optim.Adam(lfq.parameters(), lr=1e-2)
    x = torch.randn(1, 8, 512)
    start = lfq(x).metrics["perplexity"].item()
    for _ in range(200):
        out = lfq(x)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    assert start == 1.0 and lfq(x).metrics["perplexity"].item() > 8  # (stays 1.0 with entropy_weight=0)


def test_lfq_rejects_non_power_of_two():
    with pytest.raises(ValueError):
        LFQ(1000)
    with pytest.raises(ValueError):
        FSQ((1, 4))
