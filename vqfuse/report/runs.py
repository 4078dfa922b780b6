"""The report of a training run: `report_for_run(run_dir)` for a tokenizer or a fusion run, and
`leave_report(run_dir)`, which the trainers call at the end of every run (a failure there is one warning).

A tokenizer run (model/config.json; or config.yaml + logs/ while it is still training) shows what ran
(config.yaml, model facts), the training curves, the previews of samples/, the held-out metrics
(metrics.md, evaluation.md) and a codebook-usage histogram of up to 64 held-out items encoded by the model.
A fusion run (fusion.json) shows what ran, its tokenizers (their metrics and final previews), the prior's
curves, its samples (generated across modalities, joint samples), metrics and, when `vqfuse evaluate` has
run, the evaluation's tables and pictures.
"""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from vqfuse.errors import InputFileError, PathLike
from vqfuse.report.html import INDEX_HTML, REPORT_JSON, write_report
from vqfuse.report.media import media_kind
from vqfuse.report.model import Media, Report, Table
from vqfuse.report.parts import (
    add_curves,
    add_gallery,
    add_markdown,
    add_previews,
    describe_data,
    facts_table,
    read_json,
    read_yaml,
    rel,
    report_media,
)
from vqfuse.report.usage import code_counts, usage_section

log = logging.getLogger("vqfuse.report")


_PREVIEW_CAPTIONS = {
    "image": "held-out inputs (odd rows) above their reconstructions (even rows)",
    "audio": "log-mel spectrograms: held-out inputs above their reconstructions",
    "video": "held-out clips above their reconstructions",
}


def is_tokenizer_run(run: Path) -> bool:
    if (run / "model" / "config.json").is_file():
        return True
    cfg = read_yaml(run / "config.yaml")  # a run still training has no model/ yet
    return bool(cfg) and cfg.get("task", "tokenizer") == "tokenizer" and (run / "logs").is_dir()


def report_for_run(run_dir: PathLike, out_dir: PathLike | None = None) -> Report:
    """The Report of a tokenizer or fusion run; its plots go to `out_dir/report/` (default: the run
    directory) and its media paths are relative to `out_dir`."""
    run = Path(run_dir)
    out = Path(out_dir) if out_dir is not None else run
    if not run.is_dir():
        raise InputFileError(run, "no such directory")
    if (run / "fusion.json").is_file():
        return fusion_report(run, out)
    if is_tokenizer_run(run):
        return tokenizer_report(run, out)
    raise InputFileError(
        run, f"not a run directory: no model/config.json (tokenizer run), fusion.json (fusion run) or {REPORT_JSON}"
    )


def write_run_report(run_dir: PathLike, out_dir: PathLike | None = None) -> Path:
    """report_for_run + write_report into `out_dir` (default: the run); returns the index.html path."""
    t0 = time.perf_counter()
    out = Path(out_dir) if out_dir is not None else Path(run_dir)
    report = report_for_run(run_dir, out)
    report.timings.append(("report", time.perf_counter() - t0))
    return write_report(report, out)


def leave_report(run_dir: PathLike, warn: Callable[[str], None] | None = None) -> Path | None:
    """The trainers' hook: write the run's report; any failure is one warning line, never an exception
    (the run itself is complete by then)."""
    try:
        with _kept_rng():
            return write_run_report(run_dir)
    except Exception as exc:  # noqa: BLE001 - a report must never fail a training run
        text = f"[report] could not write {Path(run_dir) / INDEX_HTML}: {type(exc).__name__}: {exc}"
        (warn or log.warning)(" ".join(text.split()))
        return None


@contextlib.contextmanager
def _kept_rng() -> Iterator[None]:
    """Leave every random stream as it was: the fusion pipeline goes on training after a tokenizer's report."""
    import random

    import torch

    py, np_state = random.getstate(), np.random.get_state()
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    try:
        with torch.random.fork_rng(devices=devices):
            yield
    finally:
        random.setstate(py)
        np.random.set_state(np_state)


# ------------------------------------------------------------------------------------------ tokenizer


def _load_tokenizer(run: Path) -> Any:
    import torch

    from vqfuse.tokenizer import Tokenizer

    return Tokenizer.from_pretrained(run, device="cuda" if torch.cuda.is_available() else "cpu").eval()


def tokenizer_report(run: Path, out: Path) -> Report:
    """The report of a tokenizer run (see the module docstring)."""
    cfg, metrics = read_yaml(run / "config.yaml"), read_json(run / "metrics.json") or {}
    data, train = cfg.get("data") or {}, cfg.get("train") or {}
    has_model = (run / "model" / "config.json").is_file()
    tok = _load_tokenizer(run) if has_model else None
    modality = tok.config.modality if tok is not None else cfg.get("modality", "?")
    steps = metrics.get("steps")
    name = cfg.get("name") or metrics.get("name") or run.name
    status = f"{steps} steps" if steps is not None else f"in progress (of {train.get('steps', '?')} steps)"
    rep = Report(title=f"{name}", subtitle=f"{modality} tokenizer on `{data.get('train', '?')}`, {status}")
    attribution = metrics.get("attribution") or (tok.meta.get("attribution") if tok is not None else None)
    if attribution:
        rep.credits.append(f"Data: {attribution}")
    if metrics.get("wall_time_s") is not None:
        rep.timings.append(("training", float(metrics["wall_time_s"])))

    sec = rep.add_section("What ran")
    sec.add_text(
        f"{'An' if str(modality)[:1] in 'aeiou' else 'A'} {modality} tokenizer (encoder, quantizer, decoder) trained "
        + (f"from `{cfg['source']}` " if cfg.get("source") else "")
        + f"into `{run}`."
        + ("" if has_model else " Training has not finished: there is no `model/` yet.")
    )
    quant = (cfg.get("model") or {}).get("quantizer") or {}
    ae = (cfg.get("model") or {}).get("autoencoder") or {}
    rows: list[tuple[str, Any]] = [
        ("modality", modality),
        ("data", describe_data(data) if data else None),
        ("steps", f"{steps} of {train.get('steps')}" if steps is not None else train.get("steps")),
        ("batch size", train.get("batch_size")),
        ("learning rate", train.get("lr")),
        ("loss", _loss_text(cfg.get("loss") or {})),
        ("autoencoder", ", ".join(f"{k}={v}" for k, v in ae.items() if k != "dims") or None),
        ("quantizer", ", ".join(f"{k}={v}" for k, v in quant.items()) or None),
    ]
    if tok is not None:
        from vqfuse.evaluate import model_info

        info = model_info(tok)
        rows += [
            ("parameters", f"{info['parameters']:,}"),
            ("downsampling", "x".join(str(f) for f in info["downsample_factors"])),
            ("item", "x".join(str(n) for n in info["item_shape"]) if "item_shape" in info else None),
            ("tokens per item", info.get("tokens_per_item")),
            ("rate", info.get("rate")),
            ("model id", f"`{info['model_id']}`"),
        ]
    sec.add_table(facts_table("the run", rows))

    add_curves(rep.add_section("Training curves"), run, out)

    sec = rep.add_section("Samples", "A fixed batch of held-out items and their reconstructions by the model.")
    caption = _PREVIEW_CAPTIONS.get(modality, "held-out inputs and their reconstructions")

    def preview_caption(stem: str, p: Path) -> str:
        if p.suffix.lower() == ".gif":
            return "held-out clips (left) and their reconstructions (right), playing"
        return f"{'final model' if stem == 'final' else stem}: {caption}"

    if not add_previews(sec, run / "samples", out, preview_caption):
        sec.add_text("No previews in `samples/` yet.")

    sec = rep.add_section("Held-out metrics")
    if not add_markdown(sec, run / "metrics.md"):
        sec.add_text("No `metrics.md` yet: the held-out metrics are written when training ends.")
    if (run / "evaluation.md").is_file():
        add_markdown(rep.add_section("Evaluation (vqfuse evaluate)"), run / "evaluation.md")
    if tok is not None:
        usage_section(rep, tok, cfg, out)
    return rep


def _loss_text(loss: dict[str, Any]) -> str | None:
    """The loss terms that are on (weight > 0), in one line."""
    terms = [
        f"{k.removesuffix('_weight')} x{v:g}"
        for k, v in loss.items()
        if k.endswith("_weight") and isinstance(v, (int, float)) and v > 0 and k != "adaptive_weight"
    ]
    return ", ".join(terms) or None


# ---------------------------------------------------------------------------------------------- fusion


def _tokenizer_runs(run: Path, fusion: dict[str, Any]) -> dict[str, tuple[Path, dict[str, Any]]]:
    """{name: (tokenizer run directory, fusion.json entry)} in the sequence order."""
    entries = fusion.get("tokenizers") or {}
    order = fusion.get("order") or list(entries)
    found = {}
    for name in order:
        entry = entries.get(name) or {}
        model = run / str(entry.get("path", f"tokenizers/{name}/model"))
        found[name] = (model.parent if model.name == "model" else model, entry)
    return found


def fusion_report(run: Path, out: Path) -> Report:
    """The report of a fusion run (see the module docstring)."""
    fusion = read_json(run / "fusion.json") or {}
    cfg, metrics = read_yaml(run / "config.yaml"), read_json(run / "metrics.json") or {}
    tokenizers = _tokenizer_runs(run, fusion)
    names = list(tokenizers)
    data, train = fusion.get("data") or cfg.get("data") or {}, cfg.get("train") or {}
    name = fusion.get("name") or cfg.get("name") or run.name
    kind = fusion.get("kind", "?")
    steps = metrics.get("steps", train.get("steps"))
    rep = Report(
        title=str(name),
        subtitle=f"{kind} token prior over {' + '.join(names)} on `{data.get('train', '?')}`, {steps} steps",
    )
    for tname, (tdir, _) in tokenizers.items():
        tmetrics = read_json(tdir / "metrics.json") or {}
        if tmetrics.get("attribution") and f"Data: {tmetrics['attribution']}" not in rep.credits:
            rep.credits.append(f"Data: {tmetrics['attribution']}")
        if tmetrics.get("wall_time_s") is not None:
            rep.timings.append((f"{tname} tokenizer", float(tmetrics["wall_time_s"])))
    if metrics.get("wall_time_s") is not None:
        rep.timings.append(("prior", float(metrics["wall_time_s"])))

    sec = rep.add_section("What ran")
    sec.add_text(
        f"One tokenizer per modality ({', '.join(names)}), the paired data encoded to tokens, then a {kind} "
        f"prior over the sequence [{', '.join(f'{n} tokens' for n in names)}] trained into `{run}`."
    )
    prior = cfg.get("prior") or {}
    sec.add_table(
        facts_table(
            "the run",
            [
                ("prior", kind),
                ("modalities", " + ".join(names)),
                ("data", describe_data(data) if data else None),
                ("steps", steps),
                ("batch size", train.get("batch_size")),
                ("learning rate", train.get("lr")),
                ("prior size", ", ".join(f"{k}={prior[k]}" for k in ("dim", "depth", "heads") if k in prior) or None),
                ("parameters", f"{metrics['parameters']:,}" if "parameters" in metrics else None),
                ("sequence length", metrics.get("sequence_length")),
                ("vocabulary", metrics.get("vocab")),
                ("items", _items_text(metrics)),
            ],
        )
    )
    sec.add_table(
        Table(
            caption="tokenizers",
            header=["modality", "model", "stages", "codebook", "token shape", "model id"],
            rows=[
                [
                    tname,
                    f"`{entry.get('path', '')}`",
                    entry.get("stages", entry.get("n_q", 1)),
                    entry.get("vocab", ""),
                    "x".join(str(n) for n in entry.get("token_shape", [])) or str(entry.get("frames", "")),
                    f"`{entry.get('model_id', '')}`",
                ]
                for tname, (_, entry) in tokenizers.items()
            ],
        )
    )

    sec = rep.add_section("Tokenizers")
    for tname, (tdir, _) in tokenizers.items():
        own = tdir / INDEX_HTML
        sec.add_text(
            f"The {tname} tokenizer: `{rel(tdir, out)}/`"
            + (f" (its own report: `{rel(own, out)}`)." if own.is_file() else ".")
        )
        try:  # its held-out metrics (the first table of its metrics.md; the rest is in its own report)
            sec.add_table(Table.from_markdown((tdir / "metrics.md").read_text(), caption=f"{tname} tokenizer"))
        except (OSError, ValueError):
            pass
        final = tdir / "samples" / "final.png"
        if final.is_file():
            sec.add_image(rel(final, out), caption=f"{tname}: held-out inputs above their reconstructions")

    add_curves(rep.add_section("Training curves (prior)"), run, out)
    _fusion_samples(rep, run, out, names)

    sec = rep.add_section("Held-out token metrics")
    if not add_markdown(sec, run / "metrics.md"):
        sec.add_text("No `metrics.md` yet.")
    evaluation = run / "evaluation"
    if (evaluation / "evaluation.md").is_file():
        sec = rep.add_section("Evaluation (vqfuse evaluate)")
        add_markdown(sec, evaluation / "evaluation.md")
        add_gallery(sec, evaluation, out)
    return rep


def _items_text(metrics: dict[str, Any]) -> str | None:
    if "train_pairs" not in metrics:
        return None
    return f"{metrics['train_pairs']} train, {metrics.get('test_pairs', '?')} held out"


def _fusion_samples(rep: Report, run: Path, out: Path, names: list[str]) -> None:
    samples = run / "samples"
    sec = rep.add_section(
        "Samples",
        "Held-out items (through their tokenizer) and what the prior generated from the other modality; "
        "then joint samples of all modalities at once.",
    )

    def caption(stem: str, p: Path) -> str:
        to, _, source = stem.partition("-from-")
        if source:
            return f"{to} generated from {source}: held-out {to} above the generated"
        return stem

    shown = add_previews(sec, samples, out, caption, roles=("held-out", "generated"), first="")
    joint = samples / "joint"
    rows: dict[str, list[Media]] = {}
    for p in sorted(joint.iterdir()) if joint.is_dir() else []:
        if not p.is_file() or media_kind(p) is None:
            continue
        stem = p.name.split(".")[0]
        index = stem.split("-")[1] if stem.count("-") else stem
        m = report_media(p, out, next((n for n in names if stem.endswith(f"-{n}")), media_kind(p) or ""))
        if m is not None:
            rows.setdefault(index, []).append(m)
    for index, items in list(rows.items())[:8]:
        sec.add_media_row(f"joint sample {int(index) if index.isdigit() else index}", items)
        shown += len(items)
    if not shown:
        sec.add_text("No samples in `samples/` (prior.samples is 0, or the run has not finished).")


__all__ = ["report_for_run", "write_run_report", "leave_report", "code_counts", "is_tokenizer_run"]
