"""Paired image + audio tokens: what a fusion prior trains on.

:class:`TokenPairs` holds, for N pairs, the image tokens ``(N, h, w)``, the audio tokens ``(N, n_q, F)``
(residual stages first, as ``Tokenizer.encode`` gives them) and labels ``(N,)`` (-1: unknown), plus which
tokenizers made them. :func:`encode_pairs` builds one from a paired dataset; ``save``/``load`` write a
single safetensors file whose header holds the metadata as JSON (nothing is pickled). Loading tokens
made by other tokenizers than the ones expected is a :class:`~vqfuse.errors.ModelMismatchError`.

The prior sees audio as one flat sequence per clip, frame-major: all ``n_q`` stages of frame t, then
frame t + 1 (:func:`flatten_audio_tokens` / :func:`unflatten_audio_tokens`), so the coarse and fine codes
of one moment sit next to each other and a causal prior predicts frame t's fine codes right after its
coarse ones.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch
from torch import Tensor

from vqfuse.errors import InputFileError, ModelMismatchError, PathLike, VqfuseError
from vqfuse.io.weights import load_weights, load_weights_metadata, save_weights

FORMAT = "vqfuse-token-pairs/1"
MODALITIES = ("image", "audio")


# ---- audio token layout -----------------------------------------------------------------------------


def flatten_audio_tokens(codes: Tensor) -> Tensor:
    """(..., n_q, F) residual codes -> (..., F * n_q), frame-major: [f0 s0, f0 s1, .., f1 s0, ...]."""
    if codes.dim() < 2:
        raise ValueError(f"audio codes need a (..., n_q, F) shape, got {tuple(codes.shape)}")
    return codes.transpose(-1, -2).reshape(*codes.shape[:-2], codes.shape[-1] * codes.shape[-2])


def unflatten_audio_tokens(flat: Tensor, n_q: int) -> Tensor:
    """Inverse of :func:`flatten_audio_tokens`: (..., F * n_q) -> (..., n_q, F)."""
    if n_q < 1 or flat.shape[-1] % n_q:
        raise ValueError(f"{flat.shape[-1]} audio tokens are not a whole number of frames of {n_q} stages")
    frames = flat.shape[-1] // n_q
    return flat.reshape(*flat.shape[:-1], frames, n_q).transpose(-1, -2)


flatten_audio = flatten_audio_tokens  # short names
unflatten_audio = unflatten_audio_tokens


# ---- the container ----------------------------------------------------------------------------------


@dataclass
class TokenPairs:
    """N image/audio token pairs and the tokenizers that made them.

    Attributes:
        image: (N, h, w) long image codes in [0, image_vocab).
        audio: (N, n_q, F) long audio codes in [0, audio_vocab), residual stages first.
        labels: (N,) long, -1 where unknown.
        image_model_id, audio_model_id: the tokenizers' content hashes (``Tokenizer.model_id``).
        image_model_dir, audio_model_dir: where they were loaded from (informative only).
        image_vocab, audio_vocab: codebook sizes (per stage for audio).
        info: free-form JSON facts (dataset spec, split, ...).
    """

    image: Tensor
    audio: Tensor
    labels: Tensor
    image_model_id: str = ""
    audio_model_id: str = ""
    image_model_dir: str = ""
    audio_model_dir: str = ""
    image_vocab: int = 0
    audio_vocab: int = 0
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.image, self.audio, self.labels = self.image.long(), self.audio.long(), self.labels.long()
        if self.image.dim() != 3 or self.audio.dim() != 3 or self.labels.dim() != 1:
            raise ValueError(f"expected image (N, h, w), audio (N, n_q, F) and labels (N,), got "
                             f"{tuple(self.image.shape)}, {tuple(self.audio.shape)}, {tuple(self.labels.shape)}")
        if not len(self.image) == len(self.audio) == len(self.labels):
            raise ValueError(f"image, audio and labels disagree on N: {len(self.image)}, {len(self.audio)}, "
                             f"{len(self.labels)}")
        self.image_vocab = int(self.image_vocab or (int(self.image.max()) + 1 if self.image.numel() else 1))
        self.audio_vocab = int(self.audio_vocab or (int(self.audio.max()) + 1 if self.audio.numel() else 1))
        for name, t, k in (("image", self.image, self.image_vocab), ("audio", self.audio, self.audio_vocab)):
            if t.numel() and (int(t.min()) < 0 or int(t.max()) >= k):
                raise ValueError(f"{name} codes must lie in [0, {k}), got [{int(t.min())}, {int(t.max())}]")

    # ---- shapes -------------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def n_q(self) -> int:
        return int(self.audio.shape[1])

    @property
    def n_frames(self) -> int:
        return int(self.audio.shape[2])

    @property
    def image_shape(self) -> tuple[int, int]:
        return int(self.image.shape[1]), int(self.image.shape[2])

    @property
    def n_image_tokens(self) -> int:
        return self.image_shape[0] * self.image_shape[1]

    @property
    def n_audio_tokens(self) -> int:
        return self.n_q * self.n_frames

    def image_flat(self) -> Tensor:
        """(N, h * w), row-major."""
        return self.image.reshape(len(self), -1)

    def audio_flat(self) -> Tensor:
        """(N, F * n_q), frame-major (see :func:`flatten_audio_tokens`)."""
        return flatten_audio_tokens(self.audio)

    def layout(self, shared_codebook: bool = False):  # -> SequenceLayout
        """The prior's sequence layout: ``image`` (h*w tokens) then ``audio`` (F*n_q tokens)."""
        from vqfuse.prior.sequence import SequenceLayout

        return SequenceLayout([("image", self.image_vocab, self.n_image_tokens),
                               ("audio", self.audio_vocab, self.n_audio_tokens)], shared_codebook=shared_codebook)

    def subset(self, index: Tensor | Sequence[int] | slice) -> "TokenPairs":
        idx = index if isinstance(index, slice) else torch.as_tensor(index, dtype=torch.long)
        return TokenPairs(self.image[idx], self.audio[idx], self.labels[idx], **self.metadata())

    # ---- metadata -----------------------------------------------------------------------------------

    def metadata(self) -> dict[str, Any]:
        return {"image_model_id": self.image_model_id, "audio_model_id": self.audio_model_id,
                "image_model_dir": self.image_model_dir, "audio_model_dir": self.audio_model_dir,
                "image_vocab": self.image_vocab, "audio_vocab": self.audio_vocab, "info": dict(self.info)}

    def check(self, image_model_id: str | None = None, audio_model_id: str | None = None, n_q: int | None = None,
              source: PathLike = "<tokens>") -> None:
        """Raise ModelMismatchError unless the tokens were made by these tokenizers (and n_q stages)."""
        for name, want, have in (("image", image_model_id, self.image_model_id),
                                 ("audio", audio_model_id, self.audio_model_id)):
            if want is not None and want != have:
                raise ModelMismatchError(f"{source}: these tokens were made by {name} tokenizer {have or '?'}, "
                                         f"not by {want}; encode the pairs again with that tokenizer")
        if n_q is not None and n_q != self.n_q:
            raise ModelMismatchError(f"{source}: these tokens hold {self.n_q} audio stage(s), {n_q} wanted")

    # ---- files --------------------------------------------------------------------------------------

    def save(self, path: PathLike) -> Path:
        """One safetensors file (written atomically): tensors image, audio, labels; JSON metadata in its header."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {"n_q": self.n_q, **self.metadata()}
        save_weights({"image": self.image.contiguous(), "audio": self.audio.contiguous(),
                      "labels": self.labels.contiguous()}, path,
                     metadata={"format": FORMAT, "meta": json.dumps(meta, sort_keys=True)})
        return path

    @classmethod
    def load(cls, path: PathLike, image_model_id: str | None = None, audio_model_id: str | None = None,
             n_q: int | None = None) -> "TokenPairs":
        """Read a file written by :meth:`save`; with ids (and n_q) given, tokens from other tokenizers are an error."""
        path = Path(path)
        header = load_weights_metadata(path)
        if header.get("format") != FORMAT:
            raise InputFileError(path, f"not a vqfuse token pairs file (format {header.get('format')!r})")
        try:
            meta = json.loads(header.get("meta", "{}"))
            tensors = load_weights(path)
            pairs = cls(tensors["image"], tensors["audio"], tensors["labels"],
                        **{k: meta[k] for k in ("image_model_id", "audio_model_id", "image_model_dir",
                                                "audio_model_dir", "image_vocab", "audio_vocab", "info")})
        except (KeyError, TypeError, ValueError) as exc:
            raise InputFileError(path, f"invalid token pairs file: {exc}") from None
        pairs.check(image_model_id, audio_model_id, n_q, source=path)
        return pairs


# ---- encoding a paired dataset --------------------------------------------------------------------


def _batches(n: int, size: int) -> Iterator[range]:
    for start in range(0, n, size):
        yield range(start, min(start + size, n))


def encode_audio(tokenizer: Any, x: Tensor, n_q: int | None) -> Tensor:
    """(B, 1, T) -> (B, n_q, F) codes; a single-stage tokenizer gives n_q = 1."""
    if n_q is not None and not tokenizer.quantizer.variable_rate:
        if n_q != 1:
            raise VqfuseError(f"n_q={n_q} needs a residual audio tokenizer (its quantizer is not 'rvq')")
        n_q = None
    return tokenizer.encode_codes(x, n_q=n_q)


def decode_audio(tokenizer: Any, codes: Tensor) -> Tensor:
    """(B, n_q, F) codes -> (B, 1, T)."""
    return tokenizer.decode_codes(codes)


@torch.no_grad()
def encode_pairs(dataset: Any, image_tok: Any, audio_tok: Any, n_q: int | None = None, batch_size: int = 64, *,
                 image_dir: PathLike = "", audio_dir: PathLike = "", progress: bool = True,
                 info: dict[str, Any] | None = None) -> TokenPairs:
    """Encode every pair of a paired dataset (items ``{"image", "audio", "label"}``) with two tokenizers.

    A :class:`~vqfuse.data.paired.PairedDataset` (``.pairs``, ``.image(j)``, ``.audio(k)``) has each
    distinct image and clip encoded once; any other dataset is encoded item by item.

    Args:
        n_q: residual audio stages to keep (None: all of the audio tokenizer's).
        image_dir, audio_dir: where the tokenizers live, recorded in the metadata.
        progress: a tqdm bar over the batches.
    """
    from tqdm.auto import tqdm

    if len(dataset) == 0:
        raise VqfuseError("the paired dataset is empty: nothing to encode")
    if n_q is not None and audio_tok.quantizer.variable_rate and not 1 <= n_q <= audio_tok.n_stages:
        raise VqfuseError(f"n_q={n_q}: the audio tokenizer has {audio_tok.n_stages} stage(s)")
    dev_i = next(image_tok.parameters()).device
    dev_a = next(audio_tok.parameters()).device
    paired = all(hasattr(dataset, a) for a in ("pairs", "image", "audio", "labels")) and callable(dataset.image)
    if paired:
        img_ids = sorted({j for j, _ in dataset.pairs})
        aud_ids = sorted({k for _, k in dataset.pairs})
        get_img, get_aud = dataset.image, dataset.audio
    else:
        img_ids = aud_ids = list(range(len(dataset)))
        get_img = lambda i: dataset[i]["image"]  # noqa: E731
        get_aud = lambda i: dataset[i]["audio"]  # noqa: E731
    total = -(-len(img_ids) // batch_size) + -(-len(aud_ids) // batch_size)
    bar = tqdm(total=total, desc="encode pairs", unit="batch", disable=not progress, dynamic_ncols=True, leave=False)
    was = image_tok.training, audio_tok.training
    image_tok.eval()
    audio_tok.eval()
    try:
        img_codes, aud_codes = [], []
        for rows in _batches(len(img_ids), batch_size):
            x = torch.stack([get_img(img_ids[r]) for r in rows]).to(dev_i)
            img_codes.append(image_tok.encode(x).cpu())
            bar.update(1)
        for rows in _batches(len(aud_ids), batch_size):
            x = torch.stack([get_aud(aud_ids[r]) for r in rows]).to(dev_a)
            aud_codes.append(encode_audio(audio_tok, x, n_q).cpu())
            bar.update(1)
    finally:
        bar.close()
        image_tok.train(was[0])
        audio_tok.train(was[1])
    images, audios = torch.cat(img_codes), torch.cat(aud_codes)
    if images.dim() != 3:
        raise VqfuseError(f"the image tokenizer gives tokens of shape {tuple(images.shape[1:])}, expected (h, w)")
    if paired:
        img_pos = {j: p for p, j in enumerate(img_ids)}
        aud_pos = {k: p for p, k in enumerate(aud_ids)}
        images = images[torch.tensor([img_pos[j] for j, _ in dataset.pairs])]
        audios = audios[torch.tensor([aud_pos[k] for _, k in dataset.pairs])]
        labels = torch.as_tensor(list(dataset.labels), dtype=torch.long)
    else:
        labels = torch.tensor([int(dataset[i].get("label", -1)) for i in range(len(dataset))], dtype=torch.long)
    return TokenPairs(images, audios, labels, image_model_id=image_tok.model_id, audio_model_id=audio_tok.model_id,
                      image_model_dir=str(image_dir), audio_model_dir=str(audio_dir),
                      image_vocab=image_tok.codebook_size, audio_vocab=audio_tok.codebook_size, info=dict(info or {}))


__all__ = ["TokenPairs", "encode_pairs", "encode_audio", "decode_audio", "flatten_audio_tokens",
           "unflatten_audio_tokens", "flatten_audio", "unflatten_audio", "FORMAT"]
