"""One training loop for every tokenizer (image, audio, video), on CPU, one GPU or many (HF accelerate).

    train(config) -> run_dir/
        config.yaml          the resolved RunConfig
        checkpoints/last/    resumable state (see `checkpoint.py`), every checkpoint_every steps and at the end
        model/               the final Tokenizer (EMA weights when EMA is on): Tokenizer.from_pretrained(run_dir)
        samples/             step-000500.png ... and final.png: a fixed held-out batch above its reconstruction
        logs/                TensorBoard scalars and train.jsonl (the same numbers, one JSON line per log step)
        metrics.json / .md   held-out metrics of the final model, throughput, wall time, skipped steps

One step (0-based index `step`):
    G: x_hat = G(x); loss_G (objectives.py) with D frozen; backward
    D: from disc_start, loss_D on x vs sg(x_hat) from the same forward; backward
    one gather of [finite flag, grad norms, logs] across processes -> the same skip decision everywhere;
    non-finite -> zero grads, restore buffers (EMA codebooks, LeCam), no optimizer step; else clip + step + EMA.
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from pathlib import Path
from typing import Any

import torch
from accelerate import DistributedDataParallelKwargs
from torch import Tensor, nn
from torch.optim import AdamW
from torch.utils.data import DataLoader, Dataset

from vqfuse.errors import ConfigError
from vqfuse.evaluate import evaluate_tokenizer, metrics_markdown
from vqfuse.io.atomic import atomic_write_text
from vqfuse.io.weights import save_json
from vqfuse.modalities import get_modality
from vqfuse.train.batches import InfiniteBatches, ResumableSampler, first_tensor
from vqfuse.train.build import build_tokenizer, check_example
from vqfuse.train.config import RunConfig
from vqfuse.train.discriminator import build_discriminator, check_discriminator_input
from vqfuse.train.ema import EMA
from vqfuse.train.loop import LoopTrainer, StepCallback, _jsonable
from vqfuse.train.objectives import TokenizerObjective
from vqfuse.train.schedule import build_scheduler
from vqfuse.train.short_runs import bypass_steps, initialize_if_bypassed, limit_heldout
from vqfuse.train.tokenizer_checkpoint import TokenizerCheckpoints

log = logging.getLogger("vqfuse.train")

SAMPLE_ITEMS = 16  # size of the fixed held-out preview batch


class Trainer(TokenizerCheckpoints, LoopTrainer):
    """Builds everything a run needs from a RunConfig; `run()` trains and writes the run directory.

    Args:
        config: the run configuration.
        resume: continue from `config.out/checkpoints/last` (an error if there is none).
        progress: show a tqdm bar (main process only).
        on_step: called on the main process after every step with (0-based step, logs averaged over processes).
    """

    log_tags = {"lr": "lr/generator", "disc_lr": "lr/discriminator", "items_per_s": "throughput/items_per_s"}
    divergence_hint = "lower train.lr (or loss.gan_weight, or turn train.mixed_precision off) and resume"
    identity_key, identity_name = "model_config", "the model config"

    def __init__(
        self, config: RunConfig, resume: bool = False, progress: bool = True, on_step: StepCallback | None = None
    ) -> None:
        super().__init__(config, progress, on_step)
        self.lc = config.loss
        self.tc.validate()
        self.modality = get_modality(config.modality)
        self._start_accelerator(
            kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=self._has_unused_parameters())],
            dynamo_backend="inductor" if self.tc.compile else None,
        )
        launched = int(os.environ.get("WORLD_SIZE", "1"))
        if launched > 1 and self.accelerator.num_processes != launched:
            raise ConfigError(
                f"launched as {launched} processes, but accelerate sees {self.accelerator.num_processes}: "
                "on CPU-only machines launch with ACCELERATE_USE_CPU=1 (e.g. ACCELERATE_USE_CPU=1 torchrun "
                "--nproc_per_node N ...)"
            )
        existing = self._find_checkpoint(resume, required=True, holds="a run", how="resume it")
        self._build_data()
        self._build_models()
        self._prepare()
        self._resume(existing)

    # ---- setup --------------------------------------------------------------------------------------

    def _has_unused_parameters(self) -> bool:
        """Residual VQ with quantizer dropout leaves some stages unused in a step (DDP must be told)."""
        q = (self.config.model or {}).get("quantizer") or {}
        return q.get("kind") == "rvq" and float(q.get("quantizer_dropout", 0.0)) > 0

    def _build_data(self) -> None:
        data, tc = self.config.data, self.tc
        spec = data.get("train")
        if not spec:
            raise ConfigError("data.train (the dataset spec) is missing")
        self.data_spec = str(spec)
        self.train_set: Dataset = self.modality.dataset(self.data_spec, "train", data)
        self.test_set: Dataset = self.modality.dataset(self.data_spec, "test", data)
        world = self.accelerator.num_processes
        need = tc.batch_size * world
        if len(self.train_set) < need:  # type: ignore[arg-type]
            raise ConfigError(
                f"the training split of {self.data_spec!r} has {len(self.train_set)} items, fewer than one "  # type: ignore[arg-type]
                f"batch ({tc.batch_size} x {world} process(es) = {need}): lower train.batch_size"
            )
        if len(self.test_set) == 0:  # type: ignore[arg-type]
            raise ConfigError(f"the held-out (test) split of {self.data_spec!r} is empty: evaluation needs some items")
        self.sampler = ResumableSampler(len(self.train_set), tc.seed)  # type: ignore[arg-type]
        self.loader_generator = torch.Generator()
        self.loader = DataLoader(
            self.train_set,
            batch_size=tc.batch_size,
            sampler=self.sampler,
            drop_last=True,
            num_workers=tc.num_workers,
            generator=self.loader_generator,
            pin_memory=self.accelerator.device.type == "cuda",
        )

    def _build_models(self) -> None:
        tc, lc = self.tc, self.lc
        self.model = build_tokenizer(self.config, self.modality)
        example = first_tensor(self.test_set[0])
        check_example(self.model, example)
        ae = self.model.config.autoencoder
        self.meta = self.model.config.meta
        self.objective = TokenizerObjective(lc, ae.dims, ae.in_channels, self.meta)
        self.disc: nn.Module | None = None
        if self.objective.uses_gan:
            self.disc = build_discriminator(lc.discriminator, ae.dims, ae.in_channels)
            check_discriminator_input(self.disc, example)
        self.ema = EMA(self.model, tc.ema_decay) if tc.ema_decay is not None else None
        betas = tuple(float(b) for b in tc.betas)
        self.opt_g = AdamW(self.model.parameters(), lr=tc.lr, betas=betas, weight_decay=tc.weight_decay)  # type: ignore[arg-type]
        self.sched_g = build_scheduler(self.opt_g, tc.warmup_steps, tc.steps, tc.min_lr_ratio)
        self.opt_d = self.sched_d = None
        if self.disc is not None:
            self.opt_d = AdamW(self.disc.parameters(), lr=tc.disc_lr, betas=betas, weight_decay=tc.weight_decay)  # type: ignore[arg-type]
            # the discriminator's schedule starts when it does
            self.sched_d = build_scheduler(
                self.opt_d, tc.warmup_steps, max(tc.steps - lc.disc_start, 0), tc.min_lr_ratio
            )

    def _prepare(self) -> None:
        acc = self.accelerator
        if self.disc is not None:
            self.gen, self.opt_g, self.disc_p, self.opt_d, loader = acc.prepare(
                self.model, self.opt_g, self.disc, self.opt_d, self.loader
            )
        else:
            self.gen, self.opt_g, loader = acc.prepare(self.model, self.opt_g, self.loader)
            self.disc_p = None
        self.model = acc.unwrap_model(self.gen, keep_torch_compile=False)  # the plain Tokenizer (no DDP / compile)
        if self.disc_p is not None:
            self.disc = acc.unwrap_model(self.disc_p, keep_torch_compile=False)
        self.objective.to(acc.device)
        if self.ema is not None:
            self.ema.model.to(acc.device)
        self.batches = InfiniteBatches(
            loader, self.sampler, self.loader_generator, self.tc.batch_size * acc.num_processes
        )

    # ---- one step -----------------------------------------------------------------------------------

    def _state_buffers(self) -> list[Tensor]:
        """Buffers a forward pass may change (EMA codebooks, spectral-norm vectors, LeCam EMAs)."""
        buffers = list(self.model.buffers()) + self.objective.buffers()
        if self.disc is not None:
            buffers += list(self.disc.buffers())
        return buffers

    def _clip(self, module: nn.Module, optimizer: Any) -> Tensor:
        """Clip gradients (max norm train.grad_clip; 0 = off) and return their total norm."""
        max_norm = self.tc.grad_clip if self.tc.grad_clip > 0 else float("inf")
        params = [p for p in module.parameters() if p.grad is not None]
        if self.accelerator.mixed_precision == "fp16":
            # one shared GradScaler: unscale only this optimizer (accelerate's clip would unscale all)
            self.accelerator.unscale_gradients(optimizer=optimizer)
            return torch.nn.utils.clip_grad_norm_(params, max_norm)
        return self.accelerator.clip_grad_norm_(params, max_norm)

    def _quantizer_phase(self) -> dict[str, bool]:
        """Forward kwargs for this step: bypass the residual VQ during train.quantizer_bypass_steps; at the
        first step after (by half of the run: `bypass_steps`), k-means-initialise it on fresh encoder outputs."""
        if self.step < bypass_steps(self.tc):
            return {"bypass_quantizer": True}
        q = self.model.quantizer
        if self.tc.quantizer_bypass_steps > 0 and hasattr(q, "initialize") and not q.initialized:
            with torch.no_grad():
                z = torch.cat(
                    [self.model.encoder(self.next_batch()) for _ in range(max(1, self.tc.quantizer_init_batches))]
                )
                q.initialize(z)  # (N, D, T'): every process sees its own batches; rank 0's codes are broadcast
        return {}

    def train_step(self, x: Tensor) -> dict[str, float]:
        """One update of the generator (and discriminator) on a batch x (B, C, *spatial); returns logs
        averaged over processes."""
        acc, obj, step = self.accelerator, self.objective, self.step
        phase = self._quantizer_phase()  # before the buffers are saved: a k-means init is kept
        buffers = self._state_buffers()
        saved = [b.detach().clone() for b in buffers]
        self.gen.train()

        # generator: D frozen, so the adversarial loss only reaches x_hat
        if self.disc is not None:
            self.disc.requires_grad_(False)
        out = self.gen(x, **phase)
        g_loss, logs = obj.generator(x, out, step, self.disc, self.model.decoder.last_layer_weight)
        acc.backward(g_loss)

        # discriminator: real vs the same (detached) reconstructions
        train_d = obj.train_discriminator(step)
        d_loss = torch.zeros((), device=g_loss.device)
        if self.disc is not None:
            self.disc.requires_grad_(True)
            if train_d:
                self.disc_p.train()
                d_loss, d_logs = obj.discriminator(x, out.reconstruction, self.disc_p)
                acc.backward(d_loss)
            else:
                d_logs = {k: torch.zeros((), device=g_loss.device) for k in obj.discriminator_log_keys()}
            logs.update(d_logs)
        logs.update({k: v.detach().float() for k, v in out.quant.metrics.items() if v.dim() == 0})

        fp16 = acc.mixed_precision == "fp16"
        if not fp16:  # norms join the single gather below; fp16 clips after the decision (GradScaler order)
            logs["grad_norm"] = self._clip(self.gen, self.opt_g).float()
            if self.disc_p is not None:
                logs["disc_grad_norm"] = (
                    self._clip(self.disc_p, self.opt_d).float() if train_d else torch.zeros_like(d_loss)
                )
        finite = (torch.isfinite(g_loss.detach()) & torch.isfinite(d_loss.detach())).float()
        keys = list(logs)
        vec = torch.stack([finite.to(g_loss.device), *[logs[k].to(g_loss.device).reshape(()) for k in keys]])
        rows = acc.gather(vec[None]).double().cpu()  # (world, 1 + n): the step's only host sync
        result = dict(zip(keys, rows[:, 1:].mean(0).tolist()))
        ok = bool(rows[:, 0].min() == 1.0)
        if not fp16:
            ok = ok and all(math.isfinite(result.get(k, 0.0)) for k in ("grad_norm", "disc_grad_norm"))

        if ok:
            if fp16:
                self._clip(self.gen, self.opt_g)
            self.opt_g.step()
            if train_d:
                if fp16:
                    self._clip(self.disc_p, self.opt_d)
                self.opt_d.step()
            if self.ema is not None:
                self.ema.update(self.model)
            self.consecutive = 0
        else:
            with torch.no_grad():
                for b, s in zip(buffers, saved):
                    b.copy_(s)  # e.g. EMA codebooks updated in the forward pass
            self.skipped += 1
            self.consecutive += 1
            if self.is_main:
                log.warning(
                    "step %d: non-finite loss or gradient (generator %.4g, discriminator %.4g); update "
                    "skipped (%d in a row, %d in all)",
                    step,
                    result.get("g_total", float("nan")),
                    result.get("d", 0.0),
                    self.consecutive,
                    self.skipped,
                )
        self.opt_g.zero_grad(set_to_none=True)
        if self.opt_d is not None:
            self.opt_d.zero_grad(set_to_none=True)
        with warnings.catch_warnings():  # after a skipped step torch warns that no optimizer step came first
            warnings.simplefilter("ignore", UserWarning)
            self.sched_g.step()  # the LR is a function of the step, skipped or not
            if train_d and self.sched_d is not None:
                self.sched_d.step()
        self.step += 1
        result["lr"] = float(self.opt_g.param_groups[0]["lr"])
        if self.opt_d is not None:
            result["disc_lr"] = float(self.opt_d.param_groups[0]["lr"])
        result["skipped"] = 0.0 if ok else 1.0
        return result

    # ---- the loop -----------------------------------------------------------------------------------

    def _before_loop(self) -> None:
        """The fixed held-out preview batch."""
        self.sample_batch = torch.stack(
            [first_tensor(self.test_set[i]) for i in range(min(SAMPLE_ITEMS, len(self.test_set)))]
        )  # type: ignore[arg-type]
        self.sample_batch = self.sample_batch.to(self.accelerator.device)

    def next_batch(self) -> Tensor:
        return first_tensor(next(self.batches))

    def step_batch(self, batch: Tensor) -> tuple[dict[str, float], int]:
        return self.train_step(batch), batch.shape[0]

    # ---- outputs ------------------------------------------------------------------------------------

    def _postfix(self, logs: dict[str, float]) -> dict[str, str]:
        names = {
            "rec": "rec",
            "quant": "quant",
            "gan": "gan",
            "d": "d",
            "perplexity": "ppl",
            "usage": "usage",
            "items_per_s": "items/s",
        }
        return {
            short: (f"{logs[k]:.0f}" if k == "items_per_s" else f"{logs[k]:.4g}")
            for k, short in names.items()
            if k in logs
        }

    @torch.no_grad()
    def save_samples(self, name: str) -> list[Path]:
        """Held-out preview batch above its reconstruction by the eval model, `samples/<name>.*`."""
        if not self.is_main:
            return []
        with self._fork_rng():
            model = self.eval_model()
            was_training = model.training
            model.eval()
            out = model(self.sample_batch).reconstruction
            model.train(was_training)
            return self.modality.save_samples(
                self.sample_batch.cpu(), out.float().cpu(), self.run_dir / "samples" / name, self.meta
            )

    def evaluate(self, final: bool = False) -> dict[str, float]:
        """Held-out metrics of the eval model (all processes take part), on at most the items trained on."""
        steps, batch = self.step if final else self.tc.steps, self.tc.batch_size * self.accelerator.num_processes
        with self._fork_rng():
            return evaluate_tokenizer(
                self.eval_model(),
                self.modality,
                limit_heldout(self.test_set, steps, batch),
                self.tc.batch_size,
                self.meta,
                accelerator=self.accelerator,
            )

    def _finish(self, writer: Any) -> None:
        acc = self.accelerator
        with self._fork_rng():
            initialize_if_bypassed(self.model, self.ema, self.tc, self.next_batch)  # stopped in the bypass
        if self.is_main:
            with self._fork_rng():
                self.eval_model().save_pretrained(self.run_dir / "model")
        self.save_samples("final")
        heldout = self.evaluate(final=True)
        if self.is_main:
            metrics = {
                "name": self.config.name,
                "modality": self.modality.name,
                "dataset": self.data_spec,
                "steps": self.step,
                "skipped_steps": self.skipped,
                "wall_time_s": round(self.wall_before, 3),
                "train_time_s": round(self.train_time, 3),
                "train_items_per_s": self.items_seen / self.train_time if self.train_time > 0 else 0.0,
                "processes": acc.num_processes,
                "ema": self.ema is not None,
                "model_id": self.eval_model().model_id,
                "heldout": heldout,
            }
            if self.meta.get("attribution"):
                metrics["attribution"] = self.meta["attribution"]  # e.g. OpenMoji's CC BY-SA notice
            save_json(_jsonable(metrics), self.run_dir / "metrics.json")
            atomic_write_text(self.run_dir / "metrics.md", metrics_markdown(metrics))
            if writer is not None:
                self._write_logs(writer, self.step, heldout, prefix="eval")
                writer.close()
            from vqfuse.report.runs import leave_report

            leave_report(self.run_dir, log.warning)  # index.html + report.json; a failure is one warning
        acc.wait_for_everyone()


def train(config: RunConfig, resume: bool = False, progress: bool = True) -> Path:
    """Train the tokenizer described by `config`; returns the run directory (config.out).

    Args:
        config: the run configuration (see `vqfuse.train.config`).
        resume: continue from the run directory's last checkpoint.
        progress: show a progress bar with live losses.
    """
    return Trainer(config, resume=resume, progress=progress).run()


__all__ = ["train", "Trainer"]
