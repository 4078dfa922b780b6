"""Training token classifiers, late fusion of unimodal ones, and their evaluation (see vqfuse.fusion.classifiers).

Tokens are ``{modality: (N, S, *latent) codes}`` for any set of named modalities."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from vqfuse.fusion.classifiers import EARLY, Classifier, TokenClassifier, TokenClassifierConfig, Tokens, check_codes


class LateFusion:
    """Late fusion of unimodal classifiers ``{modality: classifier of that modality}``: the mean of their
    log-probabilities, renormalised. A missing modality's head is dropped (the others decide)."""

    def __init__(self, members: Mapping[str, TokenClassifier]) -> None:
        wrong = [m for m, model in members.items() if model.config.kind != m]
        if not members or wrong:
            raise ValueError(f"LateFusion needs one unimodal classifier per modality, keyed by it; wrong: {wrong}")
        classes = {model.num_classes for model in members.values()}
        if len(classes) != 1:
            raise ValueError(f"class counts differ: {sorted(classes)}")
        self.members = dict(members)
        self.num_classes = classes.pop()
        self.config = {"kind": "late"}

    def log_probs(self, tokens: Tokens, batch_size: int = 512) -> Tensor:
        """(N, C) log-probabilities from the heads of the modalities given."""
        heads = [
            model.log_probs({m: tokens[m]}, batch_size)
            for m, model in self.members.items()
            if tokens.get(m) is not None
        ]
        if not heads:
            raise ValueError("need the tokens of at least one modality")
        return F.log_softmax(torch.stack(heads).mean(dim=0), dim=-1)


def _unimodal_loss(heads: Mapping[str, Tensor], target: Tensor, present: Mapping[str, Tensor] | None) -> Tensor:
    """Sum over modalities of the per-modality heads' cross-entropy on the items that show that modality."""
    total = target.new_zeros((), dtype=torch.float32)
    for name, logits in heads.items():
        flags = None if present is None else present.get(name)
        keep = torch.ones_like(target, dtype=torch.bool) if flags is None else flags.to(target.device)
        if keep.any():
            total = total + F.cross_entropy(logits[keep], target[keep])
    return total


def train_token_classifier(
    model: TokenClassifier,
    tokens: Tokens,
    labels: Tensor,
    steps: int = 300,
    batch_size: int = 64,
    lr: float = 4e-3,
    weight_decay: float = 0.01,
    seed: int = 0,
    views: Mapping[str, Tensor] | None = None,
) -> dict[str, float]:
    """Train ``model`` in place (AdamW, cosine schedule) with batches drawn from ``seed``; returns the final loss.

    Early fusion applies modality dropout: with probability ``config.modality_dropout`` an item loses one of
    its modalities (each equally likely), replaced by the learned MISSING embedding.

    ``views`` ``{m: (V, N, S, *latent)}``: other tokenizations of the same N items of modality m (e.g. of
    degraded copies, see :func:`~vqfuse.fusion.robustness.degraded_views`); each training item then shows one
    of the V + 1 versions, drawn uniformly, so the classifier learns how much to trust damaged inputs.
    """
    c = model.config
    data: dict[str, Tensor] = {}
    for m in c.modalities:
        x = check_codes(tokens.get(m), c.vocabs[m], m)
        if x is None:
            raise ValueError(f"a {c.kind} classifier trains on {m} tokens; none were given")
        v = None if views is None else views.get(m)
        if v is not None:
            v = torch.as_tensor(v).long()
            if v.dim() != x.dim() + 1 or tuple(v.shape[1:]) != tuple(x.shape):
                raise ValueError(f"{m} views must be (V, {', '.join(map(str, x.shape))}), got {tuple(v.shape)}")
            check_codes(v.flatten(0, 1), c.vocabs[m], m)  # range check
        data[m] = x[None] if v is None else torch.cat([x[None], v])  # (V + 1, N, S, *latent)
    y = torch.as_tensor(labels).long().reshape(-1)
    n = len(next(iter(data.values()))[0])
    if any(len(x[0]) != n for x in data.values()) or len(y) != n:
        raise ValueError(f"tokens and labels disagree on N: {[len(x[0]) for x in data.values()]} vs {len(y)} labels")
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
            present = None
            if c.kind == EARLY and c.modality_dropout > 0:
                drop = torch.rand(len(idx), generator=gen) < c.modality_dropout
                which = (torch.rand(len(idx), generator=gen) * len(c.modalities)).long()  # the modality dropped
                present = {m: ~(drop & (which == i)) for i, m in enumerate(c.modalities)}
            batch = {}
            for m, x in data.items():
                view = (
                    torch.randint(0, x.shape[0], (len(idx),), generator=gen)
                    if x.shape[0] > 1
                    else torch.zeros(len(idx), dtype=torch.long)
                )
                batch[m] = x[view, idx]  # (B, S, *latent)
            target = y[idx].to(dev)
            if c.unimodal_heads:
                logits, heads = model(batch, present, unimodal=True)
                loss = F.cross_entropy(logits, target) + c.unimodal_loss_weight * _unimodal_loss(heads, target, present)
            else:
                loss = F.cross_entropy(model(batch, present), target)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
    model.eval()
    tail = losses[-20:] or [float("nan")]
    return {"steps": int(steps), "final_loss": sum(tail) / len(tail)}


def fit_classifiers(
    tokens: Tokens,
    labels: Tensor,
    vocabs: Mapping[str, int],
    num_classes: int | None = None,
    kinds: Sequence[str] | None = None,
    steps: int = 300,
    seed: int = 0,
    batch_size: int = 64,
    lr: float = 4e-3,
    views: Mapping[str, Tensor] | None = None,
    **config: Any,
) -> dict[str, Classifier]:
    """Train the classifiers named in ``kinds`` on the same tokens; returns ``{name: classifier}``.

    Names: each modality of ``vocabs`` (in order), "early", "early_shared" (early fusion over one shared
    codebook) and "late" (built from the unimodal classifiers, trained here if not listed); default: every
    modality, "early" and "late". ``views``: degraded tokenizations shown to every classifier that reads
    that modality (see :func:`train_token_classifier`). ``config``: further :class:`TokenClassifierConfig`
    fields (dim, layers, heads, pool, dropout, modality_dropout).
    """
    names = tuple(vocabs)
    codes = {m: check_codes(tokens[m], int(vocabs[m]), m) for m in names}
    y = torch.as_tensor(labels).long().reshape(-1)
    num_classes = int(num_classes if num_classes is not None else int(y.max()) + 1)
    kinds = tuple(kinds) if kinds is not None else (*names, EARLY, "late")
    unknown = set(kinds) - {*names, EARLY, "early_shared", "late"}
    if unknown:
        raise ValueError(f"unknown classifier kinds {sorted(unknown)}")
    need = list(dict.fromkeys([k for k in kinds if k != "late"] + (list(names) if "late" in kinds else [])))
    base = dict(
        num_classes=num_classes,
        vocabs={m: int(vocabs[m]) for m in names},
        shapes={m: tuple(codes[m].shape[1:]) for m in names},
        **config,
    )  # type: ignore[union-attr]
    trained: dict[str, Classifier] = {}
    for i, name in enumerate(need):
        kind = EARLY if name.startswith(EARLY) else name
        cfg = TokenClassifierConfig(kind=kind, shared_codebook=name == "early_shared", **base)  # type: ignore[arg-type]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed * 100 + i)
            model = TokenClassifier(cfg)
        model.fit_info = train_token_classifier(
            model, codes, y, steps, batch_size, lr, seed=seed * 100 + i, views=views
        )
        trained[name] = model
    if "late" in kinds:
        trained["late"] = LateFusion({m: trained[m] for m in names})
    return {k: trained[k] for k in kinds}


# ----------------------------------------------------------------------------------------------
# Evaluation


def accuracy(model: Classifier, tokens: Tokens, labels: Tensor) -> float:
    """Accuracy of ``model`` on the tokens given (a modality absent or None is missing)."""
    y = torch.as_tensor(labels).long().reshape(-1)
    pred = model.log_probs({m: check_codes(t, name=m) for m, t in tokens.items()}).argmax(dim=-1)
    if len(pred) != len(y):
        raise ValueError(f"{len(pred)} predictions but {len(y)} labels")
    return float((pred == y).float().mean())


def evaluate_classifiers(
    classifiers: Mapping[str, Classifier], tokens: Tokens, labels: Tensor
) -> dict[str, dict[str, float]]:
    """``{name: {"all": acc, "<m>_missing": acc for each modality m}}``.

    A unimodal classifier whose own modality is missing predicts uniformly (class 0 by argmax).
    """
    out: dict[str, dict[str, float]] = {}
    for name, model in classifiers.items():
        out[name] = {"all": accuracy(model, tokens, labels)}
        for m in tokens:
            out[name][f"{m}_missing"] = accuracy(model, {k: t for k, t in tokens.items() if k != m}, labels)
    return out


__all__ = ["LateFusion", "train_token_classifier", "fit_classifiers", "accuracy", "evaluate_classifiers"]
