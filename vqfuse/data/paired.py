"""Paired image + audio datasets for multimodal fusion (nothing is downloaded).

Every dataset here is a :class:`PairedDataset` whose items are dicts::

    {"image": (3, S, S) float32 in [-1, 1], "audio": (1, L) float32 in [-1, 1], "label": int}

with mono audio at ``sample_rate`` (16 kHz by default) cut or zero-padded, centred, to a fixed
``segment_seconds``. Build one from a spec with :func:`make_paired_dataset`:

- ``av-digits`` (:class:`AVDigitsDataset`): scikit-learn's handwritten digits, each paired with
  ``pairings`` random spoken digits of the same label (espeak-ng voices), as in the MMVAE recipe.
- ``av-emoji`` (:class:`AVEmojiDataset`): OpenMoji emoji paired with their Unicode name spoken by
  ``pairings`` random voices; the label is the emoji's index in the dataset.
- ``pairs:PATH`` (:class:`PairsCSVDataset`): a CSV of ``image path, audio path[, label]`` rows.

The held-out split keeps both sides unseen: built-in test pairs use only held-out images (the
image datasets' own deterministic split) and only held-out voices (:func:`~vqfuse.data.speech.split_voices`);
CSV pairs are split by image path.
"""

from __future__ import annotations

import csv
import inspect
import io
import logging
import os
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from vqfuse.data.audio import load_audio_file
from vqfuse.data.images import (
    DigitsDataset,
    EmojiDataset,
    _check_size,
    _fit_square,
    emoji_text,
    load_image_file,
    tensor_to_uint8,
    uint8_to_tensor,
)
from vqfuse.data.registry import dataset_entries, make_dataset, register_dataset
from vqfuse.data.speech import (
    DigitSpeech,
    Utterance,
    _stable_int,
    all_voices,
    fit_length,
    render_corpus,
    split_voices,
)
from vqfuse.data.split import check_split, heldout_score, select_split
from vqfuse.errors import InputFileError, PathLike, VqfuseError
from vqfuse.io.atomic import describe_os_error

log = logging.getLogger("vqfuse.data")

MODALITY = "paired"
# Pairs whose decoded images + audio take at most this many bytes are kept in memory (CSV datasets).
PAIRS_IN_MEMORY_BYTES = 2 * 1024**3


def _segment_length(segment_seconds: float | None, sample_rate: int) -> int | None:
    if segment_seconds is not None and not segment_seconds > 0:
        raise VqfuseError(f"segment_seconds must be > 0 or None, got {segment_seconds}")
    if int(sample_rate) < 1000:
        raise VqfuseError(f"sample_rate must be >= 1000 Hz, got {sample_rate}")
    return None if segment_seconds is None else max(1, round(segment_seconds * sample_rate))


def _check_pairings(pairings: int) -> int:
    if not isinstance(pairings, int) or pairings < 1:
        raise VqfuseError(f"pairings must be an integer >= 1, got {pairings!r}")
    return pairings


def _int16_to_tensor(a: np.ndarray) -> torch.Tensor:
    """int16 ``(T,)`` -> float32 ``(1, T)`` in [-1, 1]."""
    return torch.from_numpy(a.astype(np.float32) / 32767.0).unsqueeze(0)


def _to_int16(x: torch.Tensor) -> np.ndarray:
    """float ``(1, T)`` in [-1, 1] -> int16 ``(T,)``."""
    return np.clip(np.round(x[0].numpy() * 32767.0), -32767, 32767).astype(np.int16)


# ----------------------------------------------------------------------------------------------
# Base class


class PairedDataset(Dataset):
    """Base of the paired datasets: item ``i`` joins image ``pairs[i][0]`` with audio ``pairs[i][1]``.

    Subclasses fill ``pairs``, ``labels`` (one int per item, -1 for none), ``num_classes`` (None where
    labels are not classes) and implement :meth:`image` and :meth:`audio`.
    """

    split: str
    size: int
    sample_rate: int
    segment_length: int | None
    pairs: list[tuple[int, int]]
    labels: list[int]
    num_classes: int | None

    def image(self, j: int) -> torch.Tensor:
        """Image ``j``: ``(3, S, S)`` float32 in [-1, 1]."""
        raise NotImplementedError

    def audio(self, k: int) -> torch.Tensor:
        """Audio clip ``k``: ``(1, L)`` float32 in [-1, 1]."""
        raise NotImplementedError

    modalities = ("image", "audio")

    @property
    def item_rows(self) -> list[tuple[int, int]]:
        """One index per modality for each item (``encode_set`` encodes each distinct one once)."""
        return self.pairs

    def item(self, modality: str, index: int) -> torch.Tensor:
        """Item ``index`` of ``modality`` (an entry of ``modalities``)."""
        return getattr(self, modality)(index)

    def describe(self, i: int) -> dict[str, Any]:
        """Metadata of item ``i`` (what the image is, who says what): for inspection and tests."""
        j, k = self.pairs[i]
        return {"image_index": j, "audio_index": k, "label": self.labels[i]}

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> dict[str, Any]:
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} items")
        i %= len(self)
        j, k = self.pairs[i]
        return {"image": self.image(j), "audio": self.audio(k), "label": self.labels[i]}

    @property
    def num_images(self) -> int:
        """Distinct images used by the pairs."""
        return len({j for j, _ in self.pairs})

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(split={self.split!r}, n={len(self)}, images={self.num_images}, "
                f"size={self.size}, sample_rate={self.sample_rate}, segment_length={self.segment_length})")  # fmt: skip


def _choose(rng: np.random.Generator, n: int, k: int) -> list[int]:
    """``k`` indices from ``range(n)``: distinct when ``k <= n``, else with repeats."""
    return [int(c) for c in rng.choice(n, size=k, replace=k > n)]


# ----------------------------------------------------------------------------------------------
# av-digits


class AVDigitsDataset(PairedDataset):
    """Handwritten digits paired with spoken digits of the same label (MMVAE-style pairing).

    Each image of the split (:class:`~vqfuse.data.images.DigitsDataset`) is paired with ``pairings``
    distinct utterances of its digit, drawn from the split's voices by a generator seeded by
    ``(seed, image key)``, so the pairs never change between runs. Test images (about 10%) are paired
    only with held-out voices (about 15%), train images with train voices.

    Args:
        split: "train", "test" or "all".
        size: image side in pixels.
        pairings: utterances per image; items are ``len(images) * pairings``.
        seed: fixes which utterances each image gets.
        sample_rate, segment_seconds: audio rate and fixed clip length (None: whole utterances).
        voices: the voice pool before splitting (None: all 160 espeak-ng voices).
        image_fraction, voice_fraction: held-out shares of images and voices.
        disk_cache: keep rendered speech on disk between runs.
    """

    def __init__(
        self,
        split: str = "train",
        size: int = 32,
        pairings: int = 5,
        seed: int = 0,
        sample_rate: int = 16000,
        segment_seconds: float | None = 1.0,
        voices: Sequence[str] | None = None,
        image_fraction: float = 0.1,
        voice_fraction: float = 0.15,
        disk_cache: bool = True,
    ) -> None:
        check_split(split)
        _check_pairings(pairings)
        self.segment_length = _segment_length(segment_seconds, sample_rate)
        self.split, self.size, self.sample_rate = split, size, int(sample_rate)
        self.seed, self.pairings = seed, pairings
        self.images = DigitsDataset(size, split, fraction=image_fraction)
        self.speech = DigitSpeech(split, self.sample_rate, segment_seconds, voices=voices, fraction=voice_fraction,
                                  disk_cache=disk_cache)  # fmt: skip
        self.voice_names: list[str] = self.speech.voice_names
        by_label = {d: self.speech.indices(d) for d in range(10)}
        self.pairs = []
        self.labels = []
        for j, (key, label) in enumerate(zip(self.images.keys, self.images.labels.tolist())):
            cands = by_label[label]
            if not cands:
                raise VqfuseError(f"no voice of the '{split}' split says the digit {label}")
            rng = np.random.default_rng(_stable_int("av-digits", seed, key))
            self.pairs += [(j, cands[c]) for c in _choose(rng, len(cands), pairings)]
            self.labels += [label] * pairings
        self.num_classes = 10

    def image(self, j: int) -> torch.Tensor:
        return self.images[j]

    def audio(self, k: int) -> torch.Tensor:
        return self.speech[k][0]

    def describe(self, i: int) -> dict[str, Any]:
        j, k = self.pairs[i]
        return {**super().describe(i), "image_key": self.images.keys[j], "voice": self.speech.voices[k],
                "text": self.speech.speech.texts[k], "audio_label": int(self.speech.labels[k])}  # fmt: skip


# ----------------------------------------------------------------------------------------------
# av-emoji

_SILENT = {0x200D, 0xFE0E, 0xFE0F, 0xE007F}  # zero width joiner, variation selectors, cancel tag
_SPOKEN = {  # modifiers whose Unicode names read badly
    0x1F3FB: "light skin tone",
    0x1F3FC: "medium light skin tone",
    0x1F3FD: "medium skin tone",
    0x1F3FE: "medium dark skin tone",
    0x1F3FF: "dark skin tone",
    0x20E3: "keycap",
}
EMOJI_RATE_RANGE = (130, 210)  # words per minute, as in the speech corpus
EMOJI_PITCH_RANGE = (30, 70)


def emoji_spoken_name(name: str, sequences: bool = False) -> str | None:
    """The lower-cased Unicode name of an emoji (``"1F600"`` -> ``"grinning face"``), or None.

    None when a codepoint has no name in this Python's ``unicodedata`` (OpenMoji's private-use extras,
    emoji newer than the Unicode database). Joiners and variation selectors are silent, skin tones and
    the keycap read as words. Unless ``sequences``, only single emoji qualify (one codepoint, optionally
    with a variation selector or keycap: ``"digit two keycap"``); with it, ZWJ sequences, skin tones
    and flags (``"flag e a"``) are named part by part (``"man light skin tone microscope"``).
    """
    parts: list[str] = []
    bases = 0
    flag = False
    for cp in (int(c, 16) for c in name.split("-")):
        if cp in _SILENT:
            continue
        if cp in _SPOKEN:
            if cp != 0x20E3:
                bases += 1  # a skin tone makes it a sequence
            parts.append(_SPOKEN[cp])
        elif 0x1F1E6 <= cp <= 0x1F1FF:  # regional indicator letters: a flag
            bases += 1
            if not flag:
                parts.append("flag")
                flag = True
            parts.append(chr(ord("a") + cp - 0x1F1E6))
        elif 0xE0020 <= cp <= 0xE007E:  # tag letters of subdivision flags
            bases += 1
            parts.append(chr(cp - 0xE0000).lower())
        else:
            text = unicodedata.name(chr(cp), "")
            if not text:
                return None
            bases += 1
            parts.append(text.lower())
    if not parts or (not sequences and bases != 1):
        return None
    if flag and bases == 1:  # a lone regional indicator letter is no flag
        return unicodedata.name(emoji_text(name).replace("\ufe0f", "")).lower()
    return " ".join(parts)


class AVEmojiDataset(PairedDataset):
    """OpenMoji emoji paired with their spoken Unicode names (``"grinning face"``), several voices each.

    At most ``limit`` emoji of the split that have a name (see :func:`emoji_spoken_name`), a fixed
    hash-chosen subset kept in the image dataset's order; label = the emoji's index among them, so
    ``num_classes`` is the number of emoji. Each emoji is spoken by ``pairings`` distinct voices of
    the split chosen by ``(seed, emoji)``, each with its own rate and pitch. Test emoji (about 10%)
    are spoken only by held-out voices. Audio is rendered once (about 1,000x faster than real time)
    and cached like the speech corpus.

    Args:
        split: "train", "test" or "all".
        size: image side in pixels.
        limit: most emoji to use (None: all named emoji of the split).
        pairings: voices per emoji; items are ``len(emoji) * pairings``.
        seed: fixes which voices speak each emoji.
        sample_rate, segment_seconds: audio rate and fixed clip length (2 s holds ~95% of the names).
        voices: the voice pool before splitting (None: all 160 espeak-ng voices).
        sequences: also use multi-codepoint emoji (ZWJ sequences, skin tones, flags).
        image_fraction, voice_fraction: held-out shares of emoji and voices.
        disk_cache: keep rendered emoji and speech on disk between runs.
    """

    def __init__(
        self,
        split: str = "train",
        size: int = 32,
        limit: int | None = 500,
        pairings: int = 2,
        seed: int = 0,
        sample_rate: int = 16000,
        segment_seconds: float | None = 2.0,
        voices: Sequence[str] | None = None,
        sequences: bool = False,
        image_fraction: float = 0.1,
        voice_fraction: float = 0.15,
        disk_cache: bool = True,
    ) -> None:
        check_split(split)
        _check_pairings(pairings)
        if limit is not None and (not isinstance(limit, int) or limit < 1):
            raise VqfuseError(f"limit must be an integer >= 1 or None, got {limit!r}")
        self.segment_length = _segment_length(segment_seconds, sample_rate)
        self.split, self.size, self.sample_rate = split, size, int(sample_rate)
        self.seed, self.pairings = seed, pairings
        self.emoji = EmojiDataset(size, split, fraction=image_fraction, disk_cache=disk_cache)
        named = [(j, s) for j, n in enumerate(self.emoji.names) if (s := emoji_spoken_name(n, sequences))]
        if limit is not None and len(named) > limit:
            score = {t: heldout_score("av-emoji/" + self.emoji.names[j]) for t, (j, _) in enumerate(named)}
            keep = set(sorted(score, key=score.__getitem__)[:limit])  # a fixed subset, not the first in order
            named = [x for t, x in enumerate(named) if t in keep]
        if not named:
            raise VqfuseError(f"no emoji of the '{split}' split has a Unicode name")
        self.emoji_index: list[int] = [j for j, _ in named]  # position in self.emoji, per label
        self.names: list[str] = [self.emoji.names[j] for j in self.emoji_index]  # codepoints, per label
        self.spoken_names: list[str] = [s for _, s in named]  # per label
        pool = list(dict.fromkeys(voices)) if voices is not None else all_voices()
        self.voice_names: list[str] = split_voices(pool, split, voice_fraction) if split != "all" else pool
        if not self.voice_names:
            raise VqfuseError(f"the '{split}' split has no voices")
        self.utterances: list[Utterance] = []
        self.pairs, self.labels = [], []
        for label, (name, text) in enumerate(zip(self.names, self.spoken_names)):
            rng = np.random.default_rng(_stable_int("av-emoji", seed, name))
            for v in _choose(rng, len(self.voice_names), pairings):
                voice = self.voice_names[v]
                r = np.random.default_rng(_stable_int("av-emoji-prosody", voice, text))
                rate = int(r.integers(EMOJI_RATE_RANGE[0], EMOJI_RATE_RANGE[1] + 1))
                pitch = int(r.integers(EMOJI_PITCH_RANGE[0], EMOJI_PITCH_RANGE[1] + 1))
                self.pairs.append((label, len(self.utterances)))
                self.labels.append(label)
                self.utterances.append(Utterance(text, voice, rate, pitch, "emoji", label))
        self._audio, _ = render_corpus(self.utterances, self.sample_rate, disk_cache)  # int16 (T_i,)
        self.num_classes = len(self.names)

    def image(self, j: int) -> torch.Tensor:
        return self.emoji[self.emoji_index[j]]

    def audio(self, k: int) -> torch.Tensor:
        x = _int16_to_tensor(self._audio[k])  # (1, T_k)
        return x if self.segment_length is None else fit_length(x, self.segment_length)

    def describe(self, i: int) -> dict[str, Any]:
        j, k = self.pairs[i]
        u = self.utterances[k]
        return {**super().describe(i), "emoji": self.names[j], "voice": u.voice, "text": u.text,
                "audio_label": u.label, "seconds": len(self._audio[k]) / self.sample_rate}  # fmt: skip


# ----------------------------------------------------------------------------------------------
# pairs:CSV

_IMAGE_HEADERS = {"image", "images", "image_path", "image path", "imagepath", "image_file", "img", "picture", "photo"}
_AUDIO_HEADERS = {"audio", "audio_path", "audio path", "audiopath", "audio_file", "wav", "sound", "speech"}
CSV_FORMAT = "rows of: image path, audio path[, label]"


@dataclass(frozen=True)
class PairRow:
    """One row of a pairs CSV: resolved paths, the image path as written (the split key), the label text."""

    image: Path
    audio: Path
    label: str | None
    line: int
    image_key: str


def _resolve(text: str, base: Path) -> Path:
    p = Path(text).expanduser()
    return p if p.is_absolute() else base / p


def _is_header(cells: list[str], base: Path) -> bool:
    """A first row is a header when it names the columns rather than pointing at files."""
    if _resolve(cells[0], base).is_file():
        return False
    if cells[0].lower() in _IMAGE_HEADERS or cells[1].lower() in _AUDIO_HEADERS:
        return True
    return not Path(cells[0]).suffix and not Path(cells[1]).suffix


def read_pairs_csv(path: PathLike) -> list[PairRow]:
    """Parse a pairs CSV: ``image path, audio path[, label]`` per row, header row optional.

    Relative paths are resolved against the CSV's folder; blank lines and lines starting with ``#``
    are ignored. Raises :class:`InputFileError` naming the file for an unreadable, empty or malformed CSV.
    """
    path = Path(path).expanduser()
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputFileError(path, describe_os_error(exc, path)) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputFileError(path, f"not a UTF-8 text CSV file (expected {CSV_FORMAT})") from None
    base = path.resolve().parent
    rows: list[tuple[int, list[str]]] = []
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        for cells in reader:
            cells = [c.strip() for c in cells]
            while cells and not cells[-1]:
                cells.pop()
            if not cells or cells[0].startswith("#"):
                continue
            rows.append((reader.line_num, cells))
    except csv.Error as exc:
        raise InputFileError(path, f"invalid CSV (line {reader.line_num}: {exc})") from None
    if rows and len(rows[0][1]) >= 2 and _is_header(rows[0][1], base):
        rows = rows[1:]
    if not rows:
        raise InputFileError(path, f"empty CSV: no pairs (expected {CSV_FORMAT})")
    out: list[PairRow] = []
    for line, cells in rows:
        if not 2 <= len(cells) <= 3 or not cells[0] or not cells[1]:
            got = f"{len(cells)} column(s): {','.join(cells)[:80]!r}"
            raise InputFileError(path, f"line {line}: expected image path, audio path[, label]; got {got}")
        label = cells[2] if len(cells) == 3 and cells[2] else None
        key = cells[0].replace("\\", "/")
        out.append(PairRow(_resolve(cells[0], base), _resolve(cells[1], base), label, line, key))
    return out


def _parse_labels(rows: Sequence[PairRow], path: Path) -> tuple[list[int], list[str] | None]:
    """Integer labels as they are (-1 when absent); text labels become indices of the sorted class names."""
    texts = [r.label for r in rows]
    try:
        ints = [-1 if t is None else int(t) for t in texts]
    except ValueError:
        names = sorted({t for t in texts if t is not None})
        index = {n: c for c, n in enumerate(names)}
        return [-1 if t is None else index[t] for t in texts], names
    bad = [(r.line, v) for r, v in zip(rows, ints) if v < -1]
    if bad:
        line, value = bad[0]
        raise InputFileError(path, f"line {line}: label {value} is negative (use -1 or leave it empty for none)")
    return ints, None


class PairsCSVDataset(PairedDataset):
    """Your own image + audio pairs from a CSV of ``image path, audio path[, label]`` rows.

    Images are read with :func:`~vqfuse.data.images.load_image_file` and resized (shorter side, then a
    centre crop) to ``size``; audio with :func:`~vqfuse.data.audio.load_audio_file` (mono, resampled to
    ``sample_rate``) and centred in ``segment_seconds``. All files of the split are decoded at
    construction: a missing or unreadable file is logged once as ``skipping <file>: <problem>``,
    recorded in ``.skipped`` and every row using it is left out. Labels are integers (-1 or empty:
    none) or text class names (indices into ``.class_names``, sorted).

    The split is by the image path as written (about ``fraction`` held out, at least one image when
    there are two or more), so all pairs of one image are on the same side.

    Raises:
        InputFileError: the CSV is missing, empty or malformed, the split is empty, or no pair can be read.
    """

    def __init__(
        self,
        path: PathLike,
        split: str = "train",
        size: int = 32,
        sample_rate: int = 16000,
        segment_seconds: float | None = 1.0,
        fraction: float = 0.1,
        in_memory: bool | None = None,
        workers: int | None = None,
    ) -> None:
        check_split(split)
        _check_size(size)
        self.segment_length = _segment_length(segment_seconds, sample_rate)
        self.path = Path(path).expanduser()
        self.split, self.size, self.sample_rate = split, size, int(sample_rate)
        all_rows = read_pairs_csv(self.path)
        all_labels, self.class_names = _parse_labels(all_rows, self.path)
        keys = sorted({r.image_key for r in all_rows})
        chosen = set(select_split(keys, lambda k: "pairs/" + k, split, fraction, min_heldout=1))
        rows = [(r, lab) for r, lab in zip(all_rows, all_labels) if r.image_key in chosen]
        if not rows:
            raise InputFileError(
                self.path, f"the '{split}' split is empty ({len(all_rows)} pair(s) in all); use split 'all'"
            )
        image_files = list(dict.fromkeys(r.image for r, _ in rows))
        audio_files = list(dict.fromkeys(r.audio for r, _ in rows))
        if in_memory is None:
            per_audio = 2 * (self.segment_length or 30 * self.sample_rate)
            in_memory = len(image_files) * size * size * 3 + len(audio_files) * per_audio <= PAIRS_IN_MEMORY_BYTES
        self.in_memory = in_memory
        n_workers = workers or min(4, os.cpu_count() or 1)
        with ThreadPoolExecutor(max_workers=n_workers) as pool:
            images = dict(zip(image_files, pool.map(self._try_image, image_files)))
            audios = dict(zip(audio_files, pool.map(self._try_audio, audio_files)))
        self.skipped: list[tuple[Path, str]] = []
        for f, r in [*images.items(), *audios.items()]:
            if isinstance(r, str):
                log.warning("skipping %s: %s", f, r)
                self.skipped.append((f, r))
        readable = lambda r: not isinstance(images[r.image], str) and not isinstance(audios[r.audio], str)  # noqa: E731
        good = [(r, lab) for r, lab in rows if readable(r)]
        if not good:
            first, why = self.skipped[0]
            raise InputFileError(self.path, f"none of the {len(rows)} pairs could be read (e.g. {first}: {why})")
        self.image_files: list[Path] = list(dict.fromkeys(r.image for r, _ in good))
        self.audio_files: list[Path] = list(dict.fromkeys(r.audio for r, _ in good))
        img_pos = {f: j for j, f in enumerate(self.image_files)}
        aud_pos = {f: k for k, f in enumerate(self.audio_files)}
        self.rows: list[PairRow] = [r for r, _ in good]
        self.pairs = [(img_pos[r.image], aud_pos[r.audio]) for r in self.rows]
        self.labels = [lab for _, lab in good]
        self._images = np.stack([images[f] for f in self.image_files]) if in_memory else None  # (N, S, S, 3) uint8
        self._audio = [audios[f] for f in self.audio_files] if in_memory else None  # int16 (L,)
        if self.class_names is not None:
            self.num_classes: int | None = len(self.class_names)
        else:
            self.num_classes = max(all_labels) + 1 if max(all_labels) >= 0 else None

    # file loading: an array, or the problem as a string
    def _load_image(self, f: Path) -> np.ndarray:
        pil = Image.fromarray(tensor_to_uint8(load_image_file(f)), "RGB")
        return np.asarray(_fit_square(pil, self.size))  # (S, S, 3) uint8

    def _load_audio(self, f: Path) -> np.ndarray:
        x = load_audio_file(f, self.sample_rate)  # (1, T)
        return _to_int16(x if self.segment_length is None else fit_length(x, self.segment_length))

    def _try_image(self, f: Path) -> np.ndarray | str:
        try:
            a = self._load_image(f)
        except InputFileError as exc:
            return exc.problem
        return a if self.in_memory else np.zeros(0, np.uint8)

    def _try_audio(self, f: Path) -> np.ndarray | str:
        try:
            a = self._load_audio(f)
        except InputFileError as exc:
            return exc.problem
        return a if self.in_memory else np.zeros(0, np.int16)

    def image(self, j: int) -> torch.Tensor:
        a = self._images[j] if self._images is not None else self._load_image(self.image_files[j])
        return uint8_to_tensor(a)

    def audio(self, k: int) -> torch.Tensor:
        a = self._audio[k] if self._audio is not None else self._load_audio(self.audio_files[k])
        return _int16_to_tensor(a)

    def describe(self, i: int) -> dict[str, Any]:
        r = self.rows[i]
        return {**super().describe(i), "image_file": str(r.image), "audio_file": str(r.audio), "line": r.line}


# ----------------------------------------------------------------------------------------------
# Specs


def _factory(cls: type, takes_path: bool = False):
    """A registry factory that rejects options ``cls`` does not take with a one-line error."""
    params = [p for p in inspect.signature(cls).parameters if p != "path"]

    def build(arg: str | None, **options: Any) -> PairedDataset:
        unknown = sorted(set(options) - set(params))
        if unknown:
            names = ", ".join(map(repr, unknown))
            raise VqfuseError(f"{cls.__name__} has no option {names}; options: {', '.join(params)}")
        return cls(arg, **options) if takes_path else cls(**options)

    return build


register_dataset(MODALITY, "av-digits", _factory(AVDigitsDataset),
                 help="scikit-learn digits paired with spoken digits (espeak-ng), split by image and voice")  # fmt: skip
register_dataset(MODALITY, "av-emoji", _factory(AVEmojiDataset),
                 help="OpenMoji emoji paired with their spoken Unicode names (CC BY-SA 4.0)")  # fmt: skip
register_dataset(MODALITY, "pairs", _factory(PairsCSVDataset, takes_path=True), arg="PATH",
                 help="a CSV of image path, audio path[, label] rows")  # fmt: skip


def paired_specs() -> list[str]:
    """The known paired dataset specs: ``["av-digits", "av-emoji", "pairs:PATH"]``."""
    return [e.usage for e in dataset_entries(MODALITY)]


def make_paired_dataset(spec: str, split: str = "train", **options: Any) -> PairedDataset:
    """A paired dataset from a spec: ``av-digits``, ``av-emoji`` or ``pairs:PATH`` (a CSV).

    ``options`` go to the dataset's class (``size``, ``pairings``, ``segment_seconds``, ...).
    Raises :class:`VqfuseError` for an unknown spec (listing the known ones) or option.
    """
    s = spec.strip()
    if s.lower().endswith(".csv") and not s.lower().startswith("pairs:") and os.path.isfile(s):
        raise VqfuseError(f"unknown dataset '{s}'; choose {', '.join(paired_specs())} (for this CSV, write pairs:{s})")
    return make_dataset(MODALITY, s, split=split, **options)


__all__ = [
    "PairedDataset",
    "AVDigitsDataset",
    "AVEmojiDataset",
    "PairsCSVDataset",
    "PairRow",
    "emoji_spoken_name",
    "read_pairs_csv",
    "make_paired_dataset",
    "paired_specs",
]
