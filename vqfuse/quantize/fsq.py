"""Finite scalar quantization (Mentzer et al. 2023): a fixed grid, no codebook to learn or to die."""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor, nn

from vqfuse.quantize.base import Quantizer, QuantizerOutput, to_vectors, usage_metrics


class FSQ(Quantizer):
    """Each of len(levels) channels is bounded and rounded to `levels[i]` values; K = prod(levels).

    Args:
        levels: values per channel, e.g. (8, 5, 5, 5) for K = 1000.
        dim: input channels; projected to len(levels) and back when different.
    """

    levels: Tensor  # (d,)
    basis: Tensor  # (d,)

    def __init__(self, levels: Sequence[int], dim: int | None = None, eps: float = 1e-3) -> None:
        super().__init__()
        if not levels or any(int(l) < 2 for l in levels):
            raise ValueError(f"FSQ levels must be integers >= 2, got {list(levels)}")
        self.levels_list = [int(l) for l in levels]
        self.codebook_size = math.prod(self.levels_list)
        self.dim = dim or len(levels)
        self.eps = eps
        levels_t = torch.tensor(self.levels_list, dtype=torch.float32)
        basis = torch.cumprod(torch.tensor([1] + self.levels_list[:-1], dtype=torch.long), dim=0)
        self.register_buffer("levels", levels_t, persistent=False)
        self.register_buffer("basis", basis, persistent=False)
        factorised = self.dim != len(levels)
        self.project_in = nn.Linear(self.dim, len(levels)) if factorised else nn.Identity()
        self.project_out = nn.Linear(len(levels), self.dim) if factorised else nn.Identity()

    def _bound(self, z: Tensor) -> Tensor:
        """Squash each channel into (-(L-1)/2, (L-1)/2), shifted by 1/2 for even L so rounding hits L values."""
        half = (self.levels - 1) * (1 + self.eps) / 2
        offset = torch.where(self.levels % 2 == 0, 0.5, 0.0)
        shift = torch.atanh(offset / half)
        return torch.tanh(z + shift) * half - offset

    def _grid_to_codes(self, grid: Tensor) -> Tensor:
        """Integer grid values in [-(L//2), ...] -> codes scaled into [-1, 1]."""
        return grid / (self.levels // 2)

    def forward(self, x: Tensor) -> QuantizerOutput:
        with torch.autocast(device_type=x.device.type, enabled=False):
            flat, restore = to_vectors(x.float())  # (N, C)
            bounded = self._bound(self.project_in(flat))  # (N, d)
            grid = bounded + (torch.round(bounded) - bounded).detach()  # rounding, straight-through
            indices = self._grid_to_indices(grid.detach())
            quantized = restore(self.project_out(self._grid_to_codes(grid))).to(x.dtype)
        return QuantizerOutput(quantized, restore(indices), x.new_zeros(()), usage_metrics(indices, self.codebook_size))

    def _grid_to_indices(self, grid: Tensor) -> Tensor:
        shifted = (torch.round(grid) + self.levels // 2).long()  # (N, d) in [0, L)
        return (shifted * self.basis).sum(-1)

    def codes_to_indices(self, codes: Tensor) -> Tensor:
        """codes (..., d) on the grid in [-1, 1] -> indices (...)."""
        return self._grid_to_indices(codes * (self.levels // 2))

    def indices_to_codes(self, indices: Tensor) -> Tensor:
        """indices (...) -> codes (..., d) in [-1, 1]; the exact inverse of the forward's index map."""
        digits = (indices.unsqueeze(-1) // self.basis) % self.levels.long()
        return self._grid_to_codes(digits.float() - self.levels // 2)

    @torch.no_grad()
    def encode(self, x: Tensor) -> Tensor:
        with torch.autocast(device_type=x.device.type, enabled=False):
            flat, restore = to_vectors(x.float())
            return restore(self._grid_to_indices(self._bound(self.project_in(flat))))

    def decode(self, indices: Tensor) -> Tensor:
        return torch.movedim(self.project_out(self.indices_to_codes(indices)), -1, 1)
