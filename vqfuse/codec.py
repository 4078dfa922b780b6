"""Using a trained tokenizer on files: encode, decode, reconstruct.

This is the Python API behind the CLI's file commands; each is one call here::

    from vqfuse.codec import encode_path, decode_path, load_model
    model = load_model("runs/demo/image-emoji32")
    encode_path(model, "photos/", "tokens/")          # photos/a/cat.png -> tokens/a/cat.png.vqf
    decode_path(model, "tokens/", "decoded/")         # tokens/a/cat.png.vqf -> decoded/a/cat.png

Items of any size and length work: the :class:`~vqfuse.tokenizer.Tokenizer` pads, windows and crops
(``Tokenizer.encode_item`` / ``decode_item``), and the token file records the original size. The rate of
variable-rate models is chosen at encode time with ``n_q`` (stages) or ``kbps`` (the most stages that
fit, for models whose rate is in kbit/s).

Token files append ``.vqf`` to the whole file name (like gzip), so ``cat.png`` and ``cat.jpg`` never
collide and decoding restores the original name. Outputs are written atomically: a failed or interrupted
file never leaves a half-written output behind.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Union

import torch
from torch import Tensor

from vqfuse.errors import ConfigError, InputFileError, PathLike, VqfuseError
from vqfuse.io.paths import BatchResult, ErrorHandler, FileResult, guard_memory, map_paths, require_file, run_files
from vqfuse.io.tokenfile import TokenFile, read_tokens, token_bits, write_tokens
from vqfuse.modalities import Modality
from vqfuse.tokenizer import ChunkingLike, Tokenizer

TOKEN_SUFFIX = ".vqf"
ModelLike = Union[Tokenizer, PathLike]


def load_model(model: ModelLike, device: str | torch.device = "cpu") -> Tokenizer:
    """A Tokenizer as is, or loaded from a model directory or a run directory holding ``model/``."""
    if isinstance(model, Tokenizer):
        return model.eval()
    return Tokenizer.from_pretrained(model, device=device)


def _num(x: float, digits: int) -> str:
    """``digits`` significant digits, but never in exponent notation (12345.6 -> "12346")."""
    return f"{x:.{digits}g}" if abs(x) < 10**digits else f"{x:.0f}"


def summary_line(verb: str, result: BatchResult, modality: Modality) -> str:
    """One line: ``encoded 3 files: 192 tokens, 0.625 bits/pixel, 0.41 s`` (plus failures).

    Timed modalities also get tokens per second of signal and the real-time factor (seconds of signal per
    second of processing): ``encoded 1 file: 9000 tokens, 6 kbit/s, 600 tokens/s, 15 s of audio in 0.52 s
    (29x real time)``.
    """
    n = len(result.done)
    text = f"{verb} {n} file{'s' if n != 1 else ''}: {result.tokens} tokens, {modality.rate_text(result.bits, result.extent)}"
    if result.duration > 0:
        signal = result.duration
        speed = f"{_num(signal / result.seconds, 3)}x real time" if result.seconds > 0 else "real time n/a"
        text += (
            f", {_num(result.tokens / signal, 4)} tokens/s, {_num(signal, 4)} s of {modality.name} "
            f"in {result.seconds:.2f} s ({speed})"
        )
    else:
        text += f", {result.seconds:.2f} s"
    if result.failed:
        text += f"; {len(result.failed)} failed"
    return text


def resolve_n_q(model: Tokenizer, n_q: int | None = None, kbps: float | None = None) -> int | None:
    """The ``n_q`` to encode with, from ``n_q`` or ``kbps`` (not both); None means all stages."""
    if kbps is None:
        model.check_n_q(n_q)
        return n_q
    if n_q is not None:
        raise ConfigError("give --n-q or --kbps, not both")
    unit = model.modality.rate_unit
    if unit != "kbit/s":
        raise ConfigError(
            f"--kbps needs a model rated in kbit/s; this {model.config.modality} model is rated in {unit} (use --n-q)"
        )
    return model.n_q_for_rate(kbps, what="--kbps")


def _result(model: Tokenizer, src: Path, dst: Path, tf: TokenFile, size: list[int], note: str = "") -> FileResult:
    tokens, bits = token_bits(tf)
    modality = model.modality
    extent, duration = modality.extent(size, model.meta), modality.duration(size, model.meta) or 0.0
    return FileResult(src, dst, tokens, bits, extent, duration, note)


def load_item(model: Tokenizer, path: Path) -> Tensor:
    """One input file -> (C, *spatial) in [-1, 1], checked against the model's channels."""
    require_file(path)
    x = model.modality.load_file(path, model.meta)
    channels = model.config.autoencoder.in_channels
    if x.shape[0] != channels:
        raise InputFileError(path, f"has {x.shape[0]} channels, the model expects {channels}")
    return x


def encode_file(
    model: Tokenizer,
    in_path: PathLike,
    out_path: PathLike,
    n_q: int | None = None,
    kbps: float | None = None,
    chunking: ChunkingLike = True,
) -> FileResult:
    """One input file -> one ``.vqf`` token file (written atomically)."""
    in_path, out_path = Path(in_path), Path(out_path)
    n_q = resolve_n_q(model, n_q, kbps)
    x = load_item(model, in_path)
    tf = guard_memory(in_path, lambda: model.encode_item(x, n_q=n_q, source=in_path.name, chunking=chunking))
    write_tokens(out_path, tf)
    return _result(model, in_path, out_path, tf, list(x.shape[1:]), model.modality.encode_note(in_path))


def decode_file(model: Tokenizer, in_path: PathLike, out_path: PathLike, chunking: ChunkingLike = True) -> FileResult:
    """One ``.vqf`` token file -> one output file in the modality's format (chosen by the suffix)."""
    in_path, out_path = Path(in_path), Path(out_path)
    tf = read_tokens(in_path)
    x = guard_memory(in_path, lambda: model.decode_item(tf, in_path, chunking=chunking))
    note = model.modality.save_output(x, out_path, model.meta)
    return _result(model, in_path, out_path, tf, list(x.shape[1:]), note)


def reconstruct_file(
    model: Tokenizer,
    in_path: PathLike,
    out_path: PathLike,
    n_q: int | None = None,
    kbps: float | None = None,
    chunking: ChunkingLike = True,
) -> FileResult:
    """encode + decode in memory: the output is exactly what ``decode(encode(in))`` would write."""
    in_path, out_path = Path(in_path), Path(out_path)
    n_q = resolve_n_q(model, n_q, kbps)
    x = load_item(model, in_path)

    def run() -> tuple[TokenFile, Tensor]:
        tf = model.encode_item(x, n_q=n_q, source=in_path.name, chunking=chunking)
        return tf, model.decode_item(tf, in_path, chunking=chunking)

    tf, y = guard_memory(in_path, run)
    note = model.modality.save_output(y, out_path, model.meta, source=in_path)
    return _result(model, in_path, out_path, tf, list(x.shape[1:]), note)


def token_name(name: str) -> str:
    """``cat.png`` -> ``cat.png.vqf``."""
    return name + TOKEN_SUFFIX


def decoded_name(name: str, modality: Modality) -> str:
    """``cat.png.vqf`` -> ``cat.png``; ``cat.vqf`` -> ``cat`` + the modality's default suffix."""
    stem = name[: -len(TOKEN_SUFFIX)] if name.lower().endswith(TOKEN_SUFFIX) else name
    if Path(stem).suffix.lower() in modality.extensions:
        return stem
    return stem + modality.default_output_suffix()


def encode_path(
    model: ModelLike,
    src: PathLike,
    dst: PathLike,
    n_q: int | None = None,
    on_error: ErrorHandler | None = None,
    progress: bool = False,
    kbps: float | None = None,
) -> BatchResult:
    """Encode a file to ``dst`` (a ``.vqf`` path or a folder), or a folder tree into folder ``dst``.

    For a single file the first error is raised; in a folder, failing files are reported and skipped.
    """
    model = load_model(model)
    n_q = resolve_n_q(model, n_q, kbps)
    modality = model.modality
    into_folder = Path(dst).is_dir() or str(dst).endswith(("/", os.sep))
    if Path(src).is_file() and not into_folder and Path(dst).suffix.lower() != TOKEN_SUFFIX:
        raise VqfuseError(f"{dst}: a token file should end with {TOKEN_SUFFIX} (or name an existing folder)")
    pairs = map_paths(src, dst, modality.extensions, token_name, what=modality.name)
    return run_files(src, pairs, lambda a, b: encode_file(model, a, b, n_q=n_q), on_error, progress, "encode")


def decode_path(
    model: ModelLike, src: PathLike, dst: PathLike, on_error: ErrorHandler | None = None, progress: bool = False
) -> BatchResult:
    """Decode a ``.vqf`` file to ``dst``, or a folder tree of them into folder ``dst``
    (``a/cat.png.vqf`` -> ``dst/a/cat.png``)."""
    model = load_model(model)
    modality = model.modality
    pairs = map_paths(src, dst, [TOKEN_SUFFIX], lambda n: decoded_name(n, modality), what="token")
    return run_files(src, pairs, lambda a, b: decode_file(model, a, b), on_error, progress, "decode")


def reconstruct_path(
    model: ModelLike,
    src: PathLike,
    dst: PathLike,
    n_q: int | None = None,
    on_error: ErrorHandler | None = None,
    progress: bool = False,
    kbps: float | None = None,
) -> BatchResult:
    """encode + decode a file, or a folder tree into folder ``dst`` (same names, same formats)."""
    model = load_model(model)
    n_q = resolve_n_q(model, n_q, kbps)
    pairs = map_paths(src, dst, model.modality.extensions, what=model.modality.name)
    return run_files(src, pairs, lambda a, b: reconstruct_file(model, a, b, n_q=n_q), on_error, progress, "reconstruct")


__all__ = [
    "TOKEN_SUFFIX",
    "load_model",
    "summary_line",
    "resolve_n_q",
    "load_item",
    "encode_file",
    "decode_file",
    "reconstruct_file",
    "token_name",
    "decoded_name",
    "encode_path",
    "decode_path",
    "reconstruct_path",
]
