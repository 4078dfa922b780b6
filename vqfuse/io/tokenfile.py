"""Versioned, self-describing token files (``.vqf``).

Layout (all integers little-endian)::

    b"VQFT" | version: uint8 (=1) | header_len: uint32 | header: UTF-8 JSON (header_len bytes)
          | payload: indices bit-packed at ``bits`` bits each, C order, LSB-first
          | crc32: uint32 of every byte before it

Header keys: ``model_id`` (str), ``modality`` (str), ``shape`` (indices shape, e.g. ``[n_q, T]`` or
``[H, W]``), ``codebook_size`` (int, or one int per stage along dim 0), ``bits``
(``ceil(log2(max codebook_size))``, at least 1) and ``meta`` (free JSON object).
"""

from __future__ import annotations

import json
import math
import struct
import zlib
from dataclasses import dataclass, field
from typing import Any, Union

import numpy as np
import torch
from torch import Tensor

from vqfuse.errors import ModelMismatchError, PathLike, TokenFileError
from vqfuse.io.atomic import atomic_write_bytes, read_input_bytes
from vqfuse.io.bitpack import MAX_BITS, pack_bits, packed_size, unpack_bits

MAGIC = b"VQFT"
FORMAT_VERSION = 1
_PREFIX = struct.Struct("<4sBI")  # magic, version, header length
_CRC = struct.Struct("<I")

CodebookSize = Union[int, list[int]]


# ----------------------------------------------------------------------------- token file


@dataclass
class TokenFile:
    """Token indices plus what is needed to decode them.

    Attributes:
        indices: int64 codes, e.g. (H, W) for an image or (n_q, T) for residual audio tokens.
            ``read_tokens`` returns a CPU ``torch.Tensor``; writing accepts a tensor or ndarray.
        model_id: which tokenizer produced them (see :func:`check_model`).
        modality: "image", "audio", "video", ...
        codebook_size: K, or one K per stage (along dim 0 of ``indices``).
        meta: free JSON-serialisable details (sample_rate, original length, image size, ...).
    """

    indices: Tensor | np.ndarray
    model_id: str
    modality: str
    codebook_size: CodebookSize
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def bits(self) -> int:
        """Bits per index in the packed payload."""
        return bits_for(self.codebook_size)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.indices.shape)


def bits_for(codebook_size: CodebookSize) -> int:
    """``ceil(log2(K))`` for the largest K, and at least 1."""
    sizes = codebook_size if isinstance(codebook_size, (list, tuple)) else [codebook_size]
    return max(1, (max(int(k) for k in sizes) - 1).bit_length())


def _as_numpy(indices: Tensor | np.ndarray) -> np.ndarray:
    if isinstance(indices, Tensor):
        return indices.detach().cpu().numpy()
    return np.asarray(indices)


def _check_codebook_size(codebook_size: Any, shape: tuple[int, ...]) -> list[int]:
    """Validate K (int or per-stage list) and return it as one K per stage-row (or a single K)."""
    if isinstance(codebook_size, (list, tuple)):
        sizes = list(codebook_size)
        if not shape or len(sizes) != shape[0]:
            raise ValueError(
                f"a per-stage codebook_size needs one entry per row of dim 0; "
                f"got {len(sizes)} entries for indices of shape {list(shape)}"
            )
    else:
        sizes = [codebook_size]
    for k in sizes:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"codebook_size must be a positive int (or a list of them), got {codebook_size!r}")
        if k > 1 << MAX_BITS:
            raise ValueError(f"codebook_size {k} exceeds 2**{MAX_BITS}")
    return [int(k) for k in sizes]


def _out_of_range(codes: np.ndarray, sizes: list[int]) -> str | None:
    """Describe the first index outside [0, K) (per stage when ``sizes`` has several), or None."""
    if codes.size == 0:
        return None
    limits = np.asarray(sizes, dtype=np.int64).reshape((-1,) + (1,) * (codes.ndim - 1))
    bad = (codes < 0) | (codes >= limits)
    if not bad.any():
        return None
    pos = tuple(int(i) for i in np.argwhere(bad)[0])
    k = sizes[pos[0]] if len(sizes) > 1 else sizes[0]
    return f"index {int(codes[pos])} at position {list(pos)} is outside [0, {k})"


def _encode_header(tf: TokenFile, shape: tuple[int, ...], sizes: list[int]) -> bytes:
    for name in ("model_id", "modality"):
        if not isinstance(getattr(tf, name), str):
            raise ValueError(f"{name} must be a str, got {getattr(tf, name)!r}")
    if not isinstance(tf.meta, dict):
        raise ValueError(f"meta must be a dict, got {type(tf.meta).__name__}")
    header = {
        "model_id": tf.model_id,
        "modality": tf.modality,
        "shape": list(shape),
        "codebook_size": sizes if isinstance(tf.codebook_size, (list, tuple)) else sizes[0],
        "bits": bits_for(sizes),
        "meta": tf.meta,
    }
    try:
        text = json.dumps(header, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"token file meta must be plain JSON (no NaN/Infinity): {exc}") from None
    return text.encode("utf-8")


def encode_tokens(tf: TokenFile) -> bytes:
    """Serialise a :class:`TokenFile` to ``.vqf`` bytes; ValueError on invalid content."""
    codes = _as_numpy(tf.indices)
    if codes.dtype.kind not in "iu":
        raise ValueError(f"indices must be integers, got dtype {codes.dtype}")
    codes = codes.astype(np.int64, copy=False)
    shape = tuple(int(d) for d in codes.shape)
    sizes = _check_codebook_size(tf.codebook_size, shape)
    problem = _out_of_range(codes, sizes)
    if problem:
        raise ValueError(f"cannot write tokens: {problem}")
    header = _encode_header(tf, shape, sizes)
    body = _PREFIX.pack(MAGIC, FORMAT_VERSION, len(header)) + header + pack_bits(codes, bits_for(sizes))
    return body + _CRC.pack(zlib.crc32(body) & 0xFFFFFFFF)


def write_tokens(path: PathLike, tf: TokenFile) -> None:
    """Atomically write ``tf`` to ``path`` (``.vqf``); ValueError on invalid content, file untouched."""
    atomic_write_bytes(path, encode_tokens(tf))


# ----------------------------------------------------------------------------- reading


def _crc_ok(data: bytes) -> bool:
    return (zlib.crc32(data[:-4]) & 0xFFFFFFFF) == _CRC.unpack_from(data, len(data) - 4)[0]


def _check_prefix(path: PathLike, data: bytes) -> int:
    """Validate magic and version; return the header length."""
    if not data:
        raise TokenFileError(path, "empty file, not a vqfuse token file")
    if not data.startswith(MAGIC[: len(data)]) or (len(data) >= 4 and data[:4] != MAGIC):
        raise TokenFileError(path, "not a vqfuse token file (bad magic bytes)")
    if len(data) < _PREFIX.size:
        raise TokenFileError(path, f"truncated ({len(data)} bytes, shorter than the fixed header)")
    _, version, header_len = _PREFIX.unpack_from(data)
    if version != FORMAT_VERSION:
        raise TokenFileError(
            path, f"unsupported token file version {version} (this vqfuse reads version {FORMAT_VERSION})"
        )
    if len(data) < _PREFIX.size + header_len + _CRC.size:
        raise TokenFileError(
            path, f"truncated ({len(data)} bytes, header alone needs {_PREFIX.size + header_len + _CRC.size})"
        )
    return header_len


def _is_int(x: Any, minimum: int) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= minimum


def _header_problem(header: Any) -> str | None:
    """Why a parsed header is unusable, or None."""
    if not isinstance(header, dict):
        return "header is not a JSON object"
    for key, kind in (("model_id", str), ("modality", str), ("meta", dict)):
        if not isinstance(header.get(key), kind):
            return f"header field {key!r} missing or not a {kind.__name__}"
    shape = header.get("shape")
    if not isinstance(shape, list) or not all(_is_int(d, 0) for d in shape):
        return "header field 'shape' missing or not a list of non-negative ints"
    try:
        sizes = _check_codebook_size(header.get("codebook_size"), tuple(shape))
    except ValueError as exc:
        return f"bad header field 'codebook_size': {exc}"
    bits = header.get("bits")
    if not _is_int(bits, bits_for(sizes)) or int(bits) > MAX_BITS:  # type: ignore[arg-type]  # an int here
        return f"header field 'bits' is {bits!r}, expected an int in [{bits_for(sizes)}, {MAX_BITS}] for codebook_size"
    return None


def _parse_header(path: PathLike, data: bytes, header_len: int) -> dict[str, Any]:
    raw = data[_PREFIX.size : _PREFIX.size + header_len]
    problem: str | None
    try:
        header = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        problem = "bad header: not UTF-8"
    except json.JSONDecodeError as exc:
        problem = f"bad JSON header at line {exc.lineno}, column {exc.colno}: {exc.msg}"
    except RecursionError:
        problem = "bad JSON header: nested too deeply"
    else:
        problem = _header_problem(header)
    if problem is None:
        return header
    if not _crc_ok(data):
        raise TokenFileError(path, "corrupt (CRC mismatch)")
    raise TokenFileError(path, problem)


def _check_payload(path: PathLike, data: bytes, header_len: int, header: dict[str, Any]) -> bytes:
    count = math.prod(header["shape"])
    expected = packed_size(count, header["bits"])
    payload = data[_PREFIX.size + header_len : -_CRC.size]
    crc_ok = _crc_ok(data)
    if len(payload) < expected and not crc_ok:
        raise TokenFileError(path, f"truncated (payload has {len(payload)} of {expected} bytes)")
    if not crc_ok:
        raise TokenFileError(path, "corrupt (CRC mismatch)")
    if len(payload) != expected:
        raise TokenFileError(
            path,
            f"payload is {len(payload)} bytes but shape {header['shape']} at {header['bits']} bits needs {expected}",
        )
    return payload


def decode_tokens(data: bytes, path: PathLike = "<bytes>") -> TokenFile:
    """Parse ``.vqf`` bytes; every problem is a TokenFileError naming ``path``."""
    header_len = _check_prefix(path, data)
    header = _parse_header(path, data, header_len)
    payload = _check_payload(path, data, header_len, header)
    shape = tuple(header["shape"])
    codes = unpack_bits(payload, header["bits"], math.prod(shape)).reshape(shape)
    sizes = _check_codebook_size(header["codebook_size"], shape)
    problem = _out_of_range(codes, sizes)
    if problem:
        raise TokenFileError(path, problem)
    return TokenFile(
        indices=torch.from_numpy(codes),
        model_id=header["model_id"],
        modality=header["modality"],
        codebook_size=header["codebook_size"],
        meta=header["meta"],
    )


def read_tokens(path: PathLike) -> TokenFile:
    """Read a ``.vqf`` file; indices come back as a CPU int64 tensor."""
    return decode_tokens(read_input_bytes(path, TokenFileError), path)


def check_model(tf: TokenFile, model_id: str, path: PathLike) -> None:
    """Raise ModelMismatchError unless ``tf`` was encoded by ``model_id``."""
    if tf.model_id != model_id:
        raise ModelMismatchError(f"{path} was encoded by model {tf.model_id}, not {model_id}")


def staged_tokenfile(codes: Tensor, stage_sizes: list[int], staged: bool, **fields: Any) -> TokenFile:
    """A TokenFile from codes with a stage axis (S, *latent). ``staged`` keeps that axis and one K per
    stage (variable-rate quantizers); otherwise the single stage is stored as (*latent) with one K."""
    if staged:
        return TokenFile(indices=codes, codebook_size=list(stage_sizes), **fields)
    if codes.shape[0] != 1:
        raise ValueError(f"a single-stage token file needs 1 stage, got {codes.shape[0]}")
    return TokenFile(indices=codes[0], codebook_size=int(stage_sizes[0]), **fields)


def stage_codes(tf: TokenFile) -> Tensor:
    """The codes of ``tf`` with a stage axis: (S, *latent) int64."""
    codes = torch.as_tensor(tf.indices).long()
    return codes if isinstance(tf.codebook_size, (list, tuple)) else codes.unsqueeze(0)


def check_decodable(
    tf: TokenFile,
    path: PathLike,
    *,
    modality: str,
    model_id: str,
    codebook_size: int,
    max_stages: int,
    staged: bool,
    factors: tuple[int, ...],
) -> list[int]:
    """Raise unless a model with these facts can decode ``tf``; returns the original spatial size.

    ``factors`` are the model's downsampling factors per spatial axis; ``meta["size"]`` (if present) must
    be a size those tokens could have come from (within one factor of the padded size on every axis).
    """
    if tf.modality != modality:
        raise ModelMismatchError(f"{path} holds {tf.modality} tokens, but the model is for {modality}")
    check_model(tf, model_id, path)
    dims, shape = len(factors), tf.shape
    lead = 1 if staged else 0
    if len(shape) != dims + lead or any(n == 0 for n in shape):
        raise TokenFileError(
            path, f"token shape {list(shape)} does not fit this model (expected {dims + lead} non-empty axes)"
        )
    if staged and not 1 <= shape[0] <= max_stages:
        raise TokenFileError(path, f"{shape[0]} quantizer stages, the model has {max_stages}")
    expected: Any = [int(codebook_size)] * shape[0] if staged else int(codebook_size)
    if tf.codebook_size != expected:
        raise TokenFileError(path, f"codebook size {tf.codebook_size} does not match the model's {expected}")
    padded = [n * f for n, f in zip(shape[lead:], factors)]
    size = tf.meta.get("size", padded)
    if (
        not isinstance(size, list)
        or len(size) != dims
        or not all(
            isinstance(s, int) and not isinstance(s, bool) and p - f < s <= p for s, p, f in zip(size, padded, factors)
        )
    ):
        raise TokenFileError(path, f"meta 'size' {size!r} does not fit tokens of shape {list(shape)}")
    return size


def token_bits(tf: TokenFile) -> tuple[int, float]:
    """(tokens, tokens * log2(K)) of a token file, per-stage K along dim 0 when it is a list: the
    information in the codes, not the packed file size."""
    tokens = math.prod(tf.shape)
    if isinstance(tf.codebook_size, (list, tuple)):
        per_stage = tokens // max(1, len(tf.codebook_size))
        return tokens, sum(per_stage * math.log2(k) for k in tf.codebook_size)
    return tokens, tokens * math.log2(tf.codebook_size)


__all__ = [
    "MAGIC",
    "FORMAT_VERSION",
    "TokenFile",
    "bits_for",
    "encode_tokens",
    "decode_tokens",
    "write_tokens",
    "read_tokens",
    "check_model",
    "staged_tokenfile",
    "stage_codes",
    "check_decodable",
    "token_bits",
]
