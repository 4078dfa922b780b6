"""The joint token sequence of a multimodal prior: `[TAG_a, tokens_a..., TAG_b, tokens_b...]`.

Ids of one shared embedding table, in this order:

- code ids: each modality's tokens shifted by its offset (separate codebooks: offsets are the running
  sum of the vocabulary sizes; shared codebook: every offset is 0 and the code vocabulary is max K);
- MASK (MaskGIT), NULL (the unconditional marker of classifier-free guidance);
- one TAG per modality, opening its segment.

Positions count within a segment (the tag is 0, token j is j + 1), so a modality's tokens keep their
position embeddings whichever order the segments come in: one prior generates image->audio and
audio->image. `n_positions` is the size of position table a model needs.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor


@dataclass(frozen=True)
class Segment:
    """One modality: `n_tokens` tokens (flattened) from a vocabulary of `vocab_size` codes."""

    name: str
    vocab_size: int
    n_tokens: int

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a segment needs a non-empty name")
        if self.vocab_size < 1 or self.n_tokens < 1:
            raise ValueError(
                f"segment {self.name!r}: vocab_size and n_tokens must be >= 1, got "
                f"{self.vocab_size} and {self.n_tokens}"
            )


@dataclass
class PackedSequence:
    """A packed batch. `modalities` and `positions` are the same for every row, hence (L,)."""

    ids: Tensor  # (B, L) long, ids of the shared table
    modalities: Tensor  # (L,) long, index of each position's modality in the layout
    positions: Tensor  # (L,) long, position within the segment (tag = 0)
    order: tuple[str, ...]


SegmentSpec = Segment | tuple[str, int, int]


class SequenceLayout:
    """Vocabulary offsets, special tokens and packing of modality segments into one sequence.

    Args:
        segments: (name, vocab_size, n_tokens) per modality; their order is the default sequence order.
        shared_codebook: all modalities share one vocabulary of max(vocab_size) ids (offset 0) instead of
            each having its own range.
    """

    def __init__(self, segments: Sequence[SegmentSpec], shared_codebook: bool = False) -> None:
        segs = [s if isinstance(s, Segment) else Segment(*s) for s in segments]
        if not segs:
            raise ValueError("a layout needs at least one segment")
        names = [s.name for s in segs]
        if len(set(names)) != len(names):
            raise ValueError(f"segment names must be unique, got {names}")
        self.segments: tuple[Segment, ...] = tuple(segs)
        self.shared_codebook = bool(shared_codebook)
        self._index = {s.name: i for i, s in enumerate(segs)}
        if self.shared_codebook:
            self.n_codes = max(s.vocab_size for s in segs)
            self._offsets = {s.name: 0 for s in segs}
        else:
            self.n_codes = sum(s.vocab_size for s in segs)
            starts = [0, *torch.tensor([s.vocab_size for s in segs]).cumsum(0).tolist()]
            self._offsets = {s.name: starts[i] for i, s in enumerate(segs)}
        self.mask_id = self.n_codes
        self.null_id = self.n_codes + 1
        self.vocab_size = self.n_codes + 2 + len(segs)

    # ---- vocabulary ---------------------------------------------------------------------------------

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.segments)

    @property
    def n_modalities(self) -> int:
        return len(self.segments)

    @property
    def n_positions(self) -> int:
        """Position embeddings a model needs: the longest segment plus its tag."""
        return max(s.n_tokens for s in self.segments) + 1

    def segment(self, name: str) -> Segment:
        return self.segments[self.modality_index(name)]

    def modality_index(self, name: str) -> int:
        try:
            return self._index[name]
        except KeyError:
            raise KeyError(f"unknown modality {name!r}; the layout has {list(self.names)}") from None

    def offset(self, name: str) -> int:
        """First id of `name`'s codes in the shared table."""
        self.modality_index(name)
        return self._offsets[name]

    def vocab_range(self, name: str) -> tuple[int, int]:
        """[lo, hi) ids of the shared table that are `name`'s codes."""
        lo = self.offset(name)
        return lo, lo + self.segment(name).vocab_size

    def tag_id(self, name: str) -> int:
        return self.n_codes + 2 + self.modality_index(name)

    def allowed_ids(self, name: str, device: torch.device | str | None = None) -> Tensor:
        """(V,) bool: the ids that are codes of `name` (what a model may emit in its segment)."""
        lo, hi = self.vocab_range(name)
        allowed = torch.zeros(self.vocab_size, dtype=torch.bool, device=device)
        allowed[lo:hi] = True
        return allowed

    def to_global(self, name: str, tokens: Tensor) -> Tensor:
        """Local codes in [0, K) -> ids of the shared table (checked)."""
        k = self.segment(name).vocab_size
        if tokens.dtype.is_floating_point or tokens.dtype == torch.bool:
            raise TypeError(f"{name!r} tokens must be an integer tensor, got {tokens.dtype}")
        if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= k):
            raise ValueError(f"{name!r} tokens must lie in [0, {k}), got [{int(tokens.min())}, {int(tokens.max())}]")
        return tokens.long() + self.offset(name)

    def to_local(self, name: str, ids: Tensor) -> Tensor:
        """Ids of the shared table -> local codes in [0, K) (checked: no special or foreign ids)."""
        lo, hi = self.vocab_range(name)
        if ids.numel() and (int(ids.min()) < lo or int(ids.max()) >= hi):
            raise ValueError(f"{name!r} segment holds ids outside its codes [{lo}, {hi})")
        return ids - lo

    # ---- sequence -----------------------------------------------------------------------------------

    def resolve_order(self, order: Iterable[str] | None = None) -> tuple[str, ...]:
        """`order` checked (known names, no repeats; a subset is allowed), or the layout's own order."""
        if order is None:
            return self.names
        out = tuple(order)
        for name in out:
            self.modality_index(name)
        if len(set(out)) != len(out) or not out:
            raise ValueError(f"order must name distinct modalities, got {list(out)}")
        return out

    def length(self, order: Iterable[str] | None = None) -> int:
        """L: tags plus tokens of the segments in `order`."""
        return sum(self.segment(n).n_tokens + 1 for n in self.resolve_order(order))

    def tag_positions(self, order: Iterable[str] | None = None) -> dict[str, int]:
        """Index of each segment's tag in the packed sequence."""
        out, start = {}, 0
        for name in self.resolve_order(order):
            out[name] = start
            start += self.segment(name).n_tokens + 1
        return out

    def slices(self, order: Iterable[str] | None = None) -> dict[str, slice]:
        """Where each segment's tokens (tag excluded) sit in the packed sequence."""
        return {
            name: slice(t + 1, t + 1 + self.segment(name).n_tokens) for name, t in self.tag_positions(order).items()
        }

    def segment_ids(self, name: str, n: int | None = None) -> tuple[Tensor, Tensor]:
        """Modality index and positions of `name`'s tag plus its first `n` tokens: two (n + 1,) longs."""
        n = self.segment(name).n_tokens if n is None else n
        modality = torch.full((n + 1,), self.modality_index(name), dtype=torch.long)
        return modality, torch.arange(n + 1)

    def modalities_and_positions(self, order: Iterable[str] | None = None) -> tuple[Tensor, Tensor]:
        """(L,) modality indices and (L,) within-segment positions of a packed sequence."""
        parts = [self.segment_ids(name) for name in self.resolve_order(order)]
        return torch.cat([m for m, _ in parts]), torch.cat([p for _, p in parts])

    def pack(self, tokens: Mapping[str, Tensor], order: Iterable[str] | None = None) -> PackedSequence:
        """{name: (B, n_i) or (B, *dims) local codes} -> ids (B, L), in `order` (default: the layout's
        order restricted to the names given). Trailing dims are flattened row-major."""
        if order is None:
            order = [n for n in self.names if n in tokens]
            extra = set(tokens) - set(order)
            if extra:
                raise KeyError(f"unknown modalities {sorted(extra)}; the layout has {list(self.names)}")
        order = self.resolve_order(order)
        missing = [n for n in order if n not in tokens]
        if missing:
            raise KeyError(f"no tokens given for {missing}")
        batch = {tokens[n].shape[0] if tokens[n].dim() else -1 for n in order}
        if len(batch) != 1 or -1 in batch:
            raise ValueError(
                f"every modality needs the same batch size, got shapes { {n: tuple(tokens[n].shape) for n in order} }"
            )
        (b,) = batch
        parts = []
        for name in order:
            seg, t = self.segment(name), tokens[name]
            if math.prod(t.shape[1:]) != seg.n_tokens:
                raise ValueError(f"{name!r} tokens of shape {tuple(t.shape)} do not hold {seg.n_tokens} tokens each")
            tag = torch.full((b, 1), self.tag_id(name), dtype=torch.long, device=t.device)
            parts += [tag, self.to_global(name, t.reshape(b, seg.n_tokens))]
        modalities, positions = self.modalities_and_positions(order)
        device = parts[0].device
        return PackedSequence(torch.cat(parts, 1), modalities.to(device), positions.to(device), order)

    def unpack(self, ids: Tensor, order: Iterable[str] | None = None) -> dict[str, Tensor]:
        """ids (B, L) packed in `order` -> {name: (B, n_i) local codes}; tags are checked."""
        order = self.resolve_order(order)
        if ids.dim() != 2 or ids.shape[1] != self.length(order):
            raise ValueError(
                f"expected ids of shape (B, {self.length(order)}) for order {list(order)}, got {tuple(ids.shape)}"
            )
        tags = self.tag_positions(order)
        out = {}
        for name, sl in self.slices(order).items():
            if not bool((ids[:, tags[name]] == self.tag_id(name)).all()):
                raise ValueError(f"position {tags[name]} should hold the {name!r} tag")
            out[name] = self.to_local(name, ids[:, sl])
        return out

    # ---- persistence --------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "segments": [[s.name, s.vocab_size, s.n_tokens] for s in self.segments],
            "shared_codebook": self.shared_codebook,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "SequenceLayout":
        return cls(
            [Segment(str(n), int(k), int(t)) for n, k, t in d["segments"]],
            shared_codebook=bool(d.get("shared_codebook", False)),
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SequenceLayout) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        segs = ", ".join(f"{s.name}: {s.n_tokens}x{s.vocab_size}" for s in self.segments)
        return f"SequenceLayout({segs}; shared_codebook={self.shared_codebook}, vocab={self.vocab_size})"


__all__ = ["Segment", "PackedSequence", "SequenceLayout"]
