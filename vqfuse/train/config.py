"""Run configuration: YAML presets under configs/ plus `key=value` overrides from the command line.

A preset is a nested mapping; overrides use dotted paths (`train.lr=1e-4`, `model.quantizer.codebook_size=512`)
and a few shortcuts every preset accepts: `steps=N` (train.steps), `out=DIR`, `batch_size=N`, `data=SPEC`
(data.train), `seed=N`. `task: fusion` presets train a token prior (see `vqfuse.fusion.pipeline`); there the
shortcuts set the prior's training, and each tokenizer's own steps are `tokenizers.<name>.steps`; a `steps=N`
given as an override also caps every tokenizer the run trains at N steps (`apply_steps_cap`), so
`vqfuse train <fusion preset> steps=10` is a short run throughout.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from vqfuse.errors import ConfigError, InputFileError

SHORTCUTS = {
    "steps": "train.steps",
    "batch_size": "train.batch_size",
    "seed": "train.seed",
    "data": "data.train",
    "out": "out",
}

# Presets ship inside the package (package data), so preset names work from an installed wheel too;
# the checkout's configs/ is a link to the same folder.
CONFIG_DIR = Path(str(resources.files("vqfuse") / "presets"))


PRECISIONS = ("no", "bf16", "fp16")


@dataclass
class TrainConfig:
    steps: int = 2000
    batch_size: int = 64
    lr: float = 2e-4
    disc_lr: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.9)
    weight_decay: float = 0.0
    warmup_steps: int = 100  # linear LR warm-up, then cosine to min_lr_ratio * lr
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0
    ema_decay: float | None = 0.999  # EMA of generator weights (None: off)
    mixed_precision: str = "no"  # "no" | "bf16" | "fp16" (accelerate)
    seed: int = 0
    log_every: int = 20
    sample_every: int = 500
    checkpoint_every: int = 500
    eval_every: int = 0  # 0: only at the end
    num_workers: int = 0
    compile: bool = False
    max_minutes: float | None = None  # wall-clock budget of this session: stop early, still save model + metrics
    # residual VQ warm-up: the decoder sees the continuous latent for this many steps, then every stage is
    # k-means-initialised on encoder outputs of quantizer_init_batches batches (more vectors than codes)
    quantizer_bypass_steps: int = 0
    quantizer_init_batches: int = 8

    def validate(self) -> None:
        """Raise ConfigError on a value no trainer can run with."""
        if self.mixed_precision not in PRECISIONS:
            raise ConfigError(
                f"train.mixed_precision must be one of {', '.join(PRECISIONS)}, got {self.mixed_precision!r}"
            )
        checks = {
            "steps": self.steps >= 0,
            "batch_size": self.batch_size >= 1,
            "lr": self.lr > 0,
            "disc_lr": self.disc_lr > 0,
            "log_every": self.log_every >= 1,
            "sample_every": self.sample_every >= 0,
            "warmup_steps": self.warmup_steps >= 0,
            "checkpoint_every": self.checkpoint_every >= 0,
            "eval_every": self.eval_every >= 0,
            "grad_clip": self.grad_clip >= 0,
            "num_workers": self.num_workers >= 0,
            "quantizer_bypass_steps": self.quantizer_bypass_steps >= 0,
            "quantizer_init_batches": self.quantizer_init_batches >= 1,
            "max_minutes": self.max_minutes is None or self.max_minutes >= 0,
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ConfigError(f"invalid train.{bad[0]}: {getattr(self, bad[0])!r}")
        if self.ema_decay is not None and not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"train.ema_decay must be in [0, 1) or null, got {self.ema_decay}")
        if len(tuple(self.betas)) != 2:
            raise ConfigError(f"train.betas must be two numbers, got {self.betas}")


@dataclass
class LossConfig:
    reconstruction: str = "l1"  # "l1" | "l2" | "l1+l2"
    reconstruction_weight: float = 1.0
    quantizer_weight: float = 1.0
    # VQ-GAN (all off when gan_weight == 0)
    gan_weight: float = 0.0
    gan_kind: str = "hinge"  # "hinge" | "non_saturating"
    disc_start: int = 500  # discriminator trains from this step ...
    gan_start: int = 1000  # ... its loss reaches the generator from this step (>= disc_start) ...
    gan_warmup: int = 500  # ... ramping linearly over this many steps
    adaptive_weight: bool = True
    adaptive_max: float = 1e4
    feature_matching_weight: float = 0.0
    r1_weight: float = 0.0
    lecam_weight: float = 0.0
    discriminator: dict[str, Any] = field(default_factory=lambda: {"kind": "patch", "channels": 64, "n_layers": 3})
    perceptual_weight: float = 0.0
    perceptual_weights_path: str | None = None  # LPIPS weights from a local file; never downloaded
    # audio only
    stft_weight: float = 0.0
    mel_weight: float = 0.0
    mel_scales: str = "default"  # "default" (3 FFT sizes, 80 mels) | "dac7" (DAC's 7 scales, 5..320 mels)
    # spectral codec terms on the codec's STFT grid (vqfuse.losses.spectral)
    complex_stft_weight: float = 0.0  # power-law (0.3) compressed complex STFT MSE
    log_magnitude_weight: float = 0.0  # log-magnitude MSE
    phase_derivative_weight: float = 0.0  # phase differences over time and frequency (compressed products)
    spectral_n_fft: int = 640
    spectral_hop: int = 160


@dataclass
class RunConfig:
    """Everything one `vqfuse train` needs."""

    name: str = "run"
    task: str = "tokenizer"  # "tokenizer" | "fusion" (a token prior on multimodal data: vqfuse.fusion.pipeline)
    modality: str = "image"
    data: dict[str, Any] = field(default_factory=lambda: {"train": "emoji", "size": 32})
    model: dict[str, Any] = field(default_factory=dict)  # {"autoencoder": {...}, "quantizer": {...}, "meta": {...}}
    # task fusion only: {"image": {"preset": ..., "overrides": [...], "steps": N} | {"model": PATH}, "audio": {..., "n_q": 2}}
    tokenizers: dict[str, Any] = field(default_factory=dict)
    prior: dict[str, Any] = field(default_factory=dict)  # task fusion only: {"kind": "maskgit" | "causal", "dim": ...}
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    out: str = "runs/run"
    source: str = ""  # the preset file it came from

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "RunConfig":
        raw = copy.deepcopy(raw)
        try:
            loss = LossConfig(**raw.pop("loss", {}) or {})
            train = TrainConfig(**raw.pop("train", {}) or {})
            if isinstance(train.betas, list):
                train.betas = tuple(train.betas)
            return cls(loss=loss, train=train, **raw)
        except TypeError as exc:
            raise ConfigError(f"invalid config: {exc}") from exc


def parse_value(text: str) -> Any:
    """`key=value` values are YAML scalars/lists: 1e-4 -> float, true -> bool, [1,2] -> list."""
    for number in (int, float):  # YAML 1.1 reads "1e-4" as a string
        try:
            return number(text)
        except ValueError:
            pass
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    raw = copy.deepcopy(raw)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not key=value")
        key, value = item.split("=", 1)
        path = SHORTCUTS.get(key, key).split(".")
        node = raw
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {part!r} is not a section")
        node[path[-1]] = parse_value(value)
    return raw


def _override_path(key: str) -> list[str]:
    return SHORTCUTS.get(key, key).split(".")


def apply_steps_cap(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """What a `steps=N` (or `train.steps=N`) override bounds in a fusion config besides the prior's steps, so a
    `steps=10` smoke run is short throughout instead of training tokenizers for thousands of steps:

    - every tokenizer entry it trains (`preset:`) gets `max_steps: N` (it trains min(its steps, N)), unless
      the overrides set that entry's steps themselves (`tokenizers.<name>.steps=M`, or a whole entry with
      `steps`): theirs wins;
    - `prior.max_items` becomes a quarter of the items the prior draws in N steps (N x train.batch_size / 4,
      at least one batch: it sees each about 4 times), so each split encodes no more than that (unless the
      overrides set `prior.max_items`, or the preset's is lower). A full run is untouched: no preset sets it,
      and a steps=N above 4 x items / batch_size keeps every item (fusion-av-digits: N >= 1,002).
    """
    if raw.get("task") != "fusion" or not isinstance(raw.get("tokenizers"), dict):
        return raw
    pairs = [(_override_path(k), parse_value(v)) for k, v in (o.split("=", 1) for o in overrides if "=" in o)]
    caps = [v for path, v in pairs if path == ["train", "steps"]]
    if not caps or not isinstance(caps[-1], int) or isinstance(caps[-1], bool):
        return raw  # no cap (or a bad value, which TrainConfig.validate reports)
    explicit: set[str] = set()
    for path, value in pairs:
        if path[0] != "tokenizers":
            continue
        if len(path) >= 3 and path[2] == "steps":
            explicit.add(path[1])
        elif len(path) == 2 and isinstance(value, dict) and "steps" in value:
            explicit.add(path[1])
        elif len(path) == 1 and isinstance(value, dict):
            explicit |= {n for n, e in value.items() if isinstance(e, dict) and "steps" in e}
    raw = copy.deepcopy(raw)
    for name, entry in raw["tokenizers"].items():
        if isinstance(entry, str):
            entry = raw["tokenizers"][name] = {"preset": entry}
        if name not in explicit and isinstance(entry, dict) and entry.get("preset") is not None:
            entry["max_steps"] = caps[-1]
    prior = raw.setdefault("prior", {})
    if isinstance(prior, dict) and ["prior", "max_items"] not in [path for path, _ in pairs]:
        batch = (raw.get("train") or {}).get("batch_size", TrainConfig.batch_size)
        if isinstance(batch, int):
            items = max(batch, caps[-1] * batch // 4, 1)
            prior["max_items"] = min(items, prior.get("max_items") or items)
    return raw


def resolve_preset(name_or_path: str) -> Path:
    """A YAML path, or a preset name such as `image-emoji32` looked up in the package's presets."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    for candidate in (CONFIG_DIR / name_or_path, CONFIG_DIR / f"{name_or_path}.yaml"):
        if candidate.is_file():
            return candidate
    presets = ", ".join(sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))) if CONFIG_DIR.is_dir() else "none"
    raise InputFileError(name_or_path, f"no such config file or preset (presets: {presets})")


def load_config(name_or_path: str, overrides: list[str] | None = None) -> RunConfig:
    path = resolve_preset(name_or_path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise InputFileError(path, f"invalid YAML: {str(exc).splitlines()[0]}") from exc
    if not isinstance(raw, dict):
        raise InputFileError(path, "a config must be a YAML mapping")
    raw.setdefault("name", path.stem)
    raw.setdefault("out", f"runs/{path.stem}")
    overrides = list(overrides or [])
    config = RunConfig.from_dict(apply_steps_cap(apply_overrides(raw, overrides), overrides))
    config.source = str(path)
    return config
