"""Tokens of several named modalities per item: what a fusion prior trains on.

:class:`TokenSet` holds, for N items, each modality's codes ``(N, S, *latent)`` (a stage axis first, as
``Tokenizer.encode_codes`` gives them) and labels ``(N,)`` (-1: unknown), plus which tokenizers made them.
:func:`encode_set` builds one from a multimodal dataset; ``save``/``load`` write a single safetensors file
whose header holds the metadata as JSON (nothing is pickled). Loading tokens made by other tokenizers than
the ones expected is a :class:`~vqfuse.errors.ModelMismatchError`.

The prior sees each modality as one flat sequence per item, position-major (:func:`flatten_codes`): all
stages of one position, then the next, so the coarse and fine codes of one moment sit next to each other
and a causal prior predicts a frame's fine codes right after its coarse ones.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch
from torch import Tensor

from vqfuse.errors import InputFileError, ModelMismatchError, PathLike, VqfuseError
from vqfuse.io.weights import load_weights, load_weights_metadata, save_weights

FORMAT = "vqfuse-token-set/1"


# ---- token layout: codes with a stage axis <-> one flat sequence per item -----------------------------


def flatten_codes(codes: Tensor) -> Tensor:
    """(B, S, *latent) -> (B, prod(latent) * S), position-major: all S stages of a position, then the next
    position (row-major over the latent grid). For one stage this is the plain row-major flattening."""
    return codes.movedim(1, -1).reshape(codes.shape[0], -1)


def unflatten_codes(flat: Tensor, stages: int, latent: tuple[int, ...]) -> Tensor:
    """Inverse of :func:`flatten_codes`: (B, prod(latent) * S) -> (B, S, *latent)."""
    if flat.shape[-1] != math.prod(latent) * stages:
        raise ValueError(f"{flat.shape[-1]} tokens are not {stages} stage(s) of a {'x'.join(map(str, latent))} grid")
    return flat.reshape(flat.shape[0], *latent, stages).movedim(-1, 1)


# ---- the container ----------------------------------------------------------------------------------


@dataclass
class TokenSet:
    """N items' codes for each named modality, and the tokenizers that made them.

    Attributes:
        codes: {name: (N, S, *latent) long codes in [0, vocabs[name])}, in sequence order.
        labels: (N,) long, -1 where unknown.
        model_ids: {name: the tokenizer's content hash (``Tokenizer.model_id``)}.
        model_dirs: {name: where the tokenizer was loaded from (informative only)}.
        vocabs: {name: codebook size (per stage)}; from the codes when not given.
        info: free-form JSON facts (dataset spec, split, ...).
    """

    codes: dict[str, Tensor]
    labels: Tensor
    model_ids: dict[str, str] = field(default_factory=dict)
    model_dirs: dict[str, str] = field(default_factory=dict)
    vocabs: dict[str, int] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.codes:
            raise ValueError("a token set needs at least one modality")
        self.codes = {name: c.long() for name, c in self.codes.items()}
        self.labels = self.labels.long()
        for name, c in self.codes.items():
            if c.dim() < 3:
                raise ValueError(f"{name} codes must be (N, S, *latent), got {tuple(c.shape)}")
            if len(c) != len(self.labels):
                raise ValueError(f"{name} codes and labels disagree on N: {len(c)} vs {len(self.labels)}")
            k = int(self.vocabs.get(name) or (int(c.max()) + 1 if c.numel() else 1))
            self.vocabs[name] = k
            if c.numel() and (int(c.min()) < 0 or int(c.max()) >= k):
                raise ValueError(f"{name} codes must lie in [0, {k}), got [{int(c.min())}, {int(c.max())}]")
        if self.labels.dim() != 1:
            raise ValueError(f"labels must be (N,), got {tuple(self.labels.shape)}")

    # ---- shapes -------------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.codes)

    def stages(self, name: str) -> int:
        return int(self.codes[name].shape[1])

    def token_shape(self, name: str) -> tuple[int, ...]:
        """The latent grid of one item (without the stage axis)."""
        return tuple(int(n) for n in self.codes[name].shape[2:])

    def n_tokens(self, name: str) -> int:
        return self.stages(name) * math.prod(self.token_shape(name))

    def flat(self, name: str) -> Tensor:
        """(N, n_tokens), position-major (see :func:`flatten_codes`)."""
        return flatten_codes(self.codes[name])

    def layout(self, shared_codebook: bool = False):  # -> SequenceLayout
        """The prior's sequence layout: one segment per modality, in this set's order."""
        from vqfuse.prior.sequence import SequenceLayout

        return SequenceLayout(
            [(n, self.vocabs[n], self.n_tokens(n)) for n in self.names], shared_codebook=shared_codebook
        )

    def subset(self, index: Tensor | Sequence[int] | slice) -> "TokenSet":
        idx = index if isinstance(index, slice) else torch.as_tensor(index, dtype=torch.long)
        return TokenSet({n: c[idx] for n, c in self.codes.items()}, self.labels[idx], **self.metadata())

    # ---- metadata -----------------------------------------------------------------------------------

    def metadata(self) -> dict[str, Any]:
        return {
            "model_ids": dict(self.model_ids),
            "model_dirs": dict(self.model_dirs),
            "vocabs": dict(self.vocabs),
            "info": dict(self.info),
        }

    def check(
        self,
        model_ids: dict[str, str] | None = None,
        stages: dict[str, int] | None = None,
        source: PathLike = "<tokens>",
    ) -> None:
        """Raise ModelMismatchError unless the tokens hold these modalities, made by these tokenizers (and
        with these numbers of stages)."""
        for name, want in (model_ids or {}).items():
            have = self.model_ids.get(name) if name in self.codes else None
            if want != have:
                raise ModelMismatchError(
                    f"{source}: these tokens were made by {name} tokenizer {have or '?'}, "
                    f"not by {want}; encode the items again with that tokenizer"
                )
        for name, want in (stages or {}).items():
            have = self.stages(name) if name in self.codes else None
            if want != have:
                raise ModelMismatchError(f"{source}: these tokens hold {have} {name} stage(s), {want} wanted")

    # ---- files --------------------------------------------------------------------------------------

    def save(self, path: PathLike) -> Path:
        """One safetensors file (written atomically): tensors codes/<name> and labels; JSON metadata in its
        header (with the modality order)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {"names": list(self.names), **self.metadata()}
        tensors = {f"codes/{n}": c.contiguous() for n, c in self.codes.items()} | {"labels": self.labels.contiguous()}
        save_weights(tensors, path, metadata={"format": FORMAT, "meta": json.dumps(meta, sort_keys=True)})
        return path

    @classmethod
    def load(
        cls, path: PathLike, model_ids: dict[str, str] | None = None, stages: dict[str, int] | None = None
    ) -> "TokenSet":
        """Read a file written by :meth:`save`; with ids (and stages) given, other tokens are an error."""
        path = Path(path)
        header = load_weights_metadata(path)
        if header.get("format") != FORMAT:
            raise InputFileError(path, f"not a vqfuse token set file (format {header.get('format')!r})")
        try:
            meta = json.loads(header.get("meta", "{}"))
            tensors = load_weights(path)
            tokens = cls(
                {n: tensors[f"codes/{n}"] for n in meta["names"]},
                tensors["labels"],
                **{k: meta[k] for k in ("model_ids", "model_dirs", "vocabs", "info")},
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InputFileError(path, f"invalid token set file: {exc}") from None
        tokens.check(model_ids, stages, source=path)
        return tokens


# ---- encoding a multimodal dataset --------------------------------------------------------------------


def _batches(n: int, size: int) -> Iterator[range]:
    for start in range(0, n, size):
        yield range(start, min(start + size, n))


def encode_with_stages(tokenizer: Any, x: Tensor, n_q: int | None) -> Tensor:
    """(B, C, *spatial) -> (B, n_q, *latent) codes; a single-stage tokenizer gives one stage."""
    if n_q is not None and not tokenizer.quantizer.variable_rate:
        if n_q != 1:
            raise VqfuseError(
                f"n_q={n_q} needs a residual {tokenizer.config.modality} tokenizer (its quantizer is not 'rvq')"
            )
        n_q = None
    return tokenizer.encode_codes(x, n_q=n_q)


def _rows(dataset: Any, names: Sequence[str]) -> tuple[list[tuple[int, ...]], Any]:
    """(one index per modality for each item, item(name, index)). A dataset with `item_rows` and `item` shares
    items between rows (e.g. one image in several pairs), so each distinct one is encoded once."""
    if callable(getattr(dataset, "item", None)) and hasattr(dataset, "item_rows"):
        have = tuple(dataset.modalities)
        missing = [n for n in names if n not in have]
        if missing:
            raise VqfuseError(f"the dataset has no {', '.join(missing)} (it has {', '.join(have)})")
        return [tuple(r[have.index(n)] for n in names) for r in dataset.item_rows], dataset.item
    return [(i,) * len(names) for i in range(len(dataset))], lambda name, i: dataset[i][name]


@torch.no_grad()
def encode_set(
    dataset: Any,
    tokenizers: dict[str, Any],
    stages: dict[str, int | None] | None = None,
    batch_size: int = 64,
    *,
    model_dirs: dict[str, str] | None = None,
    progress: bool = True,
    info: dict[str, Any] | None = None,
) -> TokenSet:
    """Encode every item of a multimodal dataset (items ``{name: tensor, ..., "label": int}``) with one
    tokenizer per modality, in the order of ``tokenizers``.

    Args:
        stages: residual stages to keep per modality (None or missing: all of that tokenizer's).
        model_dirs: where the tokenizers live, recorded in the metadata.
        progress: a tqdm bar over the batches.
    """
    from tqdm.auto import tqdm

    if len(dataset) == 0:
        raise VqfuseError("the dataset is empty: nothing to encode")
    stages = dict(stages or {})
    for name, tok in tokenizers.items():
        n = stages.get(name)
        if n is not None and tok.quantizer.variable_rate and not 1 <= n <= tok.n_stages:
            raise VqfuseError(f"n_q={n}: the {name} tokenizer has {tok.n_stages} stage(s)")
    names = list(tokenizers)
    rows, item = _rows(dataset, names)
    distinct = {name: sorted({r[m] for r in rows}) for m, name in enumerate(names)}
    total = sum(-(-len(ids) // batch_size) for ids in distinct.values())
    bar = tqdm(total=total, desc="encode", unit="batch", disable=not progress, dynamic_ncols=True, leave=False)
    was = {name: tok.training for name, tok in tokenizers.items()}
    codes: dict[str, Tensor] = {}
    try:
        for m, name in enumerate(names):
            tok = tokenizers[name].eval()
            ids, parts = distinct[name], []
            for chunk in _batches(len(ids), batch_size):
                x = torch.stack([item(name, ids[r]) for r in chunk]).to(tok.device)
                parts.append(encode_with_stages(tok, x, stages.get(name)).cpu())
                bar.update(1)
            position = {k: p for p, k in enumerate(ids)}
            codes[name] = torch.cat(parts)[torch.tensor([position[r[m]] for r in rows])]
    finally:
        bar.close()
        for name, tok in tokenizers.items():
            tok.train(was[name])
    labels = getattr(dataset, "labels", None)
    if labels is None:
        labels = [int(dataset[i].get("label", -1)) for i in range(len(dataset))]
    return TokenSet(
        codes,
        torch.as_tensor(list(labels), dtype=torch.long),
        model_ids={n: t.model_id for n, t in tokenizers.items()},
        model_dirs=dict(model_dirs or {}),
        vocabs={n: int(t.codebook_size) for n, t in tokenizers.items()},
        info=dict(info or {}),
    )


__all__ = ["TokenSet", "encode_set", "encode_with_stages", "flatten_codes", "unflatten_codes", "FORMAT"]
