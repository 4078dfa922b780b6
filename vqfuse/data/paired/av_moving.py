"""The ``av-moving-digits`` paired dataset: moving-digits clips with the speech of their digits, in order.

Each item joins a Moving MNIST clip (:class:`~vqfuse.data.moving.MovingDigitsDataset`) with one espeak-ng
voice saying the clip's digits in compositing order ("three seven"): the spoken digits (whole
utterances of :class:`~vqfuse.data.speech.DigitSpeech`) joined with a short pause, then centred and cut
or zero-padded to ``segment_seconds``. The label is the ordered tuple of digits read as a base-10 number
(two digits: ``10 * first + second``, 100 classes).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from vqfuse.data.audio import fit_length
from vqfuse.data.cache import stable_hash
from vqfuse.data.moving import MNIST_ATTRIBUTION, MovingDigitsDataset
from vqfuse.data.paired.base import MODALITY, PairedDataset, check_pairings, choose, clip_length, paired_factory
from vqfuse.data.registry import register_dataset
from vqfuse.data.speech import DIGIT_WORDS, DigitSpeech
from vqfuse.data.split import check_split
from vqfuse.errors import VqfuseError

PAUSE_SECONDS = 0.12  # silence between two spoken digits
TRAIN_CLIPS = 4_000  # train clips per epoch by default
TEST_CLIPS = 2_000  # the fixed moving-digits test set


def digits_label(digits: Sequence[int]) -> int:
    """The class of an ordered digit tuple: the digits read as a base-10 number ((3, 7) -> 37)."""
    label = 0
    for d in digits:
        label = 10 * label + int(d)
    return label


class AVMovingDigitsDataset(PairedDataset):
    """Moving-digits clips paired with the speech of their digits, spoken in order by espeak-ng voices.

    Items are ``{"video": (1, T, S, S), "audio": (1, L), "label": int}``, float32 in [-1, 1]. Clip ``c``
    (``len = clips * pairings`` items, item ``i`` is clip ``i // pairings``) is paired with ``pairings``
    voices of the split, distinct where there are enough, drawn by a generator seeded by ``(seed, c)``;
    each voice says the clip's digits (:meth:`digits`) in compositing order. Train clips use the train
    digit images and are drawn on the fly per ``(seed, epoch, c)`` (:meth:`set_epoch`), with train
    voices; the test set is the fixed moving-digits test set (its first ``clips``, at most 2,000) of the
    test digit images, with the held-out voices only.

    The ``label`` is the ordered digits as one number, :func:`digits_label`: with two digits
    ``10 * first + second``, so ``num_classes`` is 100 (``10 ** num_digits`` in general): a judge must
    hear (or see) both digits and their order.

    Rows (:attr:`item_rows`) index distinct clips and distinct utterances (one per digit tuple and
    voice), so ``encode_set`` encodes each once; ``item("video", c)`` / ``item("audio", u)``.

    Args:
        split: "train", "test" or "all" (all digit images and voices, drawn like train).
        size, length, num_digits: canvas side, frames per clip, digits per clip.
        clips: clips per epoch (train; default 4,000) or of the fixed test set (default and at most 2,000).
        pairings: voices per clip.
        seed: fixes the train clips and which voices say each clip.
        sample_rate, segment_seconds: audio rate and fixed clip length (None: the whole joined speech).
        voices: the voice pool before splitting (None: all espeak-ng voices).
        voice_fraction: held-out share of the voices.
        disk_cache: keep rendered speech on disk between runs.
    """

    modalities = ("video", "audio")
    attribution: str = MNIST_ATTRIBUTION

    def __init__(
        self,
        split: str = "train",
        size: int = 64,
        length: int = 21,
        num_digits: int = 2,
        clips: int | None = None,
        pairings: int = 1,
        seed: int = 0,
        sample_rate: int = 16000,
        segment_seconds: float | None = 2.0,
        voices: Sequence[str] | None = None,
        voice_fraction: float = 0.15,
        disk_cache: bool = True,
    ) -> None:
        check_split(split)
        check_pairings(pairings)
        if not isinstance(num_digits, int) or num_digits < 1:
            raise VqfuseError(f"num_digits must be an integer >= 1, got {num_digits!r}")
        limit = TEST_CLIPS if split == "test" else None
        n_clips = (TEST_CLIPS if split == "test" else TRAIN_CLIPS) if clips is None else clips
        if not isinstance(n_clips, int) or n_clips < 1 or (limit is not None and n_clips > limit):
            top = f" and <= {limit} (the fixed test set)" if limit is not None else ""
            raise VqfuseError(f"clips must be an integer >= 1{top}, got {clips!r}")
        self.segment_length = clip_length(segment_seconds, sample_rate)
        self.split, self.size, self.length, self.sample_rate = split, size, length, int(sample_rate)
        self.seed, self.pairings, self.num_digits = seed, pairings, num_digits
        self.clips = MovingDigitsDataset(
            split, length, size, num_digits, seed=seed, epoch_size=n_clips, test_clips=n_clips
        )
        self.speech = DigitSpeech(
            split, self.sample_rate, None, voices=voices, fraction=voice_fraction, disk_cache=disk_cache
        )
        self.voice_names: list[str] = list(self.speech.voice_names)
        if not self.voice_names:
            raise VqfuseError(f"the '{split}' split has no voices")
        self.pause = torch.zeros(1, round(PAUSE_SECONDS * self.sample_rate))  # (1, P)
        self.num_classes = 10**num_digits
        self._build()

    # ---- pairing ----------------------------------------------------------------------------------

    def _build(self) -> None:
        """Fill ``pairs`` (clip, utterance), ``labels`` and the distinct ``utterances`` of the epoch."""
        self._clip_digits: list[list[int]] = [self.clips.labels(c) for c in range(len(self.clips))]
        self.utterances: list[tuple[tuple[int, ...], str]] = []  # (digits, voice) per distinct utterance
        index: dict[tuple[tuple[int, ...], str], int] = {}
        self.pairs, self.labels = [], []
        n = len(self.voice_names)
        for c, digits in enumerate(self._clip_digits):
            rng = np.random.default_rng(stable_hash("av-moving-digits", self.seed, c))
            for v in choose(rng, n, self.pairings):
                key = (tuple(digits), self.voice_names[v])
                if key not in index:
                    index[key] = len(self.utterances)
                    self.utterances.append(key)
                self.pairs.append((c, index[key]))
                self.labels.append(digits_label(digits))

    def set_epoch(self, epoch: int) -> None:
        """Train clips (and so digits, labels and utterances) of another epoch; the test set never changes."""
        if self.split != "test" and epoch != self.clips.epoch:
            self.clips.set_epoch(epoch)
            self._build()

    @property
    def epoch(self) -> int:
        return self.clips.epoch

    # ---- items ------------------------------------------------------------------------------------

    def digits(self, i: int) -> list[int]:
        """The digits of item ``i``'s clip, in compositing order: what its speech says, in that order."""
        return list(self._clip_digits[self.pairs[i][0]])

    def digit_images(self, i: int) -> list[int]:
        """Indices into :func:`~vqfuse.data.moving.mnist5k` of the digit images in item ``i``'s clip."""
        c = self.pairs[i][0]
        return [int(self.clips.pool[k]) for k in self.clips.choose(self.clips.rng(c))]

    def video(self, c: int) -> torch.Tensor:
        """Clip ``c``: ``(1, T, S, S)`` float32 in [-1, 1]."""
        return self.clips[c]

    def speech_of(self, digits: Sequence[int], voice: str) -> torch.Tensor:
        """``voice`` saying ``digits`` in order, the words joined by a short pause, fitted (centred) to
        the segment: ``(1, L)`` (``(1, T)`` whole with ``segment_seconds=None``)."""
        parts: list[torch.Tensor] = []
        for k, d in enumerate(digits):
            if k:
                parts.append(self.pause)
            parts.append(self.speech.get(int(d), voice))  # (1, T_d) whole utterance
        x = torch.cat(parts, dim=1)  # (1, T)
        return x if self.segment_length is None else fit_length(x, self.segment_length)

    def audio(self, k: int) -> torch.Tensor:
        """Distinct utterance ``k`` (see :attr:`utterances`): ``(1, L)`` float32 in [-1, 1]."""
        digits, voice = self.utterances[k]
        return self.speech_of(digits, voice)

    def describe(self, i: int) -> dict[str, Any]:
        c, k = self.pairs[i]
        digits, voice = self.utterances[k]
        return {
            "clip_index": c,
            "audio_index": k,
            "label": self.labels[i],
            "digits": list(digits),
            "digit_images": self.digit_images(i),
            "voice": voice,
            "text": " ".join(DIGIT_WORDS[d] for d in digits),
        }

    def __getitem__(self, i: int) -> dict[str, Any]:
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} items")
        c, k = self.pairs[i % len(self)]
        return {"video": self.video(c), "audio": self.audio(k), "label": self.labels[i % len(self)]}

    @property
    def num_clips(self) -> int:
        """Distinct clips used by the items."""
        return len(self.clips)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(split={self.split!r}, n={len(self)}, clips={self.num_clips}, "
            f"voices={len(self.voice_names)}, size={self.size}, length={self.length}, "
            f"sample_rate={self.sample_rate}, segment_length={self.segment_length})"
        )


register_dataset(
    MODALITY,
    "av-moving-digits",
    paired_factory(AVMovingDigitsDataset),
    help="moving-digits clips paired with their digits spoken in order (espeak-ng), split by digit and voice",
)

__all__ = ["AVMovingDigitsDataset", "digits_label", "PAUSE_SECONDS"]
