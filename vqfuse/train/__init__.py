"""Training: run configs, the one trainer for every tokenizer, objectives, checkpoints, evaluation.

Heavy pieces (accelerate, the trainer) load lazily, so `import vqfuse.train.config` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "RunConfig": "vqfuse.train.config",
    "TrainConfig": "vqfuse.train.config",
    "LossConfig": "vqfuse.train.config",
    "load_config": "vqfuse.train.config",
    "train": "vqfuse.train.trainer",
    "Trainer": "vqfuse.train.trainer",
    "build_tokenizer": "vqfuse.train.build",
    "TokenizerObjective": "vqfuse.train.objectives",
    "build_discriminator": "vqfuse.train.discriminator",
    "EMA": "vqfuse.train.ema",
    "build_scheduler": "vqfuse.train.schedule",
    "warmup_cosine": "vqfuse.train.schedule",
    "latest_checkpoint": "vqfuse.train.checkpoint",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'vqfuse.train' has no attribute {name!r}")
