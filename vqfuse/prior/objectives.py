"""Training objectives of a prior on packed sequences: next-token cross entropy, and the multimodal tasks
(each segment as the target given the others, or all jointly) with their held-out metrics."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from vqfuse.prior.sequence import SequenceLayout
from vqfuse.prior.transformer import PriorTransformer


def next_token_loss(
    model: PriorTransformer,
    layout: SequenceLayout,
    ids: Tensor,
    order: Iterable[str] | None = None,
    segments: Iterable[str] | None = None,
) -> Tensor:
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
        seg_logits = logits[:, sl.start - 1 : sl.stop - 1, lo:hi]  # (B, n, K): position i predicts i + 1
        total = total + F.cross_entropy(
            seg_logits.reshape(-1, hi - lo).float(),
            torch.where(valid, target, -100).reshape(-1),
            ignore_index=-100,
            reduction="sum",
        )
        count += int(valid.sum())
    return total / max(count, 1)


# ---- training tasks over every segment of a layout ----------------------------------------------------


def maskgit_task_loss(
    model: Any,
    layout: SequenceLayout,
    segments: Mapping[str, Tensor],
    task_weights: Tensor,
    condition_dropout: float = 0.1,
    generator: torch.Generator | None = None,
) -> Tensor:
    """MaskGIT training over the layout's segments {name: (B, n_name) local codes}.

    Per example a task is drawn with `task_weights` (one weight per segment, in the layout's order, then one
    for "joint"): the task's segment is the target, masked at a random cosine-scheduled ratio, the others are
    given and become NULL together with probability `condition_dropout` (classifier-free guidance); "joint"
    masks every segment, each at its own ratio. Returns the cross entropy of all masked tokens."""
    from vqfuse.prior.maskgit import masked_token_loss, random_mask
    from vqfuse.prior.sampling import null_condition

    order = layout.names
    first = segments[order[0]]
    b, device, joint = first.shape[0], first.device, len(order)
    ids = layout.pack(dict(segments), order).ids
    task = torch.multinomial(task_weights.float(), b, replacement=True, generator=generator).to(device)  # (B,)
    masks = {
        name: random_mask(b, segments[name].shape[1], generator, device) & ((task == i) | (task == joint))[:, None]
        for i, name in enumerate(order)
    }
    drop = torch.rand(b, generator=generator).to(device) < condition_dropout
    for i, name in enumerate(order):
        ids = null_condition(ids, layout, order, [n for n in order if n != name], rows=drop & (task == i))
    return masked_token_loss(model, layout, ids, masks, order)


def causal_order_loss(
    model: Any,
    layout: SequenceLayout,
    segments: Mapping[str, Tensor],
    condition_dropout: float = 0.1,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Autoregressive training: one random order of the segments for the batch, the first segment NULL per
    example with probability `condition_dropout`; next-token cross entropy of every code token."""
    from vqfuse.prior.sampling import drop_condition

    perm = torch.randperm(len(layout.names), generator=generator).tolist()
    order = tuple(layout.names[i] for i in perm)
    ids = layout.pack(dict(segments), order).ids
    ids = drop_condition(ids, layout, condition_dropout, generator, order=order, condition=[order[0]])
    return next_token_loss(model, layout, ids, order)


@torch.no_grad()
def heldout_task_metrics(
    model: PriorTransformer,
    layout: SequenceLayout,
    segments: Mapping[str, Tensor],
    batch_size: int,
    max_batches: int = 0,
    seed: int = 0,
) -> dict[str, float]:
    """Held-out token cross entropy and accuracy of a prior, per task, over {name: (N, n_name)} codes.

    MaskGIT: `a|b,c` (a's tokens masked at random ratios, the others given) for each segment, and `joint`.
    Causal: for the layout's order and its reverse, the first segment alone (`a`) and each later one given
    those before it (`b|a`). Masks come from a generator seeded by `seed`, so runs are comparable."""
    from vqfuse.prior.maskgit import masked_logits, random_mask

    device = next(model.parameters()).device
    g = torch.Generator().manual_seed(seed)
    sums: dict[str, list[float]] = {}
    names = layout.names

    def add(name: str, logits: Tensor, target: Tensor) -> None:
        s = sums.setdefault(name, [0.0, 0.0, 0.0])
        s[0] += float(F.cross_entropy(logits.float(), target, reduction="sum"))
        s[1] += float((logits.argmax(-1) == target).sum())
        s[2] += target.numel()

    was = model.training
    model.eval()
    try:
        n = len(next(iter(segments.values())))
        n_batches = -(-n // batch_size)
        if max_batches:
            n_batches = min(n_batches, max_batches)
        for i in range(n_batches):
            batch = {k: v[i * batch_size : (i + 1) * batch_size].to(device) for k, v in segments.items()}
            b = batch[names[0]].shape[0]
            if not model.causal:
                ids = layout.pack(batch, names).ids
                masks = {k: random_mask(b, batch[k].shape[1], g).to(device) for k in names}
                tasks = [(f"{k}|{','.join(o for o in names if o != k)}", {k: masks[k]}) for k in names]
                for task, task_masks in (*tasks, ("joint", masks)):
                    for lg, t in masked_logits(model, layout, ids, task_masks).values():
                        add(task, lg, t)
                continue
            for order in (names, tuple(reversed(names))):
                ids = layout.pack(batch, order).ids
                mods, pos = layout.modalities_and_positions(order)
                logits = model(ids[:, :-1], mods[:-1].to(device), pos[:-1].to(device))
                for j, (name, sl) in enumerate(layout.slices(order).items()):
                    lo, hi = layout.vocab_range(name)
                    seg = logits[:, sl.start - 1 : sl.stop - 1, lo:hi]
                    key = name if j == 0 else f"{name}|{','.join(order[:j])}"
                    add(key, seg.reshape(-1, hi - lo), (ids[:, sl] - lo).reshape(-1))
    finally:
        model.train(was)
    out: dict[str, float] = {}
    for name, (ce, correct, count) in sums.items():
        out[f"{name}/loss"] = ce / max(count, 1)
        out[f"{name}/accuracy"] = correct / max(count, 1)
    return out


__all__ = ["next_token_loss", "maskgit_task_loss", "causal_order_loss", "heldout_task_metrics"]
