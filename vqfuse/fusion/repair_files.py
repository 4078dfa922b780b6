"""`vqfuse repair`: mend a damaged file of one modality of a fusion run through its tokens, with or without
files of the other modalities as conditions (the maths is in `vqfuse.fusion.repair`).

- Which segment a file belongs to is read from its extension (the run's modalities'); `target` names it
  where several segments share a kind.
- With a mask file (the modality's `load_mask`, e.g. an image whose white pixels are missing) the input is
  inpainted: known elements are copied back exactly. Without one, a modality whose `repair_mode` is
  "enhance" (speech) is enhanced.
- Items without a time axis (images) are fitted to the model's size (centre crop + resize, as `vqfuse
  generate` does) and the output is the model-sized repair. Timed items of any length are cut into windows
  of the model's item length along the time axis (the last one zero-padded); each window is repaired and
  the windows are joined and cropped back to the input's length. A condition is one fitted item, shown
  to every window.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from vqfuse.errors import InputFileError, PathLike, VqfuseError
from vqfuse.fusion.model import FusionModel
from vqfuse.fusion.repair import encode_items, enhance, inpaint


@dataclass
class RepairResult:
    src: Path
    dst: Path
    modality: str  # the repaired segment
    mode: str  # "inpaint" or "enhance"
    conditions: tuple[str, ...]  # segments given as conditions
    repaired_fraction: float  # share of the input's tokens that the prior re-infilled
    missing_fraction: float  # inpainting: share of missing elements (0 for enhancement)
    windows: int  # item-length windows processed (1 for untimed items)
    element: str = "elements"  # what the modality's elements are called ("pixels")

    def summary(self) -> str:
        cond = f"with a condition ({', '.join(self.conditions)})" if self.conditions else "without a condition"
        windows = f"{self.windows} window{'s' if self.windows != 1 else ''}"
        if self.mode == "inpaint":
            what = f"inpainted {self.src} ({self.missing_fraction:.0%} of {self.element} missing, {windows}"
        else:
            what = f"enhanced {self.src} ({windows}"
        return f"{what}, {self.repaired_fraction:.0%} of tokens re-infilled, {cond}) -> {self.dst}"


def segment_of(model: FusionModel, path: Path, role: str, exclude: Sequence[str] = ()) -> str:
    """The run's segment whose modality reads `path` (by extension); one clear error otherwise."""
    names = [n for n in model.names if n not in exclude]
    suffix = path.suffix.lower()
    found = [n for n in names if suffix in model.tokenizers[n].modality.extensions]
    if len(found) == 1:
        return found[0]
    if not found:
        kinds = " or ".join(dict.fromkeys(model.tokenizers[n].modality.name for n in names))
        known = sorted({e.lstrip(".") for n in names for e in model.tokenizers[n].modality.extensions})
        raise InputFileError(
            path, f"{role} must be a{'n' if kinds[:1] in 'aeiou' else ''} {kinds} file ({', '.join(known)})"
        )
    raise InputFileError(path, f"{role} could be any of the segments {', '.join(found)}: name one")


def _check_output(model: FusionModel, dst: Path, name: str) -> None:
    exts = model.tokenizers[name].modality.extensions
    if dst.suffix.lower() not in exts:
        raise VqfuseError(f"{dst}: the repaired {name} should end with one of {', '.join(exts)}")


def _condition_codes(model: FusionModel, paths: Sequence[PathLike], target: str) -> dict[str, Tensor]:
    """{segment: codes (1, S, *grid)} of the condition files, each fitted to its segment's item."""
    codes: dict[str, Tensor] = {}
    for raw in paths:
        path = Path(raw)
        name = segment_of(model, path, f"the condition (to repair {target})", exclude=[target])
        if name in codes:
            raise InputFileError(path, f"a second condition for {name}")
        tok = model.tokenizers[name]
        x = model.prepare(name, tok.modality.load_file(path, model.meta(name))[None]).to(model.device)
        codes[name] = encode_items(tok, x, model.stages[name])
    return codes


def _windows(model: FusionModel, name: str, x: Tensor, path: Path) -> tuple[Tensor, int]:
    """One item (C, *any) -> (windows (N, C, *item), its length along the time axis (0 if untimed))."""
    modality = model.tokenizers[name].modality
    if modality.time_axis is None:
        return model.prepare(name, x[None]), 0
    axis = 1 + modality.time_axis  # in (C, *spatial)
    length, window = x.shape[axis], model.item_shapes[name][modality.time_axis]
    if length == 0:
        raise InputFileError(path, f"holds no {modality.element}")
    count = -(-length // window)
    pad = [0, 0] * (x.dim() - 1 - axis) + [0, count * window - length]
    parts = F.pad(x, pad).split(window, dim=axis)
    return model.prepare(name, torch.stack(parts)), length


def parse_steps(spec: str) -> list[tuple[int, int]]:
    """ "9-12,15" -> [(9, 12), (15, 15)]: 1-based inclusive ranges of steps (frames) along the time axis."""
    ranges = []
    for part in str(spec).replace(" ", "").split(","):
        first, _, last = part.partition("-")
        try:
            lo, hi = int(first), int(last or first)
        except ValueError:
            raise VqfuseError(f"--missing takes frame ranges such as 9-12 or 9-12,15; got {spec!r}") from None
        if lo < 1 or hi < lo:
            raise VqfuseError(f"--missing ranges count from 1 and must not run backwards; got {part!r}")
        ranges.append((lo, hi))
    return ranges


def _steps_mask(model: FusionModel, name: str, windows: Tensor, length: int, ranges: list[tuple[int, int]]) -> Tensor:
    """Missing steps along the time axis, 1-based inclusive, of the joined input -> (N, 1, *item) bool."""
    axis = model.tokenizers[name].modality.time_axis
    if axis is None:
        raise VqfuseError(f"--missing is for timed items; {name} has no time axis")
    if max(hi for _, hi in ranges) > length:
        raise VqfuseError(f"--missing reaches step {max(hi for _, hi in ranges)}, the input has {length}")
    count, window = windows.shape[0], windows.shape[2 + axis]
    steps = torch.zeros(count * window, dtype=torch.bool)
    for lo, hi in ranges:
        steps[lo - 1 : hi] = True
    shape = [count, 1] + [1] * (windows.dim() - 2)
    shape[2 + axis] = window
    return steps.reshape(shape).expand(count, 1, *windows.shape[2:])


def _join(model: FusionModel, name: str, items: Tensor, length: int) -> Tensor:
    """Inverse of `_windows`: (N, C, *item) -> one item (C, *spatial), cropped to `length` along time."""
    modality = model.tokenizers[name].modality
    if modality.time_axis is None:
        return items[0]
    axis = 1 + modality.time_axis
    return torch.cat(list(items), dim=axis).narrow(axis, 0, length)


@torch.no_grad()
def repair_file(
    model: FusionModel,
    src: PathLike,
    dst: PathLike,
    *,
    mask: PathLike | None = None,
    missing: str | None = None,
    condition: PathLike | Sequence[PathLike] | None = None,
    target: str | None = None,
    steps: int = 8,
    cfg_scale: float | None = None,
    seed: int = 0,
) -> RepairResult:
    """Inpaint (with `mask` and / or `missing` steps such as "9-12") or enhance `src` into `dst`, conditioned
    on the `condition` file(s) of other segments when given. Raises VqfuseError / InputFileError on bad
    input, before writing."""
    src, dst = Path(src), Path(dst)
    if model.kind != "maskgit":
        raise VqfuseError(f"repair needs a masked (maskgit) prior; this run's prior is {model.kind}")
    if target is not None and target not in model.names:
        raise VqfuseError(f"unknown segment {target!r}; this run has {', '.join(model.names)}")
    name = target or segment_of(model, src, "the input")
    tok = model.tokenizers[name]
    modality, meta = tok.modality, model.meta(name)
    _check_output(model, dst, name)
    ranges = parse_steps(missing) if missing else []
    if mask is None and not ranges and modality.repair_mode != "enhance":
        if modality.repair_mode == "inpaint":
            raise VqfuseError(f"inpainting needs --mask MASK ({modality.mask_help})")
        raise VqfuseError(f"{modality.name} items cannot be repaired")
    if (mask is not None or ranges) and modality.repair_mode == "enhance":
        raise VqfuseError(f"--mask / --missing are for inpainting; {modality.noun} is enhanced without them")
    spatial = modality.load_mask(Path(mask), meta) if mask is not None else None  # (1, 1, *item) or broadcast
    paths = [] if condition is None else [condition] if isinstance(condition, (str, Path)) else list(condition)
    conditions = _condition_codes(model, paths, name)
    windows, length = _windows(model, name, modality.load_file(src, meta), src)
    windows = windows.to(model.device)  # (N, C, *item)
    count = windows.shape[0]
    given = {k: v.expand(count, *v.shape[1:]) for k, v in conditions.items()}
    common = dict(
        n_q=model.stages[name],
        steps=steps,
        cfg_scale=cfg_scale,
        generator=torch.Generator(device=model.device).manual_seed(seed),
    )
    holes = None if spatial is None else spatial.to(model.device).expand(count, 1, *windows.shape[2:])
    if ranges:
        gaps = _steps_mask(model, name, windows, length, ranges).to(model.device)
        holes = gaps if holes is None else holes | gaps
    missing = holes
    if missing is not None:
        out = inpaint(model.prior, model.layout, tok, name, windows, missing, given, **common)
    else:
        out = enhance(model.prior, model.layout, tok, name, windows, given, **common)
    modality.save_file(_join(model, name, out.items.clamp(-1, 1), length).cpu(), dst, meta)
    return RepairResult(
        src,
        dst,
        name,
        "inpaint" if missing is not None else "enhance",
        tuple(conditions),
        float(out.unknown.float().mean()),
        float(missing.float().mean()) if missing is not None else 0.0,
        count,
        modality.element,
    )


__all__ = ["RepairResult", "repair_file", "segment_of"]
