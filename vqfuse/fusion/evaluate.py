"""`vqfuse evaluate` for a fusion run over any set of named modalities: cross-modal coherence, fused
classification and robustness, repair.

Everything is measured on the held-out split of the run's paired dataset (test images and test voices):

- coherence: judges trained on REAL data (one per modality that has one, `Modality.make_judge`; cached in
  ``<run>/judges/``) classify generations of each judged modality from each other one (the intended label is
  the condition's, keys ``<source>_to_<target>`` by the modalities' nouns, e.g. ``speech_to_image``) and
  joint samples (all judges agree); a Frechet distance in each judge's feature space compares generated with
  real held-out items;
- fused classification on tokens: each modality alone, early fusion (separate or shared codebook) and late
  fusion, with a modality missing, and swept over degradations of the modality that supports them
  (MultiBench relative / effective robustness). A modality's ``study_snr_db`` (speech: -5 dB) adds white
  noise to its items first, so that no modality is saturated on its own;
- repair: each repairable modality damaged its own way (images: 25-50% masked; speech: 0 dB noise) and
  repaired with and without the others as condition.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import Tensor

from vqfuse.errors import PathLike
from vqfuse.io.atomic import atomic_write_text
from vqfuse.io.weights import to_jsonable as _jsonable

log = logging.getLogger("vqfuse.fusion")
Log = Callable[[str], None]


@dataclass
class FusionEvalConfig:
    """What `evaluate_fusion` measures and how much of it (defaults sized for minutes on 2 CPU cores)."""

    items: int = 200  # held-out pairs used for generation and repair
    seed: int = 0
    judge_steps: int = 300
    classifier_steps: int = 2000  # 300 left early fusion under-trained (fusion.md, seed 0: clean 0.68 -> 0.85)
    degradations: tuple[str, ...] = ("noise", "dropout", "occlusion")
    levels: tuple[float, ...] = tuple(round(0.1 * i, 1) for i in range(11))
    # {segment: SNR (dB) of white noise added for the classification study, None: clean}; segments left out
    # take their modality's `study_snr_db`
    study_snr_db: dict[str, float | None] = field(default_factory=dict)
    # second classification study: every classifier also trains on degraded copies of the training items
    # (each degradation at these levels; () skips the study)
    augment_levels: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0)
    repair_items: int = 64
    repair_damage: dict[str, Any] = field(default_factory=lambda: {"snr_db": 0.0})  # see evaluate_repair
    batch_size: int = 64
    sections: tuple[str, ...] = ("coherence", "classification", "repair")
    extra: dict[str, Any] = field(default_factory=dict)


def stack_items(dataset: Any, index: Sequence[int], names: Sequence[str]) -> tuple[dict[str, Tensor], Tensor]:
    """({segment: (N, C, *item)}, labels (N,)) of dataset items `index`."""
    items = [dataset[i] for i in index]
    return ({n: torch.stack([it[n] for it in items]) for n in names}, torch.tensor([int(it["label"]) for it in items]))


def _spread(n: int, k: int) -> list[int]:
    """k indices spread evenly over range(n) (every image and voice gets a turn)."""
    k = min(n, k)
    return [int(i * n / k) for i in range(k)]


def _unique_items(dataset: Any, name: str) -> list[int]:
    """One dataset item per distinct item of segment `name`: pairings repeat them."""
    column = list(dataset.modalities).index(name)
    seen: dict[int, int] = {}
    for i, row in enumerate(dataset.item_rows):
        seen.setdefault(row[column], i)
    return sorted(seen.values())


def load_or_fit_judges(run_dir: Path, model: Any, train_set: Any, config: FusionEvalConfig, log: Log) -> dict[str, Any]:
    """{segment: judge} of `run_dir/judges/`, fitted on the real train split when missing, for every segment
    whose modality has a judge."""
    from vqfuse.fusion.judges import load_judge

    judges: dict[str, Any] = {}
    for name in model.names:
        directory = run_dir / "judges" / name
        if (directory / "config.json").is_file():
            judges[name] = load_judge(directory)
            continue
        judge = model.tokenizers[name].modality.make_judge(int(train_set.num_classes))
        if judge is None:
            continue
        log(f"[evaluate] fitting the {name} judge on real items of the train split")
        items, labels = stack_items(train_set, _unique_items(train_set, name), [name])
        judge.fit(items[name], labels, steps=config.judge_steps, seed=config.seed)
        judge.save(directory)
        judges[name] = judge
    return judges


def _noun(model: Any, name: str) -> str:
    return model.tokenizers[name].modality.noun


def _joint_figures(model: Any, judges: dict[str, Any], joint: dict[str, Tensor]) -> dict[str, Any]:
    from vqfuse.metrics.generation import class_diversity, joint_coherence

    judged = [n for n in model.names if n in judges]
    samples = {n: joint[n].clamp(-1, 1) for n in judged}
    out: dict[str, Any] = {}
    if len(judged) >= 2:
        out["joint"] = joint_coherence([judges[n] for n in judged], [samples[n] for n in judged])
    if judged:  # by the first judge
        out["joint_diversity"] = class_diversity(judges[judged[0]], samples[judged[0]])
    return out


def coherence_section(
    model: Any, judges: dict[str, Any], test_set: Any, config: FusionEvalConfig, out_dir: Path
) -> dict[str, Any]:
    """Generation of each judged modality from each other one and joint samples: judge accuracy on real
    data, coherence with the condition's label, Frechet distances; previews of each direction."""
    from vqfuse.metrics.generation import coherence, judge_frechet_distance

    items, labels = stack_items(test_set, _spread(len(test_set), config.items), model.names)
    directions = [(s, t) for t in model.names if t in judges for s in model.names if s != t]
    g = torch.Generator().manual_seed(config.seed)
    generated = {
        (s, t): model.generate(items[s], to=t, source=s, generator=g, batch_size=config.batch_size).clamp(-1, 1)
        for s, t in directions
    }
    joint = model.sample_joint(len(labels), generator=g, batch_size=config.batch_size)
    out_dir.mkdir(parents=True, exist_ok=True)
    n_show = min(16, len(labels))
    key = {(s, t): f"{_noun(model, s)}_to_{_noun(model, t)}" for s, t in directions}
    for (s, t), gen in generated.items():
        modality = model.tokenizers[t].modality
        modality.save_samples(items[t][:n_show], gen[:n_show], out_dir / key[s, t].replace("_", "-"), model.meta(t))
    for name in model.names:
        x = joint[name][:n_show].clamp(-1, 1)
        model.tokenizers[name].modality.save_samples(x, x, out_dir / f"joint-{_noun(model, name)}", model.meta(name))
    report: dict[str, Any] = {
        "items": len(labels),
        "sampling": dict(model.sampling),
        "judge_accuracy_real": {n: j.accuracy(items[n], labels) for n, j in judges.items()},
        **{key[d]: coherence(judges[d[1]], gen, labels) for d, gen in generated.items()},
        **_joint_figures(model, judges, joint),
        "frechet": {
            **{key[d]: judge_frechet_distance(judges[d[1]], items[d[1]], gen) for d, gen in generated.items()},
            **{f"joint_{n}": judge_frechet_distance(j, items[n], joint[n].clamp(-1, 1)) for n, j in judges.items()},
        },
    }
    if int(model.sampling.get("rerank") or 1) > 1:  # what best-of-N adds: the same conditions, one sample each
        g = torch.Generator().manual_seed(config.seed)
        single = {"rerank": 1, "generator": g, "batch_size": config.batch_size}
        one = model.sample_joint(len(labels), **single)
        report["without_rerank"] = {
            **{
                key[s, t]: coherence(judges[t], model.generate(items[s], to=t, source=s, **single), labels)
                for s, t in directions
            },
            **_joint_figures(model, judges, one),
        }
    return report


def _tokens(model: Any, name: str, items: Tensor, snr_db: float | None, seed: int, batch_size: int) -> Tensor:
    """items (N, C, *item) [+ white noise at snr_db] -> codes (N, S, *grid)."""
    from vqfuse.fusion.damage import add_noise
    from vqfuse.fusion.tokens import encode_with_stages

    g = torch.Generator().manual_seed(seed)
    out = []
    for start in range(0, items.shape[0], batch_size):
        x = items[start : start + batch_size]
        if snr_db is not None:
            x = add_noise(x, snr_db, g).clamp(-1, 1)
        x = model.prepare(name, x).to(model.device)
        out.append(encode_with_stages(model.tokenizers[name], x, model.stages[name]).cpu())
    return torch.cat(out)


def study_noise(model: Any, config: FusionEvalConfig) -> dict[str, float | None]:
    """{segment: SNR (dB) of the classification study's noise, None for clean}."""
    return {n: config.study_snr_db.get(n, model.tokenizers[n].modality.study_snr_db) for n in model.names}


def classification_inputs(model: Any, train_set: Any, test_set: Any, config: FusionEvalConfig) -> dict[str, Any]:
    """What the classification study reads: train / test tokens ``{segment: (N, S, *grid)}`` (noisy where
    `study_noise` says) with labels (N,), the clean test items (N, C, *item) of the first segment whose
    modality has a robustness sweep with a function that tokenizes degraded copies of them (None without
    one), and the codebook sizes."""
    names = model.names
    train_items, train_labels = stack_items(train_set, range(len(train_set)), names)
    test_items, test_labels = stack_items(test_set, range(len(test_set)), names)
    snr = study_noise(model, config)
    with torch.no_grad():
        train = {n: _tokens(model, n, train_items[n], snr[n], config.seed, 256) for n in names}
        test = {n: _tokens(model, n, test_items[n], snr[n], config.seed + 1, 256) for n in names}
    degraded = next((n for n in names if model.tokenizers[n].modality.robustness_sweep), None)

    def tokenize(x: Tensor) -> Tensor:
        with torch.no_grad():
            return _tokens(model, str(degraded), x, None, 0, 256)

    return {
        "train": (train, train_labels),
        "test": (test, test_labels),
        "degraded": degraded,
        "train_items": None if degraded is None else train_items[degraded],
        "test_items": None if degraded is None else test_items[degraded],
        "tokenize": tokenize,
        "vocabs": {n: int(model.tokenizers[n].codebook_size) for n in names},
    }


def classification_section(
    model: Any, train_set: Any, test_set: Any, config: FusionEvalConfig, out_dir: Path
) -> dict[str, Any]:
    """Token classifiers (single modality, early / late fusion) and the degradation robustness sweep."""
    from vqfuse.fusion.robustness import analyze, degraded_views

    inputs = classification_inputs(model, train_set, test_set, config)
    (train_tokens, train_labels), (test_tokens, test_labels) = inputs["train"], inputs["test"]
    tokenize, degraded = inputs["tokenize"], inputs["degraded"]
    common = dict(
        test_images=inputs["test_items"],
        tokenize=tokenize,
        degraded=degraded,
        steps=config.classifier_steps,
        seed=config.seed,
        levels=config.levels,
        degradations=config.degradations,
        **config.extra.get("classifier", {}),
    )
    args = (train_tokens, train_labels, test_tokens, test_labels, inputs["vocabs"])
    report = analyze(*args, plot_path=out_dir / "robustness.png", **common)
    if config.augment_levels and degraded is not None:  # the same classifiers, trained on degraded items too
        views = degraded_views(
            inputs["train_items"], tokenize, config.degradations, config.augment_levels, seed=config.seed
        )
        report["augmented"] = analyze(
            *args, plot_path=out_dir / "robustness-augmented.png", train_views={degraded: views}, **common
        )
        report["augmented"]["augment_levels"] = list(config.augment_levels)
    report["study_snr_db"] = study_noise(model, config)
    report["train_items"], report["test_items"] = len(train_labels), len(test_labels)
    return report


def repair_section(model: Any, test_set: Any, config: FusionEvalConfig) -> dict[str, Any]:
    """Each repairable modality damaged and repaired, with and without the others (see `evaluate_repair`)."""
    from vqfuse.fusion.repair_eval import evaluate_repair

    if model.kind != "maskgit":
        return {"skipped": "repair needs a masked (maskgit) prior"}
    items, _ = stack_items(test_set, _spread(len(test_set), config.repair_items), model.names)
    items = {n: model.prepare(n, x).to(model.device) for n, x in items.items()}
    return evaluate_repair(
        model.prior,
        model.layout,
        model.tokenizers,
        items,
        stages=model.stages,
        settings=config.repair_damage,
        seed=config.seed,
    )


def load_run_data(run_dir: PathLike) -> tuple[Any, str, Any, Any]:
    """A fusion run's model with its paired dataset: (FusionModel, dataset spec, train split, held-out split)."""
    from vqfuse.data.paired import make_multimodal_dataset
    from vqfuse.fusion.model import FusionModel

    model = FusionModel.from_run(run_dir)
    data = dict(model.description.get("data", {}))
    spec = str(data.pop("train", "av-digits"))
    data.pop("test", None)
    return model, spec, *(make_multimodal_dataset(spec, s, model.names, data) for s in ("train", "test"))


def evaluate_fusion(
    run_dir: PathLike, config: FusionEvalConfig | None = None, out: PathLike | None = None, log: Log = print
) -> tuple[dict[str, Any], list[Path]]:
    """Evaluate a fusion run; writes `<out>/evaluation.json`, `evaluation.md`, pictures and clips (out defaults
    to `<run>/evaluation`). Returns (report, written files)."""
    from vqfuse.pretrained import resolve_run_dir

    config = config or FusionEvalConfig()
    run_dir = resolve_run_dir(run_dir)  # a shipped model by name: its judges ship with it
    out_dir = Path(out) if out is not None else run_dir / "evaluation"
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    model, spec, train_set, test_set = load_run_data(run_dir)
    report: dict[str, Any] = {
        "run": str(run_dir),
        "dataset": spec,
        "kind": model.kind,
        "modalities": list(model.names),
        "stages": dict(model.stages),
        "config": _jsonable(asdict(config)),
    }
    if "coherence" in config.sections:
        log("[evaluate] cross-modal generation and coherence")
        judges = load_or_fit_judges(run_dir, model, train_set, config, log)
        report["coherence"] = coherence_section(model, judges, test_set, config, out_dir)
    if "classification" in config.sections:
        log("[evaluate] fused classification and robustness sweep")
        report["classification"] = classification_section(model, train_set, test_set, config, out_dir)
    if "repair" in config.sections:
        log("[evaluate] repair of each repairable modality, with and without the others")
        report["repair"] = repair_section(model, test_set, config)
    report = _jsonable(report)
    json_path, md_path = out_dir / "evaluation.json", out_dir / "evaluation.md"
    atomic_write_text(json_path, json.dumps(report, indent=2, allow_nan=False) + "\n")
    atomic_write_text(md_path, fusion_markdown(report))
    written = [json_path, md_path] + sorted(p for p in out_dir.iterdir() if p not in (json_path, md_path))
    return report, written


def _noise_figures(rob: dict[str, Any], names: Sequence[str], prefix: str = "") -> dict[str, float]:
    """Mid-noise accuracies and relative robustness under noise from a robustness sweep."""
    h: dict[str, float] = {}
    levels = rob.get("levels", [])
    noise = (rob.get("degradations") or {}).get("noise") or {}
    curves = noise.get("accuracy", {})
    if 0.5 in levels and curves:
        mid = levels.index(0.5)
        single = max(curves[k][mid] for k in names if k in curves)
        fused = max(v[mid] for k, v in curves.items() if k.startswith("early") or k == "late")
        h.update({"noise_mid_best_single": single, "noise_mid_best_fused": fused, "noise_mid_gain": fused - single})
    for name, value in (noise.get("relative_robustness") or {}).items():
        h[f"relative_robustness_noise_{name}"] = value
    for name, value in (noise.get("effective_robustness") or {}).items():  # vs late fusion: RR difference
        h[f"effective_robustness_noise_{name}"] = value["area"]
    return {prefix + k: v for k, v in h.items()}


def headline(report: dict[str, Any]) -> dict[str, float | None]:
    """The figures the targets are about, flat (absent where a section was not run)."""
    from vqfuse.fusion.repair_eval import repair_headline

    coh = report.get("coherence", {})
    cls = report.get("classification") or {}
    names = report.get("modalities", [])
    h: dict[str, float | None] = {}
    for suffix, part in (("", coh), ("_without_rerank", coh.get("without_rerank") or {})):
        h.update({f"{k}{suffix}": v for k, v in part.items() if "_to_" in k or k == "joint"})
        if "joint_diversity" in part:
            h[f"joint_class_entropy{suffix}"] = part["joint_diversity"]["entropy"]
    h.update(_noise_figures(cls.get("robustness") or {}, names))
    h.update(_noise_figures((cls.get("augmented") or {}).get("robustness") or {}, names, "augmented_"))
    h.update(repair_headline(report.get("repair") or {}))
    return h


def fusion_markdown(report: dict[str, Any]) -> str:
    """A short human summary of an evaluation report (the JSON holds everything)."""
    stages = ", ".join(f"{k} {v}" for k, v in (report.get("stages") or {}).items())
    lines = [
        f"# Fusion evaluation: {report.get('run')}",
        "",
        f"Dataset `{report.get('dataset')}` (held-out split), prior `{report.get('kind')}`, stages used: {stages}.",
        "",
        "| figure | value |",
        "|---|---|",
    ]
    for k, v in headline(report).items():
        lines.append(f"| {k} | {'n/a' if v is None else f'{v:.4g}'} |")
    lines.append("")
    lines.append(
        "Full figures: `evaluation.json`. Previews: `<source>-to-<target>.*` (the condition's own item "
        "above the generated one), `joint-*` (joint samples), `robustness.png` (and `robustness-augmented.png`)."
    )
    return "\n".join(lines) + "\n"


__all__ = [
    "FusionEvalConfig",
    "stack_items",
    "evaluate_fusion",
    "load_run_data",
    "classification_inputs",
    "headline",
    "fusion_markdown",
    "load_or_fit_judges",
    "study_noise",
]
