"""MaskGIT (Chang et al. 2022) on a bidirectional prior: masked-token training and iterative parallel
decoding with confidence-based re-masking, infilling and optional classifier-free guidance."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from vqfuse.prior.sampling import cfg_logits, eval_mode, model_device, null_condition, process_logits, sample_logits
from vqfuse.prior.sequence import SequenceLayout
from vqfuse.prior.transformer import PriorTransformer


def cosine_schedule(r: Tensor) -> Tensor:
    """Fraction of tokens masked at progress r in [0, 1]: cos(pi r / 2), from 1 down to 0."""
    return torch.cos(r * math.pi / 2)


def random_mask(
    batch: int, n: int, generator: torch.Generator | None = None, device: torch.device | str | None = None
) -> Tensor:
    """(batch, n) bool: per row, ceil(cosine_schedule(r) * n) random positions with r ~ U[0, 1) (at least one)."""
    r = torch.rand(batch, generator=generator, device=device)
    n_mask = torch.ceil(cosine_schedule(r) * n).long().clamp(1, n)  # (B,)
    rank = torch.rand(batch, n, generator=generator, device=device).argsort(1).argsort(1)
    return rank < n_mask[:, None]


def _check_bidirectional(model: PriorTransformer) -> None:
    if model.causal:
        raise ValueError("MaskGIT needs a bidirectional model (PriorConfig(causal=False))")


def masked_logits(
    model: PriorTransformer,
    layout: SequenceLayout,
    ids: Tensor,
    masks: Mapping[str, Tensor],
    order: Iterable[str] | None = None,
) -> dict[str, tuple[Tensor, Tensor]]:
    """Hide the tokens of ids (B, L) (packed in `order`) where `masks` {name: (B, n_name) bool} is True and
    return, per masked segment, (logits (M, K) over that segment's codes, local targets (M,)) of the hidden
    tokens. One forward pass; segments may be masked in some rows and not in others."""
    order = layout.resolve_order(order)
    slices = layout.slices(order)
    modalities, positions = layout.modalities_and_positions(order)
    inp = ids.clone()
    for name, mask in masks.items():
        sl = slices[name]
        inp[:, sl] = inp[:, sl].masked_fill(mask, layout.mask_id)
    logits = model(inp, modalities.to(ids.device), positions.to(ids.device))  # (B, L, V)
    out = {}
    for name, mask in masks.items():
        sl = slices[name]
        lo, hi = layout.vocab_range(name)
        out[name] = (logits[:, sl, lo:hi][mask], ids[:, sl][mask] - lo)
    return out


def masked_token_loss(
    model: PriorTransformer,
    layout: SequenceLayout,
    ids: Tensor,
    masks: Mapping[str, Tensor],
    order: Iterable[str] | None = None,
) -> Tensor:
    """Cross entropy of the tokens hidden by `masks` {name: (B, n_name) bool}, each over its own segment's
    codes, averaged over every hidden token (see `masked_logits`)."""
    _check_bidirectional(model)
    parts = masked_logits(model, layout, ids, masks, order)
    total = sum(F.cross_entropy(lg.float(), t, reduction="sum") for lg, t in parts.values())
    count = sum(t.numel() for _, t in parts.values())
    return total / max(count, 1)


def maskgit_loss(
    model: PriorTransformer,
    layout: SequenceLayout,
    ids: Tensor,
    target: str | Sequence[str],
    order: Iterable[str] | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Mask a cosine-scheduled random fraction of the `target` tokens of ids (B, L) (packed in `order`)
    and return the cross entropy of the masked tokens, over the target's codes.

    `target` may name several segments (joint training): each gets its own random mask, and the loss
    averages over all masked tokens."""
    _check_bidirectional(model)
    order = layout.resolve_order(order)
    targets = (target,) if isinstance(target, str) else tuple(target)
    masks = {t: random_mask(ids.shape[0], layout.segment(t).n_tokens, generator, ids.device) for t in targets}
    return masked_token_loss(model, layout, ids, masks, order)


def _confidence(logits: Tensor, sampled: Tensor, temperature: float, top_k: int | None, top_p: float | None) -> Tensor:
    """log-probability (B, n) of each sampled code under the distribution it was drawn from."""
    processed = logits if temperature == 0 else process_logits(logits, temperature, top_k, top_p)
    return processed.log_softmax(-1).gather(-1, sampled[..., None])[..., 0]


def _gumbel(shape: torch.Size, generator: torch.Generator | None, device: torch.device) -> Tensor:
    u = torch.rand(shape, generator=generator, device=device).clamp(1e-20, 1 - 1e-7)
    return -torch.log(-torch.log(u))


@torch.no_grad()
def maskgit_decode(
    model: PriorTransformer,
    layout: SequenceLayout,
    condition: Mapping[str, Tensor],
    target: str,
    *,
    known: Tensor | None = None,
    known_mask: Tensor | None = None,
    steps: int = 8,
    order: Sequence[str] | None = None,
    cfg_scale: float | None = None,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    noise: float = 4.5,
    generator: torch.Generator | None = None,
    batch_size: int | None = None,
    null: Sequence[str] = (),
) -> Tensor:
    """Decode the `target` segment in `steps` parallel steps; known tokens are kept, only the rest sampled.

    Each step samples every masked position, keeps the most confident samples and re-masks the others so
    that a cosine-scheduled fraction of the unknown tokens stays masked (none after the last step).
    Confidence is the sample's log-probability plus `noise * (1 - progress)` Gumbel noise.

    Args:
        condition: {name: (B, n_i) local codes}; may be empty (give `batch_size` or `known`).
        known: (B, n_target) local codes, read where `known_mask` (B, n_target) bool is True.
        order: sequence order (default: the layout's order of the condition names, then target).
        cfg_scale: classifier-free guidance scale; None runs no unconditional pass.
        temperature: sampling temperature; 0 is greedy.
        null: condition segments shown as NULL (absent) in every pass; their `condition` entries only
            give the segment its place and length.
    Returns:
        (B, n_target) local codes.
    """
    _check_bidirectional(model)
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if target in condition:
        raise ValueError(f"{target!r} is both condition and target; give its known part as `known`")
    if order is None:
        order = [n for n in layout.names if n in condition] + [target]
    order = layout.resolve_order(order)
    if set(order) != set(condition) | {target}:
        raise ValueError(
            f"order must list the condition {sorted(condition)} and the target {target!r}, got {list(order)}"
        )
    device = model_device(model)
    n = layout.segment(target).n_tokens
    lo, hi = layout.vocab_range(target)
    sizes = {t.shape[0] for t in condition.values()} | ({known.shape[0]} if known is not None else set())
    if batch_size is not None:
        sizes.add(batch_size)
    if len(sizes) != 1:
        raise ValueError(f"batch size is ambiguous or missing: {sorted(sizes)} (give batch_size without condition)")
    (b,) = sizes
    if known_mask is None:
        known_mask = torch.zeros(b, n, dtype=torch.bool, device=device)
    known_mask = known_mask.to(device).reshape(b, n).bool()
    if known is None:
        if bool(known_mask.any()):
            raise ValueError("known_mask marks known tokens but `known` is missing")
        known = torch.zeros(b, n, dtype=torch.long, device=device)
    known = known.to(device).reshape(b, n)

    placeholder = torch.zeros(b, n, dtype=torch.long, device=device)
    packed = layout.pack({**{k: v.to(device) for k, v in condition.items()}, target: placeholder}, order)
    ids, mods, pos = packed.ids, packed.modalities, packed.positions  # (B, L), (L,), (L,)
    if set(null) - set(condition):
        raise ValueError(f"null segments {sorted(set(null) - set(condition))} are not conditions")
    if null:
        ids = null_condition(ids, layout, order, condition=list(null))
    guided = cfg_scale is not None and bool(set(condition) - set(null))
    if guided:
        ids = torch.cat([ids, null_condition(ids, layout, order, condition=[k for k in order if k != target])])
    sl = layout.slices(order)[target]

    cur = torch.where(
        known_mask, layout.to_global(target, torch.where(known_mask, known, 0)), layout.mask_id
    )  # (B, n) global ids
    n_unknown = (~known_mask).sum(1)  # (B,)
    with eval_mode(model):
        for step in range(steps):
            is_masked = cur == layout.mask_id  # (B, n)
            if not bool(is_masked.any()):
                break
            ids[:, sl] = cur.repeat(2, 1) if guided else cur
            logits = model(ids, mods, pos)[:, sl, lo:hi].float()  # (B', n, K)
            if guided:
                logits = cfg_logits(logits[:b], logits[b:], cfg_scale)  # (B, n, K)
            sampled = sample_logits(logits, temperature, top_k, top_p, generator)  # (B, n)
            progress = (step + 1) / steps
            confidence = _confidence(logits, sampled, temperature, top_k, top_p)
            if noise > 0 and progress < 1:
                confidence = confidence + noise * (1 - progress) * _gumbel(confidence.shape, generator, device)
            confidence = confidence.masked_fill(~is_masked, float("inf"))  # decoded and known stay
            n_remask = torch.floor(n_unknown * math.cos(math.pi / 2 * progress)).long()  # (B,) still masked after
            n_remask = torch.minimum(n_remask, is_masked.sum(1) - 1).clamp(min=0)  # progress every step
            rank = confidence.argsort(1).argsort(1)
            remask = rank < n_remask[:, None]
            cur = torch.where(is_masked, sampled + lo, cur).masked_fill(remask, layout.mask_id)
    return cur - lo


@torch.no_grad()
def maskgit_sample_joint(
    model: PriorTransformer,
    layout: SequenceLayout,
    batch_size: int,
    *,
    order: Sequence[str] | None = None,
    steps: int = 8,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    noise: float = 4.5,
    generator: torch.Generator | None = None,
) -> dict[str, Tensor]:
    """Decode every segment of `order` (default: the layout's) together from all-MASK, MaskGIT-style.

    As `maskgit_decode`, but the unknown tokens of all segments share one confidence ranking and one
    cosine schedule; each position samples from its own segment's codes. Returns {name: (B, n_i) local codes}.
    """
    _check_bidirectional(model)
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    order = layout.resolve_order(order)
    device = model_device(model)
    b = int(batch_size)
    sizes = [layout.segment(n).n_tokens for n in order]
    placeholder = {n: torch.zeros(b, k, dtype=torch.long, device=device) for n, k in zip(order, sizes)}
    packed = layout.pack(placeholder, order)
    ids, mods, pos = packed.ids, packed.modalities, packed.positions
    slices = layout.slices(order)
    total = sum(sizes)
    cur = torch.full((b, total), layout.mask_id, dtype=torch.long, device=device)  # global ids, segments concatenated
    bounds = torch.tensor([0, *sizes]).cumsum(0).tolist()
    with eval_mode(model):
        for step in range(steps):
            is_masked = cur == layout.mask_id  # (B, N)
            if not bool(is_masked.any()):
                break
            for i, name in enumerate(order):
                ids[:, slices[name]] = cur[:, bounds[i] : bounds[i + 1]]
            logits = model(ids, mods, pos)  # (B, L, V)
            sampled, confidence = [], []
            for name in order:
                lo, hi = layout.vocab_range(name)
                seg = logits[:, slices[name], lo:hi].float()  # (B, n, K)
                s = sample_logits(seg, temperature, top_k, top_p, generator)
                sampled.append(s + lo)
                confidence.append(_confidence(seg, s, temperature, top_k, top_p))
            sampled_ids, conf = torch.cat(sampled, 1), torch.cat(confidence, 1)  # (B, N)
            progress = (step + 1) / steps
            if noise > 0 and progress < 1:
                conf = conf + noise * (1 - progress) * _gumbel(conf.shape, generator, device)
            conf = conf.masked_fill(~is_masked, float("inf"))
            n_remask = torch.full((b,), math.floor(total * math.cos(math.pi / 2 * progress)), device=device)
            n_remask = torch.minimum(n_remask.long(), is_masked.sum(1) - 1).clamp(min=0)
            remask = conf.argsort(1).argsort(1) < n_remask[:, None]
            cur = torch.where(is_masked, sampled_ids, cur).masked_fill(remask, layout.mask_id)
    return {name: cur[:, bounds[i] : bounds[i + 1]] - layout.offset(name) for i, name in enumerate(order)}


__all__ = [
    "cosine_schedule",
    "random_mask",
    "masked_logits",
    "masked_token_loss",
    "maskgit_loss",
    "maskgit_decode",
    "maskgit_sample_joint",
]
