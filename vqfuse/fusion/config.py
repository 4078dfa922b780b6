"""The sections of a fusion config: `tokenizers:` (one entry per named modality), `prior:` and `data:`.

    tokenizers:
      image: {preset: image-emoji32, steps: 1500, overrides: [data=digits]}   # train one from a preset
      audio: {model: runs/speech/model, n_q: 2}                                # or reuse a trained one
    prior: {kind: maskgit, dim: 128, tasks: {image: 1, audio: 1, joint: 1}, ...}
    data: {train: av-digits, ...}

Each entry's name is the modality its tokenizer is for; any number of modalities works (one: a token prior over that modality alone, e.g. for frame prediction), and
the prior's training tasks are derived from them: each modality as the target given the others, plus
`joint` (all of them generated together).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from vqfuse.errors import ConfigError
from vqfuse.prior.sequence import SequenceLayout
from vqfuse.prior.transformer import PriorConfig
from vqfuse.train.config import RunConfig, load_config

KINDS = ("maskgit", "causal")
SPEC_KEYS = ("preset", "overrides", "steps", "model", "n_q", "max_steps")
JOINT = "joint"  # the task that generates every segment together


@dataclass
class PriorSettings:
    """The `prior:` section of a fusion config. `tasks` weighs each target (a modality name or "joint");
    modalities left out weigh 1, "joint" too."""

    kind: str = "maskgit"
    dim: int = 256
    depth: int = 6
    heads: int = 8
    mlp_ratio: float = 4.0
    dropout: float = 0.1
    condition_dropout: float = 0.1
    tasks: dict[str, float] = field(default_factory=dict)
    shared_codebook: bool = False
    eval_batches: int = 0  # held-out batches to score (0: the whole test split)
    samples: int = 8  # held-out items (and joint samples) generated into samples/ at the end (0: none)
    max_items: int | None = None  # items encoded per split, spread evenly (None: all; `steps=N`: N x batch / 4)
    sampling: dict[str, Any] = field(default_factory=dict)  # defaults of FusionModel.generate / sample_joint

    @classmethod
    def from_config(cls, raw: dict[str, Any] | None) -> "PriorSettings":
        try:
            s = cls(**(raw or {}))
        except TypeError as exc:
            known = ", ".join(f.name for f in cls.__dataclass_fields__.values())  # type: ignore[attr-defined]
            raise ConfigError(f"prior: {exc} (keys: {known})") from None
        if s.kind not in KINDS:
            raise ConfigError(f"prior.kind must be one of {', '.join(KINDS)}, got {s.kind!r}")
        if s.max_items is not None and (not isinstance(s.max_items, int) or s.max_items < 1):
            raise ConfigError(f"prior.max_items must be an integer >= 1 or null, got {s.max_items!r}")
        if not 0.0 <= float(s.condition_dropout) <= 1.0:
            raise ConfigError(f"prior.condition_dropout must be in [0, 1], got {s.condition_dropout}")
        try:
            s.architecture(SequenceLayout([("a", 2, 2)]))
        except ValueError as exc:
            raise ConfigError(f"prior: {exc}") from None
        return s

    def architecture(self, layout: SequenceLayout) -> PriorConfig:
        return PriorConfig.for_layout(
            layout,
            dim=int(self.dim),
            depth=int(self.depth),
            heads=int(self.heads),
            mlp_ratio=float(self.mlp_ratio),
            dropout=float(self.dropout),
            causal=self.kind == "causal",
        )

    def task_names(self, names: tuple[str, ...]) -> tuple[str, ...]:
        return (*names, JOINT)

    def task_weights(self, names: tuple[str, ...]) -> Tensor:
        """One weight per task of `task_names(names)`; raises ConfigError on unknown or all-zero tasks."""
        tasks = self.task_names(names)
        bad = set(self.tasks) - set(tasks)
        weights = [float(self.tasks.get(t, 1.0)) for t in tasks]
        if bad or min(weights) < 0 or sum(weights) <= 0:
            raise ConfigError(f"prior.tasks must weigh some of {', '.join(tasks)} (>= 0, not all 0), got {self.tasks}")
        return torch.tensor(weights)


@dataclass
class TokenizerSpec:
    """One entry of `tokenizers:`: a preset to train (with overrides) or a trained model to reuse; `n_q`
    keeps that many stages of a residual tokenizer. `max_steps` bounds the steps it trains (the `steps=N`
    override of a fusion run sets it on every entry whose steps the command line leaves alone)."""

    name: str
    preset: str | None = None
    overrides: list[str] = field(default_factory=list)
    steps: int | None = None
    model: str | None = None
    n_q: int | None = None
    max_steps: int | None = None

    @classmethod
    def parse(cls, name: str, raw: Any) -> "TokenizerSpec":
        if isinstance(raw, str):
            raw = {"preset": raw}
        if not isinstance(raw, dict):
            raise ConfigError(
                f"tokenizers.{name} must be a mapping ({{preset: NAME, overrides: [...]}} or {{model: PATH}})"
            )
        try:
            spec = cls(name=name, **raw)
        except TypeError:
            raise ConfigError(
                f"tokenizers.{name}: unknown keys {sorted(set(raw) - set(SPEC_KEYS))}; use {', '.join(SPEC_KEYS)}"
            ) from None
        if (spec.preset is None) == (spec.model is None):
            raise ConfigError(
                f"tokenizers.{name} needs exactly one of preset (train one) or model (reuse a trained one)"
            )
        if isinstance(spec.overrides, str):
            spec.overrides = [spec.overrides]
        if not isinstance(spec.overrides, list) or not all(isinstance(o, str) for o in spec.overrides):
            raise ConfigError(f"tokenizers.{name}.overrides must be a list of key=value strings")
        for key in ("steps", "max_steps"):
            value = getattr(spec, key)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
                raise ConfigError(f"tokenizers.{name}.{key} must be an integer >= 0, got {value!r}")
        if spec.n_q is not None and (not isinstance(spec.n_q, int) or spec.n_q < 1):
            raise ConfigError(f"tokenizers.{name}.n_q must be an integer >= 1, got {spec.n_q!r}")
        return spec

    def run_config(self, out: Path) -> RunConfig:
        """The tokenizer's own RunConfig, training into `out/tokenizers/<name>` for min(steps, max_steps)."""
        extra = [f"steps={self.steps}"] if self.steps is not None else []
        cfg = load_config(str(self.preset), [*self.overrides, *extra, f"out={out / 'tokenizers' / self.name}"])
        if self.max_steps is not None:
            cfg.train.steps = min(cfg.train.steps, self.max_steps)
        if cfg.task != "tokenizer" or cfg.modality != self.name:
            raise ConfigError(
                f"tokenizers.{self.name}: preset {self.preset!r} is a {cfg.modality} {cfg.task} config, "
                f"not an {self.name} tokenizer"
            )
        return cfg


def tokenizer_specs(config: RunConfig) -> dict[str, TokenizerSpec]:
    """The `tokenizers:` entries, in the config's order (the prior's sequence order)."""
    from vqfuse.modalities.base import get_modality

    raw = config.tokenizers or {}
    if not raw:
        raise ConfigError("a fusion config needs tokenizers for one or more modalities, got none")
    for name in raw:
        get_modality(name)  # a registered modality, or a ConfigError naming the known ones
    return {name: TokenizerSpec.parse(name, entry) for name, entry in raw.items()}


def data_options(config: RunConfig) -> tuple[str, dict[str, Any]]:
    """(multimodal dataset spec, options for its factory) from the data section."""
    data = dict(config.data or {})
    spec = data.pop("train", None)
    if not spec:
        raise ConfigError("data.train (the paired dataset spec: av-digits, av-emoji or pairs:CSV) is missing")
    data.pop("test", None)
    return str(spec), data


def check_fusion_config(config: RunConfig) -> tuple[dict[str, TokenizerSpec], PriorSettings]:
    """Validate a fusion config without training anything; raises ConfigError."""
    if config.task != "fusion":
        raise ConfigError(f"not a fusion config (task: {config.task})")
    config.train.validate()
    data_options(config)
    specs = tokenizer_specs(config)
    settings = PriorSettings.from_config(config.prior)
    settings.task_weights(tuple(specs))
    for spec in specs.values():
        if spec.preset is not None:
            spec.run_config(Path(config.out))  # the preset exists and its overrides parse
    return specs, settings


__all__ = ["PriorSettings", "TokenizerSpec", "tokenizer_specs", "data_options", "check_fusion_config", "KINDS", "JOINT"]
