"""How well one segment of a packed sequence is explained by the others, under a trained prior.

Used to rerank sampled candidates (best-of-N, as DALL-E reranked with CLIP, but with the prior itself):
a generated speech clip that lets the prior recover the image it was generated from is more likely to say
the right thing. No judge or extra model is involved. `unconditional=True` scores a segment with the others
NULL (as in condition dropout), so that the difference of the two is a pointwise mutual information.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor

from vqfuse.prior.maskgit import masked_logits
from vqfuse.prior.sampling import eval_mode, model_device, null_condition
from vqfuse.prior.sequence import SequenceLayout
from vqfuse.prior.transformer import PriorTransformer


@torch.no_grad()
def segment_log_likelihood(
    model: PriorTransformer,
    layout: SequenceLayout,
    tokens: Mapping[str, Tensor],
    name: str,
    order: Iterable[str] | None = None,
    unconditional: bool = False,
) -> Tensor:
    """Mean log-probability per token (B,) of segment `name`'s codes given the other segments of `tokens`
    ({segment: (B, n_i) local codes}); with `unconditional`, given NULL in their place instead (the prior
    learnt that from condition dropout), i.e. the segment's own likelihood.

    A bidirectional (MaskGIT) prior hides the whole segment and predicts it in one pass (the factorised
    conditional); a causal prior scores it token by token with `name` placed last in the sequence. `order`
    is the packing order for a bidirectional prior (default: the layout's); a causal one always puts `name`
    last.
    """
    if name not in tokens:
        raise ValueError(f"segment {name!r} is not among the tokens given ({sorted(tokens)})")
    device = model_device(model)
    tokens = {k: v.to(device).long() for k, v in tokens.items()}
    target = tokens[name]  # (B, n)
    with eval_mode(model):
        if not model.causal:
            order = layout.resolve_order(order if order is not None else [n for n in layout.names if n in tokens])
            ids = layout.pack(tokens, order).ids
            if unconditional:
                ids = null_condition(ids, layout, order, condition=[n for n in order if n != name])
            hidden = torch.ones_like(target, dtype=torch.bool)
            logits, local = masked_logits(model, layout, ids, {name: hidden}, order)[name]  # (B*n, K), (B*n,)
        else:
            order = [n for n in layout.names if n in tokens and n != name] + [name]
            packed = layout.pack(tokens, order)
            ids = null_condition(packed.ids, layout, order, condition=order[:-1]) if unconditional else packed.ids
            logits = model(ids[:, :-1], packed.modalities[:-1].to(device), packed.positions[:-1].to(device))
            sl = layout.slices(order)[name]
            lo, hi = layout.vocab_range(name)
            logits = logits[:, sl.start - 1 : sl.stop - 1, lo:hi].reshape(-1, hi - lo)  # position i predicts i + 1
            local = target.reshape(-1)
    nll = F.cross_entropy(logits.float(), local, reduction="none")  # (B*n,)
    return -nll.view(target.shape[0], -1).mean(1)


def pick_best(candidates: Tensor, scores: Tensor) -> Tensor:
    """candidates (N, B, ...) and scores (N, B) -> (B, ...): per item, the candidate with the highest score
    (the first one on ties)."""
    if candidates.shape[:2] != scores.shape:
        raise ValueError(f"candidates {tuple(candidates.shape)} and scores {tuple(scores.shape)} disagree")
    best = scores.argmax(0)  # (B,)
    return candidates[best, torch.arange(candidates.shape[1], device=candidates.device)]


__all__ = ["segment_log_likelihood", "pick_best"]
