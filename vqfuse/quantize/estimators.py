"""Gradient estimators that pass the decoder's gradient through the non-differentiable code lookup."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def straight_through(z: Tensor, q: Tensor) -> Tensor:
    """Value of `q`, gradient of the identity to `z` (Bengio et al. 2013; van den Oord et al. 2017)."""
    return z + (q - z).detach()


def rotation_trick(z: Tensor, q: Tensor, eps: float = 1e-6) -> Tensor:
    """Value of `q`; the gradient reaches `z` through a fixed rotation and rescaling that maps z onto q.

    Fifty et al. 2024, "Restructuring vector quantization with the rotation trick": with
    u = z/|z|, v = q/|q|, w = (u + v)/|u + v| (all constants), R z = z - 2 (z.w) w + 2 (z.u) v, and the
    output (|q|/|z|) R z equals q while keeping angle information in the backward pass.

    Args:
        z: (N, D) encoder outputs.
        q: (N, D) chosen codes.
    """
    z_norm = z.norm(dim=-1, keepdim=True).clamp_min(eps)
    q_norm = q.norm(dim=-1, keepdim=True).clamp_min(eps)
    u = (z / z_norm).detach()
    v = (q / q_norm).detach()
    w = F.normalize(u + v, dim=-1, eps=eps)
    rotated = z - 2.0 * (z * w).sum(-1, keepdim=True) * w + 2.0 * (z * u).sum(-1, keepdim=True) * v
    return rotated * (q_norm / z_norm).detach()
