"""Held-out evaluation of a tokenizer: reconstruction quality, codebook use and bitrate over a whole split.

Shared by the trainer (periodic and final evaluation) and `vqfuse evaluate`.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Subset

from vqfuse.modalities.base import Modality
from vqfuse.tokenizer import Tokenizer


def _inputs(batch: Any) -> Tensor:
    """Dataset items are tensors; tolerate (tensor, label) pairs."""
    return batch[0] if isinstance(batch, (list, tuple)) else batch


def _stage_counts(indices: Tensor, residual: bool, codebook_size: int) -> Tensor:
    """indices (B, *latent) or (B, n_q, *latent) -> code counts per stage, (n_stages, K)."""
    stages = indices.transpose(0, 1) if residual else indices.unsqueeze(0)  # (S, B, ...)
    return torch.stack([torch.bincount(s.reshape(-1), minlength=codebook_size) for s in stages])


@torch.no_grad()
def evaluate_tokenizer(
    model: Tokenizer,
    modality: Modality,
    dataset: Dataset,
    batch_size: int,
    meta: dict[str, Any],
    accelerator: Any | None = None,
) -> dict[str, float]:
    """Metrics averaged over every item of `dataset` (e.g. the test split).

    Returns the modality's metrics (e.g. psnr, ssim), "l1" and "mse" of reconstructions, "codebook_usage"
    (fraction of codes used by all the tokens of the split; mean over stages for residual quantizers),
    "perplexity" (of the split's code histogram), "tokens_per_item", "bits_per_item", and "bits_per_pixel"
    (images, video) or "kbps" (audio with a sample_rate in `meta`), plus "n_items".
    With an `accelerator` of several processes, each takes every world_size-th item and results are summed.
    """
    rank, world = (accelerator.process_index, accelerator.num_processes) if accelerator is not None else (0, 1)
    n_total = len(dataset)  # type: ignore[arg-type]
    if n_total == 0:
        raise ValueError("evaluation dataset is empty")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    own = list(range(rank, n_total, world))
    weight = 1.0 if own else 0.0  # a rank without items evaluates item 0 at weight 0 (same keys on every rank)
    shard = Subset(dataset, own or [0])
    loader = DataLoader(shard, batch_size=batch_size, shuffle=False, num_workers=0,
                        generator=torch.Generator().manual_seed(0))  # fmt: skip
    K = model.codebook_size
    sums: dict[str, Tensor] = {}
    counts = torch.zeros(0, K, dtype=torch.float64, device=device)
    n_items = torch.zeros((), dtype=torch.float64, device=device)
    tokens_per_item, item_shape = 0, None
    for batch in loader:
        x = _inputs(batch).to(device).float()  # (B, C, *spatial)
        out = model(x)
        x_hat = out.reconstruction.float()
        b = x.shape[0] * weight
        values = dict(modality.metrics(x_hat, x, meta))
        values["l1"] = float((x_hat.clamp(-1, 1) - x).abs().mean())
        values["mse"] = float((x_hat.clamp(-1, 1) - x).pow(2).mean())
        for k, v in values.items():
            sums[k] = sums.get(k, torch.zeros((), dtype=torch.float64, device=device)) + float(v) * b
        c = _stage_counts(out.quant.indices, model.is_residual, K).double() * weight
        counts = c if counts.numel() == 0 else counts + c
        n_items += b
        tokens_per_item, item_shape = out.quant.indices[0].numel(), tuple(x.shape[1:])
    if accelerator is not None and world > 1:
        keys = sorted(sums)  # the same on every rank
        packed = accelerator.reduce(torch.stack([sums[k] for k in keys]), "sum")
        sums = dict(zip(keys, packed))
        n_items = accelerator.reduce(n_items, "sum")
        counts = accelerator.reduce(counts, "sum")
    model.train(was_training)

    n = float(n_items)
    results = {k: float(v) / n for k, v in sorted(sums.items())}
    probs = counts / counts.sum(dim=1, keepdim=True).clamp_min(1)  # (S, K)
    entropy = -(probs * probs.clamp_min(1e-12).log()).sum(dim=1)  # (S,)
    results["codebook_usage"] = float((counts > 0).double().mean(dim=1).mean())
    results["perplexity"] = float(entropy.exp().mean())
    bits = tokens_per_item * math.log2(K)
    results.update(tokens_per_item=float(tokens_per_item), bits_per_item=bits)
    if item_shape is not None:
        points = math.prod(item_shape[1:])  # pixels (image), pixels x frames (video), samples (audio)
        if modality.dims in (2, 3):
            results["bits_per_pixel"] = bits / points
        elif meta.get("sample_rate"):
            results["kbps"] = bits / (points / float(meta["sample_rate"])) / 1000.0
    results["n_items"] = n
    return results


__all__ = ["evaluate_tokenizer"]
