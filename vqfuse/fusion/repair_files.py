"""`vqfuse repair`: inpaint an image file or enhance a speech file through a fusion run's tokens, with or
without a file of the other modality as condition (the maths is in `vqfuse.fusion.repair`).

- Images are fitted to the model's size (centre crop + resize, as `vqfuse generate` does); the mask is an
  image file of any size, fitted the same way, whose bright pixels (grey level above the middle) are missing.
  The output is the model-sized composite: known pixels kept, missing ones decoded.
- Speech of any length is resampled to the model's rate and cut into windows of the model's clip length
  (the last one zero-padded); each window is enhanced (spectral gain on the noisy input, its phase kept)
  and the windows are joined and cropped back to the input's length.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from vqfuse.errors import InputFileError, PathLike, VqfuseError
from vqfuse.fusion.model import FusionModel
from vqfuse.fusion.repair import enhance, inpaint
from vqfuse.fusion.tokens import encode_with_stages
from vqfuse.modalities import get_modality


@dataclass
class RepairResult:
    src: Path
    dst: Path
    modality: str            # "image" (inpainted) or "audio" (enhanced)
    conditioned: bool        # whether a file of the other modality was the condition
    repaired_fraction: float  # share of the input's tokens that the prior re-infilled
    missing_fraction: float   # images: share of missing pixels (0 for audio)
    windows: int              # audio: clip-length windows processed (1 for images)

    def summary(self) -> str:
        cond = "with" if self.conditioned else "without"
        if self.modality == "image":
            what = f"inpainted {self.src} ({self.missing_fraction:.0%} of pixels missing"
        else:
            what = f"enhanced {self.src} ({self.windows} window{'s' if self.windows != 1 else ''}"
        return (f"{what}, {self.repaired_fraction:.0%} of tokens re-infilled, {cond} a condition) -> {self.dst}")


def _modality_of(path: Path, role: str) -> str:
    suffix = path.suffix.lower()
    for name in ("image", "audio"):
        if suffix in get_modality(name).extensions:
            return name
    known = get_modality("image").extensions + get_modality("audio").extensions
    raise InputFileError(path, f"{role} must be an image or audio file ({', '.join(e.lstrip('.') for e in known)})")


def _meta(model: FusionModel, name: str = "image") -> dict[str, Any]:
    return model.meta(name)


def load_mask(model: FusionModel, path: PathLike) -> Tensor:
    """Mask image file -> (1, 1, S, S) bool, True = missing (bright pixels), fitted like the images."""
    path = Path(path)
    if _modality_of(path, "the mask") != "image":
        raise InputFileError(path, "the mask must be an image file (white = missing)")
    grey = model.prepare("image", get_modality("image").load_file(path, _meta(model))[None]).mean(1, keepdim=True)
    mask = grey > 0.0  # (1, 1, S, S); images are in [-1, 1]
    if not bool(mask.any()):
        raise InputFileError(path, "the mask marks no pixel as missing (white = missing, black = kept)")
    return mask


def _condition_tokens(model: FusionModel, path: PathLike | None, want: str) -> Tensor | None:
    """The condition file's tokens for the prior: image (1, h, w) or audio (1, n_q, F); None without one."""
    if path is None:
        return None
    path = Path(path)
    found = _modality_of(path, "the condition")
    if found != want:
        other = "audio" if want == "image" else "image"
        raise InputFileError(path, f"the condition must be an {want} file to repair {other} (got an {found} file)")
    x = model.prepare(want, get_modality(want).load_file(path, _meta(model, want))[None]).to(model.device)
    with torch.no_grad():
        if want == "image":
            return model.tokenizers["image"].encode(x)
        return encode_with_stages(model.tokenizers["audio"], x, model.stages["audio"])


def _check_output(dst: Path, modality: str) -> None:
    exts = get_modality(modality).extensions
    if dst.suffix.lower() not in exts:
        raise VqfuseError(f"{dst}: the repaired {modality} should end with one of {', '.join(exts)}")


@torch.no_grad()
def repair_file(model: FusionModel, src: PathLike, dst: PathLike, *, mask: PathLike | None = None,
                condition: PathLike | None = None, steps: int = 8, cfg_scale: float | None = None,
                seed: int = 0) -> RepairResult:
    """Inpaint (image `src`, with `mask`) or enhance (audio `src`) into `dst`, conditioned on the `condition`
    file of the other modality when given. Raises VqfuseError / InputFileError on bad input, before writing."""
    src, dst = Path(src), Path(dst)
    if model.kind != "maskgit":
        raise VqfuseError(f"repair needs a masked (maskgit) prior; this run's prior is {model.kind}")
    modality = _modality_of(src, "the input")
    _check_output(dst, modality)
    generator = torch.Generator(device=model.device).manual_seed(seed)
    x = get_modality(modality).load_file(src, _meta(model, modality))
    if modality == "image":
        if mask is None:
            raise VqfuseError("inpainting needs --mask MASK (an image file: white = missing, black = kept)")
        pixel_mask = load_mask(model, mask).to(model.device)
        image = model.prepare("image", x[None]).to(model.device)  # (1, 3, S, S)
        out = inpaint(model.prior, model.layout, model.tokenizers["image"], image, pixel_mask,
                      _condition_tokens(model, condition, "audio"), steps=steps, cfg_scale=cfg_scale,
                      generator=generator)
        get_modality("image").save_file(out.images[0].cpu(), dst, _meta(model))
        return RepairResult(src, dst, "image", condition is not None, float(out.unknown.float().mean()),
                            float(pixel_mask.float().mean()), 1)
    if mask is not None:
        raise VqfuseError("--mask is for inpainting images; speech is enhanced without one")
    cond = _condition_tokens(model, condition, "image")
    length = x.shape[-1]
    if length == 0:
        raise InputFileError(src, "holds no audio samples")
    window = model.item_shapes["audio"][0]
    count = -(-length // window)
    clips = F.pad(x.reshape(1, -1), (0, count * window - length)).reshape(count, 1, window).to(model.device)
    result = enhance(model.prior, model.layout, model.tokenizers["audio"], clips,
                     None if cond is None else cond.expand(count, *cond.shape[1:]), n_q=model.stages["audio"], steps=steps,
                     cfg_scale=cfg_scale, generator=generator)  # fmt: skip
    audio = result.audio.reshape(1, -1)[:, :length].clamp(-1, 1).cpu()  # (1, T)
    get_modality("audio").save_file(audio, dst, _meta(model, "audio"))
    return RepairResult(src, dst, "audio", condition is not None, float(result.unknown.float().mean()), 0.0, count)


__all__ = ["RepairResult", "repair_file", "load_mask"]
