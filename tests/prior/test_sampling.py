import math

import pytest
import torch

from vqfuse.prior import (
    PriorConfig,
    PriorTransformer,
    SequenceLayout,
    cfg_logits,
    drop_condition,
    generate,
    next_token_loss,
    null_condition,
    process_logits,
    sample_joint,
    sample_logits,
    top_k_filter,
    top_p_filter,
)

pytestmark = pytest.mark.usefixtures("single_thread")
INF = float("-inf")


def tiny(layout: SequenceLayout, seed: int = 0, **kw) -> PriorTransformer:
    torch.manual_seed(seed)
    cfg = dict(dim=32, depth=2, heads=4) | kw
    return PriorTransformer(PriorConfig.for_layout(layout, **cfg)).eval()


# ---- logits processing ----------------------------------------------------------------------------------


def test_top_k_filter():
    logits = torch.tensor([[1.0, 3.0, 2.0, 0.0], [0.0, -1.0, 5.0, 4.0]])
    out = top_k_filter(logits, 2)
    assert torch.equal(out, torch.tensor([[INF, 3.0, 2.0, INF], [INF, INF, 5.0, 4.0]]))
    assert torch.equal(top_k_filter(logits, 1).isfinite(), logits == logits.max(-1, keepdim=True).values)
    assert torch.equal(top_k_filter(logits, None), logits) and torch.equal(top_k_filter(logits, 4), logits)


def test_top_p_filter():
    probs = torch.tensor([0.15, 0.5, 0.05, 0.3])  # sorted: 0.5 (id 1), 0.3 (id 3), 0.15 (id 0), 0.05 (id 2)
    logits = probs.log()
    kept = lambda p: top_p_filter(logits, p).isfinite().nonzero().flatten().tolist()  # noqa: E731
    assert kept(0.4) == [1]  # the top id alone reaches 0.4
    assert kept(0.7) == [1, 3]  # 0.5 < 0.7 <= 0.8
    assert kept(0.85) == [0, 1, 3]  # 0.8 < 0.85 <= 0.95
    assert kept(0.99) == [0, 1, 2, 3]
    assert kept(1.0) == [0, 1, 2, 3]
    # kept logits are unchanged, so renormalised probabilities are proportional to the originals
    renorm = top_p_filter(logits, 0.7).softmax(-1)
    torch.testing.assert_close(renorm, torch.tensor([0.0, 0.5 / 0.8, 0.0, 0.3 / 0.8]))
    # rows are filtered independently
    batch = torch.stack([logits, logits.flip(0)])
    assert top_p_filter(batch, 0.7).isfinite().sum(-1).tolist() == [2, 2]
    assert torch.equal(top_p_filter(batch, 0.7)[1].isfinite(), top_p_filter(logits, 0.7).isfinite().flip(0))


def test_temperature_and_sampling():
    logits = torch.tensor([0.0, 2.0, 1.0, -1.0])
    torch.testing.assert_close(process_logits(logits, temperature=2.0), logits / 2)
    assert sample_logits(logits.expand(5, 4), temperature=0).tolist() == [1] * 5
    g = torch.Generator().manual_seed(0)
    draws = sample_logits(logits.expand(4000, 4), temperature=1.0, top_k=2, generator=g)
    assert set(draws.unique().tolist()) == {1, 2}
    expected = math.exp(2) / (math.exp(2) + math.exp(1))
    assert abs((draws == 1).float().mean().item() - expected) < 0.03
    draws = sample_logits(logits.expand(1000, 4), top_p=0.5, generator=g)
    assert draws.unique().tolist() == [1]


def test_cfg_logits_maths():
    cond, uncond = torch.randn(3, 7), torch.randn(3, 7)
    torch.testing.assert_close(cfg_logits(cond, uncond, 1.0), cond)
    torch.testing.assert_close(cfg_logits(cond, uncond, 0.0), uncond)
    torch.testing.assert_close(cfg_logits(cond, uncond, 3.0), 3 * cond - 2 * uncond)


# ---- condition dropout ----------------------------------------------------------------------------------

LAYOUT = SequenceLayout([("image", 16, 9), ("audio", 24, 8)])


def packed_batch(b: int = 6, seed: int = 0, order=None):
    g = torch.Generator().manual_seed(seed)
    tokens = {s.name: torch.randint(0, s.vocab_size, (b, s.n_tokens), generator=g) for s in LAYOUT.segments}
    return tokens, LAYOUT.pack(tokens, order)


def test_drop_condition():
    _, packed = packed_batch(64)
    ids, sl = packed.ids, LAYOUT.slices()
    assert torch.equal(drop_condition(ids, LAYOUT, 0.0), ids)
    all_dropped = drop_condition(ids, LAYOUT, 1.0)
    assert bool((all_dropped[:, sl["image"]] == LAYOUT.null_id).all())
    assert torch.equal(all_dropped[:, sl["audio"]], ids[:, sl["audio"]])
    assert torch.equal(all_dropped[:, 0], ids[:, 0])  # the tag stays
    a = drop_condition(ids, LAYOUT, 0.5, torch.Generator().manual_seed(3))
    b = drop_condition(ids, LAYOUT, 0.5, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    rows = (a[:, sl["image"]] == LAYOUT.null_id).all(1)
    assert 10 < int(rows.sum()) < 54
    assert torch.equal(a[~rows], ids[~rows])
    # the other direction: audio is the condition
    _, rev = packed_batch(4, order=("audio", "image"))
    out = drop_condition(rev.ids, LAYOUT, 1.0, order=("audio", "image"))
    assert bool((out[:, LAYOUT.slices(("audio", "image"))["audio"]] == LAYOUT.null_id).all())


def test_next_token_loss_skips_dropped_condition():
    model = tiny(LAYOUT)
    _, packed = packed_batch()
    full = next_token_loss(model, LAYOUT, packed.ids)
    target_only = next_token_loss(model, LAYOUT, packed.ids, segments=["audio"])
    dropped = next_token_loss(model, LAYOUT, drop_condition(packed.ids, LAYOUT, 1.0))
    assert all(math.isfinite(x.item()) for x in (full, target_only, dropped))
    assert abs(full.item() - math.log(20)) < 1.0  # near uniform over each modality's codes at init
    torch.testing.assert_close(
        next_token_loss(model, LAYOUT, drop_condition(packed.ids, LAYOUT, 1.0), segments=["audio"]), dropped
    )


# ---- generation -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("shared", [False, True])
@pytest.mark.parametrize("target", ["image", "audio"])
def test_generate_lengths_and_vocab_ranges(shared, target):
    layout = SequenceLayout([("image", 16, 9), ("audio", 24, 8)], shared_codebook=shared)
    model = tiny(layout)
    cond_name = "audio" if target == "image" else "image"
    seg, cond_seg = layout.segment(target), layout.segment(cond_name)
    g = torch.Generator().manual_seed(0)
    condition = {cond_name: torch.randint(0, cond_seg.vocab_size, (5, cond_seg.n_tokens), generator=g)}
    for kw in ({}, {"cfg_scale": 3.0, "top_k": 5}, {"top_p": 0.9, "temperature": 1.5}, {"temperature": 0}):
        out = generate(model, layout, condition, target, generator=g, **kw)
        assert out.shape == (5, seg.n_tokens) and out.dtype == torch.long
        assert int(out.min()) >= 0 and int(out.max()) < seg.vocab_size
    # a model whose logits favour another modality's codes still emits only the target's codes
    with torch.no_grad():
        model.head.bias.fill_(-50.0)
        model.head.bias[layout.mask_id] = 50.0
        lo, hi = layout.vocab_range(cond_name)
        model.head.bias[lo:hi] = 50.0
    out = generate(model, layout, condition, target, temperature=0)
    assert int(out.min()) >= 0 and int(out.max()) < seg.vocab_size


@pytest.mark.parametrize("order", [("image", "audio"), ("audio", "image")])
def test_sample_joint(order):
    model = tiny(LAYOUT)
    out = sample_joint(model, LAYOUT, 3, order=order, generator=torch.Generator().manual_seed(0))
    assert list(out) == list(order)
    for s in LAYOUT.segments:
        assert out[s.name].shape == (3, s.n_tokens)
        assert int(out[s.name].min()) >= 0 and int(out[s.name].max()) < s.vocab_size
    # greedy joint samples are the greedy continuation of their own first segment
    greedy = sample_joint(model, LAYOUT, 2, order=order, temperature=0)
    first, second = order
    assert torch.equal(generate(model, LAYOUT, {first: greedy[first]}, second, temperature=0), greedy[second])


def test_generation_logits_match_full_forward_and_cfg_scale_one_is_conditional():
    model = tiny(LAYOUT, dim=48)
    tokens, _ = packed_batch(3)
    cond = {"audio": tokens["audio"]}
    order = ("audio", "image")
    out, logits = generate(model, LAYOUT, cond, "image", temperature=0, return_logits=True)
    assert logits.shape == (3, 9, 16)
    packed = LAYOUT.pack({"audio": tokens["audio"], "image": out}, order)
    sl, (lo, hi) = LAYOUT.slices(order)["image"], LAYOUT.vocab_range("image")
    mods, pos = packed.modalities, packed.positions
    with torch.no_grad():
        cond_full = model(packed.ids, mods, pos)[:, sl.start - 1 : sl.stop - 1, lo:hi]
        uncond_ids = null_condition(packed.ids, LAYOUT, order)
        uncond_full = model(uncond_ids, mods, pos)[:, sl.start - 1 : sl.stop - 1, lo:hi]
    torch.testing.assert_close(logits, cond_full, atol=1e-5, rtol=0)
    # scale 1 runs the NULL rows too, and gives the conditional logits
    out1, logits1 = generate(model, LAYOUT, cond, "image", temperature=0, cfg_scale=1.0, return_logits=True)
    torch.testing.assert_close(logits1, cond_full, atol=1e-5, rtol=0)
    assert torch.equal(out1, out)
    # scale 0 is the unconditional model, i.e. the NULL-condition sequence (same tokens fed: teacher-forced)
    _, logits0 = generate(model, LAYOUT, cond, "image", temperature=0, cfg_scale=0.0, return_logits=True)
    assert not torch.allclose(uncond_full, cond_full, atol=1e-4)
    torch.testing.assert_close(logits0[:, 0], uncond_full[:, 0], atol=1e-5, rtol=0)
    out2, logits2 = generate(model, LAYOUT, cond, "image", temperature=0, cfg_scale=2.5, return_logits=True)
    packed2 = LAYOUT.pack({"audio": tokens["audio"], "image": out2}, order)
    with torch.no_grad():
        c = model(packed2.ids, mods, pos)[:, sl.start - 1 : sl.stop - 1, lo:hi]
        u = model(null_condition(packed2.ids, LAYOUT, order), mods, pos)[:, sl.start - 1 : sl.stop - 1, lo:hi]
    torch.testing.assert_close(logits2, u + 2.5 * (c - u), atol=1e-4, rtol=0)


def test_generate_rejects_bad_requests():
    model = tiny(LAYOUT)
    cond = {"image": torch.zeros(2, 9, dtype=torch.long)}
    with pytest.raises(ValueError, match="end with"):
        generate(model, LAYOUT, cond, "audio", order=("audio", "image"))
    with pytest.raises(ValueError, match="batch_size"):
        generate(model, LAYOUT, {}, "audio")
    assert generate(model, LAYOUT, {}, "audio", batch_size=2).shape == (2, 8)
    with pytest.raises(ValueError, match="causal"):
        generate(tiny(LAYOUT, causal=False), LAYOUT, cond, "audio")
