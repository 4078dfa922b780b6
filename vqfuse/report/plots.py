"""PNG plots for reports: training curves, codebook usage, generic line plots.

Figures are drawn on matplotlib's Agg canvas directly (`matplotlib.figure.Figure`, no pyplot), so making a
report never changes the process's matplotlib backend (a notebook's inline plots keep working) and needs no
display.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from vqfuse.errors import InputFileError, PathLike

# train.jsonl keys that are bookkeeping, not curves
_SKIP = {"step", "kind", "skipped", "skipped_steps", "gan_weight"}
_PANELS: list[tuple[str, Any]] = [
    ("losses", None),  # everything not claimed by a later panel
    ("discriminator", lambda k: k in ("d", "r1", "lecam", "logits_real", "logits_fake")),
    ("codebook", lambda k: k in ("usage", "perplexity") or k.endswith("_usage") or k.endswith("_perplexity")),
    ("gradient norm", lambda k: "grad_norm" in k),
    ("learning rate", lambda k: k == "lr" or k.endswith("_lr")),
    ("throughput (items/s)", lambda k: k.endswith("_per_s")),
]


def _figure(n_panels: int, width: float = 4.6, height: float = 3.3) -> tuple[Any, list[Any]]:
    from matplotlib.figure import Figure

    cols = min(n_panels, 3)
    rows = math.ceil(n_panels / cols)
    fig = Figure(figsize=(width * cols, height * rows), dpi=100, layout="constrained")
    axes = [fig.add_subplot(rows, cols, i + 1) for i in range(n_panels)]
    return fig, axes


def _save(fig: Any, png_path: PathLike) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from vqfuse.io.atomic import atomic_path

    path = Path(png_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path


def _style(ax: Any, title: str, xlabel: str = "", ylabel: str = "") -> None:
    ax.set_title(title, fontsize=11)
    if xlabel:
        ax.set_xlabel(xlabel)
    if ylabel:
        ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3, which="both")
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def read_train_log(jsonl_path: PathLike, kind: str = "train") -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The numeric series of the `kind` rows of a train.jsonl: {key: (steps (N,), values (N,))}. Torn or
    foreign lines are skipped (a run that is still writing its log can be plotted)."""
    path = Path(jsonl_path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise InputFileError(path, f"cannot read the training log ({exc.strerror or exc})") from None
    series: dict[str, tuple[list[float], list[float]]] = {}
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if not isinstance(row, dict) or row.get("kind", "train") != kind or "step" not in row:
            continue
        for k, v in row.items():
            if k in _SKIP or isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                continue
            steps, values = series.setdefault(k, ([], []))
            steps.append(float(row["step"]))
            values.append(float(v))
    return {k: (np.asarray(s), np.asarray(v)) for k, (s, v) in series.items()}


def plot_training_curves(jsonl_path: PathLike, png_path: PathLike) -> Path:
    """Panels of the `"kind": "train"` rows of logs/train.jsonl: losses, discriminator, codebook usage /
    perplexity, gradient norms, learning rates, throughput (only those present; all-zero series, e.g. a GAN
    loss before the GAN starts, are left out). Log-y where a panel's values are positive and span more than a factor of 20."""
    series = {k: v for k, v in read_train_log(jsonl_path).items() if np.any(v[1] != 0)}
    if not series:
        raise InputFileError(jsonl_path, 'no "kind": "train" rows with numbers to plot')
    panels: dict[str, list[str]] = {title: [] for title, _ in _PANELS}
    for key in series:
        title = next((t for t, claims in _PANELS[1:] if claims(key)), _PANELS[0][0])
        panels[title].append(key)
    panels = {t: keys for t, keys in panels.items() if keys}
    fig, axes = _figure(len(panels))
    for ax, (title, keys) in zip(axes, panels.items()):
        twin = None
        for key in keys:
            steps, values = series[key]
            if title == "codebook" and key.endswith("perplexity") and len(keys) > 1:  # another scale than usage
                twin = twin or ax.twinx()
                twin.plot(steps, values, label=key, color="tab:orange", lw=1.5)
                twin.set_ylabel("perplexity")
                continue
            ax.plot(steps, values, label=key, lw=1.5, marker="o" if len(steps) < 12 else None, ms=3)
        values = np.concatenate([series[k][1] for k in keys if not (twin is not None and k.endswith("perplexity"))])
        if np.all(values > 0) and values.max() / values.min() > 20:
            ax.set_yscale("log")
        _style(ax, title, xlabel="step")
        handles, labels = ax.get_legend_handles_labels()
        if twin is not None:
            h2, l2 = twin.get_legend_handles_labels()
            handles, labels = handles + h2, labels + l2
        if len(labels) > 1 or title == "losses":
            ax.legend(handles, labels, fontsize=8, frameon=False)
    return _save(fig, png_path)


def plot_code_usage(counts: list[np.ndarray], png_path: PathLike, title: str | None = None) -> Path:
    """How the codes of each quantizer stage are used: per stage (counts[s] of shape (K_s,), tokens per code)
    the share of tokens of each code, sorted from the most used down (log y), and the per-code counts in
    code order for the first stages. The title gives the % of codes used (mean over stages)."""
    if not counts:
        raise ValueError("plot_code_usage needs the counts of at least one stage")
    counts = [np.asarray(c, dtype=np.float64).reshape(-1) for c in counts]
    used = [float((c > 0).mean()) for c in counts]
    fig, (ax_sorted, ax_codes) = _figure(2, width=5.6)
    for s, c in enumerate(counts):
        share = np.sort(c)[::-1] / max(c.sum(), 1.0)
        label = f"stage {s + 1}: {100 * used[s]:.0f}% of {len(c)} used" if len(counts) > 1 else f"{len(c)} codes"
        ax_sorted.plot(np.arange(1, len(c) + 1), np.where(share > 0, share, np.nan), label=label, lw=1.5)
    ax_sorted.set_yscale("log")
    _style(ax_sorted, "share of tokens per code, most used first", "code rank", "share of tokens")
    ax_sorted.legend(fontsize=8, frameon=False)
    for s, c in enumerate(counts[:3]):
        # a step line, not one bar (or patch) per code: tens of thousands of bars take minutes to draw
        ax_codes.plot(np.arange(len(c)), c, drawstyle="steps-mid", lw=0.8, label=f"stage {s + 1}")
    _style(ax_codes, "tokens per code" + (" (first stages)" if len(counts) > 3 else ""), "code index", "tokens")
    if len(counts) > 1:
        ax_codes.legend(fontsize=8, frameon=False)
    mean = 100 * sum(used) / len(used)
    head = f"{mean:.1f}% of codes used" + (f" (mean of {len(counts)} stages)" if len(counts) > 1 else "")
    fig.suptitle(f"{title}: {head}" if title else head, fontsize=12)
    return _save(fig, png_path)


def plot_lines(
    x: Sequence[float],
    series: dict[str, list[float]],
    png_path: PathLike,
    xlabel: str = "",
    ylabel: str = "",
    title: str = "",
) -> Path:
    """One panel of named lines over a shared x (e.g. accuracy vs noise level, quality vs bitrate)."""
    if not series:
        raise ValueError("plot_lines needs at least one series")
    xs = np.asarray(list(x), dtype=np.float64)
    fig, (ax,) = _figure(1, width=6.4, height=4.2)
    for name, ys in series.items():
        ys = np.asarray(list(ys), dtype=np.float64)
        if ys.shape != xs.shape:
            raise ValueError(f"series {name!r} has {ys.size} values for {xs.size} x values")
        ax.plot(xs, ys, marker="o", ms=4, lw=1.8, label=name)
    _style(ax, title, xlabel, ylabel)
    if len(series) > 1:
        ax.legend(fontsize=9, frameon=False)
    return _save(fig, png_path)


__all__ = ["plot_training_curves", "plot_code_usage", "plot_lines", "read_train_log"]
