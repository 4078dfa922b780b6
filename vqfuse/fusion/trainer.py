"""Train a fusion model from one config: two tokenizers, the paired tokens, then a token prior.

    train_fusion(config) -> run_dir/
        config.yaml                   the resolved RunConfig (task: fusion)
        tokenizers/image/, audio/     tokenizer runs (model/ in each); reused when model/ exists,
                                      resumed when a checkpoint exists, else trained from the preset
        tokens/train.safetensors      the paired tokens (TokenPairs); re-encoded when the tokenizers,
        tokens/test.safetensors       n_q or the data change
        checkpoints/last/             the prior's resumable state (safetensors + JSON, swapped in atomically)
        prior/                        the final prior (save_prior: config.json + model.safetensors)
        fusion.json                   tokenizers (paths relative to the run dir), layout, n_q, sampling defaults
        logs/                         TensorBoard scalars and train.jsonl
        metrics.json / .md            held-out token loss / accuracy of the prior per task

A run directory is a self-contained fusion model: `FusionModel.from_run(run_dir)`.

The prior (config `prior:`) is a `PriorTransformer` over the sequence [TAG image tokens, TAG audio tokens]
(audio frame-major, see `vqfuse.fusion.tokens`):

- kind `maskgit` (bidirectional, the default): each example draws a task: `image` (image tokens masked,
  audio given), `audio` (the reverse) or `joint` (both masked, each with its own cosine-scheduled ratio);
  with probability `condition_dropout` the given segment becomes NULL (classifier-free guidance).
- kind `causal`: each batch draws an order, image->audio or audio->image, and learns every token from the
  ones before it; with probability `condition_dropout` the first segment becomes NULL.

The `train:` section (steps, batch_size, lr, warm-up + cosine, grad_clip, ema_decay, mixed_precision,
checkpoint_every, max_minutes, ...) and the `steps=` / `batch_size=` / `seed=` shortcuts set the prior's
training; each tokenizer's steps are `tokenizers.<name>.steps`. Non-finite steps are skipped.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor
from torch.optim import AdamW
from torch.utils.data import DataLoader, TensorDataset
from tqdm.auto import tqdm

from vqfuse.errors import ConfigError, ModelMismatchError, VqfuseError
from vqfuse.fusion.model import DEFAULT_SAMPLING, FUSION_FILE, FUSION_FORMAT
from vqfuse.fusion.tokens import TokenPairs, encode_pairs
from vqfuse.io.atomic import atomic_write_text
from vqfuse.io.weights import save_json
from vqfuse.prior.maskgit import masked_logits, masked_token_loss, random_mask
from vqfuse.prior.objectives import next_token_loss
from vqfuse.prior.persist import save_prior
from vqfuse.prior.sampling import drop_condition, null_condition
from vqfuse.prior.sequence import SequenceLayout
from vqfuse.prior.transformer import PriorConfig, PriorTransformer
from vqfuse.train.checkpoint import flatten_optimizer_state, latest_checkpoint, unflatten_optimizer_state
from vqfuse.train.config import RunConfig, load_config
from vqfuse.train.ema import EMA
from vqfuse.train.loop import LoopTrainer, RngStates, StepCallback, _jsonable
from vqfuse.train.schedule import build_scheduler
from vqfuse.train.trainer import PRECISIONS, InfiniteBatches, ResumableSampler, _load_optimizer, _restore_scheduler

log = logging.getLogger("vqfuse.fusion")

MODALITIES = ("image", "audio")
KINDS = ("maskgit", "causal")
TASKS = ("image", "audio", "joint")  # maskgit: which segment is the target ("joint": both)
Log = Callable[[str], None]


# ---- settings ---------------------------------------------------------------------------------------


@dataclass
class PriorSettings:
    """The `prior:` section of a fusion config."""

    kind: str = "maskgit"
    dim: int = 256
    depth: int = 6
    heads: int = 8
    mlp_ratio: float = 4.0
    dropout: float = 0.1
    condition_dropout: float = 0.1
    tasks: dict[str, float] = field(default_factory=lambda: {"image": 1.0, "audio": 1.0, "joint": 1.0})
    shared_codebook: bool = False
    eval_batches: int = 0  # held-out batches to score (0: the whole test split)
    samples: int = 8  # held-out pairs (and joint samples) generated into samples/ at the end (0: none)
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
        if not 0.0 <= float(s.condition_dropout) <= 1.0:
            raise ConfigError(f"prior.condition_dropout must be in [0, 1], got {s.condition_dropout}")
        bad = set(s.tasks) - set(TASKS)
        if bad or any(float(v) < 0 for v in s.tasks.values()) or sum(float(v) for v in s.tasks.values()) <= 0:
            raise ConfigError(f"prior.tasks must weigh some of {', '.join(TASKS)} (>= 0, not all 0), got {s.tasks}")
        try:
            s.architecture(SequenceLayout([("a", 2, 2)]))
        except ValueError as exc:
            raise ConfigError(f"prior: {exc}") from None
        return s

    def architecture(self, layout: SequenceLayout) -> PriorConfig:
        return PriorConfig.for_layout(layout, dim=int(self.dim), depth=int(self.depth), heads=int(self.heads),
                                      mlp_ratio=float(self.mlp_ratio), dropout=float(self.dropout),
                                      causal=self.kind == "causal")

    def task_weights(self) -> Tensor:
        return torch.tensor([float(self.tasks.get(t, 0.0)) for t in TASKS])


@dataclass
class TokenizerSpec:
    """One entry of `tokenizers:`: a preset to train (with overrides) or a trained model to reuse."""

    name: str
    preset: str | None = None
    overrides: list[str] = field(default_factory=list)
    steps: int | None = None
    model: str | None = None
    n_q: int | None = None

    @classmethod
    def parse(cls, name: str, raw: Any) -> "TokenizerSpec":
        if isinstance(raw, str):
            raw = {"preset": raw}
        if not isinstance(raw, dict):
            raise ConfigError(f"tokenizers.{name} must be a mapping ({{preset: NAME, overrides: [...]}} or {{model: PATH}})")
        try:
            spec = cls(name=name, **raw)
        except TypeError:
            raise ConfigError(f"tokenizers.{name}: unknown keys {sorted(set(raw) - {'preset', 'overrides', 'steps', 'model', 'n_q'})}; "
                              "use preset, overrides, steps, model, n_q") from None
        if (spec.preset is None) == (spec.model is None):
            raise ConfigError(f"tokenizers.{name} needs exactly one of preset (train one) or model (reuse a trained one)")
        if isinstance(spec.overrides, str):
            spec.overrides = [spec.overrides]
        if not isinstance(spec.overrides, list) or not all(isinstance(o, str) for o in spec.overrides):
            raise ConfigError(f"tokenizers.{name}.overrides must be a list of key=value strings")
        if spec.steps is not None and (not isinstance(spec.steps, int) or spec.steps < 0):
            raise ConfigError(f"tokenizers.{name}.steps must be an integer >= 0, got {spec.steps!r}")
        if spec.n_q is not None and (name != "audio" or not isinstance(spec.n_q, int) or spec.n_q < 1):
            raise ConfigError(f"tokenizers.{name}.n_q: only the audio tokenizer takes n_q (an integer >= 1)")
        return spec

    def run_config(self, out: Path) -> RunConfig:
        """The tokenizer's own RunConfig, training into `out/tokenizers/<name>`."""
        extra = [f"steps={self.steps}"] if self.steps is not None else []
        cfg = load_config(str(self.preset), [*self.overrides, *extra, f"out={out / 'tokenizers' / self.name}"])
        if cfg.task != "tokenizer" or cfg.modality != self.name:
            raise ConfigError(f"tokenizers.{self.name}: preset {self.preset!r} is a {cfg.modality} {cfg.task} config, "
                              f"not an {self.name} tokenizer")
        return cfg


def tokenizer_specs(config: RunConfig) -> dict[str, TokenizerSpec]:
    raw = config.tokenizers or {}
    unknown = set(raw) - set(MODALITIES)
    if unknown:
        raise ConfigError(f"tokenizers: unknown entries {sorted(unknown)}; a fusion run needs image and audio")
    missing = [m for m in MODALITIES if not raw.get(m)]
    if missing:
        raise ConfigError(f"a fusion config needs tokenizers.{' and tokenizers.'.join(missing)}")
    return {m: TokenizerSpec.parse(m, raw[m]) for m in MODALITIES}


def data_options(config: RunConfig) -> tuple[str, dict[str, Any]]:
    """(paired dataset spec, options for make_paired_dataset) from the data section."""
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
    tc = config.train
    if tc.mixed_precision not in PRECISIONS:
        raise ConfigError(f"train.mixed_precision must be one of {', '.join(PRECISIONS)}, got {tc.mixed_precision!r}")
    checks = {"steps": tc.steps >= 0, "batch_size": tc.batch_size >= 1, "lr": tc.lr > 0, "log_every": tc.log_every >= 1,
              "warmup_steps": tc.warmup_steps >= 0, "checkpoint_every": tc.checkpoint_every >= 0,
              "grad_clip": tc.grad_clip >= 0, "num_workers": tc.num_workers >= 0, "eval_every": tc.eval_every >= 0}
    bad = [k for k, ok in checks.items() if not ok]
    if bad:
        raise ConfigError(f"invalid train.{bad[0]}: {getattr(tc, bad[0])!r}")
    if tc.ema_decay is not None and not 0.0 <= tc.ema_decay < 1.0:
        raise ConfigError(f"train.ema_decay must be in [0, 1) or null, got {tc.ema_decay}")
    data_options(config)
    specs = tokenizer_specs(config)
    for spec in specs.values():
        if spec.preset is not None:
            spec.run_config(Path(config.out))  # the preset exists and its overrides parse
    return specs, PriorSettings.from_config(config.prior)


# ---- objectives -------------------------------------------------------------------------------------


class _Prior:
    """What the prior objectives need of a model (`causal` and a call), for a DDP-wrapped prior."""

    def __init__(self, wrapped: Any, model: PriorTransformer) -> None:
        self.wrapped, self.model = wrapped, model

    @property
    def causal(self) -> bool:
        return self.model.causal

    def __call__(self, *args: Any, **kwargs: Any) -> Tensor:
        return self.wrapped(*args, **kwargs)


def pack_pairs(layout: SequenceLayout, image: Tensor, audio: Tensor, order: tuple[str, ...] | None = None) -> Tensor:
    """image (B, n_image) and flat audio (B, n_audio) local codes -> packed ids (B, L) in `order`."""
    return layout.pack({"image": image, "audio": audio}, order or layout.names).ids


def maskgit_fusion_loss(model: Any, layout: SequenceLayout, image: Tensor, audio: Tensor, task_weights: Tensor,
                        condition_dropout: float = 0.1, generator: torch.Generator | None = None) -> Tensor:
    """Per example a task (image | audio | joint, drawn with `task_weights`), its target masked at a random
    cosine-scheduled ratio, the given segment NULL with probability `condition_dropout`; the cross entropy
    of all masked tokens. Sequence order: the layout's."""
    order = layout.names
    b, device = image.shape[0], image.device
    ids = pack_pairs(layout, image, audio, order)
    task = torch.multinomial(task_weights.float(), b, replacement=True, generator=generator).to(device)  # (B,)
    masks = {"image": random_mask(b, image.shape[1], generator, device) & (task != 1)[:, None],
             "audio": random_mask(b, audio.shape[1], generator, device) & (task != 0)[:, None]}
    drop = torch.rand(b, generator=generator).to(device) < condition_dropout
    ids = null_condition(ids, layout, order, ["audio"], rows=drop & (task == 0))
    ids = null_condition(ids, layout, order, ["image"], rows=drop & (task == 1))
    return masked_token_loss(model, layout, ids, masks, order)


def causal_fusion_loss(model: Any, layout: SequenceLayout, image: Tensor, audio: Tensor, condition_dropout: float = 0.1,
                       generator: torch.Generator | None = None) -> Tensor:
    """One random order for the batch (image->audio or audio->image), the first segment NULL per example
    with probability `condition_dropout`; next-token cross entropy of every code token."""
    flip = bool(torch.rand((), generator=generator) < 0.5)
    order = tuple(reversed(layout.names)) if flip else layout.names
    ids = pack_pairs(layout, image, audio, order)
    ids = drop_condition(ids, layout, condition_dropout, generator, order=order, condition=[order[0]])
    return next_token_loss(model, layout, ids, order)


@torch.no_grad()
def heldout_metrics(model: PriorTransformer, layout: SequenceLayout, kind: str, pairs: TokenPairs, batch_size: int,
                    max_batches: int = 0, seed: int = 0) -> dict[str, float]:
    """Held-out token cross entropy and accuracy of the prior, per task.

    maskgit: `image|audio` (image tokens masked at random ratios, audio given), `audio|image`, `joint`.
    causal: `image|audio` and `audio|image` (the second segment given the first), `image` and `audio`
    (a segment that comes first, unconditional). Masks are drawn from a generator seeded by `seed`, so
    the numbers are comparable between runs.
    """
    device = next(model.parameters()).device
    g = torch.Generator().manual_seed(seed)
    sums: dict[str, list[float]] = {}

    def add(name: str, logits: Tensor, target: Tensor) -> None:
        s = sums.setdefault(name, [0.0, 0.0, 0.0])
        s[0] += float(torch.nn.functional.cross_entropy(logits.float(), target, reduction="sum"))
        s[1] += float((logits.argmax(-1) == target).sum())
        s[2] += target.numel()

    was = model.training
    model.eval()
    try:
        images, audios = pairs.image_flat(), pairs.audio_flat()
        n_batches = -(-len(pairs) // batch_size)
        if max_batches:
            n_batches = min(n_batches, max_batches)
        for i in range(n_batches):
            img = images[i * batch_size:(i + 1) * batch_size].to(device)
            aud = audios[i * batch_size:(i + 1) * batch_size].to(device)
            b = img.shape[0]
            if kind == "maskgit":
                ids = pack_pairs(layout, img, aud)
                m_img = random_mask(b, img.shape[1], g).to(device)
                m_aud = random_mask(b, aud.shape[1], g).to(device)
                for name, masks in (("image|audio", {"image": m_img}), ("audio|image", {"audio": m_aud}),
                                    ("joint", {"image": m_img, "audio": m_aud})):
                    for lg, t in masked_logits(model, layout, ids, masks).values():
                        add(name, lg, t)
            else:
                for order in (layout.names, tuple(reversed(layout.names))):
                    ids = pack_pairs(layout, img, aud, order)
                    mods, pos = layout.modalities_and_positions(order)
                    logits = model(ids[:, :-1], mods[:-1].to(device), pos[:-1].to(device))
                    for j, (name, sl) in enumerate(layout.slices(order).items()):
                        lo, hi = layout.vocab_range(name)
                        seg = logits[:, sl.start - 1:sl.stop - 1, lo:hi]
                        key = name if j == 0 else f"{name}|{order[0]}"
                        add(key, seg.reshape(-1, hi - lo), (ids[:, sl] - lo).reshape(-1))
    finally:
        model.train(was)
    out: dict[str, float] = {}
    for name, (ce, correct, count) in sums.items():
        out[f"{name}/loss"] = ce / max(count, 1)
        out[f"{name}/accuracy"] = correct / max(count, 1)
    return out


# ---- stages before the prior ------------------------------------------------------------------------


def _default_log(text: str) -> None:
    tqdm.write(text, file=sys.stderr)


def _is_main() -> bool:
    from accelerate import PartialState

    return PartialState().is_main_process


def _wait() -> None:
    from accelerate import PartialState

    PartialState().wait_for_everyone()


def prepare_tokenizer(spec: TokenizerSpec, out: Path, progress: bool = True, log: Log = _default_log) -> Path:
    """Make `out/tokenizers/<name>/model` exist: reuse it, copy a given model there, resume an interrupted
    run or train the preset. Returns the model directory."""
    from vqfuse.tokenizer import Tokenizer
    from vqfuse.train.trainer import train as train_tokenizer

    run_dir = out / "tokenizers" / spec.name
    model_dir = run_dir / "model"
    tag = f"[{spec.name} tokenizer]"
    if (model_dir / "config.json").is_file():
        log(f"{tag} reusing {model_dir}")
        return model_dir
    if spec.model is not None:
        src = Path(spec.model)
        tok = Tokenizer.from_pretrained(src)
        if tok.config.modality != spec.name:
            raise ConfigError(f"tokenizers.{spec.name}.model: {src} is an {tok.config.modality} tokenizer")
        if _is_main():
            log(f"{tag} copying {src} -> {model_dir}")
            tok.save_pretrained(model_dir)
        _wait()
        return model_dir
    cfg = spec.run_config(out)
    resume = latest_checkpoint(run_dir / "checkpoints") is not None
    log(f"{tag} {'resuming' if resume else 'training'} {cfg.source} for {cfg.train.steps} steps on "
        f"'{cfg.data.get('train')}' -> {run_dir}")
    train_tokenizer(cfg, resume=resume, progress=progress)
    return model_dir


def _check_tokenizers(image_tok: Any, audio_tok: Any, data: dict[str, Any], n_q: int | None) -> None:
    size = int(data.get("size", 32))
    want = image_tok.config.meta.get("image_size")
    if want is not None and int(want) != size:
        raise ConfigError(f"the image tokenizer was trained on {want} px images, the paired data are {size} px "
                          f"(set data.size={want} or train the tokenizer at {size} px)")
    sr = int(data.get("sample_rate", 16000))
    if int(audio_tok.config.meta.get("sample_rate", sr)) != sr:
        raise ConfigError(f"the audio tokenizer runs at {audio_tok.config.meta['sample_rate']} Hz, the paired data at {sr} Hz")
    hop = math.prod(audio_tok.downsample_factors)
    seconds = data.get("segment_seconds", 1.0)
    if seconds is None:
        raise ConfigError("data.segment_seconds must be set: a prior needs fixed-length audio")
    length = max(1, round(float(seconds) * sr))
    if length % hop:
        raise ConfigError(f"data.segment_seconds={seconds} gives {length} samples, not a multiple of the audio "
                          f"tokenizer's hop of {hop} samples")
    if n_q is not None and audio_tok.quantizer.variable_rate and n_q > audio_tok.n_stages:
        raise ConfigError(f"tokenizers.audio.n_q={n_q}, but the audio tokenizer has {audio_tok.n_stages} stages")
    if n_q not in (None, 1) and not audio_tok.quantizer.variable_rate:
        raise ConfigError(f"tokenizers.audio.n_q={n_q} needs a residual ('rvq') audio tokenizer")


def prepare_tokens(config: RunConfig, image_dir: Path, audio_dir: Path, n_q: int | None, progress: bool = True,
                   log: Log = _default_log) -> dict[str, TokenPairs]:
    """`out/tokens/{train,test}.safetensors`: reused when they match the tokenizers, n_q and data; else encoded."""
    from vqfuse.data.paired import make_paired_dataset
    from vqfuse.tokenizer import Tokenizer

    out = Path(config.out)
    spec, options = data_options(config)
    image_tok, audio_tok = Tokenizer.from_pretrained(image_dir), Tokenizer.from_pretrained(audio_dir)
    _check_tokenizers(image_tok, audio_tok, config.data, n_q)
    n_q_used = n_q if audio_tok.quantizer.variable_rate and n_q is not None else audio_tok.n_stages
    result: dict[str, TokenPairs] = {}
    for split in ("train", "test"):
        path = out / "tokens" / f"{split}.safetensors"
        info = {"dataset": spec, "options": _jsonable(options), "split": split}
        if path.is_file():
            try:
                pairs = TokenPairs.load(path, image_tok.model_id, audio_tok.model_id, n_q_used)
                if pairs.info == json.loads(json.dumps(info)):
                    log(f"[tokens] reusing {path} ({len(pairs)} pairs)")
                    result[split] = pairs
                    continue
            except (ModelMismatchError, VqfuseError):
                pass
        if _is_main():
            dataset = make_paired_dataset(spec, split, **options)
            log(f"[tokens] encoding {len(dataset)} {split} pairs of '{spec}' -> {path}")
            device = "cuda" if torch.cuda.is_available() else "cpu"
            pairs = encode_pairs(dataset, image_tok.to(device), audio_tok.to(device), n_q_used, batch_size=64,
                                 image_dir=os.path.relpath(image_dir, out), audio_dir=os.path.relpath(audio_dir, out),
                                 progress=progress, info=info)
            pairs.save(path)
        _wait()
        result[split] = TokenPairs.load(path, image_tok.model_id, audio_tok.model_id, n_q_used)
    return result


# ---- the prior trainer ------------------------------------------------------------------------------


class FusionTrainer(LoopTrainer):
    """Trains the prior on TokenPairs with accelerate; `run()` writes checkpoints/, prior/, fusion.json and metrics.

    Args:
        config: the fusion run config.
        train_pairs, test_pairs: the encoded pairs.
        tokenizer_dirs: {"image": dir, "audio": dir} (recorded in fusion.json relative to the run dir).
        resume: continue from `out/checkpoints/last` (a fresh start when there is none).
        progress: a tqdm bar with the live loss.
        on_step: called on the main process after every step with (0-based step, logs).
    """

    logger = log
    identity_name = "the prior or its tokens"

    def __init__(self, config: RunConfig, train_pairs: TokenPairs, test_pairs: TokenPairs,
                 tokenizer_dirs: dict[str, Path], resume: bool = False, progress: bool = True,
                 on_step: StepCallback | None = None) -> None:
        _, self.settings = check_fusion_config(config)
        super().__init__(config, progress, on_step)
        self.train_pairs, self.test_pairs = train_pairs, test_pairs
        self.tokenizer_dirs = tokenizer_dirs
        self._start_accelerator()
        existing = self._find_checkpoint(resume, required=False, holds="a fusion run", how="resume it (--resume)")
        self.layout = train_pairs.layout(self.settings.shared_codebook)
        if test_pairs.layout(self.settings.shared_codebook) != self.layout:
            raise VqfuseError(f"train and test tokens differ in shape: {self.layout} vs {test_pairs.layout()}")
        world = self.accelerator.num_processes
        if len(train_pairs) < self.tc.batch_size * world:
            raise ConfigError(f"{len(train_pairs)} training pairs are fewer than one batch ({self.tc.batch_size} x "
                              f"{world} process(es)): lower train.batch_size")
        if len(test_pairs) == 0:
            raise ConfigError("the held-out (test) split has no pairs: evaluation needs some")
        dataset = TensorDataset(train_pairs.image_flat(), train_pairs.audio_flat())
        self.sampler = ResumableSampler(len(dataset), self.tc.seed)
        self.loader_generator = torch.Generator()
        loader = DataLoader(dataset, batch_size=self.tc.batch_size, sampler=self.sampler, drop_last=True,
                            num_workers=self.tc.num_workers, generator=self.loader_generator)
        self.model = PriorTransformer(self.settings.architecture(self.layout))
        self.ema = EMA(self.model, self.tc.ema_decay) if self.tc.ema_decay is not None else None
        betas = tuple(float(b) for b in self.tc.betas)
        self.opt = AdamW(self.model.parameters(), lr=self.tc.lr, betas=betas, weight_decay=self.tc.weight_decay)  # type: ignore[arg-type]
        self.sched = build_scheduler(self.opt, self.tc.warmup_steps, self.tc.steps, self.tc.min_lr_ratio)
        acc = self.accelerator
        self.wrapped, self.opt, loader = acc.prepare(self.model, self.opt, loader)
        self.model = acc.unwrap_model(self.wrapped, keep_torch_compile=False)
        if self.ema is not None:
            self.ema.model.to(acc.device)
        self.batches = InfiniteBatches(loader, self.sampler, self.loader_generator, self.tc.batch_size * world)
        self.task_weights = self.settings.task_weights()
        self._resume(existing)

    # ---- one step -----------------------------------------------------------------------------------

    def loss(self, image: Tensor, audio: Tensor) -> Tensor:
        model = _Prior(self.wrapped, self.model)
        if self.settings.kind == "maskgit":
            return maskgit_fusion_loss(model, self.layout, image, audio, self.task_weights,
                                       float(self.settings.condition_dropout))
        return causal_fusion_loss(model, self.layout, image, audio, float(self.settings.condition_dropout))

    def train_step(self, image: Tensor, audio: Tensor) -> dict[str, float]:
        acc = self.accelerator
        self.wrapped.train()
        loss = self.loss(image, audio)
        acc.backward(loss)
        fp16 = acc.mixed_precision == "fp16"
        max_norm = self.tc.grad_clip if self.tc.grad_clip > 0 else float("inf")
        grad_norm = torch.zeros((), device=loss.device)
        if not fp16:
            grad_norm = acc.clip_grad_norm_(self.model.parameters(), max_norm).float()
        vec = torch.stack([torch.isfinite(loss.detach()).float(), loss.detach().float(), grad_norm.reshape(())])
        rows = acc.gather(vec[None]).double().cpu()  # (world, 3)
        ok = bool(rows[:, 0].min() == 1.0) and math.isfinite(float(rows[:, 2].mean()))
        if ok:
            if fp16:
                grad_norm = acc.clip_grad_norm_(self.model.parameters(), max_norm)
            self.opt.step()
            if self.ema is not None:
                self.ema.update(self.model)
            self.consecutive = 0
        else:
            self.skipped += 1
            self.consecutive += 1
            if self.is_main:
                log.warning("step %d: non-finite loss or gradient (%.4g); update skipped (%d in a row, %d in all)",
                            self.step, float(rows[:, 1].mean()), self.consecutive, self.skipped)
        self.opt.zero_grad(set_to_none=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            self.sched.step()
        self.step += 1
        return {"loss": float(rows[:, 1].mean()), "grad_norm": float(rows[:, 2].mean()),
                "lr": float(self.opt.param_groups[0]["lr"]), "skipped": 0.0 if ok else 1.0}

    def evaluate(self) -> dict[str, float]:
        with torch.random.fork_rng(devices=[]):
            return heldout_metrics(self.eval_model(), self.layout, self.settings.kind, self.test_pairs,
                                   self.tc.batch_size, self.settings.eval_batches, seed=self.tc.seed)

    def step_batch(self, batch: tuple[Tensor, Tensor]) -> tuple[dict[str, float], int]:
        image, audio = batch
        return self.train_step(image, audio), image.shape[0]

    # ---- outputs ------------------------------------------------------------------------------------

    def _desc(self) -> str:
        return f"{self.config.name} prior"

    def _postfix(self, logs: dict[str, float]) -> dict[str, str]:
        return {"loss": f"{logs['loss']:.4g}", "lr": f"{logs['lr']:.2g}"}

    def fusion_description(self) -> dict[str, Any]:
        """fusion.json: what FusionModel.from_run needs besides the prior."""
        p = self.train_pairs
        tokenizers = {}
        for name in MODALITIES:
            d = Path(self.tokenizer_dirs[name])
            rel = os.path.relpath(d.resolve(), self.run_dir.resolve())
            tokenizers[name] = {"path": Path(rel).as_posix(), "model_id": getattr(p, f"{name}_model_id"),
                                "vocab": getattr(p, f"{name}_vocab")}
        tokenizers["image"]["token_shape"] = list(p.image_shape)
        tokenizers["audio"].update({"n_q": p.n_q, "frames": p.n_frames})
        spec, options = data_options(self.config)
        return {"format": FUSION_FORMAT, "kind": self.settings.kind, "prior": "prior", "layout": self.layout.to_dict(),
                "order": list(self.layout.names), "n_q": p.n_q, "tokenizers": tokenizers,
                "data": {"train": spec, **_jsonable(options)},
                "sampling": {**DEFAULT_SAMPLING, **dict(self.settings.sampling or {})}, "name": self.config.name}

    def _finish(self, writer: Any) -> None:
        acc = self.accelerator
        heldout = self.evaluate()
        if self.is_main:
            save_prior(self.eval_model(), self.run_dir / "prior", self.layout)
            save_json(_jsonable(self.fusion_description()), self.run_dir / FUSION_FILE)
            if self.settings.samples > 0:
                with torch.random.fork_rng(devices=[]):
                    save_fusion_samples(self.run_dir, self.test_pairs, self.settings.samples, self.tc.seed,
                                        device=acc.device)
            metrics = {
                "name": self.config.name,
                "kind": self.settings.kind,
                "dataset": data_options(self.config)[0],
                "train_pairs": len(self.train_pairs),
                "test_pairs": len(self.test_pairs),
                "sequence_length": self.layout.length(),
                "vocab": self.layout.vocab_size,
                "parameters": sum(p.numel() for p in self.model.parameters()),
                "steps": self.step,
                "skipped_steps": self.skipped,
                "wall_time_s": round(self.wall_before, 3),
                "train_time_s": round(self.train_time, 3),
                "train_pairs_per_s": self.items_seen / self.train_time if self.train_time > 0 else 0.0,
                "processes": acc.num_processes,
                "ema": self.ema is not None,
                "heldout": heldout,
            }
            save_json(_jsonable(metrics), self.run_dir / "metrics.json")
            atomic_write_text(self.run_dir / "metrics.md", fusion_metrics_markdown(metrics))
            if writer is not None:
                self._write_logs(writer, self.step, heldout, prefix="eval")
                writer.close()
        acc.wait_for_everyone()

    # ---- checkpoints --------------------------------------------------------------------------------

    def _identity(self) -> dict[str, Any]:
        """What a checkpoint must agree on to be resumed: architecture, layout, kind, tokenizers."""
        return _jsonable({"prior": self.model.config.to_dict(), "layout": self.layout.to_dict(),
                          "kind": self.settings.kind, "image_model_id": self.train_pairs.image_model_id,
                          "audio_model_id": self.train_pairs.audio_model_id})

    def _write_checkpoint(self, rngs: RngStates) -> Path:
        weights = self._common_weights(rngs)
        optim_tensors, optim_meta = flatten_optimizer_state(self.opt.state_dict(), "prior")
        weights["optim.safetensors"] = optim_tensors
        state = self._checkpoint_state(rngs, {"scheduler": self.sched.state_dict()}, {"identity": self._identity()})
        return self._save(weights, {"optim.json": {"prior": optim_meta}}, state)

    def _load_training(self, weights: dict[str, dict[str, Tensor]], docs: dict[str, Any], state: dict[str, Any],
                       path: Path) -> None:
        optim = weights.get("optim.safetensors", {})
        _load_optimizer(self.opt, unflatten_optimizer_state(optim, docs["optim.json"]["prior"], "prior"))
        _restore_scheduler(self.sched, state["scheduler"])


@torch.no_grad()
def save_fusion_samples(run_dir: Path, pairs: TokenPairs, n: int = 8, seed: int = 0,
                        device: str | torch.device = "cpu") -> list[Path]:
    """Generate from `n` held-out pairs (spread over the split) with the saved fusion model:

    samples/final.png   rows: the held-out images (their tokens decoded), images generated from the paired
                        audio, joint samples
    samples/final/      pair-NN.wav (the held-out audio, decoded), pair-NN-from-image.wav, joint-NN.wav
    """
    from vqfuse.data.audio import save_audio_file
    from vqfuse.data.images import save_image_file
    from vqfuse.fusion.model import FusionModel

    model = FusionModel.from_run(run_dir, device=device)
    n = min(n, len(pairs))
    idx = torch.linspace(0, len(pairs) - 1, n).round().long()
    image, audio = pairs.image_flat()[idx], pairs.audio_flat()[idx]
    g = torch.Generator(device=model.device).manual_seed(seed)
    rows = [model.decode("image", image), model.decode("image", model.generate_tokens(audio, "image", generator=g))]
    from_image = model.decode("audio", model.generate_tokens(image, "audio", generator=g))
    joint = model.sample_joint_tokens(n, generator=g)
    rows.append(model.decode("image", joint["image"]))
    grid = torch.cat([torch.cat(list(r.cpu()), dim=2) for r in rows], dim=1)  # (3, 3 S, n S)
    out = run_dir / "samples"
    written = [out / "final.png"]
    save_image_file(grid, written[0])
    sr = model.sample_rate
    clips = {"pair-{:02d}.wav": model.decode("audio", audio), "pair-{:02d}-from-image.wav": from_image,
             "joint-{:02d}.wav": model.decode("audio", joint["audio"])}
    for pattern, batch in clips.items():
        for i, clip in enumerate(batch.cpu()):
            written.append(out / "final" / pattern.format(i))
            save_audio_file(clip, written[-1], sr)
    return written


def fusion_metrics_markdown(metrics: dict[str, Any]) -> str:
    """metrics.json of a fusion run as a short markdown report."""

    def fmt(v: Any) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    tasks: dict[str, dict[str, float]] = {}
    for key, value in metrics["heldout"].items():
        task, _, what = key.partition("/")
        tasks.setdefault(task, {})[what] = value
    lines = [f"# {metrics['name']}: held-out token metrics", "",
             f"{metrics['kind']} prior ({metrics['parameters']:,} parameters, sequence of {metrics['sequence_length']} "
             f"tokens) trained on `{metrics['dataset']}` ({metrics['train_pairs']} pairs) for {metrics['steps']} steps; "
             f"scored on {metrics['test_pairs']} held-out pairs. `a|b`: tokens of a given b (MaskGIT: at random mask "
             "ratios, as in training; joint: both masked).", "",
             "| task | loss (nats/token) | accuracy |", "|---|---|---|"]
    lines += [f"| {t.replace('|', chr(92) + '|')} | {fmt(v.get('loss'))} | {fmt(v.get('accuracy'))} |" for t, v in tasks.items()]
    lines += ["", "| training | value |", "|---|---|"]
    lines += [f"| {k} | {fmt(metrics[k])} |" for k in ("steps", "skipped_steps", "train_pairs_per_s", "train_time_s",
                                                       "wall_time_s", "processes", "ema")]
    return "\n".join(lines) + "\n"


# ---- the pipeline -----------------------------------------------------------------------------------


def train_fusion(config: RunConfig, resume: bool = False, progress: bool = True, log_fn: Log | None = None) -> Path:
    """Train a fusion model: tokenizers (reused / resumed / trained), paired tokens, then the prior.

    A finished tokenizer (`out/tokenizers/<name>/model`) is always reused and an interrupted one resumes;
    the prior resumes its last checkpoint with `resume` (without it, an existing prior checkpoint is an
    error). Returns the run directory (config.out).
    """
    specs, settings = check_fusion_config(config)
    out = Path(config.out)
    say = log_fn or (_default_log if _is_main() else (lambda s: None))
    if not resume and latest_checkpoint(out / "checkpoints") is not None:
        raise ConfigError(f"{out} already holds a fusion run ({latest_checkpoint(out / 'checkpoints')}); resume it "
                          "(--resume), or choose another output directory (out=...)")
    dirs = {name: prepare_tokenizer(spec, out, progress, say) for name, spec in specs.items()}
    pairs = prepare_tokens(config, dirs["image"], dirs["audio"], specs["audio"].n_q, progress, say)
    has_ckpt = latest_checkpoint(out / "checkpoints") is not None
    say(f"[prior] {'resuming' if resume and has_ckpt else 'training'} a {settings.kind} prior for {config.train.steps} "
        f"steps on {len(pairs['train'])} pairs -> {out}")
    trainer = FusionTrainer(config, pairs["train"], pairs["test"], dirs, resume=resume and has_ckpt, progress=progress)
    return trainer.run()


__all__ = ["train_fusion", "FusionTrainer", "PriorSettings", "TokenizerSpec", "check_fusion_config",
           "maskgit_fusion_loss", "causal_fusion_loss", "heldout_metrics", "prepare_tokenizer", "prepare_tokens",
           "fusion_metrics_markdown", "FUSION_FILE", "DEFAULT_SAMPLING"]
