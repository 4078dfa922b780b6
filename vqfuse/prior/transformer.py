"""A decoder-only transformer over joint token sequences: causal (autoregressive, with a KV cache for
incremental sampling) or bidirectional (MaskGIT), chosen by `PriorConfig.causal`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn


@dataclass
class PriorConfig:
    """Architecture of a token prior.

    Args:
        vocab: ids of the shared embedding table (`SequenceLayout.vocab_size`).
        n_modalities: rows of the modality embedding.
        max_len: rows of the position embedding (`SequenceLayout.n_positions` for within-segment
            positions).
        causal: autoregressive attention mask; False gives full (bidirectional) attention.
    """

    vocab: int
    n_modalities: int = 2
    max_len: int = 1024
    dim: int = 256
    depth: int = 6
    heads: int = 8
    mlp_ratio: float = 4.0
    dropout: float = 0.0
    causal: bool = True

    def __post_init__(self) -> None:
        if self.dim % self.heads:
            raise ValueError(f"dim ({self.dim}) must be divisible by heads ({self.heads})")
        if min(self.vocab, self.n_modalities, self.max_len, self.depth, self.heads) < 1:
            raise ValueError(f"vocab, n_modalities, max_len, depth and heads must be >= 1: {self}")

    @classmethod
    def for_layout(cls, layout: Any, **kwargs: Any) -> "PriorConfig":
        """A config whose vocabulary, modalities and positions fit a `SequenceLayout`."""
        return cls(vocab=layout.vocab_size, n_modalities=layout.n_modalities, max_len=layout.n_positions, **kwargs)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PriorConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown prior config keys {sorted(unknown)}")
        return cls(**d)


class KVCache:
    """Keys and values of every layer for the positions seen so far, preallocated to `capacity`."""

    def __init__(
        self,
        depth: int,
        batch: int,
        heads: int,
        head_dim: int,
        capacity: int,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        shape = (batch, heads, capacity, head_dim)
        self.keys = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(depth)]
        self.values = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(depth)]
        self.capacity = capacity
        self.length = 0  # positions already stored

    def update(self, layer: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Store k, v (B, H, T, Dh) after the cached positions; return all keys and values (B, H, S, Dh)."""
        end = self.length + k.shape[2]
        if end > self.capacity:
            raise ValueError(f"KV cache holds {self.capacity} positions, {end} needed")
        self.keys[layer][:, :, self.length : end] = k
        self.values[layer][:, :, self.length : end] = v
        return self.keys[layer][:, :, :end], self.values[layer][:, :, :end]

    def advance(self, n: int) -> None:
        """Called once per forward, after every layer stored its n new positions."""
        self.length += n


class Attention(nn.Module):
    """Multi-head self-attention through `F.scaled_dot_product_attention`."""

    def __init__(self, config: PriorConfig) -> None:
        super().__init__()
        self.heads = config.heads
        self.causal = config.causal
        self.dropout = config.dropout
        self.qkv = nn.Linear(config.dim, 3 * config.dim)
        self.out = nn.Linear(config.dim, config.dim)

    def forward(self, x: Tensor, cache: KVCache | None = None, layer: int = 0) -> Tensor:
        """x (B, T, D) -> (B, T, D). With a cache, x are the T positions after the cached ones."""
        q, k, v = rearrange(self.qkv(x), "b t (three h d) -> three b h t d", three=3, h=self.heads)
        past = 0
        if cache is not None:
            past = cache.length
            k, v = cache.update(layer, k, v)  # (B, H, past + T, Dh)
        t, s = q.shape[2], k.shape[2]
        mask, is_causal = None, False
        if self.causal and t > 1:
            if past == 0:
                is_causal = True
            else:  # query i sits at absolute position past + i and sees keys 0..past + i
                keys = torch.arange(s, device=x.device)
                mask = keys[None, :] <= torch.arange(past, past + t, device=x.device)[:, None]  # (T, S)
        dropout = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout, is_causal=is_causal)
        return self.out(rearrange(y, "b h t d -> b t (h d)"))


class MLP(nn.Module):
    def __init__(self, config: PriorConfig) -> None:
        super().__init__()
        hidden = int(config.dim * config.mlp_ratio)
        self.net = nn.Sequential(nn.Linear(config.dim, hidden), nn.GELU(), nn.Linear(hidden, config.dim))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class Block(nn.Module):
    """Pre-norm residual block: x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, config: PriorConfig) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(config.dim)
        self.attn = Attention(config)
        self.norm2 = nn.LayerNorm(config.dim)
        self.mlp = MLP(config)
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x: Tensor, cache: KVCache | None = None, layer: int = 0) -> Tensor:
        x = x + self.drop(self.attn(self.norm1(x), cache, layer))
        return x + self.drop(self.mlp(self.norm2(x)))


class PriorTransformer(nn.Module):
    """Token + modality + position embeddings -> pre-norm blocks -> logits over the shared vocabulary."""

    def __init__(self, config: PriorConfig) -> None:
        super().__init__()
        self.config = config
        self.token_emb = nn.Embedding(config.vocab, config.dim)
        self.modality_emb = nn.Embedding(config.n_modalities, config.dim)
        self.position_emb = nn.Embedding(config.max_len, config.dim)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.depth))
        self.norm = nn.LayerNorm(config.dim)
        self.head = nn.Linear(config.dim, config.vocab)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    @property
    def causal(self) -> bool:
        return self.config.causal

    def new_cache(self, batch: int, capacity: int) -> KVCache:
        """An empty KV cache for `batch` sequences of up to `capacity` positions."""
        if not self.causal:
            raise ValueError("a KV cache needs a causal model")
        c, p = self.config, self.token_emb.weight
        return KVCache(c.depth, batch, c.heads, c.dim // c.heads, capacity, p.device, p.dtype)

    def embed(self, ids: Tensor, modalities: Tensor, positions: Tensor) -> Tensor:
        """ids (B, T), modalities and positions (B, T) or (T,) -> (B, T, D)."""
        if positions.numel() and int(positions.max()) >= self.config.max_len:
            raise ValueError(f"position {int(positions.max())} is beyond max_len={self.config.max_len}")
        return self.token_emb(ids) + self.modality_emb(modalities) + self.position_emb(positions)

    def forward(self, ids: Tensor, modalities: Tensor, positions: Tensor, cache: KVCache | None = None) -> Tensor:
        """ids (B, T), modalities and positions (B, T) or (T,) -> logits (B, T, vocab).

        With a cache (causal only), the inputs continue the cached positions and the cache grows by T.
        """
        if cache is not None and not self.causal:
            raise ValueError("a KV cache needs a causal model")
        x = self.drop(self.embed(ids, modalities, positions))
        for i, block in enumerate(self.blocks):
            x = block(x, cache, i)
        if cache is not None:
            cache.advance(ids.shape[1])
        return self.head(self.norm(x))


__all__ = ["PriorConfig", "KVCache", "PriorTransformer"]
