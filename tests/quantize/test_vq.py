import pytest
import torch
from safetensors.torch import load_file, save_file

from vqfuse.quantize import EMAConfig, RestartConfig, VectorQuantizer
from vqfuse.quantize.estimators import rotation_trick

SHAPES = {1: (2, 8, 12), 2: (2, 8, 4, 5), 3: (2, 8, 2, 3, 4)}


@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize(
    "options", [{}, {"learning": "gradient"}, {"estimator": "rotation"}, {"normalize": True, "codebook_dim": 4}]
)
def test_shapes_and_round_trip(dims, options):
    torch.manual_seed(0)
    vq = VectorQuantizer(8, 32, **options)
    x = torch.randn(*SHAPES[dims])
    out = vq(x)
    assert out.quantized.shape == x.shape
    assert out.indices.shape == (x.shape[0], *x.shape[2:]) and out.indices.dtype == torch.int64
    assert out.loss.dim() == 0 and {"perplexity", "usage"} <= set(out.metrics)
    vq.eval()
    idx = vq.encode(x)
    eval_out = vq(x)
    assert torch.equal(idx, eval_out.indices)
    torch.testing.assert_close(vq.decode(idx), eval_out.quantized)


def test_straight_through_passes_identity_gradient_to_encoder():
    torch.manual_seed(0)
    vq = VectorQuantizer(8, 16, beta=0.0)
    x = torch.randn(2, 8, 10, requires_grad=True)
    weights = torch.randn_like(x)
    (vq(x).quantized * weights).sum().backward()
    torch.testing.assert_close(x.grad, weights)


def test_rotation_trick_outputs_codes_and_passes_gradient():
    torch.manual_seed(0)
    z = torch.randn(64, 8, requires_grad=True)
    q = torch.randn(64, 8)
    out = rotation_trick(z, q)
    torch.testing.assert_close(out, q, atol=1e-5, rtol=1e-5)
    weights = torch.randn(64, 8)
    (out * weights).sum().backward()
    assert z.grad.abs().sum() > 0
    assert not torch.allclose(z.grad, weights)  # not the plain straight-through gradient
    # The gradient is a rotation (scaled by |q|/|z|) of the output gradient: its norm scales accordingly.
    ratio = q.norm(dim=-1) / z.detach().norm(dim=-1)
    torch.testing.assert_close(z.grad.norm(dim=-1), weights.norm(dim=-1) * ratio, atol=1e-4, rtol=1e-4)


def test_rotation_estimator_reaches_encoder_in_quantizer():
    torch.manual_seed(0)
    vq = VectorQuantizer(8, 16, estimator="rotation")
    x = torch.randn(2, 8, 10, requires_grad=True)
    vq(x).quantized.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_commitment_beta_on_encoder_term_and_codebook_term_unweighted():
    torch.manual_seed(0)
    beta = 0.1
    vq = VectorQuantizer(4, 8, beta=beta, learning="gradient", init="random", restart=None)
    x = torch.randn(3, 4, 5, requires_grad=True)
    out = vq(x)
    out.loss.backward()
    z = x.detach().movedim(1, -1).reshape(-1, 4)
    q = vq.codebook.detach()[out.indices.reshape(-1)]
    n = z.numel()
    expected_x_grad = (2 * beta * (z - q) / n).reshape(3, 5, 4).movedim(-1, 1)
    torch.testing.assert_close(x.grad, expected_x_grad)
    expected_code_grad = torch.zeros(8, 4).index_add_(0, out.indices.reshape(-1), 2 * (q - z) / n)
    torch.testing.assert_close(vq.codebook.grad, expected_code_grad)


def test_ema_moves_assigned_codes_by_the_ema_rule():
    decay, eps = 0.9, 1e-5
    vq = VectorQuantizer(2, 2, init="random", restart=None, ema=EMAConfig(decay=decay, eps=eps))
    with torch.no_grad():
        vq._set_codes(torch.ones(2, dtype=torch.bool), torch.tensor([[0.0, 0.0], [10.0, 10.0]]), torch.ones(2))
    batch = torch.tensor([[1.0, 1.0], [1.0, -1.0], [2.0, 0.0], [9.0, 9.0]])  # 3 vectors to code 0, 1 to code 1
    vq(batch.t().unsqueeze(0))  # (1, 2, 4)
    size = torch.tensor([decay + (1 - decay) * 3, decay + (1 - decay) * 1])
    sums = torch.stack(
        [
            decay * torch.zeros(2) + (1 - decay) * batch[:3].sum(0),
            decay * torch.tensor([10.0, 10.0]) + (1 - decay) * batch[3],
        ]
    )
    total = size.sum()
    smoothed = (size + eps) / (total + 2 * eps) * total
    torch.testing.assert_close(vq.codebook, sums / smoothed[:, None])
    # and the codes moved toward the means of their vectors
    assert (
        vq.codebook[0].norm() > 0
        and (vq.codebook[1] - torch.tensor([9.0, 9.0])).norm()
        < (torch.tensor([10.0, 10.0]) - torch.tensor([9.0, 9.0])).norm()
    )


def test_ema_converges_to_cluster_means():
    torch.manual_seed(0)
    centres = torch.tensor([[3.0, 0.0], [-3.0, 0.0], [0.0, 3.0]])
    vq = VectorQuantizer(2, 3, init="random", restart=None)
    with torch.no_grad():
        vq._set_codes(torch.ones(3, dtype=torch.bool), centres + 0.5, torch.ones(3))
    for _ in range(300):
        pts = centres[torch.randint(0, 3, (256,))] + 0.1 * torch.randn(256, 2)
        vq(pts.t().unsqueeze(0))
    torch.testing.assert_close(vq.codebook, centres, atol=0.05, rtol=0)


def test_dead_code_is_revived():
    torch.manual_seed(0)
    vq = VectorQuantizer(2, 4, init="random", restart=RestartConfig(threshold=0.5), ema=EMAConfig(decay=0.5))
    codes = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [100.0, 100.0]])  # the last is never chosen
    with torch.no_grad():
        vq._set_codes(torch.ones(4, dtype=torch.bool), codes, torch.ones(4))
    data = torch.randn(512, 2)
    for _ in range(10):
        vq(data.t().unsqueeze(0))
    assert vq.codebook[3].norm() < 10  # moved onto the data
    vq.eval()
    assert (vq.encode(data.t().unsqueeze(0)) == 3).any()


def test_without_restart_dead_code_stays_dead():
    torch.manual_seed(0)
    vq = VectorQuantizer(2, 4, init="random", restart=None, ema=EMAConfig(decay=0.5))
    codes = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [100.0, 100.0]])
    with torch.no_grad():
        vq._set_codes(torch.ones(4, dtype=torch.bool), codes, torch.ones(4))
    data = torch.randn(512, 2)
    for _ in range(10):
        vq(data.t().unsqueeze(0))
    assert vq.codebook[3].norm() > 50


def test_kmeans_init_runs_once_on_first_training_batch():
    torch.manual_seed(0)
    vq = VectorQuantizer(4, 8)
    assert not bool(vq.initialized)
    x = torch.randn(4, 4, 64) * 7 + 3
    vq(x)
    assert bool(vq.initialized)
    flat = x.movedim(1, -1).reshape(-1, 4)
    # k-means codes live where the data is, not at the N(0, 1) random init
    assert (vq.codebook.mean(0) - flat.mean(0)).abs().max() < 2.0
    before = vq.codebook.clone()
    vq.eval()
    vq(x)
    assert torch.equal(before, vq.codebook)  # eval changes nothing


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_input_is_quantized_in_fp32(dtype):
    torch.manual_seed(0)
    codebook = torch.randn(512, 16)
    vq = VectorQuantizer(16, 512, init="random", restart=None)
    with torch.no_grad():
        vq._set_codes(torch.ones(512, dtype=torch.bool), codebook, torch.ones(512))
    vq.eval()
    x = torch.randn(1, 16, 2048).to(dtype)  # what a half-precision encoder hands over
    flat = x.float()[0].t()
    reference = torch.cdist(flat.double(), codebook.double()).argmin(-1)
    with torch.autocast("cpu", dtype=dtype):
        out = vq(x)
        idx = vq.encode(x)
    assert torch.equal(out.indices[0], reference)
    assert torch.equal(idx[0], reference)
    assert out.quantized.dtype == dtype
    # The test can fail: distances computed in half precision pick other codes.
    xh, ch = flat.to(dtype), codebook.to(dtype)
    low = ((ch * ch).sum(-1) - 2 * xh @ ch.t()).argmin(-1)
    assert not torch.equal(low, reference)


def test_state_dict_round_trip_through_safetensors(tmp_path):
    torch.manual_seed(0)
    vq = VectorQuantizer(8, 16, codebook_dim=4)
    for _ in range(3):
        vq(torch.randn(2, 8, 32))
    save_file(vq.state_dict(), tmp_path / "vq.safetensors")
    fresh = VectorQuantizer(8, 16, codebook_dim=4)
    fresh.load_state_dict(load_file(tmp_path / "vq.safetensors"))
    assert bool(fresh.initialized)
    x = torch.randn(2, 8, 10)
    vq.eval(), fresh.eval()
    assert torch.equal(vq.encode(x), fresh.encode(x))
    torch.testing.assert_close(vq.decode(vq.encode(x)), fresh.decode(fresh.encode(x)))


def test_factorised_lookup_uses_low_dimensional_codes():
    vq = VectorQuantizer(64, 32, codebook_dim=8)
    assert vq.codebook.shape == (32, 8)
    out = vq(torch.randn(2, 64, 10, requires_grad=True))
    out.quantized.sum().backward()
    assert vq.project_in.weight.grad is not None and vq.project_out.weight.grad is not None


def test_normalized_codes_have_unit_norm():
    vq = VectorQuantizer(8, 16, normalize=True)
    for _ in range(3):
        vq(torch.randn(2, 8, 32))
    torch.testing.assert_close(vq.codebook.norm(dim=-1), torch.ones(16))


def test_invalid_options_raise():
    with pytest.raises(ValueError):
        VectorQuantizer(8, 16, learning="adam")
    with pytest.raises(ValueError):
        VectorQuantizer(8, 16)(torch.randn(8, 16))  # not channel-first with spatial dims


@pytest.mark.parametrize("alpha", [1.0, 0.2])
def test_revived_code_lies_between_assigned_code_and_vector(alpha):
    torch.manual_seed(0)
    vq = VectorQuantizer(2, 2, init="random", restart=RestartConfig(threshold=0.5, toward_vector=alpha))
    with torch.no_grad():
        vq._set_codes(
            torch.ones(2, dtype=torch.bool), torch.tensor([[0.0, 0.0], [50.0, 50.0]]), torch.tensor([1.0, 0.0])
        )
    data = torch.tensor([[3.0, 4.0]] * 8)  # every vector sits at distance 5 from code 0
    vq(data.t().unsqueeze(0))
    # code 1 was dead; it is revived at alpha of the way from code 0 (the vector's code, after this
    # step's EMA update) to the vector
    assert vq.codebook[0].norm() < 1.0
    expected = vq.codebook[0].lerp(torch.tensor([3.0, 4.0]), alpha)
    torch.testing.assert_close(vq.codebook[1], expected)
