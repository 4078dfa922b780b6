"""The ``photos`` image dataset: deterministic random crops of scikit-image's sample photos."""

from __future__ import annotations

import logging
import math
import warnings
from functools import lru_cache

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from vqfuse.data.cache import stable_hash
from vqfuse.data.image_files import check_image_size, uint8_to_tensor
from vqfuse.data.registry import register_dataset
from vqfuse.data.split import check_split, select_split
from vqfuse.errors import VqfuseError

log = logging.getLogger("vqfuse.data")

# scikit-image sample images that are photographs and ship inside the package. Download-only
# samples (eagle, skin, ...) and synthetic ones (checkerboard, logo, ...) are left out so that
# nothing is ever fetched. ``cat`` is the same picture as ``chelsea``.
PHOTO_NAMES: tuple[str, ...] = (
    "astronaut",
    "brick",
    "camera",
    "cell",
    "chelsea",
    "clock",
    "coffee",
    "coins",
    "grass",
    "gravel",
    "hubble_deep_field",
    "immunohistochemistry",
    "microaneurysms",
    "moon",
    "page",
    "retina",
    "rocket",
    "stereo_motorcycle",
    "text",
)


def _photo_to_uint8(x: object) -> np.ndarray:
    """A scikit-image sample -> ``(H, W, 3)`` uint8 RGB."""
    if isinstance(x, tuple):  # stereo_motorcycle: (left, right, disparity) -> left view
        x = x[0]
    a = np.asarray(x)
    if a.dtype == bool:
        a = a.astype(np.uint8) * 255
    elif a.dtype != np.uint8:
        a = np.clip(a.astype(np.float64) * (255.0 if a.max() <= 1.0 else 1.0), 0, 255).round().astype(np.uint8)
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    if a.ndim != 3 or a.shape[2] < 3:
        raise ValueError(f"not an RGB or greyscale image: shape {a.shape}")
    return np.ascontiguousarray(a[:, :, :3])


@lru_cache(maxsize=1)
def load_photos() -> dict[str, Image.Image]:
    """The scikit-image sample photos that load offline, as RGB PIL images (name -> image)."""
    import skimage.data

    photos: dict[str, Image.Image] = {}
    for name in PHOTO_NAMES:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                photos[name] = Image.fromarray(_photo_to_uint8(getattr(skimage.data, name)()), "RGB")
        except Exception as exc:  # noqa: BLE001 - e.g. needs a download (pooch) in this skimage version
            log.info("skipping scikit-image sample '%s': %s", name, str(exc).splitlines()[0] if str(exc) else exc)
    return photos


class PhotosDataset(Dataset):
    """Deterministic random square crops of scikit-image's sample photos, ``(3, size, size)`` in [-1, 1].

    Item ``i`` is crop ``i % crops_per_photo`` of photo ``i // crops_per_photo``; its box is drawn
    from a generator seeded by ``(seed, photo name, crop index)``, so it never changes between runs
    or DataLoader workers. Crop sides are log-uniform between ``min_scale`` of the photo's shorter
    side (but at least ``size``) and the whole shorter side. The split is by photo, so test crops
    come from photos never seen in training (at least 2 held-out photos).
    """

    def __init__(
        self,
        size: int = 64,
        split: str = "train",
        crops_per_photo: int = 64,
        min_scale: float = 0.25,
        seed: int = 0,
        fraction: float = 0.1,
    ) -> None:
        check_image_size(size)
        check_split(split)
        if crops_per_photo < 1:
            raise VqfuseError(f"crops_per_photo must be >= 1, got {crops_per_photo}")
        photos = load_photos()
        if not photos:
            raise VqfuseError("no scikit-image sample photos could be loaded")
        self.photo_names: list[str] = select_split(
            sorted(photos), lambda n: f"photos/{n}", split, fraction, min_heldout=2
        )
        self._photos = [photos[n] for n in self.photo_names]
        self.size, self.split, self.crops_per_photo = size, split, crops_per_photo
        self.min_scale, self.seed = min_scale, seed
        self.keys: list[str] = [f"{n}#{j}" for n in self.photo_names for j in range(crops_per_photo)]

    def __len__(self) -> int:
        return len(self._photos) * self.crops_per_photo

    def crop_box(self, i: int) -> tuple[int, int, int, int]:
        """``(left, top, right, bottom)`` of item ``i`` in its photo's pixel coordinates."""
        p, j = divmod(i, self.crops_per_photo)
        w, h = self._photos[p].size
        short = min(w, h)
        lo = min(short, max(self.size, int(short * self.min_scale)))
        rng = np.random.default_rng(stable_hash(self.seed, self.photo_names[p], j))
        side = int(round(math.exp(rng.uniform(math.log(lo), math.log(short)))))
        side = min(max(side, lo), short)
        x = int(rng.integers(0, w - side + 1))
        y = int(rng.integers(0, h - side + 1))
        return x, y, x + side, y + side

    def __getitem__(self, i: int) -> torch.Tensor:
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} items")
        i %= len(self)
        box = self.crop_box(i)
        img = self._photos[i // self.crops_per_photo]
        crop = img.resize((self.size, self.size), Image.Resampling.BICUBIC, box=box, reducing_gap=3.0)
        return uint8_to_tensor(np.asarray(crop))  # (3, S, S)

    def __repr__(self) -> str:
        return f"PhotosDataset(photos={len(self._photos)}, n={len(self)}, size={self.size})"


register_dataset(
    "image",
    "photos",
    lambda arg, size, split: PhotosDataset(size, split),
    help="random crops of scikit-image's sample photos",
)

__all__ = ["PHOTO_NAMES", "load_photos", "PhotosDataset"]
