"""Training token classifiers, late fusion of unimodal ones, and their evaluation (see vqfuse.fusion.classifiers)."""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from vqfuse.fusion.classifiers import (
    Classifier,
    TokenClassifier,
    TokenClassifierConfig,
    check_audio_tokens,
    check_image_tokens,
    count_items,
)


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
    image = check_image_tokens(image_tokens, c.image_vocab) if "image" in c.modalities else None
    if image is not None and image_views is not None:
        views = torch.as_tensor(image_views).long()
        if views.dim() != 4 or tuple(views.shape[1:]) != tuple(image.shape):
            raise ValueError(f"image_views must be (V, {', '.join(map(str, image.shape))}), got {tuple(views.shape)}")
        check_image_tokens(views.flatten(0, 1), c.image_vocab)  # range check
        image = torch.cat([image[None], views])  # (V + 1, N, h, w)
    else:
        image = image[None] if image is not None else None  # (1, N, h, w)
    audio = check_audio_tokens(audio_tokens, c.audio_vocab) if "audio" in c.modalities else None
    y = torch.as_tensor(labels).long().reshape(-1)
    n = count_items(None if image is None else image[0], audio)
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
    image = check_image_tokens(image_tokens, image_vocab)
    audio = check_audio_tokens(audio_tokens, audio_vocab)
    assert image is not None and audio is not None
    count_items(image, audio)
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
    pred = model.log_probs(check_image_tokens(image_tokens), check_audio_tokens(audio_tokens)).argmax(dim=-1)
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


__all__ = ["LateFusion", "train_token_classifier", "fit_classifiers", "accuracy", "evaluate_classifiers"]
