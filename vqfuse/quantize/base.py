"""Shared pieces of every quantizer: the result dataclass, channel-first flattening, usage metrics."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
from einops import rearrange
from torch import Tensor, nn


@dataclass
class QuantizerOutput:
    """What every quantizer returns.

    Attributes:
        quantized: (B, C, *spatial) latents to feed the decoder (straight-through / rotated in training).
        indices: (B, *spatial) int64 codes; (B, n_q, *spatial) for residual quantizers.
        loss: scalar auxiliary loss (commitment + codebook / entropy terms), already weighted.
        metrics: detached per-batch scalars (perplexity, usage fraction, ...), for logging.
    """

    quantized: Tensor
    indices: Tensor
    loss: Tensor
    metrics: dict[str, Tensor] = field(default_factory=dict)


def to_vectors(x: Tensor) -> tuple[Tensor, Callable[[Tensor], Tensor]]:
    """(B, C, *spatial) -> (B * prod(spatial), C), and the function that undoes it for any last dim."""
    if x.dim() < 3:
        raise ValueError(f"expected channel-first latents (B, C, *spatial) with 1-3 spatial dims, got {tuple(x.shape)}")
    batch, spatial = x.shape[0], x.shape[2:]
    flat = rearrange(x, "b c ... -> b ... c").reshape(-1, x.shape[1])

    def restore(v: Tensor) -> Tensor:
        # (N, D) -> (B, D, *spatial)   or   (N,) -> (B, *spatial)
        if v.dim() == 1:
            return v.reshape(batch, *spatial)
        return rearrange(v.reshape(batch, *spatial, v.shape[-1]), "b ... d -> b d ...")

    return flat, restore


@torch.no_grad()
def count_metrics(counts: Tensor) -> dict[str, Tensor]:
    """Perplexity (exp of the entropy of code usage) and fraction of codes used, from (K,) counts."""
    counts = counts.float()
    probs = counts / counts.sum().clamp_min(1.0)
    entropy = -(probs * torch.log(probs.clamp_min(1e-12))).sum()
    return {"perplexity": entropy.exp(), "usage": (counts > 0).float().mean()}


@torch.no_grad()
def usage_metrics(indices: Tensor, codebook_size: int) -> dict[str, Tensor]:
    """`count_metrics` of one batch of indices (any shape)."""
    return count_metrics(torch.bincount(indices.reshape(-1), minlength=codebook_size))


class Quantizer(nn.Module):
    """Base class: channel-first latents in, `QuantizerOutput` out; indices <-> latents both ways.

    Inside the package codes always carry a stage axis, (B, S, *spatial): `to_stages` / `from_stages`
    convert from / to a quantizer's own index layout (S = 1 for single-stage quantizers).
    """

    codebook_size: int
    variable_rate: bool = False  # True where `encode(x, n_q)` chooses how many stages to use

    @property
    def n_stages(self) -> int:
        return 1

    def stage_sizes(self, n_q: int | None = None) -> list[int]:
        """Codebook size of each stage that `n_q` (None: all) keeps."""
        return [int(self.codebook_size)] * (self.n_stages if n_q is None else int(n_q))

    def to_stages(self, indices: Tensor) -> Tensor:
        """Indices in this quantizer's layout -> (B, S, *spatial)."""
        return indices.unsqueeze(1)

    def from_stages(self, codes: Tensor) -> Tensor:
        """(B, S, *spatial) -> indices in this quantizer's layout."""
        if codes.shape[1] != 1:
            raise ValueError(f"codes have {codes.shape[1]} stages, this quantizer has 1")
        return codes[:, 0]

    def forward(self, x: Tensor) -> QuantizerOutput:  # pragma: no cover - abstract
        raise NotImplementedError

    @torch.no_grad()
    def encode(self, x: Tensor) -> Tensor:
        """(B, C, *spatial) -> integer indices, without autograd and without training side effects."""
        raise NotImplementedError

    def decode(self, indices: Tensor) -> Tensor:
        """Indices (as returned by `encode`) -> (B, C, *spatial) latents."""
        raise NotImplementedError
