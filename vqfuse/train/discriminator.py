"""Builds the GAN discriminator named by `LossConfig.discriminator` for a modality's shape of data.

Spec: {"kind": KIND, **options}; `dims` and `in_channels` come from the tokenizer, not the spec.
    patch        PatchDiscriminator (channels, n_layers, norm, stride, max_mult, norm_groups), any dims
    multiscale   MultiScaleDiscriminator: the same options plus n_scales
    mstft        audio: EnCodec multi-scale STFT (n_ffts, channels, hop_lengths, norm, ...)
    mpd          audio: HiFi-GAN multi-period (periods, channels, norm, ...)
    audio        audio: mstft + mpd combined; shared channels / norm, and "stft" / "period" option dicts
Other kinds plug in with `register_discriminator(kind, factory)`.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from vqfuse.errors import ConfigError
from vqfuse.nets.audio_discriminators import MultiPeriodDiscriminator, MultiScaleSTFTDiscriminator
from vqfuse.nets.discriminators import CombinedDiscriminator, MultiScaleDiscriminator, PatchDiscriminator

# factory(dims, in_channels, **options) -> module returning (logits, features) or their lists
Factory = Callable[..., nn.Module]


def _audio_only(factory: Factory) -> Factory:
    def build(dims: int, in_channels: int, **options: Any) -> nn.Module:
        if dims != 1:
            raise ValueError(f"this discriminator is for audio (1 spatial axis), the data has {dims}")
        return factory(in_channels=in_channels, **options)

    return build


def _audio(
    dims: int,
    in_channels: int,
    channels: int = 32,
    norm: str = "weight",
    stft: dict | None = None,
    period: dict | None = None,
) -> nn.Module:
    shared = dict(in_channels=in_channels, channels=channels, norm=norm)
    return CombinedDiscriminator(
        [
            _audio_only(MultiScaleSTFTDiscriminator)(dims, **shared, **(stft or {})),
            _audio_only(MultiPeriodDiscriminator)(dims, **shared, **(period or {})),
        ]
    )


_FACTORIES: dict[str, Factory] = {
    "patch": PatchDiscriminator,
    "multiscale": MultiScaleDiscriminator,
    "mstft": _audio_only(MultiScaleSTFTDiscriminator),
    "mpd": _audio_only(MultiPeriodDiscriminator),
    "audio": _audio,
}


def register_discriminator(kind: str, factory: Factory) -> None:
    """Make `{"kind": kind, ...}` build `factory(dims=..., in_channels=..., **options)`."""
    _FACTORIES[kind] = factory


def discriminator_kinds() -> tuple[str, ...]:
    return tuple(_FACTORIES)


def build_discriminator(spec: dict[str, Any], dims: int, in_channels: int) -> nn.Module:
    """A discriminator over (B, in_channels, *spatial) inputs with `dims` spatial axes."""
    spec = dict(spec or {})
    kind = spec.pop("kind", "patch")
    for key in ("dims", "in_channels"):
        spec.pop(key, None)  # always taken from the model
    if kind not in _FACTORIES:
        raise ConfigError(f"loss.discriminator.kind must be one of {', '.join(_FACTORIES)}, got {kind!r}")
    try:
        return _FACTORIES[kind](dims=dims, in_channels=in_channels, **spec)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"loss.discriminator {dict(spec, kind=kind)}: {exc}") from exc


@torch.no_grad()
def check_discriminator_input(disc: nn.Module, example: torch.Tensor) -> None:
    """Runs `disc` on one example (C, *spatial) so a too-small input fails at start-up, not at disc_start."""
    was_training = disc.training
    try:
        disc.eval()
        disc(example.unsqueeze(0))
    except ValueError as exc:
        raise ConfigError(f"loss.discriminator does not fit the data: {exc}") from exc
    finally:
        disc.train(was_training)


__all__ = ["build_discriminator", "check_discriminator_input", "register_discriminator", "discriminator_kinds"]
