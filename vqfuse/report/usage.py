"""Codebook usage of a tokenizer run: per-stage code counts over held-out items, and its report section."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from vqfuse.report.model import Report
from vqfuse.report.parts import ASSETS, rel

MAX_USAGE_ITEMS = 64  # held-out items encoded for the codebook-usage histogram
USAGE_ELEMENTS = 4_000_000  # ... fewer for large items (video): about this many input values in all


def code_counts(tok: Any, data: dict[str, Any] | None = None, max_items: int = MAX_USAGE_ITEMS) -> tuple[list, int]:
    """Per-stage code counts [(K_s,) int64] over up to `max_items` items of the model's held-out split
    (`data`: the run's data section; default: what the model records). Returns (counts, items encoded)."""
    import torch

    from vqfuse.evaluate import stage_counts
    from vqfuse.train.batches import first_tensor

    modality, meta = tok.modality, tok.meta
    if data and data.get("train"):
        spec, data = str(data["train"]), dict(data)
    else:
        spec = meta.get("dataset")
        if not spec:
            raise ValueError("the model records no dataset")
        data = modality.data_section(meta, spec)
    dataset = modality.dataset(spec, "test", data)
    first = first_tensor(dataset[0])
    n = min(len(dataset), max_items, max(4, USAGE_ELEMENTS // max(1, first.numel())))  # type: ignore[arg-type]
    sizes = [int(k) for k in tok.stage_sizes()]
    counts = [np.zeros(k, dtype=np.int64) for k in sizes]
    device = next(tok.parameters()).device
    with torch.no_grad():
        for start in range(0, n, 16):
            x = torch.stack([first_tensor(dataset[i]) for i in range(start, min(n, start + 16))]).float()
            codes = tok.encode_codes(x.to(device)).cpu()  # (B, S, *latent)
            for s, c in enumerate(stage_counts(codes, max(sizes)).numpy()):
                counts[s] += c[: sizes[s]]
    return counts, n


def usage_section(rep: Report, tok: Any, cfg: dict[str, Any], out: Path) -> None:
    from vqfuse.report.plots import plot_code_usage

    sec = rep.add_section("Codebook usage")
    try:
        counts, n = code_counts(tok, cfg.get("data"))
    except Exception as exc:  # e.g. a folder dataset that has moved: the rest of the report still stands
        sec.add_text(f"The held-out items could not be encoded, so code usage is not shown: {exc}")
        return
    png = plot_code_usage(counts, out / ASSETS / "code-usage.png", title=f"{n} held-out items")
    used = [int((c > 0).sum()) for c in counts]
    text = ", ".join(f"{u} of {len(c)}" for u, c in zip(used, counts))
    sec.add_text(
        f"Codes of {n} items of the held-out split, encoded by the final model: {text} codes used"
        + (" (per residual stage)." if len(counts) > 1 else ".")
        + " A code that is never used is wasted rate; the held-out metrics give the usage over the whole split."
    )
    sec.add_image(rel(png, out), caption="code usage per quantizer stage")


__all__ = ["code_counts", "usage_section", "MAX_USAGE_ITEMS"]
