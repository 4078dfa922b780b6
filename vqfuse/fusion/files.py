"""`vqfuse generate` on files: from a file or folder tree of one modality to files of another, and joint
samples of every modality into a folder. The file handling is the codec's (`vqfuse.io.paths`)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from vqfuse.errors import InputFileError, PathLike, VqfuseError
from vqfuse.fusion.model import FusionModel
from vqfuse.io.paths import BatchResult, ErrorHandler, FileResult, map_paths
from vqfuse.modalities import get_modality


def _output_pairs(src: Path, dst: Path, source: str, target: str) -> list[tuple[Path, Path]]:
    """(input, output) files: a file to a file (or into a folder), a folder tree to a mirrored folder tree;
    outputs take the target modality's suffix (cat.png -> cat.wav; cat.png.wav when two inputs share a stem)."""
    src_mod, dst_mod = get_modality(source), get_modality(target)
    suffix = dst_mod.default_output_suffix()
    into_folder = dst.is_dir() or str(dst).endswith(("/", "\\"))
    if src.is_file() and src.suffix.lower() not in src_mod.extensions:
        raise InputFileError(
            src,
            f"not an {source} file ({', '.join(e.lstrip('.') for e in src_mod.extensions)}); "
            f"--to {target} generates from {source}",
        )
    if src.is_file() and not into_folder and dst.suffix.lower() not in dst_mod.extensions:
        raise VqfuseError(
            f"{dst}: a generated {target} file should end with one of {', '.join(dst_mod.extensions)} "
            "(or name an existing folder)"
        )
    pairs = map_paths(src, dst, src_mod.extensions, lambda n: Path(n).stem + suffix, what=source)
    outs = [b for _, b in pairs]
    clash = {b for b in outs if outs.count(b) > 1}
    return [(a, b.with_name(a.name + suffix) if b in clash else b) for a, b in pairs]


def source_of(model: FusionModel, src: PathLike, to: str) -> str:
    """The modality to generate `to` from: the other one of a two-modality model, else the one whose file
    suffixes the input has."""
    if len(model.names) == 2:
        return model.other(to)
    suffix = Path(src).suffix.lower()
    found = [n for n in model.names if n != to and suffix in model.tokenizers[n].modality.extensions]
    if len(found) != 1:
        raise VqfuseError(
            f"{src}: cannot tell which of {', '.join(n for n in model.names if n != to)} to generate "
            f"{to} from; give a file of one of them"
        )
    return found[0]


def generate_path(
    model: FusionModel,
    src: PathLike,
    dst: PathLike,
    to: str,
    *,
    batch_size: int = 32,
    on_error: ErrorHandler | None = None,
    progress: bool = False,
    seed: int | None = 0,
    **sampling: Any,
) -> BatchResult:
    """Generate `to` files from another modality's file or folder tree (`vqfuse generate --from`).

    A folder's tree is mirrored into `dst` (a/cat.png -> dst/a/cat.wav). Unreadable files of a folder are
    reported through `on_error(path, exc)` and skipped; for a single file the error is raised. `sampling`
    goes to `FusionModel.generate` (steps, temperature, cfg_scale, top_k, top_p, rerank). The result counts
    the generated tokens per file.
    """
    from tqdm.auto import tqdm

    source = source_of(model, src, to)
    src, dst = Path(src), Path(dst)
    pairs = _output_pairs(src, dst, source, to)
    src_mod, dst_mod = get_modality(source), get_modality(to)
    src_meta, dst_meta = model.meta(source), model.meta(to)
    generator = torch.Generator(device=model.device).manual_seed(seed) if seed is not None else None
    n_tokens = model.layout.segment(to).n_tokens
    result = BatchResult()

    def skip(path: Path, exc: VqfuseError) -> None:
        """A bad file inside a folder is reported and skipped; a single bad file is the error."""
        if not src.is_dir():
            raise exc
        result.failed.append((path, str(exc)))
        if on_error is not None:
            on_error(path, exc)

    start = time.perf_counter()
    bar = tqdm(total=len(pairs), desc="generate", unit="file", disable=not progress or len(pairs) < 2, leave=False)
    try:
        for i in range(0, len(pairs), batch_size):
            chunk, inputs = [], []
            for a, b in pairs[i : i + batch_size]:
                try:
                    x = src_mod.load_file(a, src_meta)
                    inputs.append(model.prepare(source, x.unsqueeze(0))[0])
                    chunk.append((a, b))
                except VqfuseError as exc:
                    skip(a, exc)
                    bar.update(1)
            if not chunk:
                continue
            y = model.generate(
                torch.stack(inputs), to, source=source, generator=generator, batch_size=batch_size, **sampling
            ).cpu()
            for (a, b), item in zip(chunk, y):
                try:
                    dst_mod.save_file(item, b, dst_meta)
                    size = list(item.shape[1:])
                    result.done.append(
                        FileResult(
                            a, b, n_tokens, 0.0, dst_mod.extent(size, dst_meta), dst_mod.duration(size, dst_meta) or 0.0
                        )
                    )
                except VqfuseError as exc:
                    skip(a, exc)
                bar.update(1)
    finally:
        bar.close()
    result.seconds = time.perf_counter() - start
    return result


def continue_path(
    model: FusionModel,
    src: PathLike,
    dst: PathLike,
    steps_after: int,
    *,
    to: str | None = None,
    seed: int | None = 0,
    **sampling: Any,
) -> FileResult:
    """`vqfuse generate --from clip.mp4 --to video out.mp4 --frames N`: the input file continued by `steps_after`
    steps of its own modality (frames of a clip), written to `dst` in that modality's format."""
    from vqfuse.fusion.repair_files import segment_of

    src, dst = Path(src), Path(dst)
    name = segment_of(model, src, "the input")
    if to is not None and to != name:
        raise VqfuseError(f"--frames continues {src} in its own modality: use --to {name}")
    modality, meta = model.tokenizers[name].modality, model.meta(name)
    if dst.suffix.lower() not in modality.extensions:
        raise VqfuseError(f"{dst}: the continued {name} should end with one of {', '.join(modality.extensions)}")
    x = modality.load_file(src, meta)
    generator = torch.Generator(device=model.device).manual_seed(seed) if seed is not None else None
    y = model.continue_items(name, x[None], steps_after, generator=generator, **sampling)[0].cpu()
    note = modality.save_output(y.clamp(-1, 1), dst, meta, source=src)
    size = list(y.shape[1:])
    return FileResult(src, dst, 0, 0.0, modality.extent(size, meta), modality.duration(size, meta) or 0.0, note)


def sample_joint_path(
    model: FusionModel, n: int, out_dir: PathLike, *, batch_size: int = 32, seed: int | None = 0, **sampling: Any
) -> list[tuple[Path, ...]]:
    """`vqfuse generate --joint N OUT_DIR`: out_dir/sample-000.png + sample-000.wav (one file per modality, in
    the model's order), ...; returns the files of each sample."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputFileError(out_dir, "exists and is not a folder (joint samples go into a folder)")
    generator = torch.Generator(device=model.device).manual_seed(seed) if seed is not None else None
    samples = model.sample_joint(n, generator=generator, batch_size=batch_size, **sampling)
    width = max(3, len(str(n - 1)))
    suffixes = {name: model.tokenizers[name].modality.default_output_suffix() for name in model.names}
    if len(set(suffixes.values())) < len(suffixes):  # two modalities writing the same format: name them
        suffixes = {name: f"-{name}{s}" for name, s in suffixes.items()}
    written = []
    for i in range(n):
        stem = out_dir / f"sample-{i:0{width}d}"
        files = []
        for name in model.names:
            path = stem.parent / (stem.name + suffixes[name])
            model.tokenizers[name].modality.save_file(samples[name][i].cpu(), path, model.meta(name))
            files.append(path)
        written.append(tuple(files))
    return written


__all__ = ["generate_path", "sample_joint_path", "source_of"]
