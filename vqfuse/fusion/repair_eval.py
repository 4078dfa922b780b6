"""Measured repair on held-out items: every segment whose modality can be repaired is damaged (its
`Modality.damage`: e.g. a box missing from an image, noise on speech), repaired with the other segments'
clean tokens as condition and without (NULL), and scored by its modality (`Modality.repair_scores`: e.g.
masked PSNR, SI-SNR improvement)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from vqfuse.fusion.repair import REMASK_FRACTION, decode_items, encode_items, enhance, inpaint
from vqfuse.prior import SequenceLayout
from vqfuse.prior.transformer import PriorTransformer
from vqfuse.tokenizer import Tokenizer


def _num(x: Tensor | float) -> float | None:
    """A JSON-able float (None for NaN / inf)."""
    v = float(x)
    return v if math.isfinite(v) else None


def _accuracy(pred: Tensor, truth: Tensor, where: Tensor) -> float | None:
    n = int(where.sum())
    return float((pred == truth)[where].float().mean()) if n else None


def repairable(tokenizers: Mapping[str, Tokenizer], layout: SequenceLayout) -> list[str]:
    """The segments whose modality knows how to repair its items, in layout order."""
    return [n for n in layout.names if tokenizers[n].modality.repair_mode in ("inpaint", "enhance")]


@torch.no_grad()
def evaluate_repair(
    prior: PriorTransformer,
    layout: SequenceLayout,
    tokenizers: Mapping[str, Tokenizer],
    items: Mapping[str, Tensor],
    *,
    stages: Mapping[str, int | None] | None = None,
    settings: Mapping[str, Any] | None = None,
    dilation: int = 1,
    remask_fraction: float = REMASK_FRACTION,
    remask_stages_from: int | None = None,
    steps: int = 8,
    cfg_scale: float | None = None,
    temperature: float = 0.0,
    seed: int = 0,
    keep: dict[str, dict[str, Tensor]] | None = None,
) -> dict[str, Any]:
    """Repair paired items {segment: (B, C, *item)}, each repairable segment with the others' clean tokens as
    condition and without. Damage and sampling seeds are shared by both runs.

    settings: damage options every modality reads its own keys from (speech: "snr_db", "noise"; images:
    "frac_range"). Returns a JSON-able dict with one entry per repaired segment: its mode, the damage, the
    modality's scores of the repair "conditioned" / "unconditioned" (and `*_decoded`: the repaired tokens
    decoded without the modality's output step), of the "damaged" input, of its tokens decoded unchanged
    ("reencoded") and of the clean tokens through the same output step ("tokenizer", the ceiling), the share of
    re-infilled tokens, and token accuracy against the clean tokens (at the re-infilled positions for
    inpainting, everywhere for enhancement). `keep`, when given, receives {segment: {"clean": ..., variant:
    (B, C, *item)}} to show the repairs.
    """
    stages = dict(stages or {})
    settings = dict(settings or {})
    sizes = {int(x.shape[0]) for x in items.values()}
    if len(sizes) != 1:
        raise ValueError(f"items must pair up, got batches {sorted(sizes)}")
    (b,) = sizes
    g = torch.Generator().manual_seed(seed)
    clean_codes = {n: encode_items(tokenizers[n], items[n], stages.get(n)) for n in layout.names}
    report: dict[str, Any] = {
        "n_items": b,
        "steps": steps,
        "cfg_scale": cfg_scale,
        "temperature": temperature,
        "settings": settings,
    }
    targets = repairable(tokenizers, layout)
    for index, name in enumerate(layout.names):
        tok, clean = tokenizers[name], items[name]
        modality = tok.modality
        if name not in targets:
            continue
        damaged, mask = modality.damage(clean, g, settings)
        runs = {"conditioned": {k: v for k, v in clean_codes.items() if k != name}, "unconditioned": None}
        common = dict(n_q=stages.get(name), steps=steps, cfg_scale=cfg_scale, temperature=temperature)
        out = {}
        for k, cond in runs.items():
            gen = torch.Generator().manual_seed(seed + 1 + index)
            if mask is not None:
                out[k] = inpaint(
                    prior, layout, tok, name, clean, mask, cond, dilation=dilation, generator=gen, **common
                )
            else:
                out[k] = enhance(
                    prior,
                    layout,
                    tok,
                    name,
                    damaged,
                    cond,
                    remask_fraction=remask_fraction,
                    remask_stages_from=remask_stages_from,
                    generator=gen,
                    **common,
                )
        first = out["conditioned"]
        ceiling = modality.repair_output(
            damaged, decode_items(tok, clean_codes[name], tuple(clean.shape[2:])), first.reencoded, mask
        )
        variants = {
            **{k: r.items for k, r in out.items()},
            **{f"{k}_decoded": r.decoded for k, r in out.items()},
            "damaged": damaged,
            "reencoded": first.reencoded,
            "tokenizer": ceiling,
        }
        if keep is not None:
            keep[name] = {"clean": clean, **variants}
        scores: dict[str, dict[str, float | None]] = {}
        for variant, x in variants.items():
            for figure, values in modality.repair_scores(x.to(clean.device), clean, damaged, mask).items():
                scores.setdefault(figure, {})[variant] = _num(values.float().nanmean())
        where = first.unknown if mask is not None else torch.ones_like(first.unknown)
        report[name] = {
            "mode": "inpaint" if mask is not None else "enhance",
            "damage": {**settings, **({"mask_fraction": _num(mask.float().mean())} if mask is not None else {})},
            "unknown_token_fraction": {k: _num(r.unknown.float().mean()) for k, r in out.items()},
            "scores": scores,
            "token_accuracy": {
                **{k: _accuracy(r.tokens, clean_codes[name], where) for k, r in out.items()},
                "damaged": _accuracy(first.damaged_tokens, clean_codes[name], where),
            },
        }
    return report


def repair_headline(report: Mapping[str, Any]) -> dict[str, float | None]:
    """Flat figures of an `evaluate_repair` report: ``<mode>_<figure>_<variant>`` (the segment's name in front
    where two segments share a mode) and ``<mode>_condition_gain`` (conditioned minus unconditioned)."""
    entries = {k: v for k, v in report.items() if isinstance(v, dict) and "mode" in v}
    modes = [v["mode"] for v in entries.values()]
    h: dict[str, float | None] = {}
    for name, entry in entries.items():
        prefix = entry["mode"] if modes.count(entry["mode"]) == 1 else f"{name}_{entry['mode']}"
        for figure, values in entry["scores"].items():
            for variant in ("conditioned", "unconditioned", "reencoded"):
                if variant in values:
                    h[f"{prefix}_{figure}_{variant}"] = values[variant]
        first = next(iter(entry["scores"].values()), {})
        cond, uncond = first.get("conditioned"), first.get("unconditioned")
        if cond is not None and uncond is not None:
            h[f"{prefix}_condition_gain"] = cond - uncond
    return h


__all__ = ["evaluate_repair", "repair_headline", "repairable"]
