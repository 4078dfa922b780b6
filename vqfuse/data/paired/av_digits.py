"""The ``av-digits`` paired dataset: handwritten digits with spoken digits of the same label."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from vqfuse.data.cache import stable_hash
from vqfuse.data.digits import DigitsDataset
from vqfuse.data.paired.base import MODALITY, PairedDataset, check_pairings, choose, clip_length, paired_factory
from vqfuse.data.registry import register_dataset
from vqfuse.data.speech import DigitSpeech
from vqfuse.data.split import check_split
from vqfuse.errors import VqfuseError


class AVDigitsDataset(PairedDataset):
    """Handwritten digits paired with spoken digits of the same label (MMVAE-style pairing).

    Each image of the split (:class:`~vqfuse.data.digits.DigitsDataset`) is paired with ``pairings``
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
        check_pairings(pairings)
        self.segment_length = clip_length(segment_seconds, sample_rate)
        self.split, self.size, self.sample_rate = split, size, int(sample_rate)
        self.seed, self.pairings = seed, pairings
        self.images = DigitsDataset(size, split, fraction=image_fraction)
        self.speech = DigitSpeech(
            split, self.sample_rate, segment_seconds, voices=voices, fraction=voice_fraction, disk_cache=disk_cache
        )
        self.voice_names: list[str] = self.speech.voice_names
        by_label = {d: self.speech.indices(d) for d in range(10)}
        self.pairs = []
        self.labels = []
        for j, (key, label) in enumerate(zip(self.images.keys, self.images.labels.tolist())):
            cands = by_label[label]
            if not cands:
                raise VqfuseError(f"no voice of the '{split}' split says the digit {label}")
            rng = np.random.default_rng(stable_hash("av-digits", seed, key))
            self.pairs += [(j, cands[c]) for c in choose(rng, len(cands), pairings)]
            self.labels += [label] * pairings
        self.num_classes = 10

    def image(self, j: int) -> torch.Tensor:
        return self.images[j]

    def audio(self, k: int) -> torch.Tensor:
        return self.speech[k][0]

    def describe(self, i: int) -> dict[str, Any]:
        j, k = self.pairs[i]
        return {
            **super().describe(i),
            "image_key": self.images.keys[j],
            "voice": self.speech.voices[k],
            "text": self.speech.speech.texts[k],
            "audio_label": int(self.speech.labels[k]),
        }


register_dataset(
    MODALITY,
    "av-digits",
    paired_factory(AVDigitsDataset),
    help="scikit-learn digits paired with spoken digits (espeak-ng), split by image and voice",
)

__all__ = ["AVDigitsDataset"]
