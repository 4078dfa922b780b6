"""Token classifiers for fused classification on VQ tokens, and missing modalities (MultiBench-style).

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

Training, late fusion and evaluation are in :mod:`vqfuse.fusion.classifier_training`, robustness sweeps in
:mod:`vqfuse.fusion.robustness`.

Robustness (:func:`vqfuse.fusion.robustness.robustness_sweep`): test images are degraded in PIXEL space (:func:`degrade`: Gaussian
noise of std ``level``, pixel dropout with probability ``level``, a square occluding ``level`` of the area) for
``level`` in 0, 0.1, ..., 1, re-tokenized by a caller's ``tokenize_image`` and classified with the clean audio
tokens. Reported per classifier: accuracy curves, relative robustness (area under accuracy-vs-level, trapezoid,
divided by the level range: a constant curve gives that constant) and effective robustness (accuracy minus
the reference's, late fusion by default, per level and its area). Everything returned is a JSON-able dict;
:func:`plot_robustness` draws the curves to a PNG.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

MODALITIES = ("image", "audio")
DEGRADATIONS = ("noise", "dropout", "occlusion")
LEVELS: tuple[float, ...] = tuple(round(0.1 * i, 1) for i in range(11))
Kind = Literal["image", "audio", "early"]
Classifier = Any  # TokenClassifier | LateFusion: both have .log_probs(image, audio) and .num_classes



# ----------------------------------------------------------------------------------------------
# Token checks


def check_image_tokens(x: Tensor | None, vocab: int | None = None) -> Tensor | None:
    """Check image tokens (N, h, w) long."""
    if x is None:
        return None
    x = torch.as_tensor(x)
    if x.dim() != 3 or x.is_floating_point():
        raise ValueError(f"image tokens must be integer (N, h, w), got {x.dtype} {tuple(x.shape)}")
    if vocab is not None and x.numel() and (int(x.min()) < 0 or int(x.max()) >= vocab):
        raise ValueError(f"image tokens must be in [0, {vocab}), got [{int(x.min())}, {int(x.max())}]")
    return x.long()


def check_audio_tokens(x: Tensor | None, vocab: int | None = None) -> Tensor | None:
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


def count_items(image: Tensor | None, audio: Tensor | None) -> int:
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
        n = count_items(image, audio)  # the other modality's tokens may only tell N
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
        n = count_items(image, audio)
        out = []
        for i in range(0, n, batch_size):
            sl = slice(i, i + batch_size)
            out.append(F.log_softmax(self(None if image is None else image[sl], None if audio is None else audio[sl]), -1))
        return torch.cat(out).cpu()


__all__ = ["MODALITIES", "LEVELS", "DEGRADATIONS", "TokenClassifierConfig", "TokenClassifier", "Classifier",
           "check_image_tokens", "check_audio_tokens", "count_items"]
