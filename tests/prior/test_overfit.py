"""Tiny priors memorise a tiny deterministic paired dataset (target = condition permuted) on CPU."""

import pytest
import torch

from vqfuse.prior import (
    PriorConfig,
    PriorTransformer,
    SequenceLayout,
    generate,
    maskgit_decode,
    maskgit_loss,
    next_token_loss,
)

pytestmark = pytest.mark.usefixtures("single_thread")

LAYOUT = SequenceLayout([("cond", 10, 6), ("target", 12, 6)])
PERM = torch.tensor([3, 0, 5, 1, 4, 2])


def dataset(n: int = 12) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    cond = torch.randint(0, 10, (n, 6), generator=g)
    return {"cond": cond, "target": cond[:, PERM] + 1}  # a permutation and a shift of the codes


def train(model: PriorTransformer, loss_fn, steps: int) -> float:
    torch.manual_seed(0)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    model.train()
    for _ in range(steps):
        loss = loss_fn()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    model.eval()
    return loss.item()


def test_autoregressive_prior_memorises_pairs():
    torch.manual_seed(0)
    model = PriorTransformer(PriorConfig.for_layout(LAYOUT, dim=48, depth=2, heads=4))
    data = dataset()
    ids = LAYOUT.pack(data).ids
    final = train(model, lambda: next_token_loss(model, LAYOUT, ids, segments=["target"]), steps=150)
    assert final < 0.05
    out = generate(model, LAYOUT, {"cond": data["cond"]}, "target", temperature=0)
    assert torch.equal(out, data["target"])
    # an untrained prior does not
    torch.manual_seed(1)
    fresh = PriorTransformer(PriorConfig.for_layout(LAYOUT, dim=48, depth=2, heads=4))
    assert not torch.equal(generate(fresh, LAYOUT, {"cond": data["cond"]}, "target", temperature=0), data["target"])


def test_maskgit_prior_memorises_pairs_and_infills():
    torch.manual_seed(0)
    model = PriorTransformer(PriorConfig.for_layout(LAYOUT, dim=48, depth=2, heads=4, causal=False))
    data = dataset()
    ids = LAYOUT.pack(data).ids
    g = torch.Generator().manual_seed(0)
    final = train(model, lambda: maskgit_loss(model, LAYOUT, ids, "target", generator=g), steps=200)
    assert final < 0.1
    out = maskgit_decode(model, LAYOUT, {"cond": data["cond"]}, "target", steps=4, temperature=0, noise=0.0)
    assert torch.equal(out, data["target"])
    # infilling: known tokens (even wrong ones) are kept, the rest decoded
    known = torch.zeros(12, 6, dtype=torch.bool)
    known[:, ::2] = True
    wrong = (data["target"] + 5) % 12
    out = maskgit_decode(
        model,
        LAYOUT,
        {"cond": data["cond"]},
        "target",
        known=wrong,
        known_mask=known,
        steps=3,
        temperature=0.5,
        generator=g,
    )
    assert torch.equal(out[known], wrong[known])
    assert int(out.min()) >= 0 and int(out.max()) < 12
