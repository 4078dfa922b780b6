"""`vqfuse evaluate` for a fusion run: cross-modal coherence, fused classification and robustness, repair.

Everything is measured on the held-out split of the run's paired dataset (test images and test voices):

- coherence: judges trained on REAL data (cached in ``<run>/judges/``) classify speech -> image and
  image -> speech generations (the intended label is the condition's) and joint samples (both judges agree);
  a Frechet distance in each judge's feature space compares generated with real held-out signals;
- fused classification on tokens: image-only, audio-only, early fusion (separate or shared codebook) and late
  fusion, with a modality missing, and swept over image degradations (MultiBench relative / effective
  robustness). ``audio_snr_db`` adds white noise to the speech first, so that neither modality is saturated;
- repair: inpainting of 25-50% masked images and enhancement of speech at 0 dB SNR, each with and without
  the other modality as condition.
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
    audio_snr_db: float | None = -5.0  # speech noise for the classification study (None: clean speech)
    # second classification study: every classifier also trains on degraded copies of the training images
    # (each degradation at these levels; () skips the study)
    augment_levels: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0)
    repair_items: int = 64
    repair_snr_db: float = 0.0
    batch_size: int = 64
    sections: tuple[str, ...] = ("coherence", "classification", "repair")
    extra: dict[str, Any] = field(default_factory=dict)


def _stack(dataset: Any, index: Sequence[int]) -> tuple[Tensor, Tensor, Tensor]:
    """images (N, 3, S, S), audio (N, 1, T), labels (N,) of dataset items `index`."""
    items = [dataset[i] for i in index]
    return (torch.stack([it["image"] for it in items]), torch.stack([it["audio"] for it in items]),
            torch.tensor([int(it["label"]) for it in items]))  # fmt: skip


def _spread(n: int, k: int) -> list[int]:
    """k indices spread evenly over range(n) (every image and voice gets a turn)."""
    k = min(n, k)
    return [int(i * n / k) for i in range(k)]


def load_or_fit_judges(run_dir: Path, train_set: Any, config: FusionEvalConfig, log: Log) -> dict[str, Any]:
    """The image and audio judges of `run_dir/judges/`, fitted on the real train split when missing."""
    from vqfuse.fusion.judges import AudioJudge, ImageJudge, load_judge

    judges: dict[str, Any] = {}
    for name, cls in (("image", ImageJudge), ("audio", AudioJudge)):
        directory = run_dir / "judges" / name
        if (directory / "config.json").is_file():
            judges[name] = load_judge(directory)
            continue
        log(f"[evaluate] fitting the {name} judge on real {name}s of the train split")
        index = _unique_items(train_set, name)
        images, audio, labels = _stack(train_set, index)
        judge = cls(num_classes=int(train_set.num_classes))
        judge.fit(images if name == "image" else audio, labels, steps=config.judge_steps, seed=config.seed)
        judge.save(directory)
        judges[name] = judge
    return judges


def _unique_items(dataset: Any, modality: str) -> list[int]:
    """One item per distinct image (or audio clip): pairings repeat them."""
    seen: dict[int, int] = {}
    for i, (img, aud) in enumerate(dataset.pairs):
        seen.setdefault(img if modality == "image" else aud, i)
    return sorted(seen.values())


def coherence_section(model: Any, judges: dict[str, Any], test_set: Any, config: FusionEvalConfig,
                      out_dir: Path) -> dict[str, Any]:  # fmt: skip
    """Speech -> image, image -> speech and joint coherence, judge accuracy on real data, Frechet distances."""
    from vqfuse.data.audio import save_audio_file
    from vqfuse.metrics.generation import class_diversity, coherence, joint_coherence, judge_frechet_distance
    from vqfuse.modalities import get_modality

    images, audio, labels = _stack(test_set, _spread(len(test_set), config.items))
    g = torch.Generator().manual_seed(config.seed)
    gen_images = model.generate(audio, to="image", generator=g, batch_size=config.batch_size)
    gen_audio = model.generate(images, to="audio", generator=g, batch_size=config.batch_size)
    joint = model.sample_joint(len(labels), generator=g, batch_size=config.batch_size)
    joint_images, joint_audio = joint["image"], joint["audio"]
    ij, aj = judges["image"], judges["audio"]
    out_dir.mkdir(parents=True, exist_ok=True)
    n_show = min(16, len(labels))
    get_modality("image").save_samples(images[:n_show], gen_images[:n_show].clamp(-1, 1),
                                       out_dir / "speech-to-image.png", {})  # fmt: skip
    for i in range(min(4, len(labels))):
        save_audio_file(gen_audio[i].clamp(-1, 1),
                        out_dir / f"image-to-speech-{i}-digit{int(labels[i])}.wav", model.meta("audio")["sample_rate"])  # fmt: skip
    get_modality("image").save_samples(joint_images[:n_show], joint_images[:n_show].clamp(-1, 1),
                                       out_dir / "joint-images.png", {})  # fmt: skip
    report = {
        "items": len(labels),
        "sampling": dict(model.sampling),
        "judge_accuracy_real": {"image": ij.accuracy(images, labels), "audio": aj.accuracy(audio, labels)},
        "speech_to_image": coherence(ij, gen_images.clamp(-1, 1), labels),
        "image_to_speech": coherence(aj, gen_audio.clamp(-1, 1), labels),
        "joint": joint_coherence(ij, aj, joint_images.clamp(-1, 1), joint_audio.clamp(-1, 1)),
        "joint_diversity": class_diversity(ij, joint_images.clamp(-1, 1)),  # by the image judge
        "frechet": {
            "speech_to_image": judge_frechet_distance(ij, images, gen_images.clamp(-1, 1)),
            "image_to_speech": judge_frechet_distance(aj, audio, gen_audio.clamp(-1, 1)),
            "joint_image": judge_frechet_distance(ij, images, joint_images.clamp(-1, 1)),
            "joint_audio": judge_frechet_distance(aj, audio, joint_audio.clamp(-1, 1)),
        },
    }
    if int(model.sampling.get("rerank") or 1) > 1:  # what best-of-N adds: the same conditions, one sample each
        g = torch.Generator().manual_seed(config.seed)
        single = {"rerank": 1, "generator": g, "batch_size": config.batch_size}
        one = model.sample_joint(len(labels), **single)
        one_images, one_audio = one["image"], one["audio"]
        report["without_rerank"] = {
            "speech_to_image": coherence(ij, model.generate(audio, to="image", **single), labels),
            "image_to_speech": coherence(aj, model.generate(images, to="audio", **single), labels),
            "joint": joint_coherence(ij, aj, one_images, one_audio),
            "joint_diversity": class_diversity(ij, one_images),
        }
    return report


def _noisy_audio_tokens(model: Any, audio: Tensor, snr_db: float | None, seed: int, batch_size: int) -> Tensor:
    """audio (N, 1, T) [+ white noise at snr_db] -> codes (N, n_q, F)."""
    from vqfuse.fusion.damage import add_noise
    from vqfuse.fusion.tokens import encode_with_stages

    g = torch.Generator().manual_seed(seed)
    out = []
    for start in range(0, audio.shape[0], batch_size):
        x = audio[start:start + batch_size]
        if snr_db is not None:
            x = add_noise(x, snr_db, g).clamp(-1, 1)
        out.append(encode_with_stages(model.tokenizers["audio"], model.prepare("audio", x), model.stages["audio"]))
    return torch.cat(out)


def _image_tokens(model: Any, images: Tensor, batch_size: int) -> Tensor:
    """images (N, 3, S, S) -> codes (N, 1, h, w)."""
    tok = model.tokenizers["image"]
    return torch.cat([tok.encode_codes(images[s:s + batch_size]).cpu() for s in range(0, len(images), batch_size)])


def classification_inputs(model: Any, train_set: Any, test_set: Any, config: FusionEvalConfig) -> dict[str, Any]:
    """What the classification study reads: train / test tokens ``{"image": (N, 1, h, w), "audio": (N, n_q, F)}``
    (the speech at ``config.audio_snr_db``) with labels (N,), the clean test images (N, 3, S, S) with a function
    that tokenizes degraded copies of them (the degraded modality), and the codebook sizes."""
    train_images, train_audio, train_labels = _stack(train_set, range(len(train_set)))
    test_images, test_audio, test_labels = _stack(test_set, range(len(test_set)))
    with torch.no_grad():
        tr_img, te_img = _image_tokens(model, train_images, 256), _image_tokens(model, test_images, 256)
        tr_aud = _noisy_audio_tokens(model, train_audio, config.audio_snr_db, config.seed, 256)
        te_aud = _noisy_audio_tokens(model, test_audio, config.audio_snr_db, config.seed + 1, 256)

    def tokenize(x: Tensor) -> Tensor:
        with torch.no_grad():
            return _image_tokens(model, x, 256)

    return {"train": ({"image": tr_img, "audio": tr_aud}, train_labels),
            "test": ({"image": te_img, "audio": te_aud}, test_labels),
            "train_images": train_images, "test_images": test_images, "tokenize": tokenize, "degraded": "image",
            "vocabs": {m: int(model.tokenizers[m].codebook_size) for m in ("image", "audio")}}


def classification_section(model: Any, train_set: Any, test_set: Any, config: FusionEvalConfig,
                           out_dir: Path) -> dict[str, Any]:  # fmt: skip
    """Token classifiers (single modality, early / late fusion) and the image-degradation robustness sweep."""
    from vqfuse.fusion.robustness import analyze, degraded_views

    inputs = classification_inputs(model, train_set, test_set, config)
    (train_tokens, train_labels), (test_tokens, test_labels) = inputs["train"], inputs["test"]
    tokenize, degraded = inputs["tokenize"], inputs["degraded"]
    common = dict(test_images=inputs["test_images"], tokenize=tokenize, degraded=degraded,
                  steps=config.classifier_steps, seed=config.seed, levels=config.levels,
                  degradations=config.degradations, **config.extra.get("classifier", {}))
    args = (train_tokens, train_labels, test_tokens, test_labels, inputs["vocabs"])
    report = analyze(*args, plot_path=out_dir / "robustness.png", **common)
    if config.augment_levels:  # the same classifiers, trained on degraded training images too
        views = degraded_views(inputs["train_images"], tokenize, config.degradations, config.augment_levels,
                               seed=config.seed)  # fmt: skip
        report["augmented"] = analyze(*args, plot_path=out_dir / "robustness-augmented.png",
                                      train_views={degraded: views}, **common)
        report["augmented"]["augment_levels"] = list(config.augment_levels)
    report["audio_snr_db"] = config.audio_snr_db
    report["train_items"], report["test_items"] = len(train_labels), len(test_labels)
    return report


def repair_section(model: Any, test_set: Any, config: FusionEvalConfig) -> dict[str, Any]:
    """Inpainting (masked PSNR) and enhancement (SI-SNR improvement), with and without the other modality."""
    from vqfuse.fusion.repair_eval import evaluate_repair

    images, audio, _ = _stack(test_set, _spread(len(test_set), config.repair_items))
    if model.kind != "maskgit":
        return {"skipped": "repair needs a masked (maskgit) prior"}
    return evaluate_repair(model.prior, model.layout, model.tokenizers["image"], model.tokenizers["audio"],
                           images, model.prepare("audio", audio), n_q=model.stages["audio"], snr_db=config.repair_snr_db,
                           seed=config.seed)  # fmt: skip


def load_run_data(run_dir: PathLike) -> tuple[Any, str, Any, Any]:
    """A fusion run's model with its paired dataset: (FusionModel, dataset spec, train split, held-out split)."""
    from vqfuse.data.paired import make_paired_dataset
    from vqfuse.fusion.model import FusionModel

    model = FusionModel.from_run(run_dir)
    data = dict(model.description.get("data", {}))
    spec = str(data.pop("train", "av-digits"))
    data.pop("test", None)
    return model, spec, make_paired_dataset(spec, "train", **data), make_paired_dataset(spec, "test", **data)


def evaluate_fusion(run_dir: PathLike, config: FusionEvalConfig | None = None, out: PathLike | None = None,
                    log: Log = print) -> tuple[dict[str, Any], list[Path]]:  # fmt: skip
    """Evaluate a fusion run; writes `<out>/evaluation.json`, `evaluation.md`, pictures and clips (out defaults
    to `<run>/evaluation`). Returns (report, written files)."""
    config = config or FusionEvalConfig()
    run_dir = Path(run_dir)
    out_dir = Path(out) if out is not None else run_dir / "evaluation"
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    model, spec, train_set, test_set = load_run_data(run_dir)
    report: dict[str, Any] = {"run": str(run_dir), "dataset": spec, "kind": model.kind, "n_q": model.stages["audio"],
                              "config": _jsonable(asdict(config))}  # fmt: skip
    if "coherence" in config.sections:
        log("[evaluate] cross-modal generation and coherence")
        judges = load_or_fit_judges(run_dir, train_set, config, log)
        report["coherence"] = coherence_section(model, judges, test_set, config, out_dir)
    if "classification" in config.sections:
        log("[evaluate] fused classification and robustness sweep")
        report["classification"] = classification_section(model, train_set, test_set, config, out_dir)
    if "repair" in config.sections:
        log("[evaluate] repair: inpainting and speech enhancement")
        report["repair"] = repair_section(model, test_set, config)
    report = _jsonable(report)
    json_path, md_path = out_dir / "evaluation.json", out_dir / "evaluation.md"
    atomic_write_text(json_path, json.dumps(report, indent=2, allow_nan=False) + "\n")
    atomic_write_text(md_path, fusion_markdown(report))
    written = [json_path, md_path] + sorted(p for p in out_dir.iterdir() if p.suffix in (".png", ".wav"))
    return report, written


def _noise_figures(rob: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """Mid-noise accuracies and relative robustness under image noise from a robustness sweep."""
    h: dict[str, float] = {}
    levels = rob.get("levels", [])
    noise = (rob.get("degradations") or {}).get("noise") or {}
    curves = noise.get("accuracy", {})
    if 0.5 in levels and curves:
        mid = levels.index(0.5)
        single = max(curves[k][mid] for k in ("image", "audio") if k in curves)
        fused = max(v[mid] for k, v in curves.items() if k.startswith("early") or k == "late")
        h.update({"noise_mid_best_single": single, "noise_mid_best_fused": fused, "noise_mid_gain": fused - single})
    for name, value in (noise.get("relative_robustness") or {}).items():
        h[f"relative_robustness_noise_{name}"] = value
    for name, value in (noise.get("effective_robustness") or {}).items():  # vs late fusion: RR difference
        h[f"effective_robustness_noise_{name}"] = value["area"]
    return {prefix + k: v for k, v in h.items()}


def headline(report: dict[str, Any]) -> dict[str, float | None]:
    """The figures the targets are about, flat (None where a section was not run)."""
    coh = report.get("coherence", {})
    cls = report.get("classification") or {}
    rob = cls.get("robustness") or {}
    rep = report.get("repair", {})
    h: dict[str, float | None] = {k: coh.get(k) for k in ("speech_to_image", "image_to_speech", "joint")}
    for suffix, part in (("", coh), ("_without_rerank", coh.get("without_rerank") or {})):
        if suffix:
            h.update({f"{k}{suffix}": v for k, v in part.items() if k != "joint_diversity"})
        if "joint_diversity" in part:  # runs measured before it have none
            h[f"joint_class_entropy{suffix}"] = part["joint_diversity"]["entropy"]
    h.update(_noise_figures(rob))
    h.update(_noise_figures((cls.get("augmented") or {}).get("robustness") or {}, "augmented_"))
    inp = rep.get("inpaint") or {}
    for k in ("conditioned", "unconditioned"):
        if k in inp.get("masked_psnr", {}):
            h[f"inpaint_masked_psnr_{k}"] = inp["masked_psnr"][k]
    enh = rep.get("enhance") or {}
    enh = enh[0] if isinstance(enh, list) and enh else enh
    for k in ("conditioned", "unconditioned", "reencoded"):
        if isinstance(enh, dict) and k in enh.get("si_snr_improvement", {}):
            h[f"enhance_si_snr_improvement_{k}"] = enh["si_snr_improvement"][k]
    for task, unit in (("inpaint", "masked_psnr"), ("enhance", "si_snr_improvement")):  # what the condition adds
        cond, uncond = h.get(f"{task}_{unit}_conditioned"), h.get(f"{task}_{unit}_unconditioned")
        if cond is not None and uncond is not None:
            h[f"{task}_condition_gain"] = cond - uncond
    return h


def fusion_markdown(report: dict[str, Any]) -> str:
    """A short human summary of an evaluation report (the JSON holds everything)."""
    lines = [f"# Fusion evaluation: {report.get('run')}", "",
             f"Dataset `{report.get('dataset')}` (held-out split), prior `{report.get('kind')}`, audio stages used: {report.get('n_q')}.", "",
             "| figure | value |", "|---|---|"]  # fmt: skip
    for k, v in headline(report).items():
        lines.append(f"| {k} | {'n/a' if v is None else f'{v:.4g}'} |")
    lines.append("")
    lines.append("Full figures: `evaluation.json`; pictures: `speech-to-image.png` (condition's image above the "
                 "generated one), `joint-images.png`, `robustness.png` (and `robustness-augmented.png`); clips: `image-to-speech-*.wav`.")
    return "\n".join(lines) + "\n"


__all__ = ["FusionEvalConfig", "evaluate_fusion", "load_run_data", "classification_inputs", "headline",
           "fusion_markdown", "load_or_fit_judges"]
