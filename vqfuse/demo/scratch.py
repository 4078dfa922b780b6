"""A small model of each kind trained from scratch inside the demo's wall-clock budget, so a new user sees
training work: the preset, fewer steps, `train.max_minutes` as the hard stop. Each run is an ordinary run
directory (resumable, loadable) under `<demo>/scratch/<kind>`, and its report section shows the training
curves, the held-out samples the trainer wrote and its held-out metrics."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from vqfuse.demo.context import DemoContext


@dataclass(frozen=True)
class ScratchRun:
    """One kind trained from scratch: `preset` plus demo-sized `overrides`; `{steps}` / `{quarter}` in them
    are filled with the demo's step count (and a quarter of it), `{av_digits_image}` with the shipped
    av-digits image tokenizer, `{fusion_items}` with the demo's cap on encoded pairs."""

    kind: str
    preset: str
    title: str
    overrides: tuple[str, ...] = ()


SCRATCH_RUNS: tuple[ScratchRun, ...] = (
    ScratchRun("image", "image-emoji32", "an image VQ-GAN on emoji (32x32)", ("train.sample_every=0",)),
    ScratchRun(
        "audio",
        "audio-speech16k",
        "the spectral speech codec",
        # short windows and a quantizer warm-up scaled to the run: the preset's 500-step warm-up would outlast it
        (
            "batch_size=8",
            "data.segment_seconds=0.5",
            "train.quantizer_bypass_steps={quarter}",
            "train.warmup_steps=20",
            "train.sample_every=0",
        ),
    ),  # fmt: skip
    ScratchRun(
        "video", "video-moving-digits", "a causal 3D video tokenizer on Moving MNIST", ("train.sample_every=0",)
    ),
    ScratchRun(
        "fusion",
        "fusion-av-digits",
        "a fusion prior over the pretrained tokenizers' codes of digit images and spoken digits",
        ("tokenizers.image={{model: {av_digits_image}}}", "prior.max_items={fusion_items}", "train.warmup_steps=20"),
    ),
)


def _overrides(ctx: DemoContext, run: ScratchRun, out: Path) -> list[str]:
    from vqfuse.pretrained import resolve_run_dir

    steps = ctx.size.train_steps[run.kind]
    fill = {
        "steps": steps,
        "quarter": max(1, steps // 4),
        "av_digits_image": resolve_run_dir("av-digits") / "tokenizers" / "image",  # the shipped image tokenizer
        "fusion_items": ctx.size.fusion_items,
    }
    extra = [o.format(**fill) for o in run.overrides]
    log_every = max(1, min(20, steps // 25))  # enough points for a curve even when the budget stops it early
    return [*extra, f"steps={steps}", f"train.log_every={log_every}", f"train.max_minutes={ctx.size.train_minutes}",
            f"out={out}"]  # fmt: skip


def train_scratch(ctx: DemoContext, run: ScratchRun) -> Path:
    """Train (or reuse a finished) `run` into `<demo>/scratch/<kind>`; adds its report section."""
    from vqfuse.train.checkpoint import latest_checkpoint
    from vqfuse.train.config import load_config

    out = ctx.out / "scratch" / run.kind
    config = load_config(run.preset, _overrides(ctx, run, out))
    done = (out / ("fusion.json" if config.task == "fusion" else "model/config.json")).is_file()
    start = time.perf_counter()
    if done:
        ctx.log(f"[scratch {run.kind}] reusing the run in {out} (delete it to train again)")
    elif config.task == "fusion":
        from vqfuse.fusion.pipeline import train_fusion

        train_fusion(config, resume=latest_checkpoint(out / "checkpoints") is not None, progress=ctx.progress)
    else:
        from vqfuse.train.trainer import train

        train(config, resume=latest_checkpoint(out / "checkpoints") is not None, progress=ctx.progress)
    add_run_section(ctx, run, out, time.perf_counter() - start, reused=done)
    return out


def add_run_section(ctx: DemoContext, run: ScratchRun, out: Path, seconds: float, reused: bool) -> None:
    """Curves, the trainer's held-out samples and metrics of one scratch run."""
    from vqfuse.io.weights import load_json
    from vqfuse.report import Table
    from vqfuse.report.parts import add_curves

    metrics = load_json(out / "metrics.json") if (out / "metrics.json").is_file() else {}
    steps = metrics.get("steps", "?")
    when = "reused from an earlier demo run" if reused else f"{seconds:.0f} s of wall time here"
    sec = ctx.report.add_section(
        f"Trained here from scratch: {run.title}",
        text=f"`vqfuse train {run.preset} steps={ctx.size.train_steps[run.kind]} "
        f"train.max_minutes={ctx.size.train_minutes:g}`: {steps} steps, {when}. A model this short is "
        "rough; the pretrained sections above show the same recipe trained to the end.",
    )
    add_curves(sec, out, ctx.out, name=f"scratch-{run.kind}-curves.png")
    for sample in sorted((out / "samples").glob("final.*")) + sorted((out / "evaluation").glob("*.png"))[:2]:
        if sample.suffix in (".png", ".gif"):
            sec.add_image(ctx.rel(sample), caption="held-out inputs above their reconstructions")
    if (out / "metrics.md").is_file():
        sec.add_table(Table.from_markdown((out / "metrics.md").read_text()))


__all__ = ["ScratchRun", "SCRATCH_RUNS", "train_scratch"]
