"""The prior of a fusion model, trained on a TokenSet with accelerate (one loop for CPU, GPUs and nodes).

The prior (config `prior:`) is a `PriorTransformer` over the sequence [TAG a tokens, TAG b tokens, ...],
one segment per modality in the config's order (codes position-major, see `vqfuse.fusion.tokens`):

- kind `maskgit` (bidirectional, the default): each example draws a task: one modality as the target (its
  tokens masked, the others given) or `joint` (all masked, each with its own cosine-scheduled ratio); with
  probability `condition_dropout` the given segments become NULL (classifier-free guidance).
- kind `causal`: each batch draws an order of the segments and learns every token from the ones before
  it; with probability `condition_dropout` the first segment becomes NULL.

The `train:` section (steps, batch_size, lr, warm-up + cosine, grad_clip, ema_decay, mixed_precision,
checkpoint_every, max_minutes, ...) and the `steps=` / `batch_size=` / `seed=` shortcuts set the prior's
training; each tokenizer's steps are `tokenizers.<name>.steps`. Non-finite steps are skipped. The whole
pipeline (tokenizers, tokens, prior) is `vqfuse.fusion.pipeline.train_fusion`.
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.optim import AdamW
from torch.utils.data import DataLoader, TensorDataset

from vqfuse.errors import ConfigError, VqfuseError
from vqfuse.fusion.budget import sample_plan
from vqfuse.fusion.config import check_fusion_config, data_options
from vqfuse.fusion.model import DEFAULT_SAMPLING, FUSION_FILE, FUSION_FORMAT
from vqfuse.fusion.tokens import TokenSet
from vqfuse.io.atomic import atomic_write_text
from vqfuse.io.weights import save_json
from vqfuse.prior.objectives import causal_order_loss, heldout_task_metrics, maskgit_task_loss
from vqfuse.prior.persist import save_prior
from vqfuse.prior.transformer import PriorTransformer
from vqfuse.train.batches import InfiniteBatches, ResumableSampler
from vqfuse.train.checkpoint import (
    flatten_optimizer_state,
    load_optimizer_state,
    restore_scheduler,
    unflatten_optimizer_state,
)
from vqfuse.train.config import RunConfig
from vqfuse.train.ema import EMA
from vqfuse.train.loop import LoopTrainer, RngStates, StepCallback, _jsonable
from vqfuse.train.schedule import build_scheduler

log = logging.getLogger("vqfuse.fusion")


class _Prior:
    """What the prior objectives need of a model (`causal` and a call), for a DDP-wrapped prior."""

    def __init__(self, wrapped: Any, model: PriorTransformer) -> None:
        self.wrapped, self.model = wrapped, model

    @property
    def causal(self) -> bool:
        return self.model.causal

    def __call__(self, *args: Any, **kwargs: Any) -> Tensor:
        return self.wrapped(*args, **kwargs)


class FusionTrainer(LoopTrainer):
    """Trains the prior on a TokenSet with accelerate; `run()` writes checkpoints/, prior/, fusion.json and metrics.

    Args:
        config: the fusion run config.
        train_pairs, test_pairs: the encoded items (one code tensor per modality).
        tokenizer_dirs: {name: dir} (recorded in fusion.json relative to the run dir).
        resume: continue from `out/checkpoints/last` (a fresh start when there is none).
        progress: a tqdm bar with the live loss.
        on_step: called on the main process after every step with (0-based step, logs).
    """

    logger = log
    identity_name = "the prior or its tokens"

    def __init__(
        self,
        config: RunConfig,
        train_pairs: TokenSet,
        test_pairs: TokenSet,
        tokenizer_dirs: dict[str, Path],
        resume: bool = False,
        progress: bool = True,
        on_step: StepCallback | None = None,
    ) -> None:
        _, self.settings = check_fusion_config(config)
        super().__init__(config, progress, on_step)
        self.train_pairs, self.test_pairs = train_pairs, test_pairs
        self.tokenizer_dirs = tokenizer_dirs
        self._start_accelerator()
        existing = self._find_checkpoint(resume, required=False, holds="a fusion run", how="resume it (--resume)")
        self.layout = train_pairs.layout(self.settings.shared_codebook)
        if test_pairs.layout(self.settings.shared_codebook) != self.layout:
            raise VqfuseError(f"train and test tokens differ in shape: {self.layout} vs {test_pairs.layout()}")
        world = self.accelerator.num_processes
        if len(train_pairs) < self.tc.batch_size * world:
            raise ConfigError(
                f"{len(train_pairs)} training items are fewer than one batch ({self.tc.batch_size} x "
                f"{world} process(es)): lower train.batch_size"
            )
        if len(test_pairs) == 0:
            raise ConfigError("the held-out (test) split has no items: evaluation needs some")
        self.names = self.layout.names
        dataset = TensorDataset(*(train_pairs.flat(name) for name in self.names))
        self.sampler = ResumableSampler(len(dataset), self.tc.seed)
        self.loader_generator = torch.Generator()
        loader = DataLoader(
            dataset,
            batch_size=self.tc.batch_size,
            sampler=self.sampler,
            drop_last=True,
            num_workers=self.tc.num_workers,
            generator=self.loader_generator,
        )
        self.model = PriorTransformer(self.settings.architecture(self.layout))
        self.ema = EMA(self.model, self.tc.ema_decay) if self.tc.ema_decay is not None else None
        betas = tuple(float(b) for b in self.tc.betas)
        self.opt = AdamW(self.model.parameters(), lr=self.tc.lr, betas=betas, weight_decay=self.tc.weight_decay)  # type: ignore[arg-type]
        self.sched = build_scheduler(self.opt, self.tc.warmup_steps, self.tc.steps, self.tc.min_lr_ratio)
        acc = self.accelerator
        self.wrapped, self.opt, loader = acc.prepare(self.model, self.opt, loader)
        self.model = acc.unwrap_model(self.wrapped, keep_torch_compile=False)
        if self.ema is not None:
            self.ema.model.to(acc.device)
        self.batches = InfiniteBatches(loader, self.sampler, self.loader_generator, self.tc.batch_size * world)
        self.task_weights = self.settings.task_weights(self.names)
        self._resume(existing)

    # ---- one step -----------------------------------------------------------------------------------

    def loss(self, segments: dict[str, Tensor]) -> Tensor:
        """segments: {name: (B, n_name) local codes}."""
        model = _Prior(self.wrapped, self.model)
        if self.settings.kind == "maskgit":
            return maskgit_task_loss(
                model, self.layout, segments, self.task_weights, float(self.settings.condition_dropout)
            )
        return causal_order_loss(model, self.layout, segments, float(self.settings.condition_dropout))

    def train_step(self, segments: dict[str, Tensor]) -> dict[str, float]:
        acc = self.accelerator
        self.wrapped.train()
        loss = self.loss(segments)
        acc.backward(loss)
        fp16 = acc.mixed_precision == "fp16"
        max_norm = self.tc.grad_clip if self.tc.grad_clip > 0 else float("inf")
        grad_norm = torch.zeros((), device=loss.device)
        if not fp16:
            grad_norm = acc.clip_grad_norm_(self.model.parameters(), max_norm).float()
        vec = torch.stack([torch.isfinite(loss.detach()).float(), loss.detach().float(), grad_norm.reshape(())])
        rows = acc.gather(vec[None]).double().cpu()  # (world, 3)
        ok = bool(rows[:, 0].min() == 1.0) and math.isfinite(float(rows[:, 2].mean()))
        if ok:
            if fp16:
                grad_norm = acc.clip_grad_norm_(self.model.parameters(), max_norm)
            self.opt.step()
            if self.ema is not None:
                self.ema.update(self.model)
            self.consecutive = 0
        else:
            self.skipped += 1
            self.consecutive += 1
            if self.is_main:
                log.warning(
                    "step %d: non-finite loss or gradient (%.4g); update skipped (%d in a row, %d in all)",
                    self.step,
                    float(rows[:, 1].mean()),
                    self.consecutive,
                    self.skipped,
                )
        self.opt.zero_grad(set_to_none=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            self.sched.step()
        self.step += 1
        return {
            "loss": float(rows[:, 1].mean()),
            "grad_norm": float(rows[:, 2].mean()),
            "lr": float(self.opt.param_groups[0]["lr"]),
            "skipped": 0.0 if ok else 1.0,
        }

    def evaluate(self) -> dict[str, float]:
        with torch.random.fork_rng(devices=[]):
            return heldout_task_metrics(
                self.eval_model(),
                self.layout,
                {n: self.test_pairs.flat(n) for n in self.names},
                self.tc.batch_size,
                self.settings.eval_batches,
                seed=self.tc.seed,
            )

    def step_batch(self, batch: tuple[Tensor, ...]) -> tuple[dict[str, float], int]:
        return self.train_step(dict(zip(self.names, batch))), batch[0].shape[0]

    # ---- outputs ------------------------------------------------------------------------------------

    def _desc(self) -> str:
        return f"{self.config.name} prior"

    def _postfix(self, logs: dict[str, float]) -> dict[str, str]:
        return {"loss": f"{logs['loss']:.4g}", "lr": f"{logs['lr']:.2g}"}

    def fusion_description(self) -> dict[str, Any]:
        """fusion.json: what FusionModel.from_run needs besides the prior."""
        p = self.train_pairs
        tokenizers = {}
        for name in self.names:
            rel = os.path.relpath(Path(self.tokenizer_dirs[name]).resolve(), self.run_dir.resolve())
            tokenizers[name] = {
                "path": Path(rel).as_posix(),
                "model_id": p.model_ids[name],
                "vocab": p.vocabs[name],
                "stages": p.stages(name),
                "token_shape": list(p.token_shape(name)),
            }
        spec, options = data_options(self.config)
        return {
            "format": FUSION_FORMAT,
            "kind": self.settings.kind,
            "prior": "prior",
            "layout": self.layout.to_dict(),
            "order": list(self.layout.names),
            "tokenizers": tokenizers,
            "data": {"train": spec, **_jsonable(options)},
            "sampling": {**DEFAULT_SAMPLING, **dict(self.settings.sampling or {})},
            "name": self.config.name,
        }

    def sample_plan(self) -> tuple[int, int]:
        """(items, rerank) of the end-of-run samples: `prior.samples` and the sampling's rerank, fewer when they
        would cost more than a quarter of the training's prior passes (`budget.sample_plan`)."""
        sampling = {**DEFAULT_SAMPLING, **dict(self.settings.sampling or {})}
        lengths = {s.name: s.n_tokens for s in self.layout.segments}
        passes = 3 * self.step * self.tc.batch_size * self.accelerator.num_processes
        return sample_plan(self.settings.samples, sampling["rerank"], sampling, lengths, self.settings.kind, passes)

    def _finish(self, writer: Any) -> None:
        acc = self.accelerator
        heldout = self.evaluate()
        if self.is_main:
            save_prior(self.eval_model(), self.run_dir / "prior", self.layout)
            save_json(_jsonable(self.fusion_description()), self.run_dir / FUSION_FILE)
            n, rerank = self.sample_plan()
            if n > 0:
                with torch.random.fork_rng(devices=[]):
                    save_fusion_samples(
                        self.run_dir, self.test_pairs, n, self.tc.seed, device=acc.device, rerank=rerank
                    )
            metrics = {
                "name": self.config.name,
                "kind": self.settings.kind,
                "dataset": data_options(self.config)[0],
                "modalities": list(self.names),
                "train_pairs": len(self.train_pairs),
                "test_pairs": len(self.test_pairs),
                "sequence_length": self.layout.length(),
                "vocab": self.layout.vocab_size,
                "parameters": sum(p.numel() for p in self.model.parameters()),
                "steps": self.step,
                "skipped_steps": self.skipped,
                "wall_time_s": round(self.wall_before, 3),
                "train_time_s": round(self.train_time, 3),
                "train_pairs_per_s": self.items_seen / self.train_time if self.train_time > 0 else 0.0,
                "processes": acc.num_processes,
                "ema": self.ema is not None,
                "heldout": heldout,
                "samples": {"items": n, "rerank": rerank},
            }
            save_json(_jsonable(metrics), self.run_dir / "metrics.json")
            atomic_write_text(self.run_dir / "metrics.md", fusion_metrics_markdown(metrics))
            if writer is not None:
                self._write_logs(writer, self.step, heldout, prefix="eval")
                writer.close()
        acc.wait_for_everyone()

    # ---- checkpoints --------------------------------------------------------------------------------

    def _identity(self) -> dict[str, Any]:
        """What a checkpoint must agree on to be resumed: architecture, layout, kind, tokenizers."""
        return _jsonable(
            {
                "prior": self.model.config.to_dict(),
                "layout": self.layout.to_dict(),
                "kind": self.settings.kind,
                **{f"{n}_model_id": self.train_pairs.model_ids[n] for n in self.names},
            }
        )

    def _write_checkpoint(self, rngs: RngStates) -> Path:
        weights = self._common_weights(rngs)
        optim_tensors, optim_meta = flatten_optimizer_state(self.opt.state_dict(), "prior")
        weights["optim.safetensors"] = optim_tensors
        state = self._checkpoint_state(rngs, {"scheduler": self.sched.state_dict()}, {"identity": self._identity()})
        return self._save(weights, {"optim.json": {"prior": optim_meta}}, state)

    def _load_training(
        self, weights: dict[str, dict[str, Tensor]], docs: dict[str, Any], state: dict[str, Any], path: Path
    ) -> None:
        optim = weights.get("optim.safetensors", {})
        load_optimizer_state(self.opt, unflatten_optimizer_state(optim, docs["optim.json"]["prior"], "prior"))
        restore_scheduler(self.sched, state["scheduler"])


@torch.no_grad()
def save_fusion_samples(
    run_dir: Path,
    tokens: TokenSet,
    n: int = 8,
    seed: int = 0,
    device: str | torch.device = "cpu",
    rerank: int | None = None,
) -> list[Path]:
    """Generate from `n` held-out items (spread over the split) with the saved fusion model, into samples/:

    <to>-from-<source>.*   each modality generated from the next one in the sequence, as its modality's
                           preview (e.g. held-out images above the generated ones; input / output clips)
    joint/sample-NN.*      `n` joint samples, one file per modality

    `rerank`: candidates per output (None: the run's sampling setting).
    """
    from vqfuse.fusion.files import sample_joint_path
    from vqfuse.fusion.model import FusionModel

    model = FusionModel.from_run(run_dir, device=device)
    n = min(n, len(tokens))
    idx = torch.linspace(0, len(tokens) - 1, n).round().long()
    flat = {name: tokens.flat(name)[idx] for name in model.names}
    g = torch.Generator(device=model.device).manual_seed(seed)
    out = run_dir / "samples"
    options = {} if rerank is None else {"rerank": rerank}
    written: list[Path] = []
    for i, to in enumerate(model.names):
        source = model.names[(i + 1) % len(model.names)]
        if source == to:  # a prior over one modality: joint samples only
            continue
        tokens_to = model.generate_tokens(flat[source], to, source=source, generator=g, **options)
        generated = model.decode(to, tokens_to)
        written += model.tokenizers[to].modality.save_samples(
            model.decode(to, flat[to]).cpu(), generated.cpu(), out / f"{to}-from-{source}", model.meta(to)
        )
    for files in sample_joint_path(model, n, out / "joint", seed=seed, **options):
        written += list(files)
    return written


def fusion_metrics_markdown(metrics: dict[str, Any]) -> str:
    """metrics.json of a fusion run as a short markdown report."""
    from vqfuse.evaluate import markdown_table

    tasks: dict[str, dict[str, float]] = {}
    for key, value in metrics["heldout"].items():
        task, _, what = key.partition("/")
        tasks.setdefault(task, {})[what] = value
    lines = [
        f"# {metrics['name']}: held-out token metrics",
        "",
        f"{metrics['kind']} prior ({metrics['parameters']:,} parameters, sequence of {metrics['sequence_length']} "
        f"tokens) trained on `{metrics['dataset']}` ({metrics['train_pairs']} items) for {metrics['steps']} steps; "
        f"scored on {metrics['test_pairs']} held-out items. `a|b`: tokens of a given b (MaskGIT: at random mask "
        "ratios, as in training; joint: all masked).",
        "",
    ]
    lines += markdown_table(
        ("task", "loss (nats/token)", "accuracy"),
        [(t.replace("|", "\\|"), v.get("loss"), v.get("accuracy")) for t, v in tasks.items()],
    )
    lines += [""] + markdown_table(
        ("training", "value"),
        [
            (k, metrics[k])
            for k in ("steps", "skipped_steps", "train_pairs_per_s", "train_time_s", "wall_time_s", "processes", "ema")
        ],
    )
    return "\n".join(lines) + "\n"


__all__ = ["FusionTrainer", "save_fusion_samples", "fusion_metrics_markdown"]
