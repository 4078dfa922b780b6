"""Builds any quantizer from a JSON-friendly spec: {"kind": "vq" | "rvq" | "fsq" | "lfq", **options}."""

from __future__ import annotations

from typing import Any

from vqfuse.quantize.base import Quantizer
from vqfuse.quantize.fsq import FSQ
from vqfuse.quantize.lfq import LFQ
from vqfuse.quantize.residual import ResidualVQ
from vqfuse.quantize.vq import EMAConfig, RestartConfig, VectorQuantizer

KINDS = ("vq", "rvq", "fsq", "lfq")


def _vq_options(options: dict[str, Any]) -> dict[str, Any]:
    """JSON sub-dicts -> the config dataclasses VectorQuantizer takes."""
    options = dict(options)
    if isinstance(options.get("ema"), dict):
        options["ema"] = EMAConfig(**options["ema"])
    if isinstance(options.get("restart"), dict):
        options["restart"] = RestartConfig(**options["restart"])
    return options


def build_quantizer(spec: dict[str, Any], dim: int) -> Quantizer:
    """A quantizer for `dim`-channel latents.

    Examples: {"kind": "vq", "codebook_size": 1024}, {"kind": "rvq", "codebook_size": 1024,
    "n_quantizers": 8, "quantizer_dropout": 0.5}, {"kind": "fsq", "levels": [8, 5, 5, 5]},
    {"kind": "lfq", "codebook_size": 1024}.
    """
    options = {k: v for k, v in spec.items() if k != "kind"}
    kind = spec.get("kind", "vq")
    if kind == "vq":
        return VectorQuantizer(dim, **_vq_options(options))
    if kind == "rvq":
        return ResidualVQ(dim, **_vq_options(options))
    if kind == "fsq":
        return FSQ(dim=dim, **options)
    if kind == "lfq":
        return LFQ(dim=dim, **options)
    raise ValueError(f"unknown quantizer kind {kind!r}; choose one of {', '.join(KINDS)}")
