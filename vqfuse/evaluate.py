"""Describing and evaluating a tokenizer: `model_info`, held-out metrics over a whole split, reports.

`evaluate_tokenizer` is shared by the trainer (periodic and final evaluation) and `vqfuse evaluate`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Subset

from vqfuse.errors import ConfigError, PathLike
from vqfuse.io.atomic import atomic_write_json, atomic_write_text
from vqfuse.io.weights import to_jsonable
from vqfuse.modalities.base import Modality
from vqfuse.tokenizer import Tokenizer, resolve_model_dir


def _inputs(batch: Any) -> Tensor:
    """Dataset items are tensors; tolerate (tensor, label) pairs."""
    return batch[0] if isinstance(batch, (list, tuple)) else batch


def stage_counts(codes: Tensor, codebook_size: int) -> Tensor:
    """codes (B, S, *latent) -> code counts per stage, (S, K)."""
    return torch.stack([torch.bincount(s.reshape(-1), minlength=codebook_size) for s in codes.transpose(0, 1)])


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
    "perplexity" (of the split's code histogram), "tokens_per_item", "bits_per_item", the rate under the
    modality's `rate_key` ("bits_per_pixel", "kbps" ...), plus "n_items".
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
    loader = DataLoader(
        shard, batch_size=batch_size, shuffle=False, num_workers=0, generator=torch.Generator().manual_seed(0)
    )
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
        c = stage_counts(model.quantizer.to_stages(out.quant.indices), K).double() * weight
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
        results[modality.rate_key] = modality.rate(bits, modality.extent(item_shape[1:], meta))
    results["n_items"] = n
    return results


def model_info(model: Tokenizer | PathLike) -> dict[str, Any]:
    """Facts about a tokenizer: id, modality, codebook, downsampling, rates, tokens and bits per item."""
    model = model if isinstance(model, Tokenizer) else Tokenizer.from_pretrained(model)
    modality, sizes = model.modality, model.stage_sizes()
    info: dict[str, Any] = {
        "model_id": model.model_id,
        "modality": model.config.modality,
        "quantizer": model.config.quantizer.get("kind", "?"),
        "codebook_size": int(model.codebook_size),
        "stages": len(sizes),
        "downsample_factors": list(model.downsample_factors),
        "parameters": sum(p.numel() for p in model.parameters()),
        "rates": model.rates(),
        "rate_unit": modality.rate_unit,
        "frames_per_second": model.frame_rate,
        **modality.info_rows(model.meta),
    }
    shape = modality.item_shape(model.meta)
    if shape is not None:
        latent = math.prod(math.ceil(n / f) for n, f in zip(shape, model.downsample_factors))
        bits = latent * sum(math.log2(k) for k in sizes)
        info.update(
            item_shape=list(shape),
            tokens_per_item=latent * len(sizes),
            bits_per_item=bits,
            rate=modality.rate_text(bits, modality.extent(shape, model.meta)),
        )
    info["config"] = model.config.to_dict() | {"model_id": model.model_id}
    return info


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            flat.update(_flatten(v, f"{prefix}{k}."))
        else:
            flat[f"{prefix}{k}"] = v
    return flat


def format_value(v: Any) -> str:
    """A table cell: floats to 4 significant digits, lists joined."""
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (list, tuple)):
        return ", ".join(format_value(x) for x in v)
    return str(v)


def markdown_table(headers: tuple[str, ...], rows: list[tuple[Any, ...]]) -> list[str]:
    """Lines of a markdown table; cells through `format_value`."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    return lines + ["| " + " | ".join(format_value(v) for v in row) + " |" for row in rows]


def evaluation_markdown(report: dict[str, Any]) -> str:
    """A markdown table of an evaluation report (``metrics`` flattened to dotted names)."""
    lines = [
        f"Model `{report['model_id']}` ({report['modality']}) on `{report['dataset']}`, split `{report['split']}`",
        "",
    ]
    lines += markdown_table(("metric", "value"), list(_flatten(report["metrics"]).items()))
    if report.get("attribution"):
        lines += ["", report["attribution"]]
    return "\n".join(lines) + "\n"


def metrics_markdown(metrics: dict[str, Any]) -> str:
    """A tokenizer run's metrics.json as a short markdown report."""
    lines = [
        f"# {metrics['name']}: held-out metrics",
        "",
        f"{metrics['modality']} tokenizer trained on `{metrics['dataset']}` for {metrics['steps']} steps.",
        "",
    ]
    lines += markdown_table(("metric", "value"), list(metrics["heldout"].items()))
    lines += [""] + markdown_table(
        ("training", "value"),
        [
            (k, metrics[k])
            for k in (
                "steps",
                "skipped_steps",
                "train_items_per_s",
                "train_time_s",
                "wall_time_s",
                "processes",
                "ema",
                "model_id",
            )
        ],
    )
    if metrics.get("attribution"):
        lines += ["", f"Data: {metrics['attribution']}"]
    return "\n".join(lines) + "\n"


def evaluate_model(
    model: Tokenizer | PathLike,
    data: str | None = None,
    split: str = "test",
    out: PathLike | None = None,
    batch_size: int = 64,
) -> tuple[dict[str, Any], list[Path]]:
    """Evaluate on a dataset (default: the one the model was trained on, held-out split) and write
    ``evaluation.json`` and ``evaluation.md`` into ``out`` (default: the model's run directory).

    Returns (report, written paths); ``report["metrics"]`` is what ``evaluate_tokenizer`` returned.
    """
    model_dir = None if isinstance(model, Tokenizer) else resolve_model_dir(model)
    model = model.eval() if isinstance(model, Tokenizer) else Tokenizer.from_pretrained(model)
    meta = model.meta
    spec = data or meta.get("dataset")
    if not spec:
        raise ConfigError("the model does not record the dataset it was trained on; pass --data SPEC")
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {batch_size}")
    modality = model.modality
    dataset = modality.dataset(spec, split, modality.data_section(meta, spec))
    if len(dataset) == 0:  # type: ignore[arg-type]
        raise ConfigError(f"the '{split}' split of dataset '{spec}' is empty")
    metrics = evaluate_tokenizer(model, modality, dataset, batch_size, meta)
    report = {
        "model_id": model.model_id,
        "modality": model.config.modality,
        "dataset": spec,
        "split": split,
        "items": len(dataset),  # type: ignore[arg-type]
        "metrics": to_jsonable(metrics),
    }
    attribution = modality.meta(modality.data_section(meta, spec)).get("attribution")  # of the data evaluated on
    if attribution:
        report["attribution"] = attribution
    if out is None:
        if model_dir is None:
            raise ConfigError("pass out=... to evaluate_model when giving a Tokenizer object")
        out = model_dir.parent if model_dir.name == "model" else model_dir
    out = Path(out)
    paths = [out / "evaluation.json", out / "evaluation.md"]
    atomic_write_json(paths[0], report)
    atomic_write_text(paths[1], evaluation_markdown(report))
    return report, paths


__all__ = [
    "stage_counts",
    "evaluate_tokenizer",
    "model_info",
    "evaluate_model",
    "evaluation_markdown",
    "metrics_markdown",
    "markdown_table",
    "format_value",
]
