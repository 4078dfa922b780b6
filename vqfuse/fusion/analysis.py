"""Fused classification on VQ tokens, missing modalities and robustness sweeps (MultiBench-style).

Inputs are plain tensors: image tokens ``(N, h, w)`` long in ``[0, K_img)``, audio tokens ``(N, n_q, F)`` long in
``[0, K_aud)`` (``(N, F)`` is read as ``n_q = 1``) and labels ``(N,)``. Classifiers (small, seconds on a CPU):

- ``"image"`` / ``"audio"``: one modality; token + positional embeddings, a token-wise residual MLP, an
  optional 1-2 layer transformer (``layers``), attention or mean pooling, an MLP head. Audio frames embed
  the concatenation of their ``n_q`` codes (linear to ``dim``), so residual levels keep their identity.
- ``"early"``: one sequence of both modalities' tokens with modality embeddings (the transformer, with
  ``layers`` > 0, attends across both); ``shared_codebook`` uses one embedding table over
  ``max(K_img, K_aud)`` codes for both instead of a table per modality (``"early_shared"`` in
  :func:`fit_classifiers`). By default each modality's positions are pooled apart and concatenated before the
  shared head (``pool_per_modality``): pooling the joint sequence let the easier modality crowd the other out
  (av-digits stand-in tokens: 0.30 accuracy without the audio vs 0.69 pooled apart, 300 steps). Trained with
  modality dropout: a modality is replaced by its learned MISSING embedding, so the model still works when
  one is absent at test time.
- ``"late"`` (:class:`LateFusion`): the mean of the unimodal heads' log-probabilities; a missing modality's
  head is dropped.

Every classifier trains with token dropout (``token_dropout``, 0.5): each token position shows its modality's
MISSING embedding with that chance, so no single token pattern is trusted and damaged inputs cost less.
Early fusion also trains a linear head per modality on that modality's pooled features (``unimodal_loss_weight``,
1.0), so the easier modality cannot leave the other one's features under-trained.

Robustness (:func:`robustness_sweep`): test images are degraded in PIXEL space (:func:`degrade`: Gaussian
noise of std ``level``, pixel dropout with probability ``level``, a square occluding ``level`` of the area) for
``level`` in 0, 0.1, ..., 1, re-tokenized by a caller's ``tokenize_image`` and classified with the clean audio
tokens. Reported per classifier: accuracy curves, relative robustness (area under accuracy-vs-level, trapezoid,
divided by the level range: a constant curve gives that constant) and effective robustness (accuracy minus
the reference's, late fusion by default, per level and its area). Everything returned is a JSON-able dict;
:func:`plot_robustness` draws the curves to a PNG.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Literal, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "MODALITIES",
    "DEGRADATIONS",
    "LEVELS",
    "TokenClassifierConfig",
    "TokenClassifier",
    "LateFusion",
    "train_token_classifier",
    "fit_classifiers",
    "accuracy",
    "evaluate_classifiers",
    "degrade",
    "degraded_views",
    "relative_robustness",
    "effective_robustness",
    "robustness_sweep",
    "plot_robustness",
    "analyze",
]

MODALITIES = ("image", "audio")
DEGRADATIONS = ("noise", "dropout", "occlusion")
LEVELS: tuple[float, ...] = tuple(round(0.1 * i, 1) for i in range(11))
Kind = Literal["image", "audio", "early"]
Classifier = Any  # TokenClassifier | LateFusion: both have .log_probs(image, audio) and .num_classes


# ----------------------------------------------------------------------------------------------
# Token checks


def _image_tokens(x: Tensor | None, vocab: int | None = None) -> Tensor | None:
    """Check image tokens (N, h, w) long."""
    if x is None:
        return None
    x = torch.as_tensor(x)
    if x.dim() != 3 or x.is_floating_point():
        raise ValueError(f"image tokens must be integer (N, h, w), got {x.dtype} {tuple(x.shape)}")
    if vocab is not None and x.numel() and (int(x.min()) < 0 or int(x.max()) >= vocab):
        raise ValueError(f"image tokens must be in [0, {vocab}), got [{int(x.min())}, {int(x.max())}]")
    return x.long()


def _audio_tokens(x: Tensor | None, vocab: int | None = None) -> Tensor | None:
    """Check audio tokens (N, n_q, F) long; (N, F) becomes (N, 1, F)."""
    if x is None:
        return None
    x = torch.as_tensor(x)
    if x.dim() == 2:
        x = x[:, None]
    if x.dim() != 3 or x.is_floating_point():
        raise ValueError(f"audio tokens must be integer (N, n_q, F) or (N, F), got {x.dtype} {tuple(x.shape)}")
    if vocab is not None and x.numel() and (int(x.min()) < 0 or int(x.max()) >= vocab):
        raise ValueError(f"audio tokens must be in [0, {vocab}), got [{int(x.min())}, {int(x.max())}]")
    return x.long()


def _n_items(image: Tensor | None, audio: Tensor | None) -> int:
    if image is None and audio is None:
        raise ValueError("need image tokens, audio tokens or both")
    if image is not None and audio is not None and len(image) != len(audio):
        raise ValueError(f"{len(image)} image items but {len(audio)} audio items")
    return len(image) if image is not None else len(audio)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------------
# Classifiers


@dataclass
class TokenClassifierConfig:
    """Architecture of a :class:`TokenClassifier` (JSON-able via ``asdict``)."""

    kind: Kind
    num_classes: int
    image_vocab: int = 0
    image_shape: tuple[int, int] = (0, 0)  # (h, w)
    audio_vocab: int = 0
    audio_shape: tuple[int, int] = (0, 0)  # (n_q, F)
    dim: int = 64
    layers: int = 0  # transformer layers after the token-wise MLP (0: none, cheapest)
    heads: int = 4
    pool: Literal["mean", "attention"] = "attention"
    pool_per_modality: bool = True  # early fusion: pool each modality's positions apart, concatenate the results
    dropout: float = 0.1
    shared_codebook: bool = False
    modality_dropout: float = 0.3  # early fusion: chance per training item that one modality is dropped
    # training only: chance per token position that it shows its MISSING embedding. Makes every classifier less
    # sure of damaged inputs: at 0.5, relative robustness under image noise rose from 0.537 to 0.685 image-only,
    # 0.585 to 0.767 early and 0.652 to 0.794 late fusion (benchmarks/results/fusion.md, 3 seeds, CPU tokenizers)
    token_dropout: float = 0.5
    # early fusion, training only: weight of a cross-entropy loss on a linear head per modality (each reads its
    # own modality's pooled features). A fused model otherwise leans on the easier modality (image) and trains
    # the other one's features less (modality laziness), which costs it most when the image is damaged. Over 9
    # paired classifier trainings on the GPU-codec runs it raised relative robustness under image noise in 9 of 9
    # for early fusion (mean gap to late fusion -0.043 -> -0.014) and narrowed the shared codebook's spread
    # (-0.008 +- 0.064 -> +0.010 +- 0.037; benchmarks/results/fusion-gpucodec-classifier-seeds*.md). 0 turns it off.
    unimodal_loss_weight: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in ("image", "audio", "early"):
            raise ValueError(f"kind must be 'image', 'audio' or 'early', got {self.kind!r}")
        if self.pool not in ("mean", "attention"):
            raise ValueError(f"pool must be 'mean' or 'attention', got {self.pool!r}")
        if self.num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {self.num_classes}")
        self.image_shape = tuple(int(v) for v in self.image_shape)  # type: ignore[assignment]
        self.audio_shape = tuple(int(v) for v in self.audio_shape)  # type: ignore[assignment]
        for m in self.modalities:
            vocab, shape = (self.image_vocab, self.image_shape) if m == "image" else (self.audio_vocab, self.audio_shape)
            if vocab < 1 or len(shape) != 2 or min(shape) < 1:
                raise ValueError(f"{self.kind} classifier needs {m}_vocab >= 1 and a {m}_shape, got {vocab}, {shape}")
        if not 0.0 <= self.modality_dropout <= 1.0:
            raise ValueError(f"modality_dropout must be in [0, 1], got {self.modality_dropout}")
        if not 0.0 <= self.token_dropout < 1.0:
            raise ValueError(f"token_dropout must be in [0, 1), got {self.token_dropout}")
        if self.unimodal_loss_weight < 0:
            raise ValueError(f"unimodal_loss_weight must be >= 0, got {self.unimodal_loss_weight}")
        if self.unimodal_heads and not self.pool_per_modality:
            raise ValueError("unimodal_loss_weight > 0 needs pool_per_modality (a pooled vector per modality); "
                             "set unimodal_loss_weight=0 to pool the joint sequence")

    @property
    def unimodal_heads(self) -> bool:
        """Whether the classifier has a per-modality head for the auxiliary loss (early fusion only; unimodal
        classifiers ignore ``unimodal_loss_weight``, as they ignore ``modality_dropout``)."""
        return self.kind == "early" and self.unimodal_loss_weight > 0

    @property
    def modalities(self) -> tuple[str, ...]:
        return MODALITIES if self.kind == "early" else (self.kind,)


class TokenClassifier(nn.Module):
    """Classifier on the tokens of one modality (``kind`` "image"/"audio") or both (``kind`` "early").

    ``forward(image, audio, image_present, audio_present) -> logits (N, C)``; a modality passed as None, or an
    item whose ``*_present`` flag is False, gets the modality's learned MISSING embedding at every position.
    A unimodal classifier whose modality is missing returns all-zero logits (a uniform distribution).
    """

    def __init__(self, config: TokenClassifierConfig) -> None:
        super().__init__()
        self.config = c = config
        d = c.dim
        self.num_classes = c.num_classes
        if c.kind == "early" and c.shared_codebook:
            self.shared = nn.Embedding(max(c.image_vocab, c.audio_vocab), d)
        if "image" in c.modalities:
            h, w = c.image_shape
            self.image_embed = self.shared if c.kind == "early" and c.shared_codebook else nn.Embedding(c.image_vocab, d)
            self.image_pos = nn.Parameter(torch.randn(h * w, d))  # (h*w, d)
        if "audio" in c.modalities:
            n_q, frames = c.audio_shape
            self.audio_embed = self.shared if c.kind == "early" and c.shared_codebook else nn.Embedding(c.audio_vocab, d)
            self.audio_levels = nn.Linear(n_q * d, d)  # concatenated level codes of a frame -> one vector
            self.audio_pos = nn.Parameter(torch.randn(frames, d))  # (F, d)
        self.missing = nn.Parameter(torch.randn(len(MODALITIES), d))  # (2, d): [image, audio]
        self.modality_embed = nn.Parameter(torch.randn(len(MODALITIES), d))  # (2, d)
        # token-wise residual MLP: makes token x position conjunctions visible to pooling without attention
        self.token_mlp = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))
        self.encoder: nn.Module | None = None
        if c.layers > 0:
            layer = nn.TransformerEncoderLayer(d, c.heads, 2 * d, c.dropout, batch_first=True, norm_first=True)
            self.encoder = nn.TransformerEncoder(layer, c.layers, enable_nested_tensor=False)
        self.attn_score = nn.Linear(d, 1) if c.pool == "attention" else None
        self.norm = nn.LayerNorm(d)
        pooled = d * (len(c.modalities) if c.pool_per_modality else 1)
        self.head = nn.Sequential(nn.Linear(pooled, d), nn.GELU(), nn.Dropout(c.dropout), nn.Linear(d, c.num_classes))
        self.unimodal = nn.ModuleDict({m: nn.Linear(d, c.num_classes) for m in MODALITIES}) if c.unimodal_heads else None

    def _embed_image(self, tokens: Tensor | None, present: Tensor, n: int) -> Tensor:
        h, w = self.config.image_shape
        if tokens is not None:
            if tuple(tokens.shape[1:]) != (h, w):
                raise ValueError(f"image tokens must be (N, {h}, {w}), got {tuple(tokens.shape)}")
            e = self.image_embed(tokens.flatten(1))  # (N, h*w, d)
            e = torch.where(self._keep(present, h * w)[..., None], e, self.missing[0])
        else:
            e = self.missing[0].expand(n, h * w, -1)
        return e + self.image_pos + self.modality_embed[0]  # (N, h*w, d)

    def _embed_audio(self, tokens: Tensor | None, present: Tensor, n: int) -> Tensor:
        n_q, frames = self.config.audio_shape
        if tokens is not None:
            if tuple(tokens.shape[1:]) != (n_q, frames):
                raise ValueError(f"audio tokens must be (N, {n_q}, {frames}), got {tuple(tokens.shape)}")
            e = self.audio_embed(tokens.transpose(1, 2))  # (N, F, n_q, d)
            e = self.audio_levels(e.flatten(2))  # (N, F, d)
            e = torch.where(self._keep(present, frames)[..., None], e, self.missing[1])
        else:
            e = self.missing[1].expand(n, frames, -1)
        return e + self.audio_pos + self.modality_embed[1]  # (N, F, d)

    def _keep(self, present: Tensor, length: int) -> Tensor:
        """(N,) presence -> (N, length) positions that show their token (token dropout while training)."""
        keep = present[:, None].expand(-1, length)
        p = self.config.token_dropout
        if self.training and p > 0:
            keep = keep & (torch.rand(keep.shape, device=keep.device) >= p)
        return keep

    def forward(
        self,
        image: Tensor | None = None,
        audio: Tensor | None = None,
        image_present: Tensor | None = None,
        audio_present: Tensor | None = None,
        unimodal: bool = False,
    ) -> Tensor | tuple[Tensor, dict[str, Tensor]]:
        """Tokens -> logits (N, C). ``*_present``: (N,) bool, default all True for a given modality.

        ``unimodal`` (a classifier with ``unimodal_loss_weight`` > 0): also return the per-modality heads'
        logits ``{"image": (N, C), "audio": (N, C)}``, which only the training loss reads."""
        c = self.config
        n = _n_items(image, audio)  # the other modality's tokens may only tell N
        image = image if "image" in c.modalities else None
        audio = audio if "audio" in c.modalities else None
        dev = self.norm.weight.device
        if c.kind != "early" and (image if c.kind == "image" else audio) is None:
            return torch.zeros(n, c.num_classes, device=dev)
        ip = torch.ones(n, dtype=torch.bool, device=dev) if image_present is None else image_present.to(dev).bool()
        ap = torch.ones(n, dtype=torch.bool, device=dev) if audio_present is None else audio_present.to(dev).bool()
        parts = []
        if "image" in c.modalities:
            parts.append(self._embed_image(None if image is None else image.to(dev), ip, n))
        if "audio" in c.modalities:
            parts.append(self._embed_audio(None if audio is None else audio.to(dev), ap, n))
        x = torch.cat(parts, dim=1)  # (N, L, d)
        x = x + self.token_mlp(x)
        if self.encoder is not None:
            x = self.encoder(x)
        x = self.norm(x)
        segments = x.split([p.shape[1] for p in parts], dim=1) if c.pool_per_modality else (x,)
        pooled = [self._pool(seg) for seg in segments]  # segments x (N, d)
        logits = self.head(torch.cat(pooled, dim=-1))  # (N, C)
        if c.kind != "early":  # an item whose only modality is absent: uniform
            present = ip if c.kind == "image" else ap
            logits = torch.where(present[:, None], logits, torch.zeros_like(logits))
        if unimodal:
            if self.unimodal is None:
                raise ValueError("this classifier has no unimodal heads (unimodal_loss_weight is 0)")
            return logits, {m: self.unimodal[m](p) for m, p in zip(MODALITIES, pooled)}
        return logits

    def _pool(self, x: Tensor) -> Tensor:
        """(N, L, d) -> (N, d): attention pooling (a learned score per position, softmax over L) or the mean."""
        if self.attn_score is None:
            return x.mean(dim=1)
        weights = self.attn_score(x).softmax(dim=1)  # (N, L, 1)
        return (weights * x).sum(dim=1)

    @torch.no_grad()
    def log_probs(self, image: Tensor | None = None, audio: Tensor | None = None, batch_size: int = 512) -> Tensor:
        """Eval-mode log-probabilities (N, C); None = that modality is missing for every item."""
        self.eval()
        n = _n_items(image, audio)
        out = []
        for i in range(0, n, batch_size):
            sl = slice(i, i + batch_size)
            out.append(F.log_softmax(self(None if image is None else image[sl], None if audio is None else audio[sl]), -1))
        return torch.cat(out).cpu()


class LateFusion:
    """Late fusion of unimodal classifiers: the mean of their log-probabilities, renormalised.

    A missing modality's head is dropped (the other classifier decides alone).
    """

    def __init__(self, image: TokenClassifier, audio: TokenClassifier) -> None:
        if image.config.kind != "image" or audio.config.kind != "audio":
            raise ValueError("LateFusion needs an image classifier and an audio classifier")
        if image.num_classes != audio.num_classes:
            raise ValueError(f"class counts differ: {image.num_classes} vs {audio.num_classes}")
        self.image, self.audio = image, audio
        self.num_classes = image.num_classes
        self.config = {"kind": "late"}

    def log_probs(self, image: Tensor | None = None, audio: Tensor | None = None, batch_size: int = 512) -> Tensor:
        """(N, C) log-probabilities from the heads of the modalities given."""
        heads = []
        if image is not None:
            heads.append(self.image.log_probs(image, None, batch_size))
        if audio is not None:
            heads.append(self.audio.log_probs(None, audio, batch_size))
        if not heads:
            raise ValueError("need the tokens of at least one modality")
        return F.log_softmax(torch.stack(heads).mean(dim=0), dim=-1)


def _unimodal_loss(heads: Mapping[str, Tensor], target: Tensor, image_present: Tensor | None,
                   audio_present: Tensor | None) -> Tensor:
    """Sum over modalities of the per-modality heads' cross-entropy on the items that show that modality."""
    total = target.new_zeros((), dtype=torch.float32)
    for name, present in (("image", image_present), ("audio", audio_present)):
        keep = torch.ones_like(target, dtype=torch.bool) if present is None else present.to(target.device)
        if keep.any():
            total = total + F.cross_entropy(heads[name][keep], target[keep])
    return total


def train_token_classifier(
    model: TokenClassifier,
    image_tokens: Tensor | None,
    audio_tokens: Tensor | None,
    labels: Tensor,
    steps: int = 300,
    batch_size: int = 64,
    lr: float = 4e-3,
    weight_decay: float = 0.01,
    seed: int = 0,
    image_views: Tensor | None = None,
) -> dict[str, float]:
    """Train ``model`` in place (AdamW, cosine schedule) with batches drawn from ``seed``; returns the final loss.

    Early fusion applies modality dropout: with probability ``config.modality_dropout`` an item loses one of
    its two modalities (each equally likely), replaced by the learned MISSING embedding.

    ``image_views`` (V, N, h, w): other tokenizations of the same N images (e.g. of degraded copies, see
    :func:`degraded_views`); each training item then shows one of the V + 1 versions, drawn uniformly, so
    the classifier learns how much to trust damaged images (degradation augmentation).
    """
    c = model.config
    image = _image_tokens(image_tokens, c.image_vocab) if "image" in c.modalities else None
    if image is not None and image_views is not None:
        views = torch.as_tensor(image_views).long()
        if views.dim() != 4 or tuple(views.shape[1:]) != tuple(image.shape):
            raise ValueError(f"image_views must be (V, {', '.join(map(str, image.shape))}), got {tuple(views.shape)}")
        _image_tokens(views.flatten(0, 1), c.image_vocab)  # range check
        image = torch.cat([image[None], views])  # (V + 1, N, h, w)
    else:
        image = image[None] if image is not None else None  # (1, N, h, w)
    audio = _audio_tokens(audio_tokens, c.audio_vocab) if "audio" in c.modalities else None
    y = torch.as_tensor(labels).long().reshape(-1)
    n = _n_items(None if image is None else image[0], audio)
    if len(y) != n:
        raise ValueError(f"{n} items but {len(y)} labels")
    if int(y.min()) < 0 or int(y.max()) >= c.num_classes:
        raise ValueError(f"labels must be in [0, {c.num_classes}), got [{int(y.min())}, {int(y.max())}]")
    dev = next(model.parameters()).device
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):  # dropout draws from ``seed`` too
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
        cosine = lambda s: 0.5 * (1 + math.cos(math.pi * min(s, steps) / max(steps, 1)))  # noqa: E731
        sched = torch.optim.lr_scheduler.LambdaLR(opt, cosine)
        model.train()
        losses: list[float] = []
        for _ in range(int(steps)):
            idx = torch.randint(0, n, (min(batch_size, n),), generator=gen)
            ip = ap = None
            if c.kind == "early" and c.modality_dropout > 0:
                drop = torch.rand(len(idx), generator=gen) < c.modality_dropout
                which = torch.rand(len(idx), generator=gen) < 0.5  # True: drop the image, False: the audio
                ip, ap = ~(drop & which), ~(drop & ~which)
            batch_image = None
            if image is not None:
                view = (torch.randint(0, image.shape[0], (len(idx),), generator=gen) if image.shape[0] > 1
                        else torch.zeros(len(idx), dtype=torch.long))
                batch_image = image[view, idx]  # (B, h, w)
            batch_audio, target = None if audio is None else audio[idx], y[idx].to(dev)
            if c.unimodal_heads:
                logits, heads = model(batch_image, batch_audio, ip, ap, unimodal=True)
                loss = F.cross_entropy(logits, target) + c.unimodal_loss_weight * _unimodal_loss(heads, target, ip, ap)
            else:
                loss = F.cross_entropy(model(batch_image, batch_audio, ip, ap), target)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
    model.eval()
    tail = losses[-20:] or [float("nan")]
    return {"steps": int(steps), "final_loss": sum(tail) / len(tail)}


def fit_classifiers(
    image_tokens: Tensor,
    audio_tokens: Tensor,
    labels: Tensor,
    image_vocab: int,
    audio_vocab: int,
    num_classes: int | None = None,
    kinds: Sequence[str] = ("image", "audio", "early", "late"),
    steps: int = 300,
    seed: int = 0,
    batch_size: int = 64,
    lr: float = 4e-3,
    image_views: Tensor | None = None,
    **config: Any,
) -> dict[str, Classifier]:
    """Train the classifiers named in ``kinds`` on the same tokens; returns ``{name: classifier}``.

    Names: "image", "audio", "early", "early_shared" (early fusion over one shared codebook) and "late" (built
    from the "image" and "audio" classifiers, trained here if not listed). ``image_views``: degraded
    tokenizations of the training images shown to every classifier that reads images (see
    :func:`train_token_classifier`). ``config``: further :class:`TokenClassifierConfig` fields (dim, layers,
    heads, pool, dropout, modality_dropout).
    """
    image = _image_tokens(image_tokens, image_vocab)
    audio = _audio_tokens(audio_tokens, audio_vocab)
    assert image is not None and audio is not None
    _n_items(image, audio)
    y = torch.as_tensor(labels).long().reshape(-1)
    num_classes = int(num_classes if num_classes is not None else int(y.max()) + 1)
    unknown = set(kinds) - {"image", "audio", "early", "early_shared", "late"}
    if unknown:
        raise ValueError(f"unknown classifier kinds {sorted(unknown)}")
    need = list(dict.fromkeys([k for k in kinds if k != "late"] + (["image", "audio"] if "late" in kinds else [])))
    base = dict(num_classes=num_classes, image_vocab=image_vocab, image_shape=tuple(image.shape[1:]),
                audio_vocab=audio_vocab, audio_shape=tuple(audio.shape[1:]), **config)  # fmt: skip
    trained: dict[str, Classifier] = {}
    for i, name in enumerate(need):
        kind = "early" if name.startswith("early") else name
        cfg = TokenClassifierConfig(kind=kind, shared_codebook=name == "early_shared", **base)  # type: ignore[arg-type]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed * 100 + i)
            model = TokenClassifier(cfg)
        model.fit_info = train_token_classifier(model, image, audio, y, steps, batch_size, lr, seed=seed * 100 + i,
                                                image_views=image_views)
        trained[name] = model
    if "late" in kinds:
        trained["late"] = LateFusion(trained["image"], trained["audio"])
    return {k: trained[k] for k in kinds}


# ----------------------------------------------------------------------------------------------
# Evaluation


def accuracy(model: Classifier, image_tokens: Tensor | None, audio_tokens: Tensor | None, labels: Tensor) -> float:
    """Accuracy of ``model`` on the tokens given (None: that modality is missing)."""
    y = torch.as_tensor(labels).long().reshape(-1)
    pred = model.log_probs(_image_tokens(image_tokens), _audio_tokens(audio_tokens)).argmax(dim=-1)
    if len(pred) != len(y):
        raise ValueError(f"{len(pred)} predictions but {len(y)} labels")
    return float((pred == y).float().mean())


def evaluate_classifiers(
    classifiers: Mapping[str, Classifier], image_tokens: Tensor, audio_tokens: Tensor, labels: Tensor
) -> dict[str, dict[str, float]]:
    """``{name: {"both": acc, "image_missing": acc, "audio_missing": acc}}``.

    A unimodal classifier whose own modality is missing predicts uniformly (class 0 by argmax).
    """
    out: dict[str, dict[str, float]] = {}
    for name, model in classifiers.items():
        out[name] = {
            "both": accuracy(model, image_tokens, audio_tokens, labels),
            "image_missing": accuracy(model, None, audio_tokens, labels),
            "audio_missing": accuracy(model, image_tokens, None, labels),
        }
    return out


# ----------------------------------------------------------------------------------------------
# Pixel-space degradations


def degrade(
    images: Tensor,
    kind: str,
    level: float,
    generator: torch.Generator | None = None,
    fill: float = -1.0,
    clamp: bool = True,
) -> Tensor:
    """Degrade images (N, C, H, W) in [-1, 1]; returns a new tensor of the same shape.

    - "noise": add Gaussian noise of standard deviation ``level`` (then clip to [-1, 1] if ``clamp``).
    - "dropout": each pixel (all channels together) is set to ``fill`` with probability ``level``.
    - "occlusion": one square per image at a random position, covering ``level`` of the area
      (side ``round(sqrt(level) * min(H, W))``), set to ``fill``.

    ``fill`` -1 is black (pixel value 0): "zeroed" in the usual [0, 1] pixel convention.
    """
    if images.dim() != 4:
        raise ValueError(f"images must be (N, C, H, W), got {tuple(images.shape)}")
    if not 0.0 <= level <= 1.0 and kind != "noise":
        raise ValueError(f"{kind} level must be in [0, 1], got {level}")
    if kind == "noise" and level < 0:
        raise ValueError(f"noise level (std) must be >= 0, got {level}")
    x = images.float().clone()
    n, _, h, w = x.shape
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    if kind == "noise":
        x = x + float(level) * torch.randn(x.shape, generator=gen).to(x.device)
        return x.clamp(-1.0, 1.0) if clamp else x
    if kind == "dropout":
        mask = (torch.rand(n, 1, h, w, generator=gen) < level).to(x.device)  # (N, 1, H, W)
        return x.masked_fill(mask, fill)
    if kind == "occlusion":
        side = int(round(math.sqrt(level) * min(h, w)))
        if side == 0:
            return x
        top = torch.randint(0, h - side + 1, (n,), generator=gen)
        left = torch.randint(0, w - side + 1, (n,), generator=gen)
        rows, cols = torch.arange(h), torch.arange(w)
        mask = ((rows[None] >= top[:, None]) & (rows[None] < (top + side)[:, None]))[:, :, None] & (
            (cols[None] >= left[:, None]) & (cols[None] < (left + side)[:, None]))[:, None, :]  # (N, H, W)
        return x.masked_fill(mask[:, None].to(x.device), fill)
    raise ValueError(f"unknown degradation {kind!r}; expected one of {DEGRADATIONS}")


# ----------------------------------------------------------------------------------------------
# Robustness measures


def _area(levels: Sequence[float], values: Sequence[float]) -> float:
    """Trapezoid area under ``values`` over ``levels`` divided by the level range (the curve's mean height)."""
    x, v = np.asarray(levels, np.float64), np.asarray(values, np.float64)
    if x.shape != v.shape or x.ndim != 1 or len(x) < 2:
        raise ValueError(f"need matching 1-D levels and values with >= 2 points, got {x.shape} and {v.shape}")
    if np.any(np.diff(x) <= 0):
        raise ValueError("levels must be strictly increasing")
    area = float(np.sum((v[1:] + v[:-1]) / 2 * np.diff(x)))
    return area / float(x[-1] - x[0])


def relative_robustness(levels: Sequence[float], accuracies: Sequence[float]) -> float:
    """MultiBench relative robustness: area under accuracy-vs-level (trapezoid) over the level range.

    For levels 0..1 this is the plain area; a constant curve gives that constant.
    """
    return _area(levels, accuracies)


def effective_robustness(
    levels: Sequence[float], accuracies: Sequence[float], reference: Sequence[float]
) -> dict[str, Any]:
    """Accuracy minus a reference's (late fusion) per level, and the area of that difference (as above)."""
    diff = [float(a) - float(r) for a, r in zip(accuracies, reference, strict=True)]
    return {"per_level": diff, "area": _area(levels, diff)}


def degraded_views(
    images: Tensor,
    tokenize_image: Callable[[Tensor], Tensor],
    degradations: Sequence[str] = DEGRADATIONS,
    levels: Sequence[float] = (0.25, 0.5, 0.75, 1.0),
    seed: int = 0,
    batch_size: int = 256,
    fill: float = -1.0,
) -> Tensor:
    """Tokens of degraded copies of training images (N, C, H, W), one view per (degradation, level):
    (V, N, h, w) with V = len(degradations) * len(levels). The draws use their own seed stream (not the
    robustness sweep's), for :func:`train_token_classifier`'s ``image_views``."""
    views = []
    for d_index, kind in enumerate(degradations):
        for l_index, level in enumerate(levels):
            gen = torch.Generator().manual_seed(seed * 1_000_003 + 500_000 + d_index * 1000 + l_index)
            bad = degrade(images, kind, float(level), generator=gen, fill=fill)
            views.append(_image_tokens(_tokenize_in_batches(tokenize_image, bad, batch_size)))
    if not views:
        raise ValueError("degraded_views needs at least one degradation and one level")
    return torch.stack(views)  # (V, N, h, w)


def _tokenize_in_batches(tokenize_image: Callable[[Tensor], Tensor], images: Tensor, batch_size: int) -> Tensor:
    with torch.no_grad():
        return torch.cat([torch.as_tensor(tokenize_image(images[i : i + batch_size])).cpu()
                          for i in range(0, len(images), batch_size)])  # fmt: skip


def robustness_sweep(
    classifiers: Mapping[str, Classifier],
    images: Tensor,
    audio_tokens: Tensor,
    labels: Tensor,
    tokenize_image: Callable[[Tensor], Tensor],
    degradations: Sequence[str] = DEGRADATIONS,
    levels: Sequence[float] = LEVELS,
    reference: str | None = "late",
    seed: int = 0,
    batch_size: int = 256,
    fill: float = -1.0,
) -> dict[str, Any]:
    """Accuracy of each classifier on images degraded in pixel space, re-tokenized by ``tokenize_image``.

    Args:
        classifiers: ``{name: classifier}`` (e.g. from :func:`fit_classifiers`).
        images: clean test images (N, C, H, W) in [-1, 1]; audio_tokens (N, n_q, F) and labels (N,) match them.
        tokenize_image: images (B, C, H, W) -> tokens (B, h, w), e.g. a trained image tokenizer's ``encode``.
        degradations, levels: what to sweep (levels increasing; 0..1 in steps of 0.1 by default).
        reference: classifier that effective robustness is measured against (skipped when absent or None).
        seed: the degradations' random draws (same draws for every classifier).

    Returns a JSON-able dict::

        {"levels": [...], "classifiers": [...], "reference": "late", "n": N,
         "degradations": {kind: {"accuracy": {name: [...]}, "relative_robustness": {name: float},
                                 "effective_robustness": {name: {"per_level": [...], "area": float}}}}}
    """
    levels = [float(v) for v in levels]
    audio = _audio_tokens(audio_tokens)
    y = torch.as_tensor(labels).long().reshape(-1)
    if not (len(images) == len(y) == len(audio)):  # type: ignore[arg-type]
        raise ValueError(f"{len(images)} images, {len(audio)} audio items and {len(y)} labels")  # type: ignore[arg-type]
    names = list(classifiers)
    ref = reference if reference in classifiers else None
    result: dict[str, Any] = {"levels": levels, "classifiers": names, "reference": ref, "n": len(y), "degradations": {}}
    for d_index, kind in enumerate(degradations):
        curves: dict[str, list[float]] = {name: [] for name in names}
        for l_index, level in enumerate(levels):
            gen = torch.Generator().manual_seed(seed * 1_000_003 + d_index * 1000 + l_index)
            bad = degrade(images, kind, level, generator=gen, fill=fill)  # (N, C, H, W)
            tokens = _image_tokens(_tokenize_in_batches(tokenize_image, bad, batch_size))  # (N, h, w)
            for name, model in classifiers.items():
                curves[name].append(accuracy(model, tokens, audio, y))
        entry: dict[str, Any] = {
            "accuracy": curves,
            "relative_robustness": {name: relative_robustness(levels, curves[name]) for name in names},
        }
        if ref is not None:
            entry["effective_robustness"] = {
                name: effective_robustness(levels, curves[name], curves[ref]) for name in names if name != ref
            }
        result["degradations"][kind] = entry
    return result


def plot_robustness(result: Mapping[str, Any], path: str | Path, title: str | None = None) -> Path:
    """Write accuracy-vs-level curves of a :func:`robustness_sweep` result to a PNG: one panel per degradation,
    one line per classifier (legend: relative robustness)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    kinds = list(result["degradations"])
    if not kinds:
        raise ValueError("the result has no degradations to plot")
    fig = Figure(figsize=(4.2 * len(kinds), 3.6))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(kinds), squeeze=False)[0]
    levels = result["levels"]
    for ax, kind in zip(axes, kinds):
        entry = result["degradations"][kind]
        for name, curve in entry["accuracy"].items():
            rr = entry["relative_robustness"][name]
            ax.plot(levels, curve, marker="o", markersize=3, label=f"{name} (RR {rr:.2f})")
        ax.set_title(kind)
        ax.set_xlabel("level")
        ax.set_ylabel("accuracy")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path


def analyze(
    train_image_tokens: Tensor,
    train_audio_tokens: Tensor,
    train_labels: Tensor,
    test_image_tokens: Tensor,
    test_audio_tokens: Tensor,
    test_labels: Tensor,
    image_vocab: int,
    audio_vocab: int,
    test_images: Tensor | None = None,
    tokenize_image: Callable[[Tensor], Tensor] | None = None,
    kinds: Sequence[str] = ("image", "audio", "early", "early_shared", "late"),
    steps: int = 300,
    seed: int = 0,
    levels: Sequence[float] = LEVELS,
    degradations: Sequence[str] = DEGRADATIONS,
    plot_path: str | Path | None = None,
    train_image_views: Tensor | None = None,
    **config: Any,
) -> dict[str, Any]:
    """Fit the classifiers on train tokens (and ``train_image_views``, degraded tokenizations of the training
    images, see :func:`degraded_views`), evaluate them (both modalities and each missing) on test tokens and,
    given ``test_images`` and ``tokenize_image``, run the robustness sweep (and plot it to ``plot_path``).

    Returns ``{"classifiers": {name: config}, "accuracy": ..., "robustness": ... or None}`` (JSON-able).
    """
    models = fit_classifiers(train_image_tokens, train_audio_tokens, train_labels, image_vocab, audio_vocab,
                             kinds=kinds, steps=steps, seed=seed, image_views=train_image_views,
                             **config)  # fmt: skip
    report: dict[str, Any] = {
        "classifiers": {name: (asdict(m.config) if isinstance(m, TokenClassifier) else dict(m.config))
                        for name, m in models.items()},  # fmt: skip
        "accuracy": evaluate_classifiers(models, test_image_tokens, test_audio_tokens, test_labels),
        "robustness": None,
    }
    for name, m in report["classifiers"].items():
        for key in ("image_shape", "audio_shape"):
            if key in m:
                m[key] = list(m[key])
    if test_images is not None and tokenize_image is not None:
        report["robustness"] = robustness_sweep(models, test_images, test_audio_tokens, test_labels, tokenize_image,
                                                degradations=degradations, levels=levels, seed=seed)  # fmt: skip
        if plot_path is not None:
            plot_robustness(report["robustness"], plot_path)
    return report
