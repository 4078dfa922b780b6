"""Next-token cross entropy of an autoregressive prior on packed sequences."""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor

from vqfuse.prior.sequence import SequenceLayout
from vqfuse.prior.transformer import PriorTransformer


def next_token_loss(model: PriorTransformer, layout: SequenceLayout, ids: Tensor,
                    order: Iterable[str] | None = None, segments: Iterable[str] | None = None) -> Tensor:
    """Mean cross entropy of each code token of `segments` (default: all) given the positions before it.

    ids (B, L) are packed in `order`. Each prediction is a softmax over its own modality's codes only
    (as in sampling). Targets that are not codes of their segment (NULL from condition dropout) are
    skipped, so dropped conditions cost nothing and the rest learns to predict without them.
    """
    if not model.causal:
        raise ValueError("next-token loss needs a causal model (use maskgit_loss otherwise)")
    order = layout.resolve_order(order)
    names = order if segments is None else layout.resolve_order(segments)
    modalities, positions = layout.modalities_and_positions(order)
    device = ids.device
    logits = model(ids[:, :-1], modalities[:-1].to(device), positions[:-1].to(device))  # (B, L-1, V)
    slices = layout.slices(order)
    total = logits.new_zeros(())
    count = 0
    for name in names:
        sl = slices[name]
        lo, hi = layout.vocab_range(name)
        target = ids[:, sl] - lo  # (B, n)
        valid = (target >= 0) & (target < hi - lo)
        seg_logits = logits[:, sl.start - 1:sl.stop - 1, lo:hi]  # (B, n, K): position i predicts i + 1
        total = total + F.cross_entropy(seg_logits.reshape(-1, hi - lo).float(),
                                        torch.where(valid, target, -100).reshape(-1),
                                        ignore_index=-100, reduction="sum")
        count += int(valid.sum())
    return total / max(count, 1)


__all__ = ["next_token_loss"]
