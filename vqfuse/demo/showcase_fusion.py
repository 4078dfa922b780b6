"""The pretrained fusion model on held-out pairs: generation across modalities judged by classifiers trained
on real data, repair of each modality with and without the other, and the fused-classification robustness
curve. Nothing here names a modality: every direction and repair comes from the model's segments."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from vqfuse.demo.context import DemoContext
from vqfuse.train.short_runs import spread_indices


def _save(ctx: DemoContext, model: Any, name: str, x: Tensor, stem: str) -> list[str]:
    """Each item of `x` as a file of its modality (`<stem>-<i>.<ext>`); returns their report paths."""
    tok = model.tokenizers[name]
    paths = []
    for i, item in enumerate(x):
        path = ctx.path("pretrained", "fusion", f"{stem}-{i}{_suffix(tok.modality)}")
        tok.modality.save_file(item.clamp(-1, 1), path, model.meta(name))
        paths.append(ctx.rel(path))
    return paths


def _suffix(modality: Any) -> str:
    """The modality's own output format, except that videos are WebM, the format every browser plays."""
    from vqfuse.report.media import REPORT_VIDEO_SUFFIX, media_kind

    suffix = modality.default_output_suffix()
    return REPORT_VIDEO_SUFFIX if media_kind(f"x{suffix}") == "video" else suffix


def _kind(modality: Any) -> str:
    """The report's media kind of this modality's files."""
    from vqfuse.report.media import media_kind

    return str(media_kind(f"x{_suffix(modality)}"))


def fusion_part(ctx: DemoContext, model_name: str) -> None:
    from vqfuse.fusion.evaluate import FusionEvalConfig, load_or_fit_judges, load_run_data, stack_items
    from vqfuse.metrics.generation import coherence
    from vqfuse.pretrained import resolve_run_dir
    from vqfuse.report import Media, Table

    run_dir = resolve_run_dir(model_name)
    model, spec, train_set, test_set = load_run_data(run_dir)
    names = tuple(model.names)
    nouns = {n: model.tokenizers[n].modality.noun for n in names}
    n = ctx.size.pairs
    items, labels = stack_items(test_set, spread_indices(len(test_set), n), names)
    config = FusionEvalConfig(items=n, seed=ctx.seed)
    judges = load_or_fit_judges(Path(run_dir), model, train_set, config, ctx.log)
    sec = ctx.report.add_section(
        f"Fusion: the pretrained {model_name} model",
        text=f"One transformer prior over the tokens of {' and '.join(nouns.values())} ({spec}, held-out pairs: "
        "test voices with test digit images). `vqfuse generate "
        f"{model_name} --from seven.wav --to image out.png` and back. Coherence: the share of generated items "
        "that classifiers trained on real data assign to the class of the condition.",
    )
    g = torch.Generator().manual_seed(ctx.seed)
    rerank = 4 if n >= 16 else 1
    rows = []
    for target in names:
        if target not in judges:
            continue
        for source in names:
            if source == target:
                continue
            with torch.no_grad():
                out = model.generate(items[source], to=target, source=source, generator=g, rerank=rerank)
            score = coherence(judges[target], out.clamp(-1, 1), labels)
            rows.append([f"{nouns[source]} -> {nouns[target]}", f"{100 * score:.1f}%", str(len(labels))])
            shown = min(4, len(labels))
            conds = _save(ctx, model, source, items[source][:shown], f"{nouns[source]}-given")
            outs = _save(ctx, model, target, out[:shown], f"{nouns[source]}-to-{nouns[target]}")
            truth = _save(ctx, model, target, items[target][:shown], f"{nouns[target]}-true")
            for i in range(shown):
                sec.add_media_row(
                    f"{nouns[source]} -> {nouns[target]}, digit {int(labels[i])}",
                    [
                        Media(_kind(model.tokenizers[source].modality), conds[i], f"given {nouns[source]}"),
                        Media(_kind(model.tokenizers[target].modality), outs[i], f"generated {nouns[target]}"),
                        Media(_kind(model.tokenizers[target].modality), truth[i], f"the pair's real {nouns[target]}"),
                    ],
                )
    real = {nouns[t]: f"{100 * judges[t].accuracy(items[t], labels):.1f}%" for t in judges}
    sec.add_table(
        Table(
            caption=f"coherence on {len(labels)} held-out pairs (best of {rerank} samples by the prior's own "
            f"score); the judges on the real items: {', '.join(f'{k} {v}' for k, v in real.items())}",
            header=["direction", "coherence", "pairs"],
            rows=rows,
        )
    )
    repair_part(ctx, model, items, sec)
    robustness_part(ctx, model, train_set, test_set, sec)


def repair_part(ctx: DemoContext, model: Any, items: dict[str, Tensor], sec: Any) -> None:
    """Each repairable segment damaged (an image box; speech at 0 dB SNR) and repaired with and without
    the other segments as condition."""
    from vqfuse.fusion.repair_eval import evaluate_repair
    from vqfuse.report import Media, Table

    if model.kind != "maskgit":
        return
    kept: dict[str, dict[str, Tensor]] = {}
    prepared = {n: model.prepare(n, x) for n, x in items.items()}
    report = evaluate_repair(
        model.prior, model.layout, model.tokenizers, prepared, stages=model.stages, settings={"snr_db": 0.0},
        seed=ctx.seed, keep=kept,
    )  # fmt: skip
    rows = []
    for name, shown in kept.items():
        noun = model.tokenizers[name].modality.noun
        entry = report[name]
        verb = "inpainting" if entry["mode"] == "inpaint" else "enhancement"
        for figure, values in entry["scores"].items():
            rows.append(
                [f"{noun} {verb}", figure, *[_num(values.get(k)) for k in ("damaged", "unconditioned", "conditioned")]]
            )
        k = min(4, len(shown["clean"]))
        files = {v: _save(ctx, model, name, shown[v][:k], f"repair-{noun}-{v}") for v in _VARIANTS}
        kind = _kind(model.tokenizers[name].modality)
        for i in range(k):
            sec.add_media_row(
                f"{noun} {verb} {i}", [Media(kind, files[v][i], caption) for v, caption in _VARIANTS.items()]
            )
    sec.add_table(
        Table(
            caption="repair on held-out pairs: the damaged input, repaired by the prior alone, and repaired "
            "with the other modality as condition (image: PSNR over the missing pixels; speech: SI-SNR gain, dB)",
            header=["task", "figure", "damaged", "repaired alone", "repaired with the other modality"],
            rows=rows,
        )
    )


_VARIANTS = {
    "clean": "clean",
    "damaged": "damaged",
    "unconditioned": "repaired alone",
    "conditioned": "repaired with the other",
}


def _num(v: Any) -> str:
    return "-" if v is None or not math.isfinite(float(v)) else f"{float(v):.2f}"


def robustness_part(ctx: DemoContext, model: Any, train_set: Any, test_set: Any, sec: Any) -> None:
    """Token classifiers on one modality and on both (early / late fusion) as the image is degraded."""
    from vqfuse.fusion.budget import subset
    from vqfuse.fusion.evaluate import FusionEvalConfig, classification_section

    full = ctx.size.pairs >= 16
    config = FusionEvalConfig(
        seed=ctx.seed,
        classifier_steps=300 if full else 40,
        levels=(0.0, 0.2, 0.4, 0.6, 0.8, 1.0) if full else (0.0, 0.5, 1.0),
        augment_levels=(),
    )
    out_dir = ctx.path("pretrained", "fusion", "robustness", "x").parent
    train, test = subset(train_set, 1500 if full else 200), subset(test_set, 300 if full else 60)
    report = classification_section(model, train, test, config, out_dir)
    sec.add_image(
        ctx.rel(out_dir / "robustness.png"),
        caption=f"classification accuracy as the image is degraded ({len(train)} training / {len(test)} held-out "
        f"pairs, {config.classifier_steps} classifier steps): fused classifiers hold up where the image alone fails",
    )
    clean = report.get("accuracy") or {}
    if clean:
        from vqfuse.report import Table

        sec.add_table(
            Table(
                caption="clean held-out accuracy of each token classifier, and with one modality missing",
                header=["classifier", "accuracy", *[k.replace("_", " ") for k in _missing_keys(clean)]],
                rows=[
                    [k, *[f"{100 * float(v[key]):.1f}%" if key in v else "-" for key in ["all", *_missing_keys(clean)]]]
                    for k, v in clean.items()
                ],
            )
        )


def _missing_keys(accuracy: dict[str, dict[str, float]]) -> list[str]:
    return sorted({k for v in accuracy.values() for k in v if k.endswith("_missing")})


__all__ = ["fusion_part", "repair_part", "robustness_part"]
