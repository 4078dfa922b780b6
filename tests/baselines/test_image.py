"""WebP / JPEG at a bits-per-pixel budget (vqfuse.baselines.image)."""

from __future__ import annotations

import numpy as np
import pytest

from vqfuse.baselines.image import classic_at_bpp, classic_at_budget, encode_image, psnr_uint8


def _test_image(size: int = 64) -> np.ndarray:
    """A colour gradient with a wavy texture, a hard-edged block and mild noise: (size, size, 3) uint8."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    img = np.stack([200 * xx + 30, 180 * yy + 40, 120 * (1 - xx * yy) + 60], axis=-1)  # (S, S, 3)
    img += (40 * np.sin(2 * np.pi * (3 * xx + 7 * yy * yy)) * np.cos(2 * np.pi * 9 * xx * yy))[..., None]
    img[size // 4 : size // 2, size // 4 : 3 * size // 4] = (240, 30, 30)
    img += np.random.default_rng(0).normal(0, 2, img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("codec", ["webp", "jpeg"])
def test_stays_within_budget_and_more_bits_give_higher_psnr(codec: str) -> None:
    image = _test_image()
    psnrs = []
    for bpp in (1.0, 2.0):
        decoded, actual = classic_at_bpp(image, codec, bpp)
        assert decoded.shape == image.shape and decoded.dtype == np.uint8
        assert actual <= bpp  # the whole file fits bpp * H * W / 8 bytes
        assert actual > 0.5 * bpp  # the search used the budget, not just the lowest quality
        psnrs.append(psnr_uint8(decoded, image))
    assert psnrs[1] > psnrs[0] + 2.0


def test_rate_is_the_whole_file_of_the_chosen_quality() -> None:
    from PIL import Image

    image = _test_image()
    decoded, actual = classic_at_bpp(image, "jpeg", 2.0)
    sizes = {q: len(encode_image(Image.fromarray(image), "jpeg", q)) for q in range(1, 96)}
    chosen = [q for q, n in sizes.items() if n * 8 / image[..., 0].size == actual]
    assert chosen, "the reported rate is the size of one of the quality settings' files"
    assert all(n * 8 > 2.0 * image[..., 0].size for q, n in sizes.items() if q > max(chosen))


def test_unreachable_budget_gives_the_lowest_quality_and_its_rate() -> None:
    image = _test_image(32)
    decoded, actual = classic_at_bpp(image, "jpeg", 0.01)  # ~1 byte: no JPEG is that small
    assert decoded.shape == image.shape
    assert actual > 0.01
    _, smallest = classic_at_budget(image, "jpeg", 0)
    assert actual == smallest


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((16, 16, 3), np.float32),  # wrong dtype
        np.zeros((16, 16), np.uint8),  # grey, no channel axis
        np.zeros((16, 16, 4), np.uint8),  # RGBA
        np.zeros((0, 16, 3), np.uint8),  # empty
    ],
)
def test_bad_images_raise_value_error(image: np.ndarray) -> None:
    with pytest.raises(ValueError, match="image"):
        classic_at_bpp(image, "webp", 1.0)


def test_bad_codec_and_rate_raise_value_error() -> None:
    image = _test_image(16)
    with pytest.raises(ValueError, match="codec"):
        classic_at_bpp(image, "png", 1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="bpp"):
        classic_at_bpp(image, "webp", 0.0)
