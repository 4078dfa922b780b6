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


register_modality(ImageModality())
