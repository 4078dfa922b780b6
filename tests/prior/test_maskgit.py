import math

import pytest
import torch
import torch.nn.functional as F

from tests.helpers.priors import LAYOUT, tiny, tokens
from vqfuse.prior import PriorTransformer, cosine_schedule, maskgit_decode, maskgit_loss, random_mask

pytestmark = pytest.mark.usefixtures("single_thread")


def test_cosine_schedule_and_random_mask():
    torch.testing.assert_close(
        cosine_schedule(torch.tensor([0.0, 0.5, 1.0])), torch.tensor([1.0, math.sqrt(0.5), 0.0]), atol=1e-6, rtol=0
    )
    mask = random_mask(2000, 100, torch.Generator().manual_seed(0))
    counts = mask.sum(1)
    assert int(counts.min()) >= 1 and int(counts.max()) <= 100
    assert abs(mask.float().mean().item() - 2 / math.pi) < 0.02  # E[cos(pi r / 2)], r ~ U[0, 1)


def test_maskgit_loss_is_cross_entropy_on_masked_target_tokens():
    model, data = tiny(), tokens()
    order = ("audio", "image")
    packed = LAYOUT.pack(data, order)
    loss = maskgit_loss(model, LAYOUT, packed.ids, "image", order, torch.Generator().manual_seed(5))
    # the same draw, by hand
    masked = random_mask(4, 9, torch.Generator().manual_seed(5))
    sl = LAYOUT.slices(order)["image"]
    inp = packed.ids.clone()
    inp[:, sl] = inp[:, sl].masked_fill(masked, LAYOUT.mask_id)
    logits = model(inp, packed.modalities, packed.positions)[:, sl, :16]
    torch.testing.assert_close(loss, F.cross_entropy(logits[masked], data["image"][masked]))
    assert abs(loss.item() - math.log(16)) < 1.0
    loss.backward()
    assert model.token_emb.weight.grad[LAYOUT.mask_id].abs().sum() > 0
    with pytest.raises(ValueError, match="bidirectional"):
        maskgit_loss(tiny(causal=True), LAYOUT, packed.ids, "image", order)


class CountCalls:
    def __init__(self, model: PriorTransformer) -> None:
        self.n = 0
        model.register_forward_hook(self)

    def __call__(self, *args) -> None:
        self.n += 1


@pytest.mark.parametrize("steps", [1, 5, 40])
@pytest.mark.parametrize("cfg_scale", [None, 2.0])
def test_decode_fills_only_unknown_positions(steps, cfg_scale):
    model, data = tiny(), tokens()
    calls = CountCalls(model)
    known_mask = torch.rand(4, 12, generator=torch.Generator().manual_seed(1)) < 0.4
    known_mask[0] = False  # one row fully unknown
    known_mask[1] = True  # one row fully known
    known = data["audio"]
    g = torch.Generator().manual_seed(0)
    out = maskgit_decode(
        model,
        LAYOUT,
        {"image": data["image"]},
        "audio",
        known=known,
        known_mask=known_mask,
        steps=steps,
        cfg_scale=cfg_scale,
        top_k=8,
        generator=g,
    )
    assert out.shape == (4, 12)
    assert torch.equal(out[known_mask], known[known_mask])
    assert int(out.min()) >= 0 and int(out.max()) < 24  # no MASK or other specials left
    assert calls.n == min(steps, 12)  # one forward per step; at most one step per unknown token
    # unknown positions were sampled, not copied from `known`
    assert not torch.equal(out[~known_mask], known[~known_mask])


def test_decode_without_unknowns_runs_no_step_and_cfg_scale_one_is_conditional():
    model, data = tiny(), tokens()
    calls = CountCalls(model)
    out = maskgit_decode(
        model,
        LAYOUT,
        {"image": data["image"]},
        "audio",
        known=data["audio"],
        known_mask=torch.ones(4, 12, dtype=torch.bool),
    )
    assert torch.equal(out, data["audio"]) and calls.n == 0
    kw = dict(steps=6, temperature=0, noise=0.0)
    plain = maskgit_decode(model, LAYOUT, {"image": data["image"]}, "audio", **kw)
    guided = maskgit_decode(model, LAYOUT, {"image": data["image"]}, "audio", cfg_scale=1.0, **kw)
    assert torch.equal(plain, guided)
    # the other direction, no condition at all (batch size given)
    alone = maskgit_decode(model, LAYOUT, {}, "image", batch_size=3, steps=3)
    assert alone.shape == (3, 9) and int(alone.max()) < 16


def test_decode_rejects_bad_requests():
    data = tokens()
    with pytest.raises(ValueError, match="bidirectional"):
        maskgit_decode(tiny(causal=True), LAYOUT, {"image": data["image"]}, "audio")
    with pytest.raises(ValueError, match="known"):
        maskgit_decode(
            tiny(), LAYOUT, {"image": data["image"]}, "audio", known_mask=torch.ones(4, 12, dtype=torch.bool)
        )
    with pytest.raises(ValueError, match="batch size"):
        maskgit_decode(tiny(), LAYOUT, {}, "audio")
