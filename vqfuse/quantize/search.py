"""Nearest-code search in blocks and k-means, never materialising the full (N, K) distance matrix.

Distances drop the constant ||z||^2: argmin_k ||z - e_k||^2 = argmin_k (||e_k||^2 - 2 z.e_k), computed
by one fused `addmm` per block. Blocking keeps each (rows x codes) tile in cache and avoids the
element-wise passes over N x K tensors that dominate naive implementations.
"""

from __future__ import annotations

import torch
from torch import Tensor

DEFAULT_BLOCK_ROWS = 512
DEFAULT_BLOCK_CODES = 4096


@torch.no_grad()
def nearest_code(
    z: Tensor,
    codebook: Tensor,
    codebook_sq: Tensor | None = None,
    block_rows: int = DEFAULT_BLOCK_ROWS,
    block_codes: int = DEFAULT_BLOCK_CODES,
    return_distance: bool = False,
) -> tuple[Tensor, Tensor | None]:
    """Index of the nearest code for each row of `z`.

    Args:
        z: (N, D) vectors.
        codebook: (K, D) codes.
        codebook_sq: (K,) squared norms of the codes, if already known.
        return_distance: also return the squared distance to the chosen code, (N,).
    Returns:
        (indices (N,) int64, distances (N,) or None)
    """
    n, k = z.shape[0], codebook.shape[0]
    if codebook_sq is None:
        codebook_sq = codebook.pow(2).sum(-1)
    codebook_t = codebook.t()  # (D, K): a view; addmm takes transposed operands without a copy
    indices = torch.empty(n, dtype=torch.long, device=z.device)
    best = torch.empty(n, dtype=z.dtype, device=z.device)
    for start in range(0, n, block_rows):
        rows = z[start : start + block_rows]  # (b, D)
        if k <= block_codes:
            scores = torch.addmm(codebook_sq, rows, codebook_t, alpha=-2.0)  # (b, K)
            value, index = scores.min(dim=1)
        else:
            scores = torch.addmm(codebook_sq[:block_codes], rows, codebook_t[:, :block_codes], alpha=-2.0)
            value, index = scores.min(dim=1)
            for c0 in range(block_codes, k, block_codes):
                scores = torch.addmm(
                    codebook_sq[c0 : c0 + block_codes], rows, codebook_t[:, c0 : c0 + block_codes], alpha=-2.0
                )
                v, i = scores.min(dim=1)
                better = v < value
                value = torch.where(better, v, value)
                index = torch.where(better, i + c0, index)
        indices[start : start + rows.shape[0]] = index
        best[start : start + rows.shape[0]] = value
    if not return_distance:
        return indices, None
    return indices, (best + z.pow(2).sum(-1)).clamp_min_(0.0)


@torch.no_grad()
def kmeans(z: Tensor, k: int, iters: int = 10, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Lloyd's k-means on (N, D) vectors; returns (centroids (k, D), counts (k,)).

    Initialises from random rows (with replacement and a little noise when N < k); an empty cluster is
    re-seeded on a row drawn with probability proportional to its squared error.
    """
    n, d = z.shape
    if n >= k:
        centroids = z[torch.randperm(n, generator=generator)[:k].to(z.device)].clone()
    else:
        pick = torch.randint(0, n, (k,), generator=generator, device="cpu").to(z.device)
        noise = torch.randn(k, d, generator=generator, device="cpu").to(z.device)
        centroids = z[pick] + 0.01 * z.std() * noise
    counts = torch.zeros(k, device=z.device, dtype=z.dtype)
    for _ in range(iters):
        idx, err = nearest_code(z, centroids, return_distance=True)
        assert err is not None
        counts = torch.bincount(idx, minlength=k).to(z.dtype)
        sums = torch.zeros_like(centroids).index_add_(0, idx, z)
        filled = counts > 0
        centroids[filled] = sums[filled] / counts[filled, None]
        empty = int((~filled).sum())
        if empty and bool(err.sum() > 0):  # re-seed empty clusters where the fit is worst
            centroids[~filled] = z[torch.multinomial(err, empty, replacement=empty > n, generator=generator)]
    return centroids, counts
