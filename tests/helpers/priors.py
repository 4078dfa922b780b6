"""A tiny prior over a two-segment shared-codebook layout, and random tokens for it."""

from __future__ import annotations

import torch

from vqfuse.prior import PriorConfig, PriorTransformer, SequenceLayout

LAYOUT = SequenceLayout([("image", 16, 9), ("audio", 24, 12)], shared_codebook=True)


def tiny(causal: bool = False, seed: int = 0) -> PriorTransformer:
    torch.manual_seed(seed)
    return PriorTransformer(PriorConfig.for_layout(LAYOUT, dim=32, depth=2, heads=4, causal=causal)).eval()


def tokens(b: int = 4, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {s.name: torch.randint(0, s.vocab_size, (b, s.n_tokens), generator=g) for s in LAYOUT.segments}
