"""Using a trained tokenizer on files: encode, decode, reconstruct, evaluate, describe.

This is the Python API behind the CLI; every command is one call here::

    from vqfuse.codec import encode_path, decode_path, load_model
    model = load_model("runs/demo/image-emoji32")
    encode_path(model, "photos/", "tokens/")          # photos/a/cat.png -> tokens/a/cat.png.vqf
    decode_path(model, "tokens/", "decoded/")         # tokens/a/cat.png.vqf -> decoded/a/cat.png

Any input size works: each spatial axis is padded at its end, by repeating the edge sample
("replicate"), up to a multiple of the model's downsampling factor. The token file records the original
size (``meta["size"]``) and decoding crops back to it, so a 37x23 image decodes to 37x23.

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
from vqfuse.tokenizer import Tokenizer

TOKEN_SUFFIX = ".vqf"
ModelLike = Union[Tokenizer, PathLike]
ErrorHandler = Callable[[Path, VqfuseError], None]


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


def summary_line(verb: str, result: BatchResult, modality: str, meta: dict[str, Any] | None = None) -> str:
    """One line: ``encoded 3 files: 192 tokens, 0.625 bits/pixel, 0.41 s`` (plus failures)."""
    n = len(result.done)
    text = (
        f"{verb} {n} file{'s' if n != 1 else ''}: {result.tokens} tokens, "
        f"{rate_text(modality, result.bits, result.units, meta)}, {result.seconds:.2f} s"
    )
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


def encode_tensor(model: Tokenizer, x: Tensor, n_q: int | None = None, source: str = "") -> TokenFile:
    """One item (C, *spatial) in [-1, 1], any spatial size -> a TokenFile ready to write.

    ``meta`` records the original spatial size (``size``) so that :func:`decode_tokenfile` crops back,
    and the source file name (``source``) when given.
    """
    cfg = model.config.autoencoder
    if x.dim() != cfg.dims + 1 or x.shape[0] != cfg.in_channels:
        raise ValueError(f"expected one item of shape ({cfg.in_channels}, <{cfg.dims} axes>), got {tuple(x.shape)}")
    _check_n_q(model, n_q)
    size = [int(n) for n in x.shape[1:]]
    padded = pad_to_multiple(x.float(), model.downsample_factors)
    indices = model.encode(padded.unsqueeze(0).to(_device(model)), n_q=n_q)[0].cpu()  # (*latent) or (n_q, *latent)
    sizes = stage_sizes(model, n_q)
    meta: dict[str, Any] = {"size": size}
    if source:
        meta["source"] = source
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
def decode_tokenfile(model: Tokenizer, tf: TokenFile, path: PathLike = "<tokens>") -> Tensor:
    """A TokenFile -> one item (C, *spatial) in [-1, 1], cropped to the original size."""
    size = check_tokenfile(model, tf, path)
    indices = torch.as_tensor(tf.indices).long().unsqueeze(0).to(_device(model))
    x = model.decode(indices)[0].float().cpu()  # (C, *padded)
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


def encode_file(model: Tokenizer, in_path: PathLike, out_path: PathLike, n_q: int | None = None) -> FileResult:
    """One input file -> one ``.vqf`` token file (written atomically)."""
    in_path, out_path = Path(in_path), Path(out_path)
    x = _load_item(model, in_path)
    tf = _guard_memory(in_path, lambda: encode_tensor(model, x, n_q=n_q, source=in_path.name))
    write_tokens(out_path, tf)
    tokens, bits = _token_bits(tf)
    return FileResult(in_path, out_path, tokens, bits, math.prod(tf.meta["size"]))


def decode_file(model: Tokenizer, in_path: PathLike, out_path: PathLike) -> FileResult:
    """One ``.vqf`` token file -> one output file in the modality's format (chosen by the suffix)."""
    in_path, out_path = Path(in_path), Path(out_path)
    tf = read_tokens(in_path)
    x = _guard_memory(in_path, lambda: decode_tokenfile(model, tf, in_path))
    modality_of(model).save_file(x, out_path, model.config.meta)
    tokens, bits = _token_bits(tf)
    return FileResult(in_path, out_path, tokens, bits, math.prod(x.shape[1:]))


def reconstruct_file(model: Tokenizer, in_path: PathLike, out_path: PathLike, n_q: int | None = None) -> FileResult:
    """encode + decode in memory: the output is exactly what ``decode(encode(in))`` would write."""
    in_path, out_path = Path(in_path), Path(out_path)
    x = _load_item(model, in_path)

    def run() -> tuple[TokenFile, Tensor]:
        tf = encode_tensor(model, x, n_q=n_q, source=in_path.name)
        return tf, decode_tokenfile(model, tf, in_path)

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
) -> BatchResult:
    """Encode a file to ``dst`` (a ``.vqf`` path or a folder), or a folder tree into folder ``dst``.

    For a single file the first error is raised; in a folder, failing files are reported and skipped.
    """
    model = load_model(model)
    _check_n_q(model, n_q)
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
) -> BatchResult:
    """encode + decode a file, or a folder tree into folder ``dst`` (same names, same formats)."""
    model = load_model(model)
    _check_n_q(model, n_q)
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


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, Tensor):
        return _jsonable(v.tolist())
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if hasattr(v, "item") and callable(v.item):  # numpy scalars
        return _jsonable(v.item())
    return v


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
