"""Tiny run configs: a tokenizer run, tiny image and audio tokenizer presets, a fusion run over them."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from tests.helpers.data import RATE, SECONDS, TINY_AUDIO, TINY_DATASET, TINY_PAIRS
from vqfuse.train.config import RunConfig

TINY_RUN: dict[str, Any] = {
    "name": "tiny",
    "modality": "image",
    "data": {"train": TINY_DATASET, "size": 16},
    "model": {
        "autoencoder": {
            "dims": 2,
            "in_channels": 3,
            "channels": 8,
            "channel_mults": [1, 2],
            "latent_dim": 8,
            "norm_groups": 4,
        },
        "quantizer": {"kind": "vq", "codebook_size": 32},
    },
    "loss": {"gan_weight": 0.0},
    "train": {
        "steps": 4,
        "batch_size": 8,
        "warmup_steps": 2,
        "log_every": 2,
        "sample_every": 2,
        "checkpoint_every": 100,
        "num_workers": 0,
        "ema_decay": 0.9,
    },
}

GAN_LOSS: dict[str, Any] = {
    "gan_weight": 0.5,
    "disc_start": 1,
    "gan_start": 2,
    "gan_warmup": 2,
    "feature_matching_weight": 1.0,
    "r1_weight": 0.1,
    "lecam_weight": 0.01,
    "discriminator": {"kind": "patch", "channels": 8, "n_layers": 2},
}


def tiny_config(out: Any, **sections: dict[str, Any]) -> RunConfig:
    """TINY_RUN with `out` and per-section overrides, e.g. tiny_config(path, train={"steps": 6})."""
    raw = copy.deepcopy(TINY_RUN)
    for name, values in sections.items():
        raw[name] = {**raw.get(name, {}), **values} if isinstance(values, dict) else values
    raw["out"] = str(out)
    return RunConfig.from_dict(raw)


IMAGE_PRESET = {
    "task": "tokenizer",
    "modality": "image",
    "data": {"train": TINY_DATASET, "size": 16},
    "model": {
        "autoencoder": {
            "dims": 2,
            "in_channels": 3,
            "channels": 8,
            "channel_mults": [1, 2],
            "latent_dim": 8,
            "norm_groups": 4,
        },
        "quantizer": {"kind": "vq", "codebook_size": 32},
    },
    "loss": {"gan_weight": 0.0},
    "train": {
        "steps": 3,
        "batch_size": 8,
        "warmup_steps": 1,
        "log_every": 1,
        "sample_every": 0,
        "checkpoint_every": 0,
        "ema_decay": None,
    },
}
AUDIO_PRESET = {
    "task": "tokenizer",
    "modality": "audio",
    "data": {"train": TINY_AUDIO, "sample_rate": RATE, "segment_seconds": SECONDS},
    "model": {
        "autoencoder": {
            "dims": 1,
            "in_channels": 1,
            "channels": 4,
            "channel_mults": [1, 2, 2],
            "strides": [4, 4],
            "latent_dim": 8,
            "norm_groups": 2,
        },
        "quantizer": {"kind": "rvq", "codebook_size": 16, "n_quantizers": 3, "codebook_dim": 4},
    },
    "loss": {"gan_weight": 0.0, "stft_weight": 0.0, "mel_weight": 0.0},
    "train": {
        "steps": 3,
        "batch_size": 8,
        "warmup_steps": 1,
        "log_every": 1,
        "sample_every": 0,
        "checkpoint_every": 0,
        "ema_decay": None,
    },
}
PRIOR = {
    "kind": "maskgit",
    "dim": 32,
    "depth": 2,
    "heads": 2,
    "dropout": 0.1,
    "condition_dropout": 0.2,
    "sampling": {"steps": 3, "joint_steps": 4},
    "samples": 2,
}


def fusion_config(out: Path, tokenizers: dict, steps: int = 6, **prior) -> RunConfig:
    return RunConfig.from_dict(
        {
            "name": "tinyfusion",
            "task": "fusion",
            "modality": "paired",
            "out": str(out),
            "data": {"train": TINY_PAIRS, "size": 16, "sample_rate": RATE, "segment_seconds": SECONDS},
            "tokenizers": tokenizers,
            "prior": {**PRIOR, **prior},
            "train": {
                "steps": steps,
                "batch_size": 8,
                "lr": 2e-3,
                "betas": [0.9, 0.95],
                "warmup_steps": 2,
                "log_every": 2,
                "checkpoint_every": 3,
                "ema_decay": 0.9,
            },
        }
    )


def reuse(run: Path) -> dict:
    """tokenizers: the ones trained by `run` (copied into the new run)."""
    return {
        "image": {"model": str(run / "tokenizers/image/model")},
        "audio": {"model": str(run / "tokenizers/audio/model"), "n_q": 2},
    }
