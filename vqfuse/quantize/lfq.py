"""Lookup-free quantization (Yu et al. 2023, MAGVIT-v2): binary codes, entropy penalty for usage."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vqfuse.quantize.base import Quantizer, QuantizerOutput, to_vectors, usage_metrics


def _binary_entropy(p: Tensor) -> Tensor:
    p = p.clamp(1e-6, 1 - 1e-6)
    return -(p * p.log() + (1 - p) * (1 - p).log())


class LFQ(Quantizer):
    """Each of log2(K) channels becomes -1 or +1; the index is the binary number those signs spell.

    Loss: beta * commitment + entropy_weight * (mean per-sample entropy - diversity * codebook entropy).
    With code logits 2 z.c / temperature, the per-sample distribution over the 2^d codes factorises into
    independent bits, so its entropy is exact at O(N d). The codebook entropy (of the batch-mean
    distribution) needs the full (N, K) softmax; it is estimated on at most `entropy_rows` rows.

    Args:
        codebook_size: K, a power of two.
        dim: input channels; projected to log2(K) and back when different.
    """

    powers: Tensor  # (d,)

    def __init__(
        self,
        codebook_size: int,
        dim: int | None = None,
        beta: float = 0.25,
        entropy_weight: float = 0.1,
        diversity: float = 1.0,
        temperature: float = 1.0,
        entropy_rows: int = 2048,
    ) -> None:
        super().__init__()
        bits = int(round(math.log2(codebook_size)))
        if 2**bits != codebook_size:
            raise ValueError(f"LFQ codebook_size must be a power of two, got {codebook_size}")
        self.codebook_size, self.bits = codebook_size, bits
        self.dim = dim or bits
        self.beta, self.entropy_weight, self.diversity = beta, entropy_weight, diversity
        self.temperature, self.entropy_rows = temperature, entropy_rows
        self.register_buffer("powers", 2 ** torch.arange(bits), persistent=False)
        factorised = self.dim != bits
        self.project_in = nn.Linear(self.dim, bits) if factorised else nn.Identity()
        self.project_out = nn.Linear(bits, self.dim) if factorised else nn.Identity()

    def indices_to_codes(self, indices: Tensor) -> Tensor:
        """indices (...) -> codes (..., bits) of +-1; the exact inverse of `codes_to_indices`."""
        bits = (indices.unsqueeze(-1) // self.powers) % 2
        return bits.float() * 2 - 1

    def codes_to_indices(self, codes: Tensor) -> Tensor:
        """codes (..., bits) of +-1 -> indices (...)."""
        return ((codes > 0).long() * self.powers).sum(-1)

    def _entropy_loss(self, z: Tensor) -> Tensor:
        per_sample = _binary_entropy(torch.sigmoid(4 * z / self.temperature)).sum(-1).mean()
        rows = (
            z
            if z.shape[0] <= self.entropy_rows
            else z[torch.randperm(z.shape[0], device=z.device)[: self.entropy_rows]]
        )
        all_codes = self.indices_to_codes(torch.arange(self.codebook_size, device=z.device))  # (K, bits)
        mean_probs = F.softmax(2 * rows @ all_codes.t() / self.temperature, dim=-1).mean(0)  # (K,)
        codebook_entropy = -(mean_probs * mean_probs.clamp_min(1e-12).log()).sum()
        return per_sample - self.diversity * codebook_entropy

    def forward(self, x: Tensor) -> QuantizerOutput:
        with torch.autocast(device_type=x.device.type, enabled=False):
            flat, restore = to_vectors(x.float())  # (N, C)
            z = self.project_in(flat)  # (N, bits)
            codes = torch.where(z > 0, 1.0, -1.0)
            indices = self.codes_to_indices(codes)
            loss = self.beta * F.mse_loss(z, codes)
            if self.training and self.entropy_weight > 0:
                loss = loss + self.entropy_weight * self._entropy_loss(z)
            quantized = restore(self.project_out(z + (codes - z).detach())).to(x.dtype)
        return QuantizerOutput(quantized, restore(indices), loss, usage_metrics(indices, self.codebook_size))

    @torch.no_grad()
    def encode(self, x: Tensor) -> Tensor:
        with torch.autocast(device_type=x.device.type, enabled=False):
            flat, restore = to_vectors(x.float())
            return restore(self.codes_to_indices(self.project_in(flat)))

    def decode(self, indices: Tensor) -> Tensor:
        return torch.movedim(self.project_out(self.indices_to_codes(indices)), -1, 1)
