"""Judges: small classifiers trained on REAL data that score generated images and audio.

A judge is trained once on real samples of a labelled dataset (``av-digits``: 10 digit classes) and
then asked what a generated sample shows. Every kind shares one interface (:class:`Judge`);
a modality's `make_judge` names its kind (the image and speech judges are in :mod:`vqfuse.fusion.judge_kinds`).

``fit(x, y, steps, seed)`` trains from scratch in seconds on a CPU; ``predict``, ``probs`` and
``features`` (penultimate activations, for Frechet distances) run in eval mode without gradients;
``save(dir)`` / :func:`load_judge` use ``config.json`` + ``model.safetensors`` (nothing pickled).

Metrics on top (in :mod:`vqfuse.metrics.generation`): :func:`coherence` (judge accuracy on generated samples against the labels they were
generated for), :func:`joint_coherence` (how often the image and audio judges agree on a generated pair),
:func:`frechet_distance` (between feature sets; exact for Gaussians, see :func:`gaussian_frechet_distance`)
and :func:`judge_frechet_distance` (the Frechet distance in a judge's feature space).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vqfuse.errors import InputFileError, PathLike
from vqfuse.io.model_dir import CONFIG_FILE, WEIGHTS_FILE, read_model_config, save_model_dir
from vqfuse.io.weights import load_state_into
from vqfuse.metrics.generation import coherence

__all__ = ["Judge", "load_judge"]

FORMAT = "vqfuse-judge/1"


# ----------------------------------------------------------------------------------------------
# Base class


class Judge:
    """A classifier of one modality trained on real data; subclasses define the input pipeline and network.

    Args:
        num_classes: number of labels (10 for av-digits).
        **config: architecture / preprocessing options of the subclass (stored by :meth:`save`).
    """

    kind: ClassVar[str] = ""
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, num_classes: int = 10, **config: Any) -> None:
        unknown = set(config) - set(self.defaults)
        if unknown:
            raise ValueError(
                f"unknown {type(self).__name__} options: {sorted(unknown)}; known: {sorted(self.defaults)}"
            )
        if int(num_classes) < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        self.num_classes = int(num_classes)
        self.config: dict[str, Any] = {**self.defaults, **config}
        self.fit_info: dict[str, Any] = {}
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            self.net: nn.Module = self._build().eval()

    # -- subclass hooks
    def _build(self) -> nn.Module:
        raise NotImplementedError

    def _inputs(self, x: Tensor) -> Tensor:
        """Raw samples -> network inputs (no gradients needed)."""
        raise NotImplementedError

    def _augment(self, x: Tensor, gen: torch.Generator) -> Tensor:
        """Random label-preserving changes of a batch of network inputs (training only)."""
        return x

    # -- training and inference
    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    def to(self, device: str | torch.device) -> Judge:
        self.net.to(device)
        return self

    def fit(
        self,
        x: Tensor,
        y: Tensor,
        steps: int = 300,
        seed: int = 0,
        batch_size: int = 64,
        lr: float = 3e-3,
        weight_decay: float = 1e-4,
        augment: bool = True,
    ) -> Judge:
        """Train from scratch on real samples ``x`` with labels ``y`` (N,) for ``steps`` Adam steps.

        Batches, initialisation and augmentation are drawn from ``seed`` (global RNG untouched); the learning
        rate follows a cosine schedule. Returns ``self``; ``fit_info`` records the final loss and train accuracy.
        """
        y = torch.as_tensor(y).long().reshape(-1)
        if len(x) != len(y) or len(y) == 0:
            raise ValueError(f"need as many labels as samples (> 0), got {len(x)} samples and {len(y)} labels")
        if int(y.min()) < 0 or int(y.max()) >= self.num_classes:
            raise ValueError(f"labels must be in [0, {self.num_classes}), got [{int(y.min())}, {int(y.max())}]")
        device = self.device
        feats = self._batched_inputs(x).to(device)  # preprocess once: (N, ...)
        y = y.to(device)
        # the whole run draws from ``seed`` (initialisation, dropout), leaving the caller's RNG state untouched
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            losses = self._train(feats, y, int(steps), seed, batch_size, lr, weight_decay, augment)
        self.net.eval()
        n = len(y)
        train_acc = float((self._logits_from_inputs(feats).argmax(1) == y).float().mean())
        tail = losses[-20:] or [float("nan")]
        self.fit_info = {
            "steps": int(steps),
            "seed": int(seed),
            "samples": n,
            "final_loss": sum(tail) / len(tail),
            "train_accuracy": train_acc,
        }
        return self

    def _train(
        self,
        feats: Tensor,
        y: Tensor,
        steps: int,
        seed: int,
        batch_size: int,
        lr: float,
        weight_decay: float,
        augment: bool,
    ) -> list[float]:
        """The training loop of :meth:`fit` on preprocessed inputs ``feats`` (N, ...) and labels ``y`` (N,);
        returns the loss of every step."""
        device = feats.device
        self.net = self._build().to(device)
        gen = torch.Generator().manual_seed(seed + 1)
        opt = torch.optim.AdamW(self.net.parameters(), lr=lr, weight_decay=weight_decay)
        cosine = lambda s: 0.5 * (1 + math.cos(math.pi * min(s, steps) / max(steps, 1)))  # noqa: E731
        sched = torch.optim.lr_scheduler.LambdaLR(opt, cosine)
        self.net.train()
        n = len(y)
        losses: list[float] = []
        order = torch.randperm(n, generator=gen)
        pos = 0
        for _ in range(steps):
            if pos + min(batch_size, n) > n:
                order, pos = torch.randperm(n, generator=gen), 0
            idx = order[pos : pos + batch_size]
            pos += len(idx)
            xb = feats[idx.to(device)]
            if augment:
                xb = self._augment(xb, gen)
            loss = F.cross_entropy(self.net(xb), y[idx.to(device)], label_smoothing=0.05)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
        return losses

    def _batched_inputs(self, x: Tensor, batch_size: int = 512) -> Tensor:
        with torch.no_grad():
            return torch.cat(
                [self._inputs(x[i : i + batch_size].to(self.device)) for i in range(0, len(x), batch_size)]
            )

    @torch.no_grad()
    def _logits_from_inputs(self, feats: Tensor, batch_size: int = 512) -> Tensor:
        self.net.eval()
        return torch.cat([self.net(feats[i : i + batch_size]) for i in range(0, len(feats), batch_size)])

    @torch.no_grad()
    def logits(self, x: Tensor, batch_size: int = 256) -> Tensor:
        """Raw samples -> logits (N, C)."""
        self.net.eval()
        out = [self.net(self._inputs(x[i : i + batch_size].to(self.device))) for i in range(0, len(x), batch_size)]
        return torch.cat(out) if out else torch.zeros(0, self.num_classes, device=self.device)

    def probs(self, x: Tensor) -> Tensor:
        """Class probabilities (N, C), rows summing to 1."""
        return self.logits(x).softmax(dim=-1)

    def predict(self, x: Tensor) -> Tensor:
        """Predicted labels (N,) long."""
        return self.logits(x).argmax(dim=-1)

    @torch.no_grad()
    def features(self, x: Tensor, batch_size: int = 256) -> Tensor:
        """Penultimate activations (N, D): the feature space of :func:`judge_frechet_distance`."""
        self.net.eval()
        out = [
            self.net.features(self._inputs(x[i : i + batch_size].to(self.device))) for i in range(0, len(x), batch_size)
        ]
        return torch.cat(out)

    def accuracy(self, x: Tensor, y: Tensor) -> float:
        """Fraction of ``x`` classified as ``y``."""
        return coherence(self, x, y)

    # -- persistence
    def save(self, directory: PathLike) -> Path:
        """Write ``config.json`` and ``model.safetensors`` (each atomically) into ``directory``."""
        save_model_dir(
            directory,
            self.net,
            {"kind": self.kind, "num_classes": self.num_classes, "config": self.config, "fit": self.fit_info},
            FORMAT,
        )
        return Path(directory)

    @classmethod
    def load(cls, directory: PathLike, device: str | torch.device = "cpu") -> Judge:
        """Load a judge written by :meth:`save` (in eval mode); the saved kind must match ``cls``."""
        judge = load_judge(directory, device)
        if cls is not Judge and not isinstance(judge, cls):
            raise InputFileError(Path(directory) / CONFIG_FILE, f"holds a {judge.kind} judge, not a {cls.kind} judge")
        return judge

    def __repr__(self) -> str:
        return f"{type(self).__name__}(num_classes={self.num_classes}, config={self.config})"


def _judge_kinds() -> dict[str, type[Judge]]:
    """Every Judge subclass by its `kind` (a modality's own judge registers by subclassing)."""
    found, todo = {}, list(Judge.__subclasses__())
    while todo:
        cls = todo.pop()
        found[cls.kind] = cls
        todo += cls.__subclasses__()
    return found


def load_judge(directory: PathLike, device: str | torch.device = "cpu") -> Judge:
    """Load any judge written by :meth:`Judge.save` (kind read from ``config.json``), in eval mode."""
    directory = Path(directory)
    raw = read_model_config(directory, FORMAT, "judge")
    import vqfuse.fusion.judge_kinds  # noqa: F401  (the built-in kinds register by subclassing)

    kinds = _judge_kinds()
    if raw.get("kind") not in kinds:
        raise InputFileError(directory / CONFIG_FILE, f"not a vqfuse judge config (kind {raw.get('kind')!r})")
    try:
        judge = kinds[raw["kind"]](int(raw["num_classes"]), **raw.get("config", {}))
    except (KeyError, TypeError, ValueError) as exc:
        raise InputFileError(directory / CONFIG_FILE, f"invalid judge config: {exc}") from exc
    load_state_into(judge.net, directory / WEIGHTS_FILE, device)
    judge.fit_info = dict(raw.get("fit") or {})
    judge.net.to(device).eval()
    return judge
