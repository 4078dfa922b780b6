"""`vqfuse demo`: the README's main job, as a list of stages that later modalities extend.

Each stage trains one preset on built-in data into `<out>/<name>/` (the trainer writes `model/`,
`samples/final.png` and the held-out `metrics.md`), then reports where everything is. Running the demo
again reuses a finished stage and resumes an interrupted one. Audio and video add a `DemoStage` to
`DEMO_STAGES`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from vqfuse.errors import ConfigError, PathLike

Log = Callable[[str], None]


@dataclass(frozen=True)
class DemoStage:
    """One demo job: train `preset` into `<out>/<name>`; `credit` is printed under its results (data licence)."""

    name: str
    preset: str
    credit: str = ""
    overrides: tuple[str, ...] = ()  # demo-sized settings on top of the preset (the user's --steps wins)
    bitrate_examples: bool = False  # write held-out clips decoded at each bitrate under `<run>/listen/`


@dataclass
class DemoResult:
    stage: DemoStage
    run_dir: Path
    model_dir: Path
    samples: list[Path]
    metrics: list[Path]
    metrics_text: str


def _openmoji_credit() -> str:
    from vqfuse.data.emoji import OPENMOJI_ATTRIBUTION

    return f"Data: OpenMoji emoji. {OPENMOJI_ATTRIBUTION}"


DEMO_STAGES: list[DemoStage] = [
    DemoStage("image-emoji32", "image-emoji32", credit="openmoji"),
    # The speech codec at demo size: 0.5 s windows, batch 8, a quantizer warm-up that fits 600 steps.
    DemoStage(
        "audio-speech16k",
        "audio-speech16k",
        overrides=("steps=600", "batch_size=8", "data.segment_seconds=0.5", "train.quantizer_bypass_steps=150"),
        bitrate_examples=True,
    ),
    DemoStage("fusion-av-digits", "fusion-av-digits"),
]
CREDITS: dict[str, Callable[[], str]] = {"openmoji": _openmoji_credit}


def select_stages(names: list[str] | None) -> list[DemoStage]:
    """The stages named (all when none); an unknown name is a ConfigError listing the known ones."""
    if not names:
        return list(DEMO_STAGES)
    known = {s.name: s for s in DEMO_STAGES}
    for name in names:
        if name not in known:
            raise ConfigError(f"unknown demo stage '{name}'; choose from {', '.join(known)}")
    return [known[n] for n in names]


def _complete_checkpoint(run_dir: Path) -> bool:
    from vqfuse.train.checkpoint import latest_checkpoint

    return latest_checkpoint(run_dir / "checkpoints") is not None


def run_stage(stage: DemoStage, out: PathLike, steps: int | None, progress: bool, log: Log) -> DemoResult:
    """Train one stage (or reuse / resume what is there) and collect its model, samples and metrics."""
    from vqfuse.evaluate import evaluate_model
    from vqfuse.tokenizer import resolve_model_dir
    from vqfuse.train.config import load_config

    overrides = [*stage.overrides, f"out={Path(out) / stage.name}"] + ([f"steps={steps}"] if steps is not None else [])
    config = load_config(stage.preset, overrides)
    if config.task == "fusion":
        if steps is not None:  # --steps sizes the whole stage: both tokenizers and the prior
            config = load_config(
                stage.preset, [*overrides, f"tokenizers.image.steps={steps}", f"tokenizers.audio.steps={steps}"]
            )
        return run_fusion_stage(stage, config, progress, log)
    run_dir = Path(config.out)
    if (run_dir / "model" / "config.json").is_file():
        log(f"[{stage.name}] using the model already trained in {run_dir} (delete it or pass --out to train again)")
    else:
        from vqfuse.train.trainer import train

        resume = _complete_checkpoint(run_dir)
        verb = "resuming" if resume else "training"
        log(f"[{stage.name}] {verb} {config.train.steps} steps on '{config.data.get('train')}' -> {run_dir}")
        run_dir = Path(train(config, resume=resume, progress=progress))
    model_dir = resolve_model_dir(run_dir)
    md = run_dir / "metrics.md"  # written by the trainer: held-out metrics of the final model
    metrics = [md, run_dir / "metrics.json"]
    if not md.is_file():  # e.g. a model trained elsewhere: evaluate it here
        log(f"[{stage.name}] evaluating on the held-out split")
        _, metrics = evaluate_model(model_dir, out=run_dir)
        md = metrics[-1]
    samples = sorted((run_dir / "samples").glob("final.*"))
    if stage.bitrate_examples:
        samples += write_bitrate_examples(model_dir, run_dir / "listen")
    return DemoResult(stage, run_dir, model_dir, samples, [p for p in metrics if p.is_file()], md.read_text())


def run_fusion_stage(stage: DemoStage, config: Any, progress: bool, log: Log) -> DemoResult:
    """Train (or reuse / resume) a fusion run, then generate speech -> image and image -> speech on held-out
    pairs and judge them (the `coherence` part of `vqfuse evaluate`)."""
    from vqfuse.fusion.evaluate import FusionEvalConfig, evaluate_fusion
    from vqfuse.fusion.pipeline import train_fusion

    run_dir = Path(config.out)
    if (run_dir / "fusion.json").is_file():
        log(
            f"[{stage.name}] using the fusion model already trained in {run_dir} (delete it or pass --out to train again)"
        )
    else:
        log(f"[{stage.name}] training the tokenizers it needs, then a {config.train.steps}-step prior -> {run_dir}")
        run_dir = Path(train_fusion(config, resume=_complete_checkpoint(run_dir), progress=progress))
    log(f"[{stage.name}] generating across modalities for held-out pairs and judging them")
    _, written = evaluate_fusion(run_dir, FusionEvalConfig(items=64, sections=("coherence",)), log=log)
    md = next(p for p in written if p.suffix == ".md")
    samples = [p for p in written if p.suffix in (".png", ".wav")]
    return DemoResult(
        stage, run_dir, run_dir, samples, [p for p in written if p.suffix in (".md", ".json")], md.read_text()
    )


def write_bitrate_examples(model_dir: PathLike, out_dir: PathLike, clips: int = 3) -> list[Path]:
    """Held-out speech clips as `clip<i>-original.wav` and `clip<i>-<kbps>kbps.wav` at every bitrate of a residual model."""
    import torch

    from vqfuse.data.audio import save_audio_file
    from vqfuse.tokenizer import Tokenizer

    model = Tokenizer.from_pretrained(model_dir).eval()
    sr = int(model.config.meta["sample_rate"])
    test = model.modality.dataset("speech", "test", {"sample_rate": sr, "segment_seconds": 2.0})
    x = torch.stack([test[i] for i in range(min(clips, len(test)))])  # (n, 1, T) held-out voices
    out_dir = Path(out_dir)
    written: list[Path] = []
    for i, clip in enumerate(x):
        written.append(out_dir / f"clip{i}-original.wav")
        save_audio_file(clip, written[-1], sr)
    with torch.no_grad():
        for n_q, kbps in enumerate(model.rates(), start=1):
            y = model.decode_codes(model.encode_codes(x, n_q=n_q if model.quantizer.variable_rate else None)).clamp(
                -1, 1
            )
            for i, clip in enumerate(y):
                path = out_dir / f"clip{i}-{kbps:g}kbps.wav"
                save_audio_file(clip, path, sr)
                written.append(path)
    return written


def run_demo(
    out: PathLike = "runs/demo",
    steps: int | None = None,
    progress: bool = True,
    stages: list[DemoStage] | None = None,
    log: Log = print,
) -> list[DemoResult]:
    """Run every demo stage into `out` (`steps` overrides each preset's training length) and report."""
    results = []
    for stage in stages or DEMO_STAGES:
        r = run_stage(stage, out, steps, progress, log)
        results.append(r)
        log("")
        log(r.metrics_text.rstrip())
        log("")
        log(f"[{stage.name}] model:   {r.model_dir}")
        if r.samples:
            log(f"[{stage.name}] samples: {', '.join(map(str, r.samples))} (held-out inputs above reconstructions)")
        log(f"[{stage.name}] metrics: {', '.join(map(str, r.metrics))}")
        log(f"[{stage.name}] next:    vqfuse reconstruct {r.run_dir} IN OUT  |  vqfuse info {r.run_dir}")
        if stage.credit:
            log(CREDITS[stage.credit]())
    return results


__all__ = ["DemoStage", "DemoResult", "DEMO_STAGES", "select_stages", "run_stage", "run_demo", "write_bitrate_examples"]
