"""Building a tokenizer from a run config, and checking that the data fit it."""

from __future__ import annotations

from torch import Tensor

from vqfuse.errors import ConfigError
from vqfuse.modalities import Modality
from vqfuse.nets.autoencoder import AutoencoderConfig
from vqfuse.tokenizer import Tokenizer, TokenizerConfig
from vqfuse.train.config import RunConfig


def build_tokenizer(config: RunConfig, modality: Modality) -> Tokenizer:
    """The Tokenizer described by `config.model` for `modality` (meta from the data section)."""
    model = config.model or {}
    missing = [k for k in ("autoencoder", "quantizer") if k not in model]
    if missing:
        raise ConfigError(f"model needs {' and '.join(missing)} sections")
    try:
        ae = AutoencoderConfig.from_dict(dict(model["autoencoder"]))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"model.autoencoder: {exc}") from exc
    if ae.dims != modality.dims:
        raise ConfigError(
            f"model.autoencoder.dims is {ae.dims}, but {modality.name} data has {modality.dims} spatial axes"
        )
    meta = {**modality.meta(config.data), **dict(model.get("meta") or {})}
    try:
        return Tokenizer(TokenizerConfig(modality.name, ae, dict(model["quantizer"]), meta))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"model.quantizer {model['quantizer']}: {exc}") from exc


def check_example(model: Tokenizer, example: Tensor) -> None:
    """Fail at start-up if items do not fit the autoencoder (channels, divisibility)."""
    ae = model.config.autoencoder
    if example.dim() != ae.dims + 1 or example.shape[0] != ae.in_channels:
        raise ConfigError(
            f"data items have shape {tuple(example.shape)}, but the model expects "
            f"({ae.in_channels}, <{ae.dims} spatial axes>)"
        )
    spatial, factors = tuple(example.shape[1:]), ae.downsample_factors
    # video that codes its first frame alone sees (f - 1) copies of it in front: 1 + f*k frames fit
    lead = (getattr(ae, "time_lead", 0),) + (0,) * (len(spatial) - 1)
    if any((n + e) % f for n, e, f in zip(spatial, lead, factors)):
        frames = f" (the first frame is coded alone: clips need 1 + {factors[0]}*k frames)" if lead[0] else ""
        raise ConfigError(
            f"data items of size {spatial} are not divisible by the model's downsampling {factors}" + frames
        )


# ---- the trainer ------------------------------------------------------------------------------------


__all__ = ["build_tokenizer", "check_example"]
