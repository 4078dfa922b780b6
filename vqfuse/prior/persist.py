"""A prior saved as a directory: `config.json` (architecture + sequence layout) and `model.safetensors`.

Loading reads JSON and tensors only; nothing is unpickled.
"""

from __future__ import annotations

from pathlib import Path

import torch

from vqfuse.errors import InputFileError, PathLike
from vqfuse.io.weights import load_json, load_state_into, save_json, save_weights
from vqfuse.prior.sequence import SequenceLayout
from vqfuse.prior.transformer import PriorConfig, PriorTransformer

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
FORMAT = "vqfuse-prior/1"


def save_prior(model: PriorTransformer, directory: PathLike, layout: SequenceLayout | None = None) -> Path:
    """Write config.json and model.safetensors (each atomically) into `directory`; the layout the prior was
    trained on, if given, is stored with the config."""
    if layout is not None:
        c = model.config
        if (layout.vocab_size, layout.n_modalities) != (c.vocab, c.n_modalities) or layout.n_positions > c.max_len:
            raise ValueError(f"{layout} does not fit the model (vocab={c.vocab}, n_modalities={c.n_modalities}, "
                             f"max_len={c.max_len})")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_weights(model.state_dict(), directory / WEIGHTS_FILE, metadata={"format": FORMAT})
    save_json({"format": FORMAT, "model": model.config.to_dict(),
               "layout": layout.to_dict() if layout is not None else None}, directory / CONFIG_FILE)
    return directory


def load_prior(directory: PathLike,
               device: str | torch.device = "cpu") -> tuple[PriorTransformer, SequenceLayout | None]:
    """Load a directory written by `save_prior`: the model (in eval mode) and its layout (None if not saved)."""
    directory = Path(directory)
    raw = load_json(directory / CONFIG_FILE)
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        found = raw.get("format") if isinstance(raw, dict) else None
        raise InputFileError(directory / CONFIG_FILE, f"not a vqfuse prior config (format {found!r})")
    try:
        model = PriorTransformer(PriorConfig.from_dict(raw["model"]))
        layout = SequenceLayout.from_dict(raw["layout"]) if raw.get("layout") is not None else None
    except (KeyError, TypeError, ValueError) as exc:
        raise InputFileError(directory / CONFIG_FILE, f"invalid prior config: {exc}") from exc
    load_state_into(model, directory / WEIGHTS_FILE, device)
    return model.to(device).eval(), layout


__all__ = ["save_prior", "load_prior"]
