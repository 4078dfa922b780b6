"""Robustness of fused classifiers under pixel-space degradations (MultiBench-style), and `analyze`, the whole
classification study (see vqfuse.fusion.classifiers for the inputs and classifiers)."""

from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from vqfuse.fusion.classifier_training import accuracy, evaluate_classifiers, fit_classifiers
from vqfuse.fusion.classifiers import DEGRADATIONS, LEVELS, Classifier, TokenClassifier, Tokens, check_codes

# ----------------------------------------------------------------------------------------------
# Pixel-space degradations


def degrade(
    images: Tensor,
    kind: str,
    level: float,
    generator: torch.Generator | None = None,
    fill: float = -1.0,
    clamp: bool = True,
) -> Tensor:
    """Degrade images (N, C, H, W) in [-1, 1]; returns a new tensor of the same shape.

    - "noise": add Gaussian noise of standard deviation ``level`` (then clip to [-1, 1] if ``clamp``).
    - "dropout": each pixel (all channels together) is set to ``fill`` with probability ``level``.
    - "occlusion": one square per image at a random position, covering ``level`` of the area
      (side ``round(sqrt(level) * min(H, W))``), set to ``fill``.

    ``fill`` -1 is black (pixel value 0): "zeroed" in the usual [0, 1] pixel convention.
    """
    if images.dim() != 4:
        raise ValueError(f"images must be (N, C, H, W), got {tuple(images.shape)}")
    if not 0.0 <= level <= 1.0 and kind != "noise":
        raise ValueError(f"{kind} level must be in [0, 1], got {level}")
    if kind == "noise" and level < 0:
        raise ValueError(f"noise level (std) must be >= 0, got {level}")
    x = images.float().clone()
    n, _, h, w = x.shape
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    if kind == "noise":
        x = x + float(level) * torch.randn(x.shape, generator=gen).to(x.device)
        return x.clamp(-1.0, 1.0) if clamp else x
    if kind == "dropout":
        mask = (torch.rand(n, 1, h, w, generator=gen) < level).to(x.device)  # (N, 1, H, W)
        return x.masked_fill(mask, fill)
    if kind == "occlusion":
        side = int(round(math.sqrt(level) * min(h, w)))
        if side == 0:
            return x
        top = torch.randint(0, h - side + 1, (n,), generator=gen)
        left = torch.randint(0, w - side + 1, (n,), generator=gen)
        rows, cols = torch.arange(h), torch.arange(w)
        mask = ((rows[None] >= top[:, None]) & (rows[None] < (top + side)[:, None]))[:, :, None] & (
            (cols[None] >= left[:, None]) & (cols[None] < (left + side)[:, None])
        )[:, None, :]  # (N, H, W)
        return x.masked_fill(mask[:, None].to(x.device), fill)
    raise ValueError(f"unknown degradation {kind!r}; expected one of {DEGRADATIONS}")


# ----------------------------------------------------------------------------------------------
# Robustness measures


def _area(levels: Sequence[float], values: Sequence[float]) -> float:
    """Trapezoid area under ``values`` over ``levels`` divided by the level range (the curve's mean height)."""
    x, v = np.asarray(levels, np.float64), np.asarray(values, np.float64)
    if x.shape != v.shape or x.ndim != 1 or len(x) < 2:
        raise ValueError(f"need matching 1-D levels and values with >= 2 points, got {x.shape} and {v.shape}")
    if np.any(np.diff(x) <= 0):
        raise ValueError("levels must be strictly increasing")
    area = float(np.sum((v[1:] + v[:-1]) / 2 * np.diff(x)))
    return area / float(x[-1] - x[0])


def relative_robustness(levels: Sequence[float], accuracies: Sequence[float]) -> float:
    """MultiBench relative robustness: area under accuracy-vs-level (trapezoid) over the level range.

    For levels 0..1 this is the plain area; a constant curve gives that constant.
    """
    return _area(levels, accuracies)


def effective_robustness(
    levels: Sequence[float], accuracies: Sequence[float], reference: Sequence[float]
) -> dict[str, Any]:
    """Accuracy minus a reference's (late fusion) per level, and the area of that difference (as above)."""
    diff = [float(a) - float(r) for a, r in zip(accuracies, reference, strict=True)]
    return {"per_level": diff, "area": _area(levels, diff)}


def degraded_views(
    images: Tensor,
    tokenize: Callable[[Tensor], Tensor],
    degradations: Sequence[str] = DEGRADATIONS,
    levels: Sequence[float] = (0.25, 0.5, 0.75, 1.0),
    seed: int = 0,
    batch_size: int = 256,
    fill: float = -1.0,
) -> Tensor:
    """Codes of degraded copies of training images (N, C, H, W), one view per (degradation, level):
    (V, N, S, *latent) with V = len(degradations) * len(levels), ``tokenize`` giving (B, S, *latent). The draws
    use their own seed stream (not the robustness sweep's), for ``train_token_classifier``'s ``views``."""
    views = []
    for d_index, kind in enumerate(degradations):
        for l_index, level in enumerate(levels):
            gen = torch.Generator().manual_seed(seed * 1_000_003 + 500_000 + d_index * 1000 + l_index)
            bad = degrade(images, kind, float(level), generator=gen, fill=fill)
            views.append(check_codes(_tokenize_in_batches(tokenize, bad, batch_size)))
    if not views:
        raise ValueError("degraded_views needs at least one degradation and one level")
    return torch.stack(views)  # (V, N, S, *latent)


def _tokenize_in_batches(tokenize: Callable[[Tensor], Tensor], images: Tensor, batch_size: int) -> Tensor:
    with torch.no_grad():
        return torch.cat(
            [torch.as_tensor(tokenize(images[i : i + batch_size])).cpu() for i in range(0, len(images), batch_size)]
        )


def robustness_sweep(
    classifiers: Mapping[str, Classifier],
    images: Tensor,
    tokens: Tokens,
    labels: Tensor,
    tokenize: Callable[[Tensor], Tensor],
    degraded: str,
    degradations: Sequence[str] = DEGRADATIONS,
    levels: Sequence[float] = LEVELS,
    reference: str | None = "late",
    seed: int = 0,
    batch_size: int = 256,
    fill: float = -1.0,
) -> dict[str, Any]:
    """Accuracy of each classifier on one modality's images degraded in pixel space, re-tokenized by ``tokenize``.

    Args:
        classifiers: ``{name: classifier}`` (e.g. from :func:`fit_classifiers`).
        images: clean test images (N, C, H, W) in [-1, 1] of modality ``degraded``; ``tokens`` (the other
            modalities' clean codes, ``{m: (N, S, *latent)}``) and labels (N,) match them.
        tokenize: images (B, C, H, W) -> codes (B, S, *latent), e.g. a trained tokenizer's ``encode_codes``.
        degradations, levels: what to sweep (levels increasing; 0..1 in steps of 0.1 by default).
        reference: classifier that effective robustness is measured against (skipped when absent or None).
        seed: the degradations' random draws (same draws for every classifier).

    Returns a JSON-able dict::

        {"levels": [...], "classifiers": [...], "reference": "late", "n": N,
         "degradations": {kind: {"accuracy": {name: [...]}, "relative_robustness": {name: float},
                                 "effective_robustness": {name: {"per_level": [...], "area": float}}}}}
    """
    levels = [float(v) for v in levels]
    clean = {m: check_codes(t, name=m) for m, t in tokens.items() if m != degraded}
    y = torch.as_tensor(labels).long().reshape(-1)
    sizes = {len(images), len(y), *(len(t) for t in clean.values() if t is not None)}
    if len(sizes) != 1:
        raise ValueError(f"{len(images)} images, {len(y)} labels and other tokens of {sorted(sizes)} items")
    names = list(classifiers)
    ref = reference if reference in classifiers else None
    result: dict[str, Any] = {"levels": levels, "classifiers": names, "reference": ref, "n": len(y), "degradations": {}}
    for d_index, kind in enumerate(degradations):
        curves: dict[str, list[float]] = {name: [] for name in names}
        for l_index, level in enumerate(levels):
            gen = torch.Generator().manual_seed(seed * 1_000_003 + d_index * 1000 + l_index)
            bad = degrade(images, kind, level, generator=gen, fill=fill)  # (N, C, H, W)
            codes = check_codes(_tokenize_in_batches(tokenize, bad, batch_size), name=degraded)  # (N, S, *latent)
            for name, model in classifiers.items():
                curves[name].append(accuracy(model, {degraded: codes, **clean}, y))
        entry: dict[str, Any] = {
            "accuracy": curves,
            "relative_robustness": {name: relative_robustness(levels, curves[name]) for name in names},
        }
        if ref is not None:
            entry["effective_robustness"] = {
                name: effective_robustness(levels, curves[name], curves[ref]) for name in names if name != ref
            }
        result["degradations"][kind] = entry
    return result


def plot_robustness(result: Mapping[str, Any], path: str | Path, title: str | None = None) -> Path:
    """Write accuracy-vs-level curves of a :func:`robustness_sweep` result to a PNG: one panel per degradation,
    one line per classifier (legend: relative robustness)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    kinds = list(result["degradations"])
    if not kinds:
        raise ValueError("the result has no degradations to plot")
    fig = Figure(figsize=(4.2 * len(kinds), 3.6))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(kinds), squeeze=False)[0]
    levels = result["levels"]
    for ax, kind in zip(axes, kinds):
        entry = result["degradations"][kind]
        for name, curve in entry["accuracy"].items():
            rr = entry["relative_robustness"][name]
            ax.plot(levels, curve, marker="o", markersize=3, label=f"{name} (RR {rr:.2f})")
        ax.set_title(kind)
        ax.set_xlabel("level")
        ax.set_ylabel("accuracy")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path


def analyze(
    train_tokens: Tokens,
    train_labels: Tensor,
    test_tokens: Tokens,
    test_labels: Tensor,
    vocabs: Mapping[str, int],
    test_images: Tensor | None = None,
    tokenize: Callable[[Tensor], Tensor] | None = None,
    degraded: str | None = None,
    kinds: Sequence[str] | None = None,
    steps: int = 300,
    seed: int = 0,
    levels: Sequence[float] = LEVELS,
    degradations: Sequence[str] = DEGRADATIONS,
    plot_path: str | Path | None = None,
    train_views: Mapping[str, Tensor] | None = None,
    **config: Any,
) -> dict[str, Any]:
    """Fit the classifiers on train tokens (and ``train_views``, degraded tokenizations of training items, see
    :func:`degraded_views`), evaluate them (all modalities and each missing) on test tokens and, given
    ``test_images`` of modality ``degraded`` and its ``tokenize``, run the robustness sweep (and plot it to
    ``plot_path``).

    Returns ``{"classifiers": {name: config}, "accuracy": ..., "robustness": ... or None}`` (JSON-able).
    """
    kinds = tuple(kinds) if kinds is not None else (*vocabs, "early", "early_shared", "late")
    models = fit_classifiers(
        train_tokens, train_labels, vocabs, kinds=kinds, steps=steps, seed=seed, views=train_views, **config
    )
    report: dict[str, Any] = {
        "classifiers": {
            name: (asdict(m.config) if isinstance(m, TokenClassifier) else dict(m.config)) for name, m in models.items()
        },
        "accuracy": evaluate_classifiers(models, test_tokens, test_labels),
        "robustness": None,
    }
    for m in report["classifiers"].values():
        if "shapes" in m:
            m["shapes"] = {k: list(v) for k, v in m["shapes"].items()}
    if test_images is not None and tokenize is not None and degraded is not None:
        report["robustness"] = robustness_sweep(
            models,
            test_images,
            test_tokens,
            test_labels,
            tokenize,
            degraded,
            degradations=degradations,
            levels=levels,
            seed=seed,
        )
        if plot_path is not None:
            plot_robustness(report["robustness"], plot_path)
    return report


__all__ = [
    "degrade",
    "degraded_views",
    "relative_robustness",
    "effective_robustness",
    "robustness_sweep",
    "plot_robustness",
    "analyze",
]
