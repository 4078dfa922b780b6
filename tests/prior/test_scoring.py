"""segment_log_likelihood (both prior kinds) and best-of-N selection."""

import pytest
import torch
import torch.nn.functional as F

from tests.helpers.priors import LAYOUT, tiny, tokens
from vqfuse.prior.scoring import pick_best, segment_log_likelihood

pytestmark = pytest.mark.usefixtures("single_thread")


def test_bidirectional_score_hides_the_whole_segment_and_averages_its_log_probs():
    model, data = tiny(causal=False), tokens(3)
    score = segment_log_likelihood(model, LAYOUT, data, "image")
    packed = LAYOUT.pack(data)
    sl = LAYOUT.slices()["image"]
    ids = packed.ids.clone()
    ids[:, sl] = LAYOUT.mask_id
    lo, hi = LAYOUT.vocab_range("image")
    logp = model(ids, packed.modalities, packed.positions)[:, sl, lo:hi].log_softmax(-1)  # (B, 9, 16)
    want = logp.gather(-1, data["image"][..., None]).squeeze(-1).mean(1)
    torch.testing.assert_close(score, want)
    # the segment's own tokens are hidden: changing them changes the targets, not the context
    other = dict(data, image=data["image"].flip(1))
    assert not torch.allclose(segment_log_likelihood(model, LAYOUT, other, "image"), score)


def test_causal_score_is_the_teacher_forced_log_likelihood_with_the_segment_last():
    model, data = tiny(causal=True), tokens(3)
    score = segment_log_likelihood(model, LAYOUT, data, "image")
    order = ("audio", "image")
    packed = LAYOUT.pack(data, order)
    logits = model(packed.ids, packed.modalities, packed.positions)
    sl = LAYOUT.slices(order)["image"]
    lo, hi = LAYOUT.vocab_range("image")
    nll = F.cross_entropy(logits[:, sl.start - 1 : sl.stop - 1, lo:hi].transpose(1, 2), data["image"], reduction="none")
    torch.testing.assert_close(score, -nll.mean(1))
    # the image's score depends on the audio before it
    changed = dict(data, audio=(data["audio"] + 1) % 12)
    assert not torch.allclose(segment_log_likelihood(model, LAYOUT, changed, "image"), score)


@pytest.mark.parametrize("causal", [False, True])
def test_unconditional_score_sees_null_in_place_of_the_other_segments(causal):
    from vqfuse.prior.sampling import null_condition

    model, data = tiny(causal), tokens(3)
    alone = segment_log_likelihood(model, LAYOUT, data, "image", unconditional=True)
    changed = dict(data, audio=(data["audio"] + 1) % 12)
    torch.testing.assert_close(segment_log_likelihood(model, LAYOUT, changed, "image", unconditional=True), alone)
    assert not torch.allclose(segment_log_likelihood(model, LAYOUT, data, "image"), alone)
    # the same as scoring a sequence whose audio tokens are NULL, which the plain score would read as given
    order = ("audio", "image") if causal else LAYOUT.names
    packed = LAYOUT.pack(data, order)
    ids = null_condition(packed.ids, LAYOUT, order, condition=["audio"])
    if causal:
        logits = model(ids, packed.modalities, packed.positions)
        sl = LAYOUT.slices(order)["image"]
        lo, hi = LAYOUT.vocab_range("image")
        logp = logits[:, sl.start - 1 : sl.stop - 1, lo:hi].log_softmax(-1)
    else:
        sl = LAYOUT.slices()["image"]
        ids[:, sl] = LAYOUT.mask_id
        lo, hi = LAYOUT.vocab_range("image")
        logp = model(ids, packed.modalities, packed.positions)[:, sl, lo:hi].log_softmax(-1)
    want = logp.gather(-1, data["image"][..., None]).squeeze(-1).mean(1)
    torch.testing.assert_close(alone, want)


def test_scores_are_log_probabilities_and_bad_names_are_errors():
    for causal in (False, True):
        s = segment_log_likelihood(tiny(causal), LAYOUT, tokens(3), "audio")
        assert s.shape == (3,) and bool((s < 0).all())
    with pytest.raises(ValueError, match="not among"):
        segment_log_likelihood(tiny(False), LAYOUT, {"image": tokens(3)["image"]}, "audio")


def test_pick_best_takes_each_items_highest_scoring_candidate():
    candidates = torch.arange(3 * 2 * 4).view(3, 2, 4)  # (N=3, B=2, n=4)
    scores = torch.tensor([[0.1, 0.9], [0.5, 0.2], [0.5, -1.0]])  # item 0: candidate 1 (first of the tie)
    best = pick_best(candidates, scores)
    torch.testing.assert_close(best, torch.stack([candidates[1, 0], candidates[0, 1]]))
    with pytest.raises(ValueError, match="disagree"):
        pick_best(candidates, scores[:2])
