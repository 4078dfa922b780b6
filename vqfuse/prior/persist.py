"""Saving and loading a prior: `config.json` (architecture, sequence layout, content-hash id) and
`model.safetensors`, through the one model-directory helper (`vqfuse.io.model_dir`); nothing is pickled."""

from __future__ import annotations

from pathlib import Path

import torch

from vqfuse.errors import InputFileError, PathLike
from vqfuse.io.model_dir import CONFIG_FILE, load_model_dir, save_model_dir
from vqfuse.prior.sequence import SequenceLayout
from vqfuse.prior.transformer import PriorConfig, PriorTransformer

FORMAT = "vqfuse-prior/1"


def save_prior(model: PriorTransformer, directory: PathLike, layout: SequenceLayout | None = None) -> Path:
    """Write config.json and model.safetensors (each atomically) into `directory`; the layout the prior was
    trained on, if given, is stored with the config."""
    if layout is not None:
        c = model.config
        if (layout.vocab_size, layout.n_modalities) != (c.vocab, c.n_modalities) or layout.n_positions > c.max_len:
            raise ValueError(
                f"{layout} does not fit the model (vocab={c.vocab}, n_modalities={c.n_modalities}, max_len={c.max_len})"
            )
    save_model_dir(
        directory,
        model,
        {"model": model.config.to_dict(), "layout": layout.to_dict() if layout is not None else None},
        FORMAT,
    )
    return Path(directory)


def load_prior(
    directory: PathLike, device: str | torch.device = "cpu"
) -> tuple[PriorTransformer, SequenceLayout | None]:
    """Load a directory written by `save_prior`: the model (in eval mode) and its layout (None if not saved)."""
    model, raw = load_model_dir(
        directory, FORMAT, "prior", lambda raw: PriorTransformer(PriorConfig.from_dict(raw["model"])), device
    )
    try:
        layout = SequenceLayout.from_dict(raw["layout"]) if raw.get("layout") is not None else None
    except (KeyError, TypeError, ValueError) as exc:
        raise InputFileError(Path(directory) / CONFIG_FILE, f"invalid prior config: {exc}") from exc
    return model, layout


__all__ = ["save_prior", "load_prior"]
