"""Judges: small classifiers trained on REAL data that score generated images and audio.

A judge is trained once on real samples of a labelled dataset (``av-digits``: 10 digit classes) and
then asked what a generated sample shows. Two kinds share one interface (:class:`Judge`):

- :class:`ImageJudge`: a small CNN on ``(N, 3, S, S)`` images in [-1, 1] (any ``S >= 8``).
- :class:`AudioJudge`: a small CNN on log-mel spectrograms of ``(N, 1, T)`` / ``(N, T)`` audio in
  [-1, 1] (16 kHz, about 1 s; any length works, the time axis is pooled).

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
from vqfuse.io.model_dir import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    read_model_config,
    save_model_dir,
)
from vqfuse.io.weights import load_state_into
from vqfuse.losses.reconstruction import mel_spectrogram
from vqfuse.metrics.generation import coherence

__all__ = ["Judge", "ImageJudge", "AudioJudge", "load_judge", "log_mel_features"]

FORMAT = "vqfuse-judge/1"


# ----------------------------------------------------------------------------------------------
# Networks


class _ImageNet(nn.Module):
    """(N, 3, s, s) -> features (N, D) -> logits (N, C). Three 3x3 convs, two 2x pools, a 4x4 adaptive pool."""

    def __init__(self, num_classes: int, channels: int = 16, feature_dim: int = 128, dropout: float = 0.2) -> None:
        super().__init__()
        c = channels
        self.body = nn.Sequential(
            nn.Conv2d(3, c, 3, padding=1), nn.ReLU(),
            nn.Conv2d(c, c, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(c, 2 * c, 3, padding=1), nn.ReLU(),
            nn.AdaptiveMaxPool2d(4), nn.Flatten(),
            nn.Linear(2 * c * 16, feature_dim), nn.ReLU(),
        )  # fmt: skip
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(feature_dim, num_classes))

    def features(self, x: Tensor) -> Tensor:
        return self.body(x)  # (N, D)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.body(x))  # (N, C)


class _AudioNet(nn.Module):
    """Log-mel (N, 1, M, T') -> features (N, D) -> logits (N, C).

    Three 1-D convolutions over time with the mel bins as channels (keyword-spotting style, cheap on a CPU),
    then mean and max over time, so clips of any length and any position of the word work."""

    def __init__(self, num_classes: int, n_mels: int, channels: int = 32, feature_dim: int = 128,
                 dropout: float = 0.2) -> None:  # fmt: skip
        super().__init__()
        c = channels
        self.convs = nn.Sequential(
            nn.Conv1d(n_mels, c, 5, padding=2), nn.BatchNorm1d(c), nn.ReLU(),
            nn.Conv1d(c, c, 3, padding=2, dilation=2), nn.BatchNorm1d(c), nn.ReLU(),
            nn.Conv1d(c, 2 * c, 3, padding=1), nn.BatchNorm1d(2 * c), nn.ReLU(),
        )  # fmt: skip
        self.proj = nn.Sequential(nn.Linear(4 * c, feature_dim), nn.ReLU())
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(feature_dim, num_classes))

    def features(self, x: Tensor) -> Tensor:
        h = self.convs(x[:, 0])  # (N, 2c, T')
        return self.proj(torch.cat([h.mean(dim=-1), h.amax(dim=-1)], dim=1))  # (N, D)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))  # (N, C)


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
            raise ValueError(f"unknown {type(self).__name__} options: {sorted(unknown)}; known: {sorted(self.defaults)}")
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
        self.fit_info = {"steps": int(steps), "seed": int(seed), "samples": n, "final_loss": sum(tail) / len(tail),
                         "train_accuracy": train_acc}  # fmt: skip
        return self

    def _train(self, feats: Tensor, y: Tensor, steps: int, seed: int, batch_size: int, lr: float, weight_decay: float,
               augment: bool) -> list[float]:  # fmt: skip
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
            return torch.cat([self._inputs(x[i : i + batch_size].to(self.device)) for i in range(0, len(x), batch_size)])

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
        out = [self.net.features(self._inputs(x[i : i + batch_size].to(self.device))) for i in range(0, len(x), batch_size)]
        return torch.cat(out)

    def accuracy(self, x: Tensor, y: Tensor) -> float:
        """Fraction of ``x`` classified as ``y``."""
        return coherence(self, x, y)

    # -- persistence
    def save(self, directory: PathLike) -> Path:
        """Write ``config.json`` and ``model.safetensors`` (each atomically) into ``directory``."""
        save_model_dir(directory, self.net, {"kind": self.kind, "num_classes": self.num_classes, "config": self.config,
                                             "fit": self.fit_info}, FORMAT)
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


# ----------------------------------------------------------------------------------------------
# Image judge


class ImageJudge(Judge):
    """Small CNN on images ``(N, 3, S, S)`` in [-1, 1]; reaches ~98-99% on held-out real av-digits images.

    Images are area-resized to ``input_size`` (16: av-digits are 8x8 digits upscaled, so nothing is lost).
    Options: ``channels`` (16), ``feature_dim`` (128), ``dropout`` (0.2); training augmentation is a random
    small affine warp (rotation, scale, shift), the border filled with black (-1).
    """

    kind = "image"
    defaults = {"input_size": 16, "channels": 16, "feature_dim": 128, "dropout": 0.2, "max_rotation": 10.0, "max_shift": 0.1,
                "max_scale": 0.1}  # fmt: skip

    def _build(self) -> nn.Module:
        c = self.config
        return _ImageNet(self.num_classes, int(c["channels"]), int(c["feature_dim"]), float(c["dropout"]))

    def _inputs(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != 3 or min(x.shape[-2:]) < 8:
            raise ValueError(f"ImageJudge expects (N, 3, S, S) images with S >= 8, got {tuple(x.shape)}")
        size = int(self.config["input_size"])
        x = x.float()
        return x if tuple(x.shape[-2:]) == (size, size) else F.interpolate(x, size=(size, size), mode="area")

    def _augment(self, x: Tensor, gen: torch.Generator) -> Tensor:
        n = x.shape[0]
        c = self.config
        u = torch.rand(n, 4, generator=gen).to(x.device) * 2 - 1  # (N, 4) in [-1, 1]
        angle = u[:, 0] * math.radians(float(c["max_rotation"]))
        scale = 1 + u[:, 1] * float(c["max_scale"])
        shift = u[:, 2:] * float(c["max_shift"]) * 2  # grid units: the image spans [-1, 1]
        cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
        theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)  # (N, S, S, 2)
        return F.grid_sample(x + 1, grid, align_corners=False, padding_mode="zeros") - 1  # border: black


# ----------------------------------------------------------------------------------------------
# Audio judge


def log_mel_features(
    audio: Tensor, sample_rate: int = 16000, n_mels: int = 32, n_fft: int = 512, hop_length: int = 320,
    floor_db: float = 80.0,
) -> Tensor:  # fmt: skip
    """Audio (N, 1, T) or (N, T) -> normalised log-mel (N, 1, n_mels, frames), roughly in [-2, 2].

    Each clip is scaled so its loudest mel bin is 0 dB and floored ``floor_db`` below it (gain-invariant).
    """
    if audio.dim() == 3:
        if audio.shape[1] != 1:
            raise ValueError(f"expected mono audio (N, 1, T), got {tuple(audio.shape)}")
        audio = audio[:, 0]
    if audio.dim() != 2:
        raise ValueError(f"expected audio (N, 1, T) or (N, T), got {tuple(audio.shape)}")
    mel = mel_spectrogram(audio.float(), sample_rate, n_fft=n_fft, n_mels=n_mels, hop_length=hop_length)  # (N, M, T')
    db = 10.0 * torch.log10(mel.clamp_min(1e-10) ** 2)
    db = db - db.amax(dim=(1, 2), keepdim=True)
    db = db.clamp_min(-floor_db)
    return ((db + floor_db / 2) / (floor_db / 4)).unsqueeze(1)  # (N, 1, M, T')


class AudioJudge(Judge):
    """Small 1-D CNN on log-mel spectrograms of 16 kHz audio ``(N, 1, T)``; see :func:`log_mel_features`.

    Options: ``sample_rate`` (16000), ``n_mels`` (32), ``n_fft`` (512), ``hop_length`` (320), ``channels`` (32),
    ``feature_dim`` (128), ``dropout`` (0.2). Training augmentation (SpecAugment-like): a random time shift,
    a shift of up to ``max_mel_shift`` mel bins (a crude voice change), one frequency and one time mask.
    """

    kind = "audio"
    defaults = {"sample_rate": 16000, "n_mels": 32, "n_fft": 512, "hop_length": 320, "channels": 32,
                "feature_dim": 128, "dropout": 0.2, "max_time_shift": 10, "max_mel_shift": 2, "freq_mask": 5,
                "time_mask": 8}  # fmt: skip

    def _build(self) -> nn.Module:
        c = self.config
        return _AudioNet(self.num_classes, int(c["n_mels"]), int(c["channels"]), int(c["feature_dim"]), float(c["dropout"]))

    def _inputs(self, x: Tensor) -> Tensor:
        c = self.config
        return log_mel_features(x, int(c["sample_rate"]), int(c["n_mels"]), int(c["n_fft"]), int(c["hop_length"]))

    def _augment(self, x: Tensor, gen: torch.Generator) -> Tensor:
        n, _, m, t = x.shape
        c = self.config
        floor = x.amin()
        out = x.clone()

        def ints(high: int) -> Tensor:  # (N,) in [-high, high]
            return torch.randint(-high, high + 1, (n,), generator=gen) if high > 0 else torch.zeros(n, dtype=torch.long)

        frames = torch.arange(t)  # index tensors stay on the CPU generator's device, moved below
        bins = torch.arange(m)
        dt, dm = ints(int(c["max_time_shift"])), ints(int(c["max_mel_shift"]))
        src_t = frames[None] - dt[:, None]  # (N, T')
        src_m = (bins[None] - dm[:, None]).clamp(0, m - 1)  # (N, M): edge bins repeated
        rows, src_m, src_tc = torch.arange(n)[:, None, None], src_m[:, :, None], src_t.clamp(0, t - 1)[:, None, :]
        out = out[rows.to(x.device), 0, src_m.to(x.device), src_tc.to(x.device)].unsqueeze(1)  # (N, 1, M, T')
        outside = ((src_t < 0) | (src_t >= t))[:, None, None, :].to(x.device)  # (N, 1, 1, T')
        out = out.masked_fill(outside, float(floor))
        fw = torch.randint(0, int(c["freq_mask"]) + 1, (n,), generator=gen)
        f0 = (torch.rand(n, generator=gen) * (m - fw + 1)).long()
        tw = torch.randint(0, int(c["time_mask"]) + 1, (n,), generator=gen)
        t0 = (torch.rand(n, generator=gen) * (t - tw + 1)).long()
        fmask = (bins[None] >= f0[:, None]) & (bins[None] < (f0 + fw)[:, None])  # (N, M)
        tmask = (frames[None] >= t0[:, None]) & (frames[None] < (t0 + tw)[:, None])  # (N, T')
        mask = (fmask[:, :, None] | tmask[:, None, :])[:, None].to(x.device)  # (N, 1, M, T')
        return out.masked_fill(mask, float(floor))


_KINDS: dict[str, type[Judge]] = {"image": ImageJudge, "audio": AudioJudge}


def load_judge(directory: PathLike, device: str | torch.device = "cpu") -> Judge:
    """Load any judge written by :meth:`Judge.save` (kind read from ``config.json``), in eval mode."""
    directory = Path(directory)
    raw = read_model_config(directory, FORMAT, "judge")
    if raw.get("kind") not in _KINDS:
        raise InputFileError(directory / CONFIG_FILE, f"not a vqfuse judge config (kind {raw.get('kind')!r})")
    try:
        judge = _KINDS[raw["kind"]](int(raw["num_classes"]), **raw.get("config", {}))
    except (KeyError, TypeError, ValueError) as exc:
        raise InputFileError(directory / CONFIG_FILE, f"invalid judge config: {exc}") from exc
    load_state_into(judge.net, directory / WEIGHTS_FILE, device)
    judge.fit_info = dict(raw.get("fit") or {})
    judge.net.to(device).eval()
    return judge