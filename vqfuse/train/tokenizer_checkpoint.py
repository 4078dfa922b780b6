"""What a tokenizer run's checkpoint holds beyond the shared loop state (`LoopTrainer`): the generator's and
the discriminator's optimizers and schedulers, the discriminator and the adversarial objective's state, and the
model and discriminator configs a resume must match. `Trainer` inherits it."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from torch import Tensor

from vqfuse.errors import ConfigError
from vqfuse.train.checkpoint import (
    flatten_optimizer_state,
    load_optimizer_state,
    restore_scheduler,
    unflatten_optimizer_state,
)
from vqfuse.train.loop import RngStates, _jsonable

log = logging.getLogger("vqfuse.train")


class TokenizerCheckpoints:
    """Checkpoint hooks of the tokenizer trainer (`LoopTrainer` calls `_write_checkpoint` / `_load_training`)."""

    model: Any
    disc: Any
    objective: Any
    opt_g: Any
    opt_d: Any
    sched_g: Any
    sched_d: Any
    lc: Any
    is_main: bool
    _common_weights: Any
    _checkpoint_state: Any
    _save: Any

    def _identity(self) -> dict[str, Any]:
        return self.model.config.to_dict()

    def _write_checkpoint(self, rngs: RngStates) -> Path:
        weights = self._common_weights(rngs)
        optim_tensors, optim_meta = flatten_optimizer_state(self.opt_g.state_dict(), "generator")
        optim_json: dict[str, Any] = {"generator": optim_meta}
        if self.disc is not None:
            disc_state = {f"discriminator.{k}": v for k, v in self.disc.state_dict().items()}
            disc_state.update({f"objective.{k}": v for k, v in self.objective.state_dict().items()})
            weights["disc.safetensors"] = disc_state
            d_tensors, optim_json["discriminator"] = flatten_optimizer_state(self.opt_d.state_dict(), "discriminator")  # type: ignore[union-attr]
            optim_tensors.update(d_tensors)
        weights["optim.safetensors"] = optim_tensors
        schedulers = {
            "generator": self.sched_g.state_dict(),
            "discriminator": None if self.sched_d is None else self.sched_d.state_dict(),
        }
        identity = {
            "model_config": self._identity(),
            "discriminator": None if self.disc is None else dict(self.lc.discriminator),
        }
        state = self._checkpoint_state(rngs, {"schedulers": schedulers}, identity)
        return self._save(weights, {"optim.json": optim_json}, state)

    def _load_training(
        self, weights: dict[str, dict[str, Tensor]], docs: dict[str, Any], state: dict[str, Any], path: Path
    ) -> None:
        """Optimizers, schedulers and the discriminator (see `LoopTrainer._load`)."""
        optim_json = docs.get("optim.json", {})
        optim = weights.get("optim.safetensors", {})
        load_optimizer_state(self.opt_g, unflatten_optimizer_state(optim, optim_json["generator"], "generator"))
        restore_scheduler(self.sched_g, state["schedulers"]["generator"])
        if self.disc is not None:
            if "disc.safetensors" in weights and "discriminator" in optim_json:
                if state.get("discriminator") != json.loads(json.dumps(_jsonable(dict(self.lc.discriminator)))):
                    raise ConfigError(f"cannot resume {path}: loss.discriminator changed")
                disc = weights["disc.safetensors"]
                self.disc.load_state_dict(
                    {k[len("discriminator.") :]: v for k, v in disc.items() if k.startswith("discriminator.")}
                )
                self.objective.load_state_dict(
                    {k[len("objective.") :]: v for k, v in disc.items() if k.startswith("objective.")}
                )
                load_optimizer_state(
                    self.opt_d, unflatten_optimizer_state(optim, optim_json["discriminator"], "discriminator")
                )
                if state["schedulers"].get("discriminator"):
                    restore_scheduler(self.sched_d, state["schedulers"]["discriminator"])
            elif self.is_main:
                log.warning("the checkpoint has no discriminator: a fresh one starts at step %d", state["step"])
