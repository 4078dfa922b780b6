"""Images: RGB (3, H, W) in [-1, 1]; PNG/JPEG/... files; sample grids; PSNR/SSIM."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from vqfuse.data.emoji import OPENMOJI_ATTRIBUTION
from vqfuse.data.image_files import load_image_file, save_image_file
from vqfuse.data.registry import image_dataset
from vqfuse.errors import VqfuseError
from vqfuse.modalities.base import Modality, register_modality

DEFAULT_IMAGE_SIZE = 32


def image_grid(rows: list[Tensor], pad: int = 2) -> Tensor:
    """rows of (B, 3, H, W) -> one (3, H', W') grid: each input row above its reconstruction row."""
    tiles = torch.stack(rows, dim=0)  # (R, B, 3, H, W)
    tiles = F.pad(tiles, (pad, pad, pad, pad), value=1.0)
    r, b, c, h, w = tiles.shape
    return tiles.permute(2, 0, 3, 1, 4).reshape(c, r * h, b * w)


class ImageModality(Modality):
    name = "image"
    dims = 2
    extensions = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif")
    rate_unit, rate_scale, rate_key = "bits/pixel", 1.0, "bits_per_pixel"
    repair_mode = "inpaint"
    robustness_sweep = True
    element, mask_help = "pixels", "an image file: white = missing, black = kept"

    def dataset(self, spec: str, split: str, data: dict[str, Any]) -> Dataset:
        return image_dataset(spec, size=int(data.get("size", DEFAULT_IMAGE_SIZE)), split=split)

    def meta(self, data: dict[str, Any]) -> dict[str, Any]:
        meta = {"image_size": int(data.get("size", DEFAULT_IMAGE_SIZE)), "dataset": data.get("train", "")}
        if str(data.get("train", "")).startswith("emoji"):
            meta["attribution"] = OPENMOJI_ATTRIBUTION
        return meta

    def data_section(self, meta: dict[str, Any], spec: str) -> dict[str, Any]:
        data = super().data_section(meta, spec)
        if "image_size" in meta:
            data["size"] = meta["image_size"]
        return data

    def item_shape(self, meta: dict[str, Any]) -> tuple[int, ...] | None:
        if "item_shape" in meta:
            return super().item_shape(meta)
        size = meta.get("image_size")
        if size is None:
            return None
        return tuple(int(n) for n in size) if isinstance(size, (list, tuple)) else (int(size), int(size))

    def describe(self, size: tuple[int, ...] | list[int], meta: dict[str, Any]) -> str:
        return f"{'x'.join(str(int(n)) for n in size)} px"

    def fit(self, x: Tensor, meta: dict[str, Any]) -> Tensor:
        """(B, 3, H, W) or (3, H, W) -> (B, 3, S, S): the shorter side resized to S, centre-cropped."""
        if x.dim() == 3:
            x = x.unsqueeze(0)
        if x.dim() != 4 or x.shape[1] != 3:
            raise VqfuseError(f"images must be (B, 3, H, W), got {tuple(x.shape)}")
        shape = self.item_shape(meta)
        if shape is not None and tuple(x.shape[-2:]) != shape:
            h, w = x.shape[-2:]
            side = min(h, w)
            top, left = (h - side) // 2, (w - side) // 2
            x = x[..., top : top + side, left : left + side]
            x = F.interpolate(x.float(), size=shape, mode="bicubic", align_corners=False, antialias=side > min(shape))
        return x.float().clamp(-1, 1)

    def load_file(self, path: Path, meta: dict[str, Any]) -> Tensor:
        return load_image_file(path)

    def save_file(self, x: Tensor, path: Path, meta: dict[str, Any]) -> None:
        save_image_file(x, path)

    def save_samples(self, inputs: Tensor, outputs: Tensor, path: Path, meta: dict[str, Any]) -> list[Path]:
        """PNG grid: pairs of rows (inputs above reconstructions), 8 per row."""
        n = min(inputs.shape[0], 32)
        per_row = min(8, n)
        rows = []
        for start in range(0, n - n % per_row or n, per_row):
            rows += [inputs[start : start + per_row], outputs[start : start + per_row]]
        grid = image_grid([r.clamp(-1, 1).float().cpu() for r in rows])
        path = Path(path).with_suffix(".png")
        save_image_file(grid, path)
        return [path]

    def metrics(self, outputs: Tensor, inputs: Tensor, meta: dict[str, Any]) -> dict[str, float]:
        from vqfuse.metrics.image import psnr, ssim  # torchmetrics import costs ~2 s: only when needed

        outputs = outputs.clamp(-1, 1).float()
        return {"psnr": float(psnr(outputs, inputs.float())), "ssim": float(ssim(outputs, inputs.float()))}

    def load_mask(self, path: Path, meta: dict[str, Any]) -> Tensor:
        """An image file of any size, fitted like the images: bright pixels (grey above the middle) are
        missing. -> (1, 1, S, S) bool."""
        from vqfuse.errors import InputFileError

        grey = self.fit(load_image_file(path)[None], meta).mean(1, keepdim=True)
        mask = grey > 0.0  # images are in [-1, 1]
        if not bool(mask.any()):
            raise InputFileError(path, "the mask marks no pixel as missing (white = missing, black = kept)")
        return mask

    def damage(self, items: Tensor, generator: Any, settings: dict[str, Any]) -> tuple[Tensor, Tensor | None]:
        """One box per image covering ``frac_range`` (0.25-0.5) of it, set to 0 (the middle grey)."""
        from vqfuse.fusion.damage import random_box_mask

        b, _, h, w = items.shape
        mask = random_box_mask(b, h, w, tuple(settings.get("frac_range", (0.25, 0.5))), generator)
        mask = mask.to(items.device)
        return items.masked_fill(mask.expand_as(items), 0.0), mask

    def repair_scores(self, repaired: Tensor, clean: Tensor, damaged: Tensor, mask: Tensor | None) -> dict[str, Tensor]:
        """PSNR over the missing pixels, per item."""
        from vqfuse.fusion.damage import masked_psnr

        if mask is None:
            raise ValueError("image repair is scored over a mask of missing pixels")
        return {"masked_psnr": masked_psnr(repaired, clean, mask, reduction="none")}

    def make_judge(self, num_classes: int) -> Any:
        from vqfuse.fusion.judge_kinds import ImageJudge

        return ImageJudge(num_classes=num_classes)


register_modality(ImageModality())
