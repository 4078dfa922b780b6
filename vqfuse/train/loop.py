"""The training loop shared by the tokenizer trainer and the fusion prior trainer.

`LoopTrainer` holds what does not depend on the model: the accelerate setup, the step loop (progress bar,
log-window averages, log / eval / sample / checkpoint cadence, `train.max_minutes`, the divergence stop),
the run directory's logs (config.yaml, TensorBoard, train.jsonl) and the checkpoint parts every run has
(step counters, data position, EMA, scaler, per-process RNG states). A subclass builds its model, data and
optimizers and implements the hooks: `step_batch`, `next_batch`, `eval_model`, `evaluate`, `_finish`,
`_write_checkpoint`, `_load_training`, `_identity`, `_postfix` (and optionally `save_samples`,
`_before_loop`).
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any, Callable

import torch
import yaml
from accelerate import Accelerator
from accelerate.utils import set_seed
from torch import Tensor
from tqdm.auto import tqdm

from vqfuse.errors import ConfigError, VqfuseError
from vqfuse.io.atomic import atomic_write_text
from vqfuse.io.weights import to_jsonable as _jsonable
from vqfuse.train.checkpoint import (
    latest_checkpoint,
    load_checkpoint,
    pack_rng,
    rng_state,
    save_checkpoint,
    set_rng_state,
    unpack_rng,
)
from vqfuse.train.config import RunConfig

log = logging.getLogger("vqfuse.train")

MAX_CONSECUTIVE_SKIPS = 20  # more non-finite steps in a row than this: training diverged
StepCallback = Callable[[int, dict[str, float]], None]
RngStates = list[tuple[dict[str, Any], dict[str, Tensor]]]


def _reset_accelerator_state() -> None:
    """Let a second run in the same process (a notebook, the tests) choose another mixed precision.
    Keeps the distributed setup (PartialState); only accelerate's per-run settings are cleared."""
    from accelerate.state import AcceleratorState, GradientState

    for state in (AcceleratorState, GradientState):
        reset = getattr(state, "_reset_state", None)
        if callable(reset):
            reset()


def _logged_step(line: str) -> float:
    """The step of one train.jsonl line; a torn or foreign line sorts last (and is dropped on resume)."""
    try:
        return float(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return math.inf


class LoopTrainer:
    """Base of the trainers: the step loop, logging and the model-independent checkpoint state.

    Subclass attributes it relies on: `model`, `ema` (or None), `batches` (InfiniteBatches), set up
    between `_start` and `_resume`.
    """

    log_tags: dict[str, str] = {}  # train-log key -> TensorBoard tag (default: train/<key>)
    identity_key = "identity"  # state.json key of `_identity()`: a resume must match it
    identity_name = "the model"  # what changed, in the error when it does not
    logger = log  # where the loop's warnings go
    divergence_hint = "lower train.lr (or turn train.mixed_precision off) and resume"

    def __init__(self, config: RunConfig, progress: bool, on_step: StepCallback | None) -> None:
        self.config, self.tc = config, config.train
        self.progress, self.on_step = progress, on_step
        self.run_dir = Path(config.out)
        self.ckpt_root = self.run_dir / "checkpoints"
        self.step = self.skipped = self.consecutive = 0
        self.train_time = self.wall_before = 0.0
        self.items_seen = 0
        self.resumed_from: Path | None = None

    # ---- setup --------------------------------------------------------------------------------------

    def _start_accelerator(self, **kwargs: Any) -> None:
        """A fresh Accelerator with the configured mixed precision (`kwargs`: more Accelerator options)."""
        _reset_accelerator_state()
        self.accelerator = Accelerator(mixed_precision=self.tc.mixed_precision, log_with=None, **kwargs)
        self.is_main = self.accelerator.is_main_process

    def _find_checkpoint(self, resume: bool, required: bool, holds: str, how: str) -> Path | None:
        """The checkpoint to resume (None: a fresh run), then seed everything. Refuses to overwrite a run;
        with `required`, refuses to resume without a checkpoint."""
        existing = latest_checkpoint(self.ckpt_root)
        if required and resume and existing is None:
            raise ConfigError(f"nothing to resume: no complete checkpoint in {self.ckpt_root}")
        if not resume and existing is not None:
            raise ConfigError(
                f"{self.run_dir} already holds {holds} ({existing}); {how}, or choose another "
                "output directory (out=...)"
            )
        set_seed(self.tc.seed)
        return existing if resume else None

    def _resume(self, existing: Path | None) -> None:
        """Load `existing` (from `_find_checkpoint`) once everything is built."""
        self.resumed_from = existing
        if existing is not None:
            self._load(existing)

    # ---- hooks --------------------------------------------------------------------------------------

    def next_batch(self) -> Any:
        """The next training batch."""
        return next(self.batches)

    def step_batch(self, batch: Any) -> tuple[dict[str, float], int]:
        """One training step on `batch`: (logs averaged over processes, items of this process)."""
        raise NotImplementedError

    def eval_model(self) -> Any:
        """The model that is saved and evaluated: the EMA copy when EMA is on."""
        return self.ema.model if self.ema is not None else self.model

    def evaluate(self) -> dict[str, float]:
        """Held-out metrics (all processes take part)."""
        raise NotImplementedError

    def save_samples(self, name: str) -> list[Path]:
        """Previews under samples/<name> (train.sample_every); none by default."""
        return []

    def _desc(self) -> str:
        """The progress bar's label."""
        return self.config.name

    def _postfix(self, logs: dict[str, float]) -> dict[str, str]:
        """The progress bar's live values."""
        return {}

    def _before_loop(self) -> None:
        """Called by `run()` after the logs are open, before the first step."""

    def _finish(self, writer: Any) -> None:
        """After the last step and checkpoint: final model, metrics, closing the writer."""
        raise NotImplementedError

    def _identity(self) -> Any:
        """What a checkpoint must agree on to be resumed (JSON)."""
        raise NotImplementedError

    def _write_checkpoint(self, rngs: RngStates) -> Path:
        """Write checkpoints/last (main process only; see `_checkpoint_state` and `_common_weights`)."""
        raise NotImplementedError

    def _load_training(
        self, weights: dict[str, dict[str, Tensor]], docs: dict[str, Any], state: dict[str, Any], path: Path
    ) -> None:
        """Restore the subclass's own checkpoint parts (optimizers, schedulers, ...)."""
        raise NotImplementedError

    # ---- the loop -----------------------------------------------------------------------------------

    def run(self) -> Path:
        """Train to `train.steps`, checkpoint, then `_finish`. Returns the run directory."""
        tc, acc = self.tc, self.accelerator
        session_start = time.perf_counter()
        writer = self._open_logs()
        self._before_loop()
        bar = tqdm(
            total=tc.steps,
            initial=min(self.step, tc.steps),
            desc=self._desc(),
            unit="step",
            disable=not (self.progress and self.is_main),
            dynamic_ncols=True,
        )
        window: dict[str, float] = {}
        window_steps, window_items, window_time = 0, 0, 0.0
        try:
            while self.step < tc.steps:
                t0 = time.perf_counter()
                logs, items = self.step_batch(self.next_batch())
                dt = time.perf_counter() - t0
                items *= acc.num_processes
                self.train_time += dt
                self.items_seen += items
                logs["items_per_s"] = items / max(dt, 1e-9)
                for k, v in logs.items():
                    window[k] = window.get(k, 0.0) + v
                window_steps, window_items, window_time = window_steps + 1, window_items + items, window_time + dt
                if self.on_step is not None and self.is_main:
                    self.on_step(self.step - 1, logs)
                bar.update(1)
                bar.set_postfix(self._postfix(logs), refresh=False)
                if self.consecutive > MAX_CONSECUTIVE_SKIPS:
                    path = self.save_checkpoint()
                    raise VqfuseError(
                        f"training diverged: {self.consecutive} steps in a row (up to step {self.step - 1}) had a "
                        f"non-finite loss or gradient. The last good state is saved in {path}: {self.divergence_hint}"
                    )
                done = self.step
                if done % tc.log_every == 0 or done == tc.steps:
                    avg = {k: v / window_steps for k, v in window.items()}
                    avg["items_per_s"] = window_items / max(window_time, 1e-9)
                    avg["skipped_steps"] = float(self.skipped)
                    self._write_logs(writer, done, avg)
                    window, window_steps, window_items, window_time = {}, 0, 0, 0.0
                if tc.eval_every and done % tc.eval_every == 0 and done < tc.steps:
                    self._write_logs(writer, done, self.evaluate(), prefix="eval")
                if tc.sample_every and done % tc.sample_every == 0:
                    self.save_samples(f"step-{done:06d}")
                if tc.checkpoint_every and done % tc.checkpoint_every == 0 and done < tc.steps:
                    self.save_checkpoint()
                if tc.max_minutes is not None and time.perf_counter() - session_start >= 60 * tc.max_minutes:
                    self.logger.warning(
                        "stopping at step %d of %d: train.max_minutes=%g reached", done, tc.steps, tc.max_minutes
                    )
                    break
        finally:
            bar.close()
        self.wall_before += time.perf_counter() - session_start
        self.save_checkpoint()
        self._finish(writer)
        return self.run_dir

    # ---- logs ---------------------------------------------------------------------------------------

    def _fork_rng(self) -> Any:
        """Side work (samples, evaluation, checkpoints) must not move the training RNG streams."""
        devices = [self.accelerator.device] if self.accelerator.device.type == "cuda" else []
        return torch.random.fork_rng(devices=devices)

    def _open_logs(self) -> Any:
        """config.yaml, the TensorBoard writer (purging events past a resumed step) and train.jsonl."""
        if not self.is_main:
            return None
        from torch.utils.tensorboard import SummaryWriter  # slow import: only where needed

        self.run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(
            self.run_dir / "config.yaml", yaml.safe_dump(_jsonable(self.config.to_dict()), sort_keys=False)
        )
        logs_dir = self.run_dir / "logs"
        logs_dir.mkdir(parents=True, exist_ok=True)
        history = logs_dir / "train.jsonl"
        if self.resumed_from is not None and history.is_file():  # drop lines logged after the checkpoint
            kept = [line for line in history.read_text().splitlines() if _logged_step(line) <= self.step]
            atomic_write_text(history, "".join(line + "\n" for line in kept))
        return SummaryWriter(str(logs_dir), purge_step=self.step + 1 if self.resumed_from is not None else None)

    def _write_logs(self, writer: Any, step: int, values: dict[str, float], prefix: str = "train") -> None:
        """TensorBoard scalars and one train.jsonl line (main process: `writer` is None elsewhere)."""
        if writer is None:
            return
        for k, v in values.items():
            tag = self.log_tags.get(k) if prefix == "train" else None
            writer.add_scalar(tag or f"{prefix}/{k}", v, step)
        writer.flush()
        with open(self.run_dir / "logs" / "train.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(_jsonable({"step": step, "kind": prefix, **values}), allow_nan=False) + "\n")

    # ---- checkpoints --------------------------------------------------------------------------------

    def _gathered_rng(self) -> RngStates:
        """Every process's RNG states (collective: all processes must call)."""
        json_part, tensors = rng_state()
        if self.accelerator.num_processes == 1:
            return [(json_part, tensors)]
        packed = pack_rng(json_part, tensors).to(self.accelerator.device)
        rows = self.accelerator.gather(packed[None]).cpu()  # (world, L)
        return [unpack_rng(row, tensors) for row in rows]

    def save_checkpoint(self) -> Path:
        """Write `checkpoints/last` (collective: every process calls it; the main process writes)."""
        rngs = self._gathered_rng()
        path = self.ckpt_root / "last"
        if self.is_main:
            with self._fork_rng():
                path = self._write_checkpoint(rngs)
        self.accelerator.wait_for_everyone()
        return path

    def _common_weights(self, rngs: RngStates) -> dict[str, dict[str, Tensor]]:
        """model, EMA and RNG weight files."""
        weights: dict[str, dict[str, Tensor]] = {"model.safetensors": self.model.state_dict()}
        if self.ema is not None:
            weights["ema.safetensors"] = self.ema.state_dict()
        weights["rng.safetensors"] = {k: torch.stack([t[k] for _, t in rngs]) for k in rngs[0][1]}  # (world, n) uint8
        return weights

    def _checkpoint_state(
        self, rngs: RngStates, schedulers: dict[str, Any], identity: dict[str, Any]
    ) -> dict[str, Any]:
        """state.json: the loop's counters and positions around the subclass's `schedulers` and `identity` keys."""
        scaler = self.accelerator.scaler
        return {
            "step": self.step,
            "skipped_steps": self.skipped,
            "consecutive_skips": self.consecutive,
            "ema_updates": None if self.ema is None else self.ema.updates,
            "data": self.batches.state(),
            **schedulers,
            "scaler": None if scaler is None else scaler.state_dict(),
            "rng": [j for j, _ in rngs],
            "world_size": self.accelerator.num_processes,
            "seed": self.tc.seed,
            **identity,
            "train_time_s": self.train_time,
            "items_seen": self.items_seen,
            "wall_time_s": self.wall_before,
        }

    def _save(self, weights: dict[str, dict[str, Tensor]], json_files: dict[str, Any], state: dict[str, Any]) -> Path:
        return save_checkpoint(self.ckpt_root, weights, json_files, _jsonable(state))

    def _load(self, path: Path) -> None:
        """Restore everything `_write_checkpoint` saved, so the run continues exactly."""
        weights, docs, state = load_checkpoint(path)
        saved = state.get(self.identity_key) or {}
        now = json.loads(json.dumps(_jsonable(self._identity())))
        if saved != now:
            changed = sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k))
            raise ConfigError(
                f"cannot resume {path}: {self.identity_name} changed ({', '.join(changed)}); train it as "
                "a new run in another output directory"
            )
        self.model.load_state_dict(weights["model.safetensors"])
        if self.ema is not None:
            if "ema.safetensors" in weights:
                self.ema.load_state_dict(weights["ema.safetensors"], state.get("ema_updates") or 0)
            else:
                self.ema.model.load_state_dict(self.model.state_dict())  # EMA switched on at resume
        self._load_training(weights, docs, state, path)
        if self.accelerator.scaler is not None and state.get("scaler"):
            self.accelerator.scaler.load_state_dict(state["scaler"])
        self.batches.load_state(state["data"])
        self.step, self.skipped = int(state["step"]), int(state["skipped_steps"])
        self.consecutive = int(state.get("consecutive_skips", 0))
        self.train_time, self.items_seen = float(state["train_time_s"]), int(state["items_seen"])
        self.wall_before = float(state["wall_time_s"])
        rank, world = self.accelerator.process_index, len(state["rng"])
        if world != self.accelerator.num_processes and self.is_main:
            self.logger.warning(
                "resuming %d process(es) from a checkpoint of %d: RNG streams are reused, so the run will "
                "not be bit-identical to an uninterrupted one",
                self.accelerator.num_processes,
                world,
            )
        row = rank % world
        rng_tensors = {k: v[row] for k, v in weights["rng.safetensors"].items()}
        if self.accelerator.device.type != "cuda":
            rng_tensors.pop("cuda", None)
        set_rng_state(state["rng"][row], rng_tensors)


__all__ = ["LoopTrainer", "MAX_CONSECUTIVE_SKIPS", "StepCallback"]
