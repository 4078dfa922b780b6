"""Image files and image arrays: load/save, uint8 <-> tensor conversions, resizing, the in-memory base.

Image tensors are float32 ``(3, H, W)``, channel-first RGB, with values in ``[-1, 1]``; arrays are
uint8 ``(H, W, 3)``. Every problem reading or writing a file becomes an
:class:`~vqfuse.errors.InputFileError` naming it.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch.utils.data import Dataset

from vqfuse.errors import InputFileError, PathLike, VqfuseError
from vqfuse.io.atomic import atomic_path

IMAGE_EXTENSIONS: tuple[str, ...] = ("png", "jpg", "jpeg", "webp", "bmp", "tif", "tiff", "gif")


# ----------------------------------------------------------------------------------------------
# Conversions


def uint8_to_tensor(image: np.ndarray) -> torch.Tensor:
    """``(H, W, 3)`` uint8 -> ``(3, H, W)`` float32 in [-1, 1]."""
    if not image.flags.writeable:  # e.g. np.asarray(PIL image); torch warns on read-only arrays
        image = image.copy()
    t = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)  # (3, H, W)
    return t.float().div_(127.5).sub_(1.0)


def tensor_to_uint8(image: torch.Tensor) -> np.ndarray:
    """``(3, H, W)``, ``(1, H, W)`` or ``(H, W)`` in [-1, 1] -> ``(H, W, 3)`` uint8 (values clamped)."""
    t = image.detach().to("cpu", torch.float32)
    if t.dim() == 2:
        t = t.unsqueeze(0)
    if t.dim() != 3 or t.shape[0] not in (1, 3):
        raise ValueError(f"expected an image tensor (3, H, W), (1, H, W) or (H, W); got {tuple(image.shape)}")
    if t.shape[0] == 1:
        t = t.expand(3, -1, -1)
    t = ((t.clamp(-1.0, 1.0) + 1.0) * 127.5).round().to(torch.uint8)  # (3, H, W)
    return t.permute(1, 2, 0).contiguous().numpy()  # (H, W, 3)


def _to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode -> RGB; transparency is composited onto white, 16-bit greys are scaled down."""
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        arr = np.asarray(img, dtype=np.float64)
        if img.mode == "F":
            top = 1.0 if arr.size and float(arr.max()) <= 1.0 else 255.0
        else:
            top = 65535.0 if arr.size and float(arr.max()) > 255 else 255.0
        arr = np.clip(arr / top * 255.0, 0, 255).round().astype(np.uint8)
        img = Image.fromarray(arr, "L")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        img = img.convert("RGBA")
        white = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, img)
    return img.convert("RGB") if img.mode != "RGB" else img


def fit_square(img: Image.Image, size: int) -> Image.Image:
    """Resize so the shorter side is ``size``, then centre-crop to ``(size, size)``."""
    w, h = img.size
    side = min(w, h)
    left, top = (w - side) / 2.0, (h - side) / 2.0
    box = (left, top, left + side, top + side)
    return img.resize((size, size), Image.Resampling.BICUBIC, box=box, reducing_gap=3.0)


def check_image_size(size: int, minimum: int = 4) -> int:
    """``size`` if it is an integer >= ``minimum``, else a :class:`VqfuseError`."""
    if not isinstance(size, int) or size < minimum:
        raise VqfuseError(f"image size must be an integer >= {minimum}, got {size!r}")
    return size


# ----------------------------------------------------------------------------------------------
# Image files


def image_problem(exc: BaseException) -> str:
    """A short, user-facing description of why an image file could not be read."""
    if isinstance(exc, FileNotFoundError):
        return "file does not exist"
    if isinstance(exc, IsADirectoryError):
        return "is a directory, expected an image file"
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, UnidentifiedImageError):
        return "cannot identify image file (not an image or corrupt)"
    if isinstance(exc, Image.DecompressionBombError):
        return f"image too large ({exc})"
    text = str(exc).strip()
    if "truncated" in text.lower():
        return f"image file is truncated ({text})" if text else "image file is truncated"
    if isinstance(exc, (SyntaxError, ValueError, EOFError)):
        return f"corrupt image data ({text or type(exc).__name__})"
    if isinstance(exc, OSError):
        return f"cannot read image ({exc.strerror or text or type(exc).__name__})"
    return f"cannot decode image ({type(exc).__name__}: {text})"


def decode_image(path: PathLike, draft_size: int | None = None, verify: bool = True) -> Image.Image:
    """Fully decode an image file to RGB (first frame); raises the underlying PIL/OS error.

    ``verify`` runs PIL's structural check (e.g. PNG chunk CRCs) before decoding; ``draft_size``
    lets JPEG decode at a reduced scale that still covers ``(draft_size, draft_size)``.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PIL warns about odd EXIF/ICC data; the decode decides
        if verify:
            with Image.open(path) as probe:
                probe.verify()
        with Image.open(path) as img:
            if draft_size is not None and img.format == "JPEG":
                img.draft("RGB", (draft_size, draft_size))
            img.load()
            img = ImageOps.exif_transpose(img) or img
            return _to_rgb(img)


def load_image_file(path: PathLike) -> torch.Tensor:
    """Read an image file at full resolution -> ``(3, H, W)`` float32 in [-1, 1].

    Raises :class:`InputFileError` naming the file and the problem if it cannot be read.
    """
    try:
        img = decode_image(path)
    except Exception as exc:  # noqa: BLE001 - any decoder failure becomes a user-facing error
        raise InputFileError(path, image_problem(exc)) from None
    return uint8_to_tensor(np.asarray(img))


def save_image_file(image: torch.Tensor, path: PathLike) -> None:
    """Write ``(3, H, W)`` (or ``(1, H, W)``/``(H, W)``) in [-1, 1] as an image file, atomically.

    The format comes from the extension (png, jpg, webp, bmp, tif, gif, ...). Missing parent
    folders are created.
    """
    path = Path(path)
    ext = path.suffix.lower()
    fmt = Image.registered_extensions().get(ext)
    if fmt is None or fmt not in Image.SAVE:
        raise InputFileError(path, f"unsupported image file extension '{path.suffix}'; use .png, .jpg, .webp or .bmp")
    pil = Image.fromarray(tensor_to_uint8(image), "RGB")
    kwargs = {"quality": 95} if fmt in ("JPEG", "WEBP") else {}
    try:
        with atomic_path(path) as tmp:
            pil.save(tmp, format=fmt, **kwargs)
    except OSError as exc:
        raise InputFileError(path, f"cannot write image ({exc.strerror or exc})") from None


# ----------------------------------------------------------------------------------------------
# Base class


class ArrayImageDataset(Dataset):
    """Images held in memory as one uint8 array ``(N, S, S, 3)`` with a string key per item."""

    def __init__(self, images: np.ndarray, keys: Sequence[str]) -> None:
        assert images.ndim == 4 and images.shape[-1] == 3 and images.dtype == np.uint8, images.shape
        assert len(keys) == len(images)
        self.images: np.ndarray = images  # (N, S, S, 3) uint8
        self.keys: list[str] = list(keys)
        self.size: int = int(images.shape[1])

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return uint8_to_tensor(self.images[i])  # (3, S, S)

    def as_tensor(self) -> torch.Tensor:
        """All items at once: ``(N, 3, S, S)`` float32 in [-1, 1] (handy for small in-memory training)."""
        t = torch.from_numpy(self.images).permute(0, 3, 1, 2)  # (N, 3, S, S)
        return t.float().div_(127.5).sub_(1.0)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n={len(self)}, size={self.size})"


__all__ = [
    "IMAGE_EXTENSIONS",
    "ArrayImageDataset",
    "uint8_to_tensor",
    "tensor_to_uint8",
    "fit_square",
    "check_image_size",
    "image_problem",
    "decode_image",
    "load_image_file",
    "save_image_file",
]
