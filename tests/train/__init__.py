"""Shared helpers for the trainer tests: a tiny in-memory image dataset and a tiny run config."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch.utils.data import Dataset

from vqfuse.data.registry import register_dataset
from vqfuse.train.config import RunConfig

TINY_DATASET = "tinytest"


class TinyImages(Dataset):
    """Smooth random 16x16 RGB images in [-1, 1]: 40 for training, 12 held out."""

    def __init__(self, size: int = 16, split: str = "train") -> None:
        n = {"train": 40, "test": 12, "all": 52}[split]
        g = torch.Generator().manual_seed({"train": 1, "test": 2, "all": 3}[split])
        low = torch.rand(n, 3, 4, 4, generator=g) * 2 - 1  # (n, 3, 4, 4)
        self.images = torch.nn.functional.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.images[i]  # (3, 16, 16)


register_dataset("image", TINY_DATASET, lambda arg, size, split: TinyImages(size, split), replace=True)

TINY_RUN: dict[str, Any] = {
    "name": "tiny",
    "modality": "image",
    "data": {"train": TINY_DATASET, "size": 16},
    "model": {
        "autoencoder": {"dims": 2, "in_channels": 3, "channels": 8, "channel_mults": [1, 2], "latent_dim": 8, "norm_groups": 4},
        "quantizer": {"kind": "vq", "codebook_size": 32},
    },
    "loss": {"gan_weight": 0.0},
    "train": {"steps": 4, "batch_size": 8, "warmup_steps": 2, "log_every": 2, "sample_every": 2, "checkpoint_every": 100,
              "num_workers": 0, "ema_decay": 0.9},
}

GAN_LOSS: dict[str, Any] = {
    "gan_weight": 0.5, "disc_start": 1, "gan_start": 2, "gan_warmup": 2, "feature_matching_weight": 1.0,
    "r1_weight": 0.1, "lecam_weight": 0.01, "discriminator": {"kind": "patch", "channels": 8, "n_layers": 2},
}


def tiny_config(out: Any, **sections: dict[str, Any]) -> RunConfig:
    """TINY_RUN with `out` and per-section overrides, e.g. tiny_config(path, train={"steps": 6})."""
    raw = copy.deepcopy(TINY_RUN)
    for name, values in sections.items():
        raw[name] = {**raw.get(name, {}), **values} if isinstance(values, dict) else values
    raw["out"] = str(out)
    return RunConfig.from_dict(raw)
