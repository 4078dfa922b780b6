"""Train a fusion model from one config: a tokenizer per modality, the tokens, then a token prior.

    train_fusion(config) -> run_dir/
        config.yaml                   the resolved RunConfig (task: fusion)
        tokenizers/<name>/            one tokenizer run per modality (model/ in each); reused when model/
                                      exists, resumed when a checkpoint exists, else trained from the preset
        tokens/train.safetensors      the items' tokens (TokenSet); re-encoded when the tokenizers, their
        tokens/test.safetensors       stages or the data change
        checkpoints/last/             the prior's resumable state (safetensors + JSON, swapped in atomically)
        prior/                        the final prior (save_prior: config.json + model.safetensors)
        fusion.json                   tokenizers (paths relative to the run dir, stages, token shapes),
                                      layout, sampling defaults
        logs/                         TensorBoard scalars and train.jsonl
        metrics.json / .md            held-out token loss / accuracy of the prior per task

A run directory is a self-contained fusion model: `FusionModel.from_run(run_dir)`. The prior's training is
`vqfuse.fusion.trainer.FusionTrainer`; its tasks, `vqfuse.prior.objectives`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch
from tqdm.auto import tqdm

from vqfuse.errors import ConfigError, ModelMismatchError, VqfuseError
from vqfuse.fusion.budget import MIN_TEST_ITEMS, RunBudget, cap_minutes, encode_limit, fit_items, subset
from vqfuse.fusion.config import PriorSettings, TokenizerSpec, check_fusion_config, data_options
from vqfuse.fusion.tokens import TokenSet, encode_set
from vqfuse.train.checkpoint import latest_checkpoint
from vqfuse.train.config import RunConfig
from vqfuse.train.loop import _jsonable

Log = Callable[[str], None]


def default_log(text: str) -> None:
    tqdm.write(text, file=sys.stderr)


def _is_main() -> bool:
    from accelerate import PartialState

    return PartialState().is_main_process


def _wait() -> None:
    from accelerate import PartialState

    PartialState().wait_for_everyone()


def _processes() -> int:
    from accelerate import PartialState

    return PartialState().num_processes


def trains(spec: TokenizerSpec, out: Path) -> bool:
    """Whether `prepare_tokenizer` will train this tokenizer (a preset entry without a finished model)."""
    return spec.model is None and not (out / "tokenizers" / spec.name / "model" / "config.json").is_file()


def prepare_tokenizer(
    spec: TokenizerSpec, out: Path, progress: bool = True, log: Log = default_log, max_minutes: float | None = None
) -> Path:
    """Make `out/tokenizers/<name>/model` exist: reuse it, copy a given model there, resume an interrupted
    run or train the preset (within `max_minutes`, this stage's share of the run's budget, if given). Returns
    the model directory."""
    from vqfuse.tokenizer import Tokenizer
    from vqfuse.train.trainer import train as train_tokenizer

    run_dir = out / "tokenizers" / spec.name
    model_dir = run_dir / "model"
    tag = f"[{spec.name} tokenizer]"
    if (model_dir / "config.json").is_file():
        log(f"{tag} reusing {model_dir}")
        return model_dir
    if spec.model is not None:
        src = Path(spec.model)
        tok = Tokenizer.from_pretrained(src)
        if tok.config.modality != spec.name:
            raise ConfigError(f"tokenizers.{spec.name}.model: {src} is an {tok.config.modality} tokenizer")
        if _is_main():
            log(f"{tag} copying {src} -> {model_dir}")
            tok.save_pretrained(model_dir)
        _wait()
        return model_dir
    cfg = spec.run_config(out)
    cfg.train.max_minutes = cap_minutes(cfg.train.max_minutes, max_minutes)
    resume = latest_checkpoint(run_dir / "checkpoints") is not None
    log(
        f"{tag} {'resuming' if resume else 'training'} {cfg.source} for {cfg.train.steps} steps on "
        f"'{cfg.data.get('train')}' -> {run_dir}"
    )
    train_tokenizer(cfg, resume=resume, progress=progress)
    return model_dir


def check_tokenizer(name: str, tok: Any, data: dict[str, Any], n_q: int | None) -> int:
    """Raise ConfigError unless tokenizer `tok` suits the data section (rate, item shape, fixed length)
    and `n_q`; returns the number of stages its tokens will have."""
    modality = tok.modality
    want = modality.meta(data)  # what the data section implies for this modality
    rate, have_rate = modality.steps_per_second(want), modality.steps_per_second(tok.meta)
    if rate is not None and have_rate is not None and rate != have_rate:
        raise ConfigError(
            f"the {name} tokenizer runs at {have_rate:g} steps/s, the data at {rate:g} "
            f"(set the data's rate to {have_rate:g} or train the tokenizer at {rate:g})"
        )
    shape, trained = modality.item_shape(want), modality.item_shape(tok.meta)
    if shape is None:
        raise ConfigError(
            f"the data section gives {name} items no fixed shape: a prior needs fixed-length items "
            f"(e.g. data.segment_seconds)"
        )
    for axis, (n, f) in enumerate(zip(shape, tok.downsample_factors)):
        if axis == modality.time_axis:
            if (n + tok.time_lead) % f:  # a tokenizer coding its first step alone takes 1 + k f steps
                whole = f"1 + a multiple of {f}" if tok.time_lead else f"a multiple of {f}"
                raise ConfigError(
                    f"{name} items of {n} steps do not fill whole tokens: the tokenizer takes {whole} "
                    f"(choose another length)"
                )
        elif trained is not None and n != trained[axis]:
            raise ConfigError(
                f"the {name} tokenizer was trained on items of {'x'.join(map(str, trained))}, the data "
                f"are {'x'.join(map(str, shape))} (set the data's size or retrain the tokenizer)"
            )
    if n_q is not None and tok.quantizer.variable_rate and n_q > tok.n_stages:
        raise ConfigError(f"tokenizers.{name}.n_q={n_q}, but the {name} tokenizer has {tok.n_stages} stages")
    if n_q not in (None, 1) and not tok.quantizer.variable_rate:
        raise ConfigError(f"tokenizers.{name}.n_q={n_q} needs a residual ('rvq') {name} tokenizer")
    return n_q if n_q is not None and tok.quantizer.variable_rate else tok.n_stages


def _limit(config: RunConfig, n_items: int, test: bool) -> tuple[int, int]:
    """(items to encode of a split of `n_items`, the fewest it may be cut to)."""
    floor = min(MIN_TEST_ITEMS, n_items) if test else config.train.batch_size * _processes()
    return encode_limit(n_items, PriorSettings.from_config(config.prior).max_items, floor), floor


def _reusable(tokens: TokenSet, info: dict[str, Any], config: RunConfig, test: bool) -> bool:
    """A stored token set serves this run: the same data, and all of it, or at least the items this run would
    encode, or the items a prior checkpoint of this run was trained on."""
    stored = dict(tokens.info)
    items, of = stored.pop("items", None), stored.pop("of", None)
    if stored != json.loads(json.dumps(info)):
        return False
    if items is None or latest_checkpoint(Path(config.out) / "checkpoints") is not None:
        return True
    return int(items) >= _limit(config, int(of or 0), test)[0]


def _encode_split(
    config: RunConfig, dataset: Any, toks: dict[str, Any], stages: dict[str, int], seconds: float | None, **kw: Any
) -> TokenSet:
    """The split's tokens: all its items, or `prior.max_items` of them, or as many as fit in `seconds`."""
    limit, floor = _limit(config, len(dataset), kw["info"]["split"] == "test")

    def encode(items: Any, progress: bool) -> TokenSet:
        return encode_set(items, toks, stages, batch_size=64, **{**kw, "progress": progress})

    def probe(k: int) -> float:
        t0 = time.monotonic()
        encode(subset(subset(dataset, limit), k), False)
        return time.monotonic() - t0

    n = fit_items(limit, floor, seconds, probe)
    if n >= len(dataset):
        return encode(dataset, kw["progress"])
    kw["info"] = {**kw["info"], "items": n, "of": len(dataset)}
    return encode(subset(dataset, n), kw["progress"])


def prepare_tokens(
    config: RunConfig,
    dirs: dict[str, Path],
    n_q: dict[str, int | None],
    progress: bool = True,
    log: Log = default_log,
    max_minutes: float | None = None,
) -> dict[str, TokenSet]:
    """`out/tokens/{train,test}.safetensors`: reused when they match the tokenizers, stages and data; else
    encoded: each split whole, or cut to `prior.max_items` and, with `max_minutes` (the encoding's share of
    the run's budget), to what fits in that time (`vqfuse.fusion.budget`)."""
    from vqfuse.data.paired import make_multimodal_dataset
    from vqfuse.tokenizer import Tokenizer

    out = Path(config.out)
    spec, options = data_options(config)
    toks = {name: Tokenizer.from_pretrained(d) for name, d in dirs.items()}
    stages = {name: check_tokenizer(name, tok, config.data, n_q.get(name)) for name, tok in toks.items()}
    ids = {name: tok.model_id for name, tok in toks.items()}
    deadline = None if max_minutes is None else time.monotonic() + 60 * max_minutes
    result: dict[str, TokenSet] = {}
    for split in ("train", "test"):
        path = out / "tokens" / f"{split}.safetensors"
        info = {"dataset": spec, "options": _jsonable(options), "split": split}
        if path.is_file():
            try:
                tokens = TokenSet.load(path, ids, stages)
                if _reusable(tokens, info, config, split == "test") and tokens.names == tuple(toks):
                    log(f"[tokens] reusing {path} ({len(tokens)} items)")
                    result[split] = tokens
                    continue
            except (ModelMismatchError, VqfuseError):
                pass
        if _is_main():
            dataset = make_multimodal_dataset(spec, split, tuple(toks), options)
            seconds = None if deadline is None else max(0.0, deadline - time.monotonic())
            if seconds is not None and split == "train":
                seconds *= 0.75  # the rest for the test split
            log(f"[tokens] encoding {split} items of '{spec}' ({len(dataset)} in all) -> {path}")
            device = "cuda" if torch.cuda.is_available() else "cpu"
            tokens = _encode_split(
                config,
                dataset,
                {name: tok.to(device) for name, tok in toks.items()},
                stages,
                seconds,
                model_dirs={name: os.path.relpath(d, out) for name, d in dirs.items()},
                progress=progress,
                info=info,
            )
            if len(tokens) < len(dataset):
                log(f"[tokens] {split}: {len(tokens)} of {len(dataset)} items (prior.max_items, train.max_minutes)")
            tokens.save(path)
        _wait()
        result[split] = TokenSet.load(path, ids, stages)
    return result


def train_fusion(config: RunConfig, resume: bool = False, progress: bool = True, log_fn: Log | None = None) -> Path:
    """Train a fusion model: tokenizers (reused / resumed / trained), their tokens, then the prior.

    A finished tokenizer (`out/tokenizers/<name>/model`) is always reused and an interrupted one resumes;
    the prior resumes its last checkpoint with `resume` (without it, an existing prior checkpoint is an
    error). Returns the run directory (config.out).
    """
    from vqfuse.fusion.trainer import FusionTrainer

    specs, settings = check_fusion_config(config)
    out = Path(config.out)
    say = log_fn or (default_log if _is_main() else (lambda s: None))
    if not resume and latest_checkpoint(out / "checkpoints") is not None:
        raise ConfigError(
            f"{out} already holds a fusion run ({latest_checkpoint(out / 'checkpoints')}); resume it "
            "(--resume), or choose another output directory (out=...)"
        )
    budget = RunBudget(config.train.max_minutes)  # the whole run's: each stage gets a share of what is left
    stages_left = sum(trains(spec, out) for spec in specs.values()) + 2  # + encoding + prior
    dirs: dict[str, Path] = {}
    for name, spec in specs.items():
        share = budget.share(stages_left) if trains(spec, out) else None
        stages_left -= trains(spec, out)
        dirs[name] = prepare_tokenizer(spec, out, progress, say, max_minutes=share)
    n_q = {name: spec.n_q for name, spec in specs.items()}
    tokens = prepare_tokens(config, dirs, n_q, progress, say, max_minutes=budget.share(2))
    if budget.minutes is not None:  # the prior gets what is left (its config.yaml records it)
        config = dataclasses.replace(config, train=dataclasses.replace(config.train, max_minutes=budget.remaining()))
    has_ckpt = latest_checkpoint(out / "checkpoints") is not None
    say(
        f"[prior] {'resuming' if resume and has_ckpt else 'training'} a {settings.kind} prior for {config.train.steps} "
        f"steps on {len(tokens['train'])} items -> {out}"
    )
    trainer = FusionTrainer(
        config, tokens["train"], tokens["test"], dirs, resume=resume and has_ckpt, progress=progress
    )
    run_dir = trainer.run()
    if _is_main():
        from vqfuse.report.runs import leave_report

        leave_report(run_dir, say)  # index.html + report.json; a failure is one warning line, never an error
    return run_dir


__all__ = ["train_fusion", "prepare_tokenizer", "prepare_tokens", "check_tokenizer"]
