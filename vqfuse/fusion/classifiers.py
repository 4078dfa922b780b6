"""Token classifiers for fused classification on VQ tokens, and missing modalities (MultiBench-style).

Inputs are plain tensors, one per named modality: codes ``(N, S, *latent)`` long in ``[0, K_m)`` (a stage axis
first, as ``Tokenizer.encode_codes`` and ``TokenSet`` give them), and labels ``(N,)``. Classifiers (small,
seconds on a CPU):

- a modality's name (``"image"``, ``"audio"``, ...): that modality alone; token + positional embeddings, a
  token-wise residual MLP, an optional 1-2 layer transformer (``layers``), attention or mean pooling, an MLP
  head. The positions of a sequence (1-D latents) or of several stages embed the concatenation of their stage
  codes (linear to ``dim``), so residual levels keep their identity.
- ``"early"``: one sequence of every modality's tokens with modality embeddings (the transformer, with
  ``layers`` > 0, attends across them); ``shared_codebook`` uses one embedding table over ``max(K_m)`` codes
  for all instead of a table per modality (``"early_shared"`` in
  :func:`fit_classifiers`). By default each modality's positions are pooled apart and concatenated before the
  shared head (``pool_per_modality``): pooling the joint sequence let the easier modality crowd the other out
  (av-digits stand-in tokens: 0.30 accuracy without the audio vs 0.69 pooled apart, 300 steps). Trained with
  modality dropout: a modality is replaced by its learned MISSING embedding, so the model still works when
  one is absent at test time.
- ``"late"`` (:class:`~vqfuse.fusion.classifier_training.LateFusion`): the mean of the unimodal heads'
  log-probabilities; a missing modality's head is dropped.

Every classifier trains with token dropout (``token_dropout``, 0.5): each token position shows its modality's
MISSING embedding with that chance, so no single token pattern is trusted and damaged inputs cost less.
Early fusion also trains a linear head per modality on that modality's pooled features (``unimodal_loss_weight``,
1.0), so the easier modality cannot leave the other one's features under-trained.

Training, late fusion and evaluation are in :mod:`vqfuse.fusion.classifier_training`, robustness sweeps in
:mod:`vqfuse.fusion.robustness`.

Robustness (:func:`vqfuse.fusion.robustness.robustness_sweep`): one modality's test signals (images) are degraded
in PIXEL space (:func:`~vqfuse.fusion.robustness.degrade`: Gaussian noise of std ``level``, pixel dropout with
probability ``level``, a square occluding ``level`` of the area) for ``level`` in 0, 0.1, ..., 1, re-tokenized by
a caller's ``tokenize`` and classified with the other modalities' clean tokens. Reported per classifier: accuracy curves, relative robustness (area under accuracy-vs-level, trapezoid,
divided by the level range: a constant curve gives that constant) and effective robustness (accuracy minus
the reference's, late fusion by default, per level and its area). Everything returned is a JSON-able dict;
:func:`plot_robustness` draws the curves to a PNG.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

DEGRADATIONS = ("noise", "dropout", "occlusion")
LEVELS: tuple[float, ...] = tuple(round(0.1 * i, 1) for i in range(11))
EARLY = "early"
Classifier = Any  # TokenClassifier | LateFusion: both have .log_probs(tokens) and .num_classes
Tokens = Mapping[str, "Tensor | None"]  # {modality: (N, S, *latent) codes, or None where it is missing}


# ----------------------------------------------------------------------------------------------
# Token checks


def check_codes(x: Tensor | None, vocab: int | None = None, name: str = "") -> Tensor | None:
    """Check codes (N, S, *latent) long, in [0, vocab) when given."""
    if x is None:
        return None
    x = torch.as_tensor(x)
    if x.dim() < 3 or x.is_floating_point():
        raise ValueError(f"{name} codes must be integer (N, S, *latent), got {x.dtype} {tuple(x.shape)}")
    if vocab is not None and x.numel() and (int(x.min()) < 0 or int(x.max()) >= vocab):
        raise ValueError(f"{name} codes must be in [0, {vocab}), got [{int(x.min())}, {int(x.max())}]")
    return x.long()


def count_items(tokens: Tokens) -> int:
    """N of the tokens given (they must agree)."""
    sizes = {name: len(t) for name, t in tokens.items() if t is not None}
    if not sizes:
        raise ValueError("need the tokens of at least one modality")
    if len(set(sizes.values())) > 1:
        raise ValueError(f"the modalities disagree on N: {sizes}")
    return next(iter(sizes.values()))


# ----------------------------------------------------------------------------------------------
# Classifiers


@dataclass
class TokenClassifierConfig:
    """Architecture of a :class:`TokenClassifier` (JSON-able via ``asdict``).

    ``vocabs`` and ``shapes`` (``(S, *latent)``) name every modality of the study, in sequence order; ``kind``
    is one of them (a unimodal classifier) or ``"early"`` (all of them)."""

    kind: str
    num_classes: int
    vocabs: dict[str, int] = field(default_factory=dict)
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
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
        if self.kind not in (*self.vocabs, EARLY):
            raise ValueError(f"kind must be one of {', '.join(map(repr, (*self.vocabs, EARLY)))}, got {self.kind!r}")
        if self.pool not in ("mean", "attention"):
            raise ValueError(f"pool must be 'mean' or 'attention', got {self.pool!r}")
        if self.num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {self.num_classes}")
        self.vocabs = {m: int(v) for m, v in self.vocabs.items()}
        self.shapes = {m: tuple(int(n) for n in s) for m, s in self.shapes.items()}
        for m in self.modalities:
            vocab, shape = self.vocabs.get(m, 0), self.shapes.get(m, ())
            if vocab < 1 or len(shape) < 2 or min(shape) < 1:
                raise ValueError(
                    f"{self.kind} classifier needs vocabs[{m!r}] >= 1 and shapes[{m!r}] = (S, *latent), "
                    f"got {vocab}, {shape}"
                )
        if not 0.0 <= self.modality_dropout <= 1.0:
            raise ValueError(f"modality_dropout must be in [0, 1], got {self.modality_dropout}")
        if not 0.0 <= self.token_dropout < 1.0:
            raise ValueError(f"token_dropout must be in [0, 1), got {self.token_dropout}")
        if self.unimodal_loss_weight < 0:
            raise ValueError(f"unimodal_loss_weight must be >= 0, got {self.unimodal_loss_weight}")
        if self.unimodal_heads and not self.pool_per_modality:
            raise ValueError(
                "unimodal_loss_weight > 0 needs pool_per_modality (a pooled vector per modality); "
                "set unimodal_loss_weight=0 to pool the joint sequence"
            )

    @property
    def unimodal_heads(self) -> bool:
        """Whether the classifier has a per-modality head for the auxiliary loss (early fusion only; unimodal
        classifiers ignore ``unimodal_loss_weight``, as they ignore ``modality_dropout``)."""
        return self.kind == EARLY and self.unimodal_loss_weight > 0

    @property
    def names(self) -> tuple[str, ...]:
        """Every modality of the study, in sequence order."""
        return tuple(self.vocabs)

    @property
    def modalities(self) -> tuple[str, ...]:
        """The modalities this classifier reads."""
        return self.names if self.kind == EARLY else (self.kind,)


class TokenClassifier(nn.Module):
    """Classifier on the tokens of one modality (``kind`` its name) or of all (``kind`` "early").

    ``forward(tokens, present) -> logits (N, C)``; a modality missing from ``tokens`` (or None), or an item
    whose ``present[m]`` flag is False, gets the modality's learned MISSING embedding at every position. A
    unimodal classifier whose modality is missing returns all-zero logits (a uniform distribution).
    """

    def __init__(self, config: TokenClassifierConfig) -> None:
        super().__init__()
        self.config = c = config
        d = c.dim
        self.num_classes = c.num_classes
        shared = c.kind == EARLY and c.shared_codebook
        if shared:
            self.shared = nn.Embedding(max(c.vocabs.values()), d)
        self.embed, self.levels, self.pos = nn.ModuleDict(), nn.ModuleDict(), nn.ParameterDict()
        for m in c.modalities:
            stages, *latent = c.shapes[m]
            self.embed[m] = self.shared if shared else nn.Embedding(c.vocabs[m], d)
            if stages > 1 or len(latent) == 1:  # a position's stage codes, concatenated -> one vector
                self.levels[m] = nn.Linear(stages * d, d)
            self.pos[m] = nn.Parameter(torch.randn(math.prod(latent), d))  # (P, d)
        self.missing = nn.Parameter(torch.randn(len(c.names), d))  # (M, d), one per modality of the study
        self.modality_embed = nn.Parameter(torch.randn(len(c.names), d))  # (M, d)
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
        self.unimodal = nn.ModuleDict({m: nn.Linear(d, c.num_classes) for m in c.names}) if c.unimodal_heads else None

    def _embed(self, m: str, codes: Tensor | None, present: Tensor, n: int) -> Tensor:
        """Codes (N, S, *latent) of modality m (None: missing) -> (N, P, d)."""
        shape = self.config.shapes[m]
        i, positions = self.config.names.index(m), math.prod(shape[1:])
        if codes is not None:
            if tuple(codes.shape[1:]) != shape:
                raise ValueError(f"{m} codes must be (N, {', '.join(map(str, shape))}), got {tuple(codes.shape)}")
            e = self.embed[m](codes.reshape(len(codes), shape[0], positions).transpose(1, 2))  # (N, P, S, d)
            e = self.levels[m](e.flatten(2)) if m in self.levels else e[:, :, 0]  # (N, P, d)
            e = torch.where(self._keep(present, positions)[..., None], e, self.missing[i])
        else:
            e = self.missing[i].expand(n, positions, -1)
        return e + self.pos[m] + self.modality_embed[i]

    def _keep(self, present: Tensor, length: int) -> Tensor:
        """(N,) presence -> (N, length) positions that show their token (token dropout while training)."""
        keep = present[:, None].expand(-1, length)
        p = self.config.token_dropout
        if self.training and p > 0:
            keep = keep & (torch.rand(keep.shape, device=keep.device) >= p)
        return keep

    def forward(
        self, tokens: Tokens, present: Mapping[str, Tensor] | None = None, unimodal: bool = False
    ) -> Tensor | tuple[Tensor, dict[str, Tensor]]:
        """Tokens -> logits (N, C). ``present``: {m: (N,) bool}, default all True for a given modality.

        ``unimodal`` (a classifier with ``unimodal_loss_weight`` > 0): also return the per-modality heads'
        logits ``{m: (N, C)}``, which only the training loss reads."""
        c = self.config
        n = count_items(tokens)  # another modality's tokens may only tell N
        dev = self.norm.weight.device
        own = {m: tokens.get(m) for m in c.modalities}
        if c.kind != EARLY and own[c.kind] is None:
            return torch.zeros(n, c.num_classes, device=dev)
        flags = {
            m: torch.ones(n, dtype=torch.bool, device=dev)
            if present is None or present.get(m) is None
            else present[m].to(dev).bool()
            for m in c.modalities
        }
        parts = [self._embed(m, None if own[m] is None else own[m].to(dev), flags[m], n) for m in c.modalities]
        x = torch.cat(parts, dim=1)  # (N, L, d)
        x = x + self.token_mlp(x)
        if self.encoder is not None:
            x = self.encoder(x)
        x = self.norm(x)
        segments = x.split([p.shape[1] for p in parts], dim=1) if c.pool_per_modality else (x,)
        pooled = [self._pool(seg) for seg in segments]  # segments x (N, d)
        logits = self.head(torch.cat(pooled, dim=-1))  # (N, C)
        if c.kind != EARLY:  # an item whose only modality is absent: uniform
            logits = torch.where(flags[c.kind][:, None], logits, torch.zeros_like(logits))
        if unimodal:
            if self.unimodal is None:
                raise ValueError("this classifier has no unimodal heads (unimodal_loss_weight is 0)")
            return logits, {m: self.unimodal[m](p) for m, p in zip(c.modalities, pooled)}
        return logits

    def _pool(self, x: Tensor) -> Tensor:
        """(N, L, d) -> (N, d): attention pooling (a learned score per position, softmax over L) or the mean."""
        if self.attn_score is None:
            return x.mean(dim=1)
        weights = self.attn_score(x).softmax(dim=1)  # (N, L, 1)
        return (weights * x).sum(dim=1)

    @torch.no_grad()
    def log_probs(self, tokens: Tokens, batch_size: int = 512) -> Tensor:
        """Eval-mode log-probabilities (N, C); a modality missing from ``tokens`` is missing for every item."""
        self.eval()
        n = count_items(tokens)
        out = []
        for i in range(0, n, batch_size):
            batch = {m: None if t is None else t[i : i + batch_size] for m, t in tokens.items()}
            out.append(F.log_softmax(self(batch), -1))
        return torch.cat(out).cpu()


__all__ = [
    "EARLY",
    "LEVELS",
    "DEGRADATIONS",
    "TokenClassifierConfig",
    "TokenClassifier",
    "Classifier",
    "Tokens",
    "check_codes",
    "count_items",
]
