"""Logits processing, classifier-free guidance and autoregressive sampling with a KV cache.

Guidance runs the condition and its NULL-replaced copy as one batch of 2B rows:
logits = uncond + scale * (cond - uncond).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from vqfuse.prior.sequence import SequenceLayout
from vqfuse.prior.transformer import PriorTransformer

# ---- logits processing ----------------------------------------------------------------------------------


def top_k_filter(logits: Tensor, k: int | None) -> Tensor:
    """Keep the k largest logits of the last dim (ties with the k-th are kept), -inf elsewhere."""
    if k is None or k <= 0 or k >= logits.shape[-1]:
        return logits
    kth = logits.topk(k, dim=-1).values[..., -1:]  # (..., 1)
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p_filter(logits: Tensor, p: float | None) -> Tensor:
    """Nucleus filtering: keep the smallest set of most likely ids whose probability reaches p
    (the most likely id always survives), -inf elsewhere."""
    if p is None or p >= 1.0:
        return logits
    if p <= 0.0:
        raise ValueError(f"top_p must be in (0, 1], got {p}")
    sorted_logits, order = logits.sort(dim=-1, descending=True)  # (..., V)
    probs = sorted_logits.softmax(-1)
    before = probs.cumsum(-1) - probs  # probability mass strictly above each id
    drop_sorted = before >= p
    drop = drop_sorted.scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


def process_logits(
    logits: Tensor, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None
) -> Tensor:
    """Divide by temperature (> 0), then top-k, then top-p filtering."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0 here, got {temperature} (use sample_logits for greedy)")
    return top_p_filter(top_k_filter(logits / temperature, top_k), top_p)


def sample_logits(
    logits: Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """logits (..., V) -> sampled ids (...). temperature 0 is greedy (argmax)."""
    if temperature == 0:
        return logits.argmax(-1)
    probs = process_logits(logits.float(), temperature, top_k, top_p).softmax(-1)
    flat = probs.reshape(-1, probs.shape[-1])
    return torch.multinomial(flat, 1, generator=generator).reshape(probs.shape[:-1])


# ---- classifier-free guidance ---------------------------------------------------------------------------


def cfg_logits(cond: Tensor, uncond: Tensor, scale: float) -> Tensor:
    """Classifier-free guidance: uncond + scale * (cond - uncond). Scale 1 is the conditional model."""
    return uncond + scale * (cond - uncond)


def null_condition(
    ids: Tensor,
    layout: SequenceLayout,
    order: Iterable[str] | None = None,
    condition: Iterable[str] | None = None,
    rows: Tensor | None = None,
) -> Tensor:
    """A copy of ids (B, L) with the tokens (not the tags) of the `condition` segments replaced by NULL.

    Args:
        order: how ids are packed (default: the layout's order).
        condition: segments to blank (default: all but the last of `order`).
        rows: (B,) bool, the rows to blank (default: all).
    """
    order = layout.resolve_order(order)
    names = order[:-1] if condition is None else tuple(condition)
    slices = layout.slices(order)
    out = ids.clone()
    for name in names:
        sl = slices[name]
        if rows is None:
            out[:, sl] = layout.null_id
        else:
            out[:, sl] = torch.where(rows[:, None], torch.full_like(out[:, sl], layout.null_id), out[:, sl])
    return out


def drop_condition(
    ids: Tensor,
    layout: SequenceLayout,
    p: float,
    generator: torch.Generator | None = None,
    *,
    order: Iterable[str] | None = None,
    condition: Iterable[str] | None = None,
) -> Tensor:
    """Train-time condition dropout: each row of ids (B, L) independently, with probability p, gets its
    condition segments (default: all but the last of `order`) replaced by NULL tokens."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"condition dropout probability must be in [0, 1], got {p}")
    rows = torch.rand(ids.shape[0], generator=generator, device=ids.device) < p  # (B,)
    return null_condition(ids, layout, order, condition, rows)


# ---- autoregressive generation --------------------------------------------------------------------------


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Run `model` in eval mode (no dropout), restoring its mode afterwards."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def model_device(model: nn.Module) -> torch.device:
    """Where the model's parameters live."""
    return next(model.parameters()).device


def _autoregress(
    model: PriorTransformer,
    layout: SequenceLayout,
    prefix: tuple[Tensor, Tensor, Tensor],
    plan: Sequence[str],
    cfg_scale: float | None,
    temperature: float,
    top_k: int | None,
    top_p: float | None,
    generator: torch.Generator | None,
) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Sample the segments of `plan` in turn after `prefix` (ids (B', P), modalities (P,), positions (P,);
    B' = 2B with guidance: conditional rows, then NULL rows). Returns local tokens {name: (B, n)} and the
    (guided) logits {name: (B, n, K)} they were sampled from."""
    ids, mods, pos = prefix
    rows = ids.shape[0]
    batch = rows // 2 if cfg_scale is not None else rows
    device = ids.device
    capacity = ids.shape[1] + sum(layout.segment(n).n_tokens + 1 for n in plan)
    cache = model.new_cache(rows, capacity)
    tokens, logits_out = {}, {}
    for name in plan:
        seg = layout.segment(name)
        lo, hi = layout.vocab_range(name)
        m = layout.modality_index(name)
        # the segment's tag follows what is still pending (the prefix, or the previous segment's last token)
        ids = torch.cat([ids, ids.new_full((rows, 1), layout.tag_id(name))], 1)
        mods = torch.cat([mods, mods.new_full((1,), m)])
        pos = torch.cat([pos, pos.new_zeros(1)])
        out = torch.empty(batch, seg.n_tokens, dtype=torch.long, device=device)
        seg_logits = []
        for j in range(seg.n_tokens):
            logits = model(ids, mods, pos, cache)[:, -1, lo:hi].float()  # (B', K)
            if cfg_scale is not None:
                logits = cfg_logits(logits[:batch], logits[batch:], cfg_scale)  # (B, K)
            seg_logits.append(logits)
            out[:, j] = sample_logits(logits, temperature, top_k, top_p, generator)
            step = out[:, j : j + 1] + lo
            ids = step.repeat(rows // batch, 1)  # (B', 1): the same token continues both halves
            mods = mods.new_full((1,), m)
            pos = pos.new_full((1,), j + 1)
        tokens[name], logits_out[name] = out, torch.stack(seg_logits, 1)
    return tokens, logits_out


@torch.no_grad()
def generate(
    model: PriorTransformer,
    layout: SequenceLayout,
    condition: Mapping[str, Tensor],
    target: str,
    *,
    order: Sequence[str] | None = None,
    cfg_scale: float | None = None,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
    batch_size: int | None = None,
    return_logits: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """Sample the `target` segment token by token after the condition segments.

    Args:
        condition: {name: (B, n_i) local codes}; may be empty (then give `batch_size`).
        order: the sequence order, condition names then `target` last (default: the layout's order of
            the condition names, then target).
        cfg_scale: classifier-free guidance scale; None runs no unconditional pass.
        temperature: 0 for greedy decoding.
    Returns:
        (B, n_target) local codes, and with `return_logits` the guided logits (B, n_target, K_target).
    """
    if not model.causal:
        raise ValueError("autoregressive generation needs a causal model (use maskgit_decode otherwise)")
    if order is None:
        order = [n for n in layout.names if n in condition and n != target] + [target]
    order = layout.resolve_order(order)
    if order[-1] != target or set(order[:-1]) != set(condition):
        raise ValueError(
            f"order must list the condition {sorted(condition)} and end with the target {target!r}, got {list(order)}"
        )
    device = model_device(model)
    if condition:
        packed = layout.pack(condition, order[:-1])
        ids = packed.ids.to(device)
        mods, pos = packed.modalities.to(device), packed.positions.to(device)
        if cfg_scale is not None:
            ids = torch.cat([ids, null_condition(ids, layout, order[:-1], condition=order[:-1])])
    else:
        if batch_size is None:
            raise ValueError("without a condition, give batch_size")
        cfg_scale = None  # nothing to guide by
        ids = torch.empty(batch_size, 0, dtype=torch.long, device=device)
        mods = pos = torch.empty(0, dtype=torch.long, device=device)
    with eval_mode(model):
        tokens, logits = _autoregress(
            model, layout, (ids, mods, pos), [target], cfg_scale, temperature, top_k, top_p, generator
        )
    return (tokens[target], logits[target]) if return_logits else tokens[target]


@torch.no_grad()
def sample_joint(
    model: PriorTransformer,
    layout: SequenceLayout,
    batch_size: int,
    *,
    order: Sequence[str] | None = None,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> dict[str, Tensor]:
    """Sample every segment of `order` (default: the layout's), each conditioned on those before it.
    Returns {name: (batch_size, n_i) local codes}."""
    if not model.causal:
        raise ValueError("autoregressive sampling needs a causal model")
    order = layout.resolve_order(order)
    device = model_device(model)
    empty = torch.empty(0, dtype=torch.long, device=device)
    with eval_mode(model):
        tokens, _ = _autoregress(
            model,
            layout,
            (empty.new_empty(batch_size, 0), empty, empty),
            order,
            None,
            temperature,
            top_k,
            top_p,
            generator,
        )
    return tokens


__all__ = [
    "top_k_filter",
    "top_p_filter",
    "process_logits",
    "sample_logits",
    "cfg_logits",
    "null_condition",
    "drop_condition",
    "eval_mode",
    "model_device",
    "generate",
    "sample_joint",
]
