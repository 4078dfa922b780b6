"""Metrics of generated samples through a judge (a classifier trained on real data): coherence with the
intended labels, agreement of the judges on joint samples, class diversity, and Frechet distances."""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor

Judge = Any  # vqfuse.fusion.judges.Judge: predict(x), probs(x), features(x)


def coherence(judge: Judge, generated: Tensor, intended_labels: Tensor) -> float:
    """Fraction of generated samples the judge classifies as the label they were generated for."""
    labels = torch.as_tensor(intended_labels).long().reshape(-1)
    if len(generated) != len(labels):
        raise ValueError(f"{len(generated)} samples but {len(labels)} labels")
    if len(labels) == 0:
        raise ValueError("coherence of an empty set is undefined")
    return float((judge.predict(generated).cpu() == labels.cpu()).float().mean())


def joint_coherence(judges: Sequence[Judge], samples: Sequence[Tensor], labels: Tensor | None = None) -> float:
    """Fraction of generated joint samples (one tensor per modality, N items each) on which all the judges
    (one per modality) agree. With ``labels`` (N,), the stricter fraction where all predict the intended label."""
    if len(judges) != len(samples) or len(judges) < 2:
        raise ValueError(f"need one judge per modality and at least two, got {len(judges)} and {len(samples)}")
    sizes = {len(x) for x in samples}
    if len(sizes) != 1 or 0 in sizes:
        raise ValueError(f"every modality needs the same number (> 0) of samples, got {sorted(sizes)}")
    preds = torch.stack([j.predict(x).cpu() for j, x in zip(judges, samples)])  # (M, N)
    if labels is None:
        return float((preds == preds[:1]).all(0).float().mean())
    labels = torch.as_tensor(labels).long().reshape(-1).cpu()
    if len(labels) != preds.shape[1]:
        raise ValueError(f"{preds.shape[1]} samples but {len(labels)} labels")
    return float((preds == labels[None]).all(0).float().mean())


def class_diversity(judge: Judge, samples: Tensor) -> dict[str, float]:
    """How evenly a judge spreads generated samples over its classes: a joint sampler that draws one digit
    every time can still have judges agree on every pair (high joint coherence), so report this beside it.

    Returns {"entropy": H(classes) / log(C), 1 for a uniform spread and 0 for one class; "covered": classes
    seen at least once; "top_share": the largest class's share}."""
    pred = judge.predict(samples).cpu()  # (N,)
    counts = torch.bincount(pred, minlength=judge.num_classes).double()
    p = counts / counts.sum()
    nz = p[p > 0]
    entropy = float(-(nz * nz.log()).sum() / math.log(judge.num_classes))
    return {"entropy": entropy, "covered": int((counts > 0).sum()), "top_share": float(p.max())}


def _sqrt_psd(a: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix (negative eigenvalues from round-off -> 0)."""
    w, v = np.linalg.eigh((a + a.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def gaussian_frechet_distance(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
    """Squared Frechet (2-Wasserstein) distance between N(mu1, cov1) and N(mu2, cov2):
    ``|mu1 - mu2|^2 + tr(cov1 + cov2 - 2 (cov1^1/2 cov2 cov1^1/2)^1/2)``.

    ``tr((cov1 cov2)^1/2)`` is computed as the trace of the symmetric PSD matrix ``(s cov2 s)^1/2`` with
    ``s = cov1^1/2`` (eigen-decompositions, float64): no complex round-off as with a general sqrtm.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    cov1, cov2 = np.atleast_2d(np.asarray(cov1, np.float64)), np.atleast_2d(np.asarray(cov2, np.float64))
    d = mu1.shape[0]
    if mu2.shape != (d,) or cov1.shape != (d, d) or cov2.shape != (d, d):
        raise ValueError(f"shape mismatch: mu {mu1.shape} / {mu2.shape}, cov {cov1.shape} / {cov2.shape}")
    s = _sqrt_psd(cov1)
    cross = np.linalg.eigvalsh((s @ cov2 @ s + (s @ cov2 @ s).T) / 2)
    tr_sqrt = float(np.sqrt(np.clip(cross, 0, None)).sum())
    value = float(((mu1 - mu2) ** 2).sum() + np.trace(cov1) + np.trace(cov2) - 2 * tr_sqrt)
    return max(value, 0.0)


def frechet_distance(feats_real: Tensor | np.ndarray, feats_fake: Tensor | np.ndarray) -> float:
    """Frechet distance (as in FID) between two feature sets (N1, D) and (N2, D), each fitted by a Gaussian
    (sample mean and unbiased covariance, float64)."""
    a = np.asarray(feats_real.detach().cpu().double() if isinstance(feats_real, Tensor) else feats_real, np.float64)
    b = np.asarray(feats_fake.detach().cpu().double() if isinstance(feats_fake, Tensor) else feats_fake, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"expected (N1, D) and (N2, D) features, got {a.shape} and {b.shape}")
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"need at least 2 samples per set, got {len(a)} and {len(b)}")
    return gaussian_frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))


def judge_frechet_distance(judge: Judge, real: Tensor, fake: Tensor) -> float:
    """Frechet distance between real and generated samples in the judge's penultimate feature space."""
    return frechet_distance(judge.features(real), judge.features(fake))


__all__ = [
    "coherence",
    "joint_coherence",
    "class_diversity",
    "gaussian_frechet_distance",
    "frechet_distance",
    "judge_frechet_distance",
]
