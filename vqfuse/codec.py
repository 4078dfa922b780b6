"""Using a trained tokenizer on files: encode, decode, reconstruct, evaluate, describe.

This is the Python API behind the CLI; every command is one call here::

    from vqfuse.codec import encode_path, decode_path, load_model
    model = load_model("runs/demo/image-emoji32")
    encode_path(model, "photos/", "tokens/")          # photos/a/cat.png -> tokens/a/cat.png.vqf
    decode_path(model, "tokens/", "decoded/")         # tokens/a/cat.png.vqf -> decoded/a/cat.png

Any input size works: each spatial axis is padded at its end, by repeating the edge sample
("replicate"), up to a multiple of the model's downsampling factor. The token file records the original
size (``meta["size"]``) and decoding crops back to it, so a 37x23 image decodes to 37x23.

Audio files of any length are encoded and decoded in overlapping windows along time (see
:mod:`vqfuse.chunking`): the encoder sees at most ``CHUNK_SECONDS + 2 * MARGIN_SECONDS`` of audio at a
time and the decoder as many token frames, so memory stays bounded for long files; the token file holds
the whole file's tokens. The bitrate of residual audio models is chosen at encode time with ``n_q``
(stages) or ``kbps`` (the most stages that fit, see :func:`n_q_for_kbps`).

Directory names mirror the input tree. Token files append ``.vqf`` to the whole file name (like gzip),
so ``cat.png`` and ``cat.jpg`` never collide and decoding restores the original name. A file that fails
in a directory is reported through ``on_error`` and skipped; the others are still written. Outputs are
written atomically: a failed or interrupted file never leaves a half-written output behind.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from vqfuse.chunking import Chunking, apply_chunked
from vqfuse.errors import (
    ConfigError,
    InputFileError,
    ModelMismatchError,
    PathLike,
    TokenFileError,
    VqfuseError,
)
from vqfuse.io.tokenfile import TokenFile, check_model, read_tokens, write_tokens
from vqfuse.modalities import Modality, get_modality
from vqfuse.modalities.audio import DEFAULT_SAMPLE_RATE
from vqfuse.tokenizer import Tokenizer
from vqfuse.io.weights import to_jsonable as _jsonable

TOKEN_SUFFIX = ".vqf"
ModelLike = Union[Tokenizer, PathLike]
ErrorHandler = Callable[[Path, VqfuseError], None]
ChunkingLike = Union[Chunking, bool]

# Audio is processed in windows of CHUNK_SECONDS plus MARGIN_SECONDS of context on each side, and
# neighbouring windows are crossfaded over 2 * CROSSFADE_SECONDS. The waveform preset's encoder and decoder
# convolutions each see 8 frames (0.16 s) either side of a frame, well inside MARGIN - CROSSFADE; only
# non-causal GroupNorm, whose statistics span the whole window, makes windows differ from one pass. The
# spectral preset's decoder sees 25 frames (0.5 s = MARGIN - CROSSFADE) either side and normalises each
# frame on its own, so its windows match one pass.
CHUNK_SECONDS = 10.0
MARGIN_SECONDS = 1.0
CROSSFADE_SECONDS = 0.5


# ----------------------------------------------------------------------------------------------
# Results


@dataclass
class FileResult:
    """One file done: how many tokens it took and how many bits those carry.

    ``bits`` is ``tokens * log2(K)`` (the information in the codes, not the packed file size);
    ``units`` counts the original signal's elements per channel (pixels for images).
    """

    src: Path
    dst: Path
    tokens: int
    bits: float
    units: int


@dataclass
class BatchResult:
    """What a file or directory run did: files done, files that failed (path, problem), seconds."""

    done: list[FileResult] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def tokens(self) -> int:
        return sum(r.tokens for r in self.done)

    @property
    def bits(self) -> float:
        return sum(r.bits for r in self.done)

    @property
    def units(self) -> int:
        return sum(r.units for r in self.done)


def rate_text(modality: str, bits: float, units: int, meta: dict[str, Any] | None = None) -> str:
    """Human bitrate: bits per pixel for images, kbit/s for audio with a sample rate, else bits per element."""
    if units <= 0:
        return "n/a"
    meta = meta or {}
    if modality == "image":
        return f"{bits / units:.4g} bits/pixel"
    if modality == "audio" and meta.get("sample_rate"):
        return f"{bits / (units / float(meta['sample_rate'])) / 1000:.4g} kbit/s"
    return f"{bits / units:.4g} bits/element"


def _num(x: float, digits: int) -> str:
    """``digits`` significant digits, but never in exponent notation (12345.6 -> "12346")."""
    return f"{x:.{digits}g}" if abs(x) < 10**digits else f"{x:.0f}"


def summary_line(verb: str, result: BatchResult, modality: str, meta: dict[str, Any] | None = None) -> str:
    """One line: ``encoded 3 files: 192 tokens, 0.625 bits/pixel, 0.41 s`` (plus failures).

    Audio (with a sample rate) also gets tokens per second of audio and the real-time factor (seconds of
    audio per second of processing): ``encoded 1 file: 9000 tokens, 6 kbit/s, 600 tokens/s, 15 s of
    audio in 0.52 s (29x real time)``.
    """
    n = len(result.done)
    rate = rate_text(modality, result.bits, result.units, meta)
    text = f"{verb} {n} file{'s' if n != 1 else ''}: {result.tokens} tokens, {rate}"
    sample_rate = (meta or {}).get("sample_rate")
    if modality == "audio" and sample_rate and result.units > 0:
        audio_seconds = result.units / float(sample_rate)
        speed = f"{_num(audio_seconds / result.seconds, 3)}x real time" if result.seconds > 0 else "real time n/a"
        text += (f", {_num(result.tokens / audio_seconds, 4)} tokens/s, {_num(audio_seconds, 4)} s of audio "
                 f"in {result.seconds:.2f} s ({speed})")
    else:
        text += f", {result.seconds:.2f} s"
    if result.failed:
        text += f"; {len(result.failed)} failed"
    return text


# ----------------------------------------------------------------------------------------------
# Models


def load_model(model: ModelLike, device: str | torch.device = "cpu") -> Tokenizer:
    """A Tokenizer as is, or loaded from a model directory or a run directory holding ``model/``."""
    if isinstance(model, Tokenizer):
        return model.eval()
    return Tokenizer.from_pretrained(model, device=device)


def modality_of(model: Tokenizer) -> Modality:
    return get_modality(model.config.modality)


def _device(model: Tokenizer) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:  # pragma: no cover - every tokenizer has parameters
        return torch.device("cpu")


def stage_sizes(model: Tokenizer, n_q: int | None = None) -> list[int]:
    """Codebook size of each quantizer stage used (one entry unless residual)."""
    if model.is_residual:
        n = n_q if n_q is not None else model.quantizer.n_quantizers
        return [int(model.codebook_size)] * int(n)
    return [int(model.codebook_size)]


def _token_bits(tf: TokenFile) -> tuple[int, float]:
    """(tokens, tokens * log2(K)) of a token file; per-stage K along dim 0 when it is a list."""
    tokens = math.prod(tf.shape)
    if isinstance(tf.codebook_size, (list, tuple)):
        per_stage = tokens // max(1, len(tf.codebook_size))
        return tokens, sum(per_stage * math.log2(k) for k in tf.codebook_size)
    return tokens, tokens * math.log2(tf.codebook_size)


def _check_n_q(model: Tokenizer, n_q: int | None) -> None:
    if n_q is None:
        return
    if not model.is_residual:
        raise ConfigError(f"--n-q needs a residual quantizer ('rvq'); this model's quantizer is "
                          f"{model.config.quantizer.get('kind', '?')!r}")
    if not 1 <= n_q <= model.quantizer.n_quantizers:
        raise ConfigError(f"--n-q must be in 1..{model.quantizer.n_quantizers}, got {n_q}")


# ----------------------------------------------------------------------------------------------
# Audio rates: frames per second, bitrate per number of stages


def _sample_rate(model: Tokenizer) -> int:
    return int(model.config.meta.get("sample_rate", DEFAULT_SAMPLE_RATE))


def _hop(model: Tokenizer) -> int:
    """Input steps per latent frame along the first (time) axis."""
    return int(model.downsample_factors[0])


def frames_per_second(model: Tokenizer) -> float:
    """Latent (token) frames per second of audio: sample_rate / hop (50 for 16 kHz and hop 320)."""
    if model.config.modality != "audio":
        raise ConfigError(f"frames per second need an audio model; this model is for {model.config.modality}")
    return _sample_rate(model) / _hop(model)


def kbps_for_n_q(model: Tokenizer, n_q: int | None = None) -> float:
    """Nominal bitrate in kbit/s with the first ``n_q`` stages (all when None):
    ``n_q * log2(K) * frames_per_second / 1000``."""
    return sum(math.log2(k) for k in stage_sizes(model, n_q)) * frames_per_second(model) / 1000


def allowed_kbps(model: Tokenizer) -> list[float]:
    """The bitrates an audio model offers: one per number of stages (a single one unless residual)."""
    stages = model.quantizer.n_quantizers if model.is_residual else 1
    return [kbps_for_n_q(model, n if model.is_residual else None) for n in range(1, stages + 1)]


def _kbps_list(rates: list[float]) -> str:
    return ", ".join(f"{r:g}" for r in rates)


def n_q_for_kbps(model: Tokenizer, kbps: float) -> int:
    """The most stages whose bitrate does not exceed ``kbps`` (1 for a non-residual model that fits).

    Raises:
        ConfigError: not an audio model, or ``kbps`` is below one stage (the message lists the allowed
            values).
    """
    rates = allowed_kbps(model)
    if not math.isfinite(kbps) or kbps < rates[0] * (1 - 1e-9):
        raise ConfigError(f"--kbps {kbps:g} is below the lowest bitrate of this model; allowed: "
                          f"{_kbps_list(rates)} kbit/s")
    return max(n for n, r in enumerate(rates, start=1) if r <= kbps * (1 + 1e-9))


def resolve_n_q(model: Tokenizer, n_q: int | None = None, kbps: float | None = None) -> int | None:
    """The ``n_q`` to encode with, from ``n_q`` or ``kbps`` (not both); None means all stages."""
    if kbps is None:
        _check_n_q(model, n_q)
        return n_q
    if n_q is not None:
        raise ConfigError("give --n-q or --kbps, not both")
    if model.config.modality != "audio":
        raise ConfigError(f"--kbps needs an audio model; this model is for {model.config.modality} (use --n-q)")
    n = n_q_for_kbps(model, kbps)
    return n if model.is_residual else None


def audio_chunking(model: Tokenizer, chunking: ChunkingLike = True) -> Chunking | None:
    """The time-axis windows to use for ``model``: None (one go) unless the model is 1D and ``chunking``
    is True (the default plan from CHUNK_SECONDS, MARGIN_SECONDS, CROSSFADE_SECONDS) or a Chunking."""
    if model.config.autoencoder.dims != 1 or chunking is False:
        return None
    if isinstance(chunking, Chunking):
        return chunking
    return Chunking.from_seconds(_sample_rate(model) / _hop(model), CHUNK_SECONDS, MARGIN_SECONDS, CROSSFADE_SECONDS)


# ----------------------------------------------------------------------------------------------
# Tensors <-> tokens


def pad_to_multiple(x: Tensor, factors: tuple[int, ...]) -> Tensor:
    """(C, *spatial) -> (C, *padded): each axis padded at its end by replicating the edge, up to a
    multiple of its factor."""
    spatial = x.shape[1:]
    extra = [(-n) % f for n, f in zip(spatial, factors)]
    if not any(extra):
        return x
    pad: list[int] = []
    for e in reversed(extra):  # F.pad lists the last axis first
        pad += [0, e]
    return F.pad(x.unsqueeze(0), pad, mode="replicate").squeeze(0)


@torch.no_grad()
def encode_latents(model: Tokenizer, x: Tensor, chunking: ChunkingLike = True) -> Tensor:
    """Encoder output for a batch (B, C, *spatial), spatial sizes multiples of the downsampling factors
    -> (B, D, *latent); 1D models run in overlapping windows along time (see :func:`audio_chunking`)."""
    plan = audio_chunking(model, chunking)
    return apply_chunked(model.encoder, x, plan, in_step=_hop(model), out_step=1, axis=2)


@torch.no_grad()
def decode_latents(model: Tokenizer, z: Tensor, chunking: ChunkingLike = True, n_q: int | None = None) -> Tensor:
    """Decoder output for latents (B, D, *latent) -> (B, C, *latent * factors); windowed like
    :func:`encode_latents` for 1D models. ``n_q``: residual stages the latents hold (conditions the
    spectral decoder; None: all)."""
    plan = audio_chunking(model, chunking)
    return apply_chunked(lambda w: model.decode_latents(w, n_q), z, plan, in_step=1, out_step=_hop(model), axis=2)


@torch.no_grad()
def encode_tensor(
    model: Tokenizer,
    x: Tensor,
    n_q: int | None = None,
    source: str = "",
    chunking: ChunkingLike = True,
    kbps: float | None = None,
) -> TokenFile:
    """One item (C, *spatial) in [-1, 1], any spatial size -> a TokenFile ready to write.

    ``meta`` records the original spatial size (``size``) so that :func:`decode_tokenfile` crops back,
    the source file name (``source``) when given, and the sample rate for audio. Audio (1D) is encoded
    in overlapping windows unless ``chunking=False``; ``n_q`` or ``kbps`` choose the residual stages.
    """
    cfg = model.config.autoencoder
    if x.dim() != cfg.dims + 1 or x.shape[0] != cfg.in_channels:
        raise ValueError(f"expected one item of shape ({cfg.in_channels}, <{cfg.dims} axes>), got {tuple(x.shape)}")
    n_q = resolve_n_q(model, n_q, kbps)
    size = [int(n) for n in x.shape[1:]]
    padded = pad_to_multiple(x.float(), model.downsample_factors)  # (C, *padded)
    z = encode_latents(model, padded.unsqueeze(0).to(_device(model)), chunking)  # (1, D, *latent)
    indices = model.quantizer.encode(z, **model._quantizer_kwargs(n_q))[0].cpu()  # (*latent) or (n_q, *latent)
    sizes = stage_sizes(model, n_q)
    meta: dict[str, Any] = {"size": size}
    if source:
        meta["source"] = source
    if model.config.modality == "audio":
        meta["sample_rate"] = _sample_rate(model)
    return TokenFile(
        indices=indices,
        model_id=model.model_id,
        modality=model.config.modality,
        codebook_size=sizes if model.is_residual else sizes[0],
        meta=meta,
    )


def check_tokenfile(model: Tokenizer, tf: TokenFile, path: PathLike = "<tokens>") -> list[int]:
    """Raise unless ``model`` can decode ``tf``; returns the original spatial size to crop to."""
    if tf.modality != model.config.modality:
        raise ModelMismatchError(f"{path} holds {tf.modality} tokens, but the model is for {model.config.modality}")
    check_model(tf, model.model_id, path)
    dims = model.config.autoencoder.dims
    shape = tf.shape
    lead = 1 if model.is_residual else 0
    if len(shape) != dims + lead or any(n == 0 for n in shape):
        raise TokenFileError(path, f"token shape {list(shape)} does not fit this model "
                                   f"(expected {dims + lead} non-empty axes)")
    if model.is_residual:
        if not 1 <= shape[0] <= model.quantizer.n_quantizers:
            raise TokenFileError(path, f"{shape[0]} quantizer stages, the model has {model.quantizer.n_quantizers}")
        expected: Any = [int(model.codebook_size)] * shape[0]
    else:
        expected = int(model.codebook_size)
    if tf.codebook_size != expected:
        raise TokenFileError(path, f"codebook size {tf.codebook_size} does not match the model's {expected}")
    padded = [n * f for n, f in zip(shape[lead:], model.downsample_factors)]
    size = tf.meta.get("size", padded)
    if (
        not isinstance(size, list)
        or len(size) != dims
        or not all(isinstance(s, int) and not isinstance(s, bool) and p - f < s <= p
                   for s, p, f in zip(size, padded, model.downsample_factors))
    ):
        raise TokenFileError(path, f"meta 'size' {size!r} does not fit tokens of shape {list(shape)}")
    return size


@torch.no_grad()
def decode_tokenfile(
    model: Tokenizer, tf: TokenFile, path: PathLike = "<tokens>", chunking: ChunkingLike = True
) -> Tensor:
    """A TokenFile -> one item (C, *spatial) in [-1, 1], cropped to the original size; audio (1D) is
    decoded in overlapping windows unless ``chunking=False``."""
    size = check_tokenfile(model, tf, path)
    indices = torch.as_tensor(tf.indices).long().unsqueeze(0).to(_device(model))  # (1, [n_q,] *latent)
    z = model.quantizer.decode(indices)  # (1, D, *latent)
    n_q = indices.shape[1] if model.is_residual else None
    x = decode_latents(model, z, chunking, n_q)[0].float().cpu()  # (C, *padded)
    return x[(slice(None),) + tuple(slice(0, s) for s in size)].clamp(-1, 1)


# ----------------------------------------------------------------------------------------------
# Files


def _guard_memory(path: PathLike, fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except MemoryError:
        raise InputFileError(path, "too large to process in memory") from None
    except RuntimeError as exc:
        if "out of memory" in str(exc).lower() or "not enough memory" in str(exc).lower():
            raise InputFileError(path, "too large to process in memory") from None
        raise


def _load_item(model: Tokenizer, path: Path) -> Tensor:
    modality = modality_of(model)
    if path.is_dir():
        raise InputFileError(path, "is a folder, expected a file")
    if not path.exists():
        raise InputFileError(path, "file does not exist")
    x = modality.load_file(path, model.config.meta)
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
    """One input file -> one ``.vqf`` token file (written atomically); ``n_q`` or ``kbps`` (audio, kbit/s)
    choose the residual stages."""
    in_path, out_path = Path(in_path), Path(out_path)
    n_q = resolve_n_q(model, n_q, kbps)
    x = _load_item(model, in_path)
    tf = _guard_memory(in_path, lambda: encode_tensor(model, x, n_q=n_q, source=in_path.name, chunking=chunking))
    write_tokens(out_path, tf)
    tokens, bits = _token_bits(tf)
    return FileResult(in_path, out_path, tokens, bits, math.prod(tf.meta["size"]))


def decode_file(model: Tokenizer, in_path: PathLike, out_path: PathLike, chunking: ChunkingLike = True) -> FileResult:
    """One ``.vqf`` token file -> one output file in the modality's format (chosen by the suffix)."""
    in_path, out_path = Path(in_path), Path(out_path)
    tf = read_tokens(in_path)
    x = _guard_memory(in_path, lambda: decode_tokenfile(model, tf, in_path, chunking=chunking))
    modality_of(model).save_file(x, out_path, model.config.meta)
    tokens, bits = _token_bits(tf)
    return FileResult(in_path, out_path, tokens, bits, math.prod(x.shape[1:]))


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
    x = _load_item(model, in_path)

    def run() -> tuple[TokenFile, Tensor]:
        tf = encode_tensor(model, x, n_q=n_q, source=in_path.name, chunking=chunking)
        return tf, decode_tokenfile(model, tf, in_path, chunking=chunking)

    tf, y = _guard_memory(in_path, run)
    modality_of(model).save_file(y, out_path, model.config.meta)
    tokens, bits = _token_bits(tf)
    return FileResult(in_path, out_path, tokens, bits, math.prod(tf.meta["size"]))


# ----------------------------------------------------------------------------------------------
# Paths and directories


def _is_hidden(name: str) -> bool:
    return name.startswith(".")


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


def map_paths(
    src: PathLike,
    dst: PathLike,
    suffixes: Iterable[str],
    rename: Callable[[str], str] = lambda name: name,
    what: str = "input",
) -> list[tuple[Path, Path]]:
    """Pairs (input, output) for a file or a directory tree.

    Args:
        src: a file, or a folder searched recursively (hidden entries skipped) for files whose suffix is
            in ``suffixes`` (case-insensitive).
        dst: for a file: the output file, or an existing folder to put ``rename(name)`` in. For a folder:
            the output folder; the tree below ``src`` is mirrored there, each file named ``rename(name)``.
        rename: output file name from input file name.
        what: how to call the files in messages ("image", "token").

    Raises:
        InputFileError: ``src`` is missing, or a folder holding no matching file; ``dst`` is a file where
            a folder is needed.
        VqfuseError: an output would overwrite its own input.
    """
    wants_folder = str(dst).endswith(("/", os.sep))
    src, dst = Path(src), Path(dst)
    exts = {s.lower() for s in suffixes}
    if not src.exists():
        raise InputFileError(src, "does not exist")
    if src.is_dir():
        if dst.exists() and not dst.is_dir():
            raise InputFileError(dst, "exists and is not a folder (the input is a folder)")
        inputs: list[Path] = []
        seen: set[Path] = set()  # real paths walked, so a symlink loop cannot recurse forever
        for dirpath, dirnames, filenames in os.walk(src, followlinks=True):
            here = Path(dirpath)
            if here.resolve() in seen:
                dirnames[:] = []
                continue
            seen.add(here.resolve())
            dirnames[:] = sorted(d for d in dirnames if not _is_hidden(d) and not _inside(here / d, dst))
            inputs += [here / f for f in sorted(filenames) if not _is_hidden(f) and Path(f).suffix.lower() in exts]
        if not inputs:
            listed = ", ".join(sorted(e.lstrip(".") for e in exts))
            raise InputFileError(src, f"no {what} files ({listed}) found in this folder or below")
        pairs = [(f, dst / f.relative_to(src).parent / rename(f.name)) for f in sorted(inputs)]
    else:
        out = dst / rename(src.name) if dst.is_dir() or wants_folder else dst
        pairs = [(src, out)]
    for a, b in pairs:
        if b.exists() and a.resolve() == b.resolve():
            raise VqfuseError(f"{b}: output would overwrite its own input; choose another output path")
    return pairs


def token_name(name: str) -> str:
    """``cat.png`` -> ``cat.png.vqf``."""
    return name + TOKEN_SUFFIX


def decoded_name(name: str, modality: Modality) -> str:
    """``cat.png.vqf`` -> ``cat.png``; ``cat.vqf`` -> ``cat`` + the modality's default suffix."""
    stem = name[: -len(TOKEN_SUFFIX)] if name.lower().endswith(TOKEN_SUFFIX) else name
    if Path(stem).suffix.lower() in modality.extensions:
        return stem
    return stem + modality.default_output_suffix()


def run_pairs(
    pairs: list[tuple[Path, Path]],
    fn: Callable[[Path, Path], FileResult],
    on_error: ErrorHandler | None = None,
    progress: bool = False,
    desc: str = "",
) -> BatchResult:
    """Apply ``fn`` to each pair; a VqfuseError on one file is recorded (and passed to ``on_error``), the
    rest go on."""
    from tqdm import tqdm

    result = BatchResult()
    start = time.perf_counter()
    bar = tqdm(pairs, desc=desc, unit="file", disable=not progress or len(pairs) < 2, leave=False, dynamic_ncols=True)
    for src, dst in bar:
        try:
            result.done.append(fn(src, dst))
        except VqfuseError as exc:
            result.failed.append((src, str(exc)))
            if on_error is not None:
                on_error(src, exc)
    bar.close()
    result.seconds = time.perf_counter() - start
    return result


def _run(
    src: PathLike,
    pairs: list[tuple[Path, Path]],
    fn: Callable[[Path, Path], FileResult],
    on_error: ErrorHandler | None,
    progress: bool,
    desc: str,
) -> BatchResult:
    if Path(src).is_dir():
        return run_pairs(pairs, fn, on_error, progress, desc)
    start = time.perf_counter()  # a single file: its error is the command's error
    (a, b), = pairs
    result = BatchResult(done=[fn(a, b)])
    result.seconds = time.perf_counter() - start
    return result


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

    ``n_q`` (stages) or ``kbps`` (audio: the most stages within that bitrate) choose the bitrate of a
    residual model. For a single file the first error is raised; in a folder, failing files are reported
    and skipped.
    """
    model = load_model(model)
    n_q = resolve_n_q(model, n_q, kbps)
    modality = modality_of(model)
    into_folder = Path(dst).is_dir() or str(dst).endswith(("/", os.sep))
    if Path(src).is_file() and not into_folder and Path(dst).suffix.lower() != TOKEN_SUFFIX:
        raise VqfuseError(f"{dst}: a token file should end with {TOKEN_SUFFIX} (or name an existing folder)")
    pairs = map_paths(src, dst, modality.extensions, token_name, what=modality.name)
    return _run(src, pairs, lambda a, b: encode_file(model, a, b, n_q=n_q), on_error, progress, "encode")


def decode_path(
    model: ModelLike,
    src: PathLike,
    dst: PathLike,
    on_error: ErrorHandler | None = None,
    progress: bool = False,
) -> BatchResult:
    """Decode a ``.vqf`` file to ``dst``, or a folder tree of them into folder ``dst``
    (``a/cat.png.vqf`` -> ``dst/a/cat.png``)."""
    model = load_model(model)
    modality = modality_of(model)
    pairs = map_paths(src, dst, [TOKEN_SUFFIX], lambda n: decoded_name(n, modality), what="token")
    return _run(src, pairs, lambda a, b: decode_file(model, a, b), on_error, progress, "decode")


def reconstruct_path(
    model: ModelLike,
    src: PathLike,
    dst: PathLike,
    n_q: int | None = None,
    on_error: ErrorHandler | None = None,
    progress: bool = False,
    kbps: float | None = None,
) -> BatchResult:
    """encode + decode a file, or a folder tree into folder ``dst`` (same names, same formats);
    ``n_q`` or ``kbps`` as for :func:`encode_path`."""
    model = load_model(model)
    n_q = resolve_n_q(model, n_q, kbps)
    modality = modality_of(model)
    pairs = map_paths(src, dst, modality.extensions, what=modality.name)
    return _run(src, pairs, lambda a, b: reconstruct_file(model, a, b, n_q=n_q), on_error, progress, "reconstruct")


# ----------------------------------------------------------------------------------------------
# Describing and evaluating a model


def item_shape(model: Tokenizer) -> tuple[int, ...] | None:
    """Spatial shape of one training item, from the model's meta (``image_size`` or ``item_shape``)."""
    meta, dims = model.config.meta, model.config.autoencoder.dims
    if "item_shape" in meta:
        return tuple(int(n) for n in meta["item_shape"])
    if "image_size" in meta and dims == 2:
        s = meta["image_size"]
        return tuple(int(n) for n in s) if isinstance(s, (list, tuple)) else (int(s), int(s))
    return None


def model_info(model: ModelLike) -> dict[str, Any]:
    """Facts about a tokenizer: id, modality, codebook, downsampling, tokens and bits per item."""
    model = load_model(model)
    sizes = stage_sizes(model)
    info: dict[str, Any] = {
        "model_id": model.model_id,
        "modality": model.config.modality,
        "quantizer": model.config.quantizer.get("kind", "?"),
        "codebook_size": int(model.codebook_size),
        "stages": len(sizes),
        "downsample_factors": list(model.downsample_factors),
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    if model.config.modality == "audio":
        info.update(frames_per_second=frames_per_second(model), kbps=allowed_kbps(model))
    shape = item_shape(model)
    if shape is not None:
        latent = math.prod(math.ceil(n / f) for n, f in zip(shape, model.downsample_factors))
        bits = latent * sum(math.log2(k) for k in sizes)
        info.update(item_shape=list(shape), tokens_per_item=latent * len(sizes), bits_per_item=bits,
                    rate=rate_text(model.config.modality, bits, math.prod(shape), model.config.meta))
    info["config"] = model.config.to_dict() | {"model_id": model.model_id}
    return info


def _data_section(meta: dict[str, Any], spec: str) -> dict[str, Any]:
    """The run config's ``data`` section that a model's meta implies (what ``Modality.dataset`` reads)."""
    data = {k: v for k, v in meta.items() if k not in ("attribution",)}
    data["train"] = spec
    if "image_size" in meta:
        data["size"] = meta["image_size"]
    return data


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            flat.update(_flatten(v, f"{prefix}{k}."))
        else:
            flat[f"{prefix}{k}"] = v
    return flat


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (list, tuple)):
        return ", ".join(_fmt(x) for x in v)
    return str(v)


def evaluation_markdown(report: dict[str, Any]) -> str:
    """A markdown table of an evaluation report (``metrics`` flattened to dotted names)."""
    lines = [
        f"Model `{report['model_id']}` ({report['modality']}) on `{report['dataset']}`, split `{report['split']}`",
        "",
        "| metric | value |",
        "|---|---|",
    ]
    lines += [f"| {k} | {_fmt(v)} |" for k, v in _flatten(report["metrics"]).items()]
    if report.get("attribution"):
        lines += ["", report["attribution"]]
    return "\n".join(lines) + "\n"


def evaluate_model(
    model: ModelLike,
    data: str | None = None,
    split: str = "test",
    out: PathLike | None = None,
    batch_size: int = 64,
) -> tuple[dict[str, Any], list[Path]]:
    """Evaluate on a dataset (default: the one the model was trained on, held-out split) and write
    ``evaluation.json`` and ``evaluation.md`` into ``out`` (default: the model's run directory).

    Returns (report, written paths); ``report["metrics"]`` is what ``evaluate_tokenizer`` returned.
    """
    from vqfuse.io.atomic import atomic_write_json, atomic_write_text
    from vqfuse.tokenizer import resolve_model_dir
    from vqfuse.train.evaluation import evaluate_tokenizer

    model_dir = None if isinstance(model, Tokenizer) else resolve_model_dir(model)
    model = load_model(model)
    meta = model.config.meta
    spec = data or meta.get("dataset")
    if not spec:
        raise ConfigError("the model does not record the dataset it was trained on; pass --data SPEC")
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {batch_size}")
    modality = modality_of(model)
    dataset = modality.dataset(spec, split, _data_section(meta, spec))
    if len(dataset) == 0:
        raise ConfigError(f"the '{split}' split of dataset '{spec}' is empty")
    metrics = evaluate_tokenizer(model, modality, dataset, batch_size, meta)
    report = {
        "model_id": model.model_id,
        "modality": model.config.modality,
        "dataset": spec,
        "split": split,
        "items": len(dataset),
        "metrics": _jsonable(metrics),
    }
    if meta.get("attribution") and (data is None or str(spec).startswith("emoji")):
        report["attribution"] = meta["attribution"]
    if out is None:
        if model_dir is None:
            raise ConfigError("pass out=... to evaluate_model when giving a Tokenizer object")
        out = model_dir.parent if model_dir.name == "model" else model_dir
    out = Path(out)
    paths = [out / "evaluation.json", out / "evaluation.md"]
    atomic_write_json(paths[0], report)
    atomic_write_text(paths[1], evaluation_markdown(report))
    return report, paths


__all__ = [
    "TOKEN_SUFFIX",
    "FileResult",
    "BatchResult",
    "load_model",
    "pad_to_multiple",
    "encode_tensor",
    "encode_latents",
    "decode_latents",
    "audio_chunking",
    "CHUNK_SECONDS",
    "MARGIN_SECONDS",
    "CROSSFADE_SECONDS",
    "frames_per_second",
    "kbps_for_n_q",
    "allowed_kbps",
    "n_q_for_kbps",
    "resolve_n_q",
    "stage_sizes",
    "decode_tokenfile",
    "check_tokenfile",
    "encode_file",
    "decode_file",
    "reconstruct_file",
    "map_paths",
    "token_name",
    "decoded_name",
    "run_pairs",
    "encode_path",
    "decode_path",
    "reconstruct_path",
    "model_info",
    "evaluate_model",
    "evaluation_markdown",
    "rate_text",
    "summary_line",
]
