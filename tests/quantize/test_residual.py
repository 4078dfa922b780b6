import pytest
import torch

from vqfuse.quantize import ResidualVQ


def _trained_rvq(n_q=4, dropout=0.0):
    torch.manual_seed(0)
    rvq = ResidualVQ(8, 32, n_quantizers=n_q, quantizer_dropout=dropout)
    data = torch.randn(4, 8, 256)
    for _ in range(20):
        rvq(data, n_q=n_q)  # every stage trains
    return rvq, data


def test_residual_error_falls_with_each_stage():
    rvq, data = _trained_rvq()
    rvq.eval()
    errors = [(rvq.decode(rvq.encode(data, n_q=n)) - data).pow(2).mean().item() for n in range(1, 5)]
    assert all(later < earlier for earlier, later in zip(errors, errors[1:])), errors


@pytest.mark.parametrize("dims", [1, 2, 3])
def test_shapes_and_eval_consistency(dims):
    shape = {1: (2, 8, 12), 2: (2, 8, 4, 5), 3: (2, 8, 2, 3, 4)}[dims]
    rvq = ResidualVQ(8, 16, n_quantizers=3)
    x = torch.randn(*shape)
    out = rvq(x)
    assert out.indices.shape == (2, 3, *shape[2:])
    assert out.quantized.shape == x.shape
    assert {"perplexity/0", "usage/2", "perplexity", "usage"} <= set(out.metrics)
    rvq.eval()
    idx = rvq.encode(x)
    torch.testing.assert_close(rvq.decode(idx), rvq(x).quantized)
    assert torch.equal(idx, rvq(x).indices)


def test_n_q_is_honoured_in_training_and_eval_mode():
    rvq = ResidualVQ(8, 16, n_quantizers=4, quantizer_dropout=1.0)
    x = torch.randn(2, 8, 10)
    rvq.train()
    assert rvq(x, n_q=2).indices.shape[1] == 2
    assert rvq.encode(x, n_q=3).shape[1] == 3
    rvq.eval()
    assert rvq(x, n_q=1).indices.shape[1] == 1
    with pytest.raises(ValueError):
        rvq(x, n_q=5)


def test_quantizer_dropout_varies_stage_count_in_training_only():
    torch.manual_seed(0)
    rvq = ResidualVQ(8, 16, n_quantizers=4, quantizer_dropout=1.0)
    x = torch.randn(2, 8, 10)
    counts = {rvq(x).indices.shape[1] for _ in range(30)}
    assert len(counts) > 1 and counts <= {1, 2, 3, 4}
    rvq.eval()
    assert {rvq(x).indices.shape[1] for _ in range(5)} == {4}


def test_gradient_reaches_input_through_all_stages():
    rvq = ResidualVQ(8, 16, n_quantizers=3)
    x = torch.randn(2, 8, 10, requires_grad=True)
    out = rvq(x)
    (out.quantized.sum() + out.loss).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_decode_of_prefix_equals_sum_of_stages():
    rvq, data = _trained_rvq(n_q=3)
    rvq.eval()
    idx = rvq.encode(data)
    full = rvq.decode(idx)
    parts = sum(stage.decode(idx[:, i]) for i, stage in enumerate(rvq.stages))
    torch.testing.assert_close(full, parts)
