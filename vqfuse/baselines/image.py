"""WebP and JPEG through Pillow at a byte (or bits-per-pixel) budget.

The rule, as in `benchmarks/image.py`: the highest quality whose file fits the budget, found by bisection
over the quality setting (file size grows with quality, close enough to monotone for a search); when even
the lowest quality does not fit, the lowest quality is used and its larger rate reported.
"""

from __future__ import annotations

import io
import math
from typing import Literal

import numpy as np
from PIL import Image

__all__ = [
    "CODECS",
    "QUALITY_RANGES",
    "WEBP_RIFF_OVERHEAD",
    "classic_at_bpp",
    "classic_at_budget",
    "decode_image",
    "encode_image",
    "psnr_uint8",
]

ImageCodec = Literal["webp", "jpeg"]
CODECS: tuple[str, ...] = ("webp", "jpeg")
QUALITY_RANGES: dict[str, tuple[int, int]] = {"webp": (0, 100), "jpeg": (1, 95)}  # lowest, highest searched
WEBP_RIFF_OVERHEAD = 20  # 'RIFF' size 'WEBP' + 'VP8 ' chunk header: container bytes, not payload


def psnr_uint8(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two uint8 arrays of one shape (peak 255); inf when they are equal."""
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * math.log10(255.0**2 / mse)


def check_image(image: np.ndarray) -> None:
    """Raise ValueError unless `image` is a non-empty (H, W, 3) uint8 array."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
        shape, dtype = getattr(image, "shape", None), getattr(image, "dtype", None)
        raise ValueError(f"expected an (H, W, 3) uint8 image, got {type(image).__name__} {shape} {dtype}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"image is empty: shape {image.shape}")


def _check_codec(codec: str) -> None:
    if codec not in CODECS:
        raise ValueError(f"codec must be one of {CODECS}, got {codec!r}")


def encode_image(img: Image.Image, codec: ImageCodec, quality: int) -> bytes:
    """The whole file of `img` as WebP (method 6, the slowest and smallest) or optimised JPEG."""
    buf = io.BytesIO()
    if codec == "webp":
        img.save(buf, format="WEBP", quality=quality, method=6)
    else:
        img.save(buf, format="JPEG", quality=quality, optimize=True)
    return buf.getvalue()


def decode_image(data: bytes) -> np.ndarray:
    """File bytes -> (H, W, 3) uint8 RGB."""
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def classic_at_budget(
    image: np.ndarray, codec: ImageCodec, max_bytes: float, overhead: int = 0
) -> tuple[np.ndarray, float]:
    """Highest quality whose (file size - overhead) fits `max_bytes`: (decoded (H, W, 3) uint8, bits per pixel).

    bits per pixel = (file size - overhead) * 8 / (H * W). When even the lowest quality does not fit, the
    smallest file is used and its (higher) bits per pixel is returned.
    """
    check_image(image)
    _check_codec(codec)
    img = Image.fromarray(image)
    lowest, highest = QUALITY_RANGES[codec]
    lo, hi = lowest, highest
    best: bytes | None = None
    while lo <= hi:
        q = (lo + hi) // 2
        data = encode_image(img, codec, q)
        if len(data) - overhead <= max_bytes:
            best, lo = data, q + 1
        else:
            hi = q - 1
    if best is None:
        best = encode_image(img, codec, lowest)
    return decode_image(best), (len(best) - overhead) * 8 / (image.shape[0] * image.shape[1])


def classic_at_bpp(image: np.ndarray, codec: ImageCodec, bpp: float) -> tuple[np.ndarray, float]:
    """WebP or JPEG of an (H, W, 3) uint8 image at `bpp` bits per pixel, whole file counted.

    Returns (decoded (H, W, 3) uint8, actual bits per pixel): the best quality whose file fits
    bpp * H * W / 8 bytes, or the lowest quality (and its larger rate) when none fits.
    """
    check_image(image)
    if not (isinstance(bpp, (int, float)) and math.isfinite(bpp) and bpp > 0):
        raise ValueError(f"bpp must be a positive number, got {bpp!r}")
    return classic_at_budget(image, codec, bpp * image.shape[0] * image.shape[1] / 8)
