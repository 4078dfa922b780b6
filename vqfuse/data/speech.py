"""The built-in synthetic speech (espeak-ng, nothing is downloaded): its corpus and datasets.

- :func:`speech_catalogue`: spoken digits ("zero" .. "nine"), numbers ("forty two") and short
  sentences, spoken by many voices (English accents x voice variants, :func:`~vqfuse.data.espeak.all_voices`)
  at varied rates and pitches.
- :class:`SpeechDataset`: that corpus as audio. Train and test are split **by voice**: a held-out
  voice never speaks in the train split.
- :class:`DigitSpeech`: spoken digits by label and voice, for pairing with image digits.

Audio is rendered by :mod:`vqfuse.data.speech_render` (resampled with soxr to the dataset's rate,
peak-normalised to 0.9, cached in memory and on disk).
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from vqfuse.data.audio import check_segment_seconds, fit_length, int16_to_tensor, segment_samples
from vqfuse.data.cache import stable_hash
from vqfuse.data.espeak import all_voices
from vqfuse.data.registry import register_dataset
from vqfuse.data.speech_render import Utterance, render_corpus
from vqfuse.data.split import check_split, select_split
from vqfuse.errors import VqfuseError

# ----------------------------------------------------------------------------------------------
# The corpus

DIGIT_WORDS: tuple[str, ...] = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_TEENS = ("ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen")
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")

SENTENCES: tuple[str, ...] = (
    "The cat sat on the warm mat.",
    "Please open the window.",
    "It is raining again today.",
    "We walked to the park after lunch.",
    "The coffee is too hot to drink.",
    "My brother plays the guitar.",
    "Turn left at the next corner.",
    "She reads a book every night.",
    "The train leaves at seven.",
    "Can you hear me now?",
    "The sun is shining brightly.",
    "I left my keys on the table.",
    "Birds sing in the early morning.",
    "Put the red box on the shelf.",
    "The river flows into the sea.",
    "He bought fresh bread and milk.",
    "Where did you park the car?",
    "The children are playing outside.",
    "This soup needs more salt.",
    "We will meet again tomorrow.",
    "A cold wind blew from the north.",
    "The dog chased the ball across the yard.",
    "Thank you for your help.",
    "The meeting starts at noon.",
    "Please close the door quietly.",
    "The moon is bright tonight.",
    "She painted the fence blue.",
    "I would like a cup of tea.",
    "The old clock stopped at midnight.",
    "Call me when you get home.",
    "The baby is sleeping upstairs.",
    "Snow covered the quiet village.",
    "The store closes at nine.",
    "He fixed the bike in ten minutes.",
    "Let us sing a happy song.",
    "The lamp on the desk is broken.",
    "Fish swim in the clear lake.",
    "Her garden is full of roses.",
    "The plane landed safely.",
    "Read the first page aloud.",
    "Green apples taste sour.",
    "The bus was late this morning.",
)

UTTERANCE_KINDS = ("digits", "numbers", "sentences")


def number_words(n: int) -> str:
    """0..999 in words without "and": 42 -> "forty two", 305 -> "three hundred five"."""
    if not 0 <= n <= 999:
        raise ValueError(f"number_words handles 0..999, got {n}")
    if n < 10:
        return DIGIT_WORDS[n]
    if n < 20:
        return _TEENS[n - 10]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] + (" " + DIGIT_WORDS[ones] if ones else "")
    hundreds, rest = divmod(n, 100)
    return DIGIT_WORDS[hundreds] + " hundred" + (" " + number_words(rest) if rest else "")


def speech_catalogue(
    voices: Iterable[str] | None = None,
    kinds: Sequence[str] = UTTERANCE_KINDS,
    numbers_per_voice: int = 2,
    sentences_per_voice: int = 3,
    rate_range: tuple[int, int] = (130, 210),
    pitch_range: tuple[int, int] = (30, 70),
) -> list[Utterance]:
    """The corpus as a list of :class:`Utterance` (no audio): a pure function of its arguments.

    Every voice says the ten digits, ``numbers_per_voice`` numbers (10..999) and
    ``sentences_per_voice`` of :data:`SENTENCES`, all drawn from a generator seeded by the voice name.
    Each utterance gets its own rate (words per minute) and pitch (0-100), seeded by voice and text.
    """
    for k in kinds:
        if k not in UTTERANCE_KINDS:
            raise VqfuseError(f"unknown utterance kind {k!r}; choose from {', '.join(UTTERANCE_KINDS)}")
    out: list[Utterance] = []
    for voice in all_voices() if voices is None else voices:
        rng = np.random.default_rng(stable_hash("speech-voice", voice))
        numbers = rng.choice(np.arange(10, 1000), size=numbers_per_voice, replace=False)
        sentences = rng.choice(len(SENTENCES), size=sentences_per_voice, replace=False)
        items: list[tuple[str, str, int]] = []
        if "digits" in kinds:
            items += [(w, "digits", d) for d, w in enumerate(DIGIT_WORDS)]
        if "numbers" in kinds:
            items += [(number_words(int(n)), "numbers", -1) for n in numbers]
        if "sentences" in kinds:
            items += [(SENTENCES[int(s)], "sentences", -1) for s in sentences]
        for text, kind, label in items:
            r = np.random.default_rng(stable_hash("speech-prosody", voice, text))
            rate = int(r.integers(rate_range[0], rate_range[1] + 1))
            pitch = int(r.integers(pitch_range[0], pitch_range[1] + 1))
            out.append(Utterance(text, voice, rate, pitch, kind, label))
    return out


# ----------------------------------------------------------------------------------------------
# Datasets


def split_voices(voices: Sequence[str], split: str, fraction: float = 0.15) -> list[str]:
    """The voices of one split (``"train"``, ``"test"``, ``"all"``), by a stable hash of the voice name."""
    return select_split(list(voices), lambda v: f"speech/voice/{v}", split, fraction, min_heldout=2)


def voices_of_split(voices: Sequence[str] | None, split: str, fraction: float = 0.15) -> list[str]:
    """:func:`split_voices` of a pool (``voices`` without repeats; None: :func:`all_voices`), all of it for "all"."""
    pool = list(dict.fromkeys(voices)) if voices is not None else all_voices()
    return split_voices(pool, split, fraction) if split != "all" else pool


class SpeechDataset(Dataset):
    """Built-in synthetic speech, items ``(1, T)`` float32 in [-1, 1] (peak 0.9 per utterance).

    With the defaults: 160 voices (8 English accents x 20 variants), each saying the ten digits, two
    numbers and three sentences, i.e. 2,400 utterances (~33 minutes); about 15% of the voices are held
    out for ``split="test"``. The split is by voice, so no test voice appears in training.

    Args:
        split: "train", "test" or "all".
        sample_rate: output rate in Hz (espeak-ng speaks at 22,050 Hz; soxr resamples).
        segment_seconds: fixed item length: longer utterances are cropped, shorter ones zero-padded, at a
            random position drawn from a generator seeded by ``(seed, epoch, index)``. ``None`` returns
            whole utterances (variable length; for evaluation one at a time).
        kinds: which utterances: any of "digits", "numbers", "sentences".
        voices: restrict to these voice names (before splitting); None: :func:`all_voices`.
        fraction: held-out share of the voices.
        disk_cache: keep rendered audio on disk between runs.

    Attributes: ``.texts``, ``.voices`` (per item), ``.labels`` (int64 digit 0-9, -1 for non-digits),
    ``.kinds``, ``.gains`` (normalisation gain per item), ``.voice_names`` (the split's voices).
    Call :meth:`set_epoch` to draw fresh crops each epoch.
    """

    def __init__(
        self,
        split: str = "train",
        sample_rate: int = 16000,
        segment_seconds: float | None = 1.0,
        kinds: Sequence[str] = UTTERANCE_KINDS,
        voices: Sequence[str] | None = None,
        fraction: float = 0.15,
        seed: int = 0,
        disk_cache: bool = True,
    ) -> None:
        check_split(split)
        check_segment_seconds(segment_seconds)
        self.split, self.sample_rate, self.seed, self.epoch = split, int(sample_rate), seed, 0
        self.segment_seconds = segment_seconds
        self.segment_length: int | None = segment_samples(segment_seconds, sample_rate)
        self.voice_names: list[str] = voices_of_split(voices, split, fraction)
        self.utterances: list[Utterance] = speech_catalogue(self.voice_names, kinds=tuple(kinds))
        self._audio, self.gains = render_corpus(self.utterances, self.sample_rate, disk_cache)  # int16 (T_i,)
        self.texts: list[str] = [u.text for u in self.utterances]
        self.voices: list[str] = [u.voice for u in self.utterances]
        self.kinds: list[str] = [u.kind for u in self.utterances]
        self.labels: torch.Tensor = torch.tensor([u.label for u in self.utterances], dtype=torch.int64)  # (N,)

    def __len__(self) -> int:
        return len(self.utterances)

    def set_epoch(self, epoch: int) -> None:
        """Change the crops drawn for fixed-length items (the same epoch always gives the same crops)."""
        self.epoch = int(epoch)

    def utterance(self, i: int) -> torch.Tensor:
        """The whole utterance ``i``: ``(1, T_i)`` float32."""
        return int16_to_tensor(self._audio[i])  # (1, T_i)

    def __getitem__(self, i: int) -> torch.Tensor:
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} items")
        i %= len(self)
        x = self.utterance(i)  # (1, T_i)
        if self.segment_length is None:
            return x
        rng = np.random.default_rng((self.seed, self.epoch, i))
        return fit_length(x, self.segment_length, rng)  # (1, L)

    @property
    def seconds(self) -> float:
        """Total audio of the split, in seconds (whole utterances)."""
        return sum(len(a) for a in self._audio) / self.sample_rate

    def __repr__(self) -> str:
        return (
            f"SpeechDataset(split={self.split!r}, n={len(self)}, voices={len(self.voice_names)}, "
            f"seconds={self.seconds:.0f}, sample_rate={self.sample_rate})"
        )


class DigitSpeech(Dataset):
    """Spoken digits "zero" .. "nine" by the voices of one split; items are ``(audio (1, L), label)``.

    For pairing with image digits: :meth:`get` gives the digit ``label`` in a given voice, :meth:`sample`
    a random voice's. Clips are ``segment_seconds`` long, the utterance centred (``None``: whole).
    """

    def __init__(
        self,
        split: str = "train",
        sample_rate: int = 16000,
        segment_seconds: float | None = 1.0,
        voices: Sequence[str] | None = None,
        fraction: float = 0.15,
        disk_cache: bool = True,
    ) -> None:
        self.speech = SpeechDataset(
            split, sample_rate, None, kinds=("digits",), voices=voices, fraction=fraction, disk_cache=disk_cache
        )
        self.sample_rate = int(sample_rate)
        self.segment_length = segment_samples(segment_seconds, sample_rate)
        self.voice_names: list[str] = self.speech.voice_names
        self.labels: torch.Tensor = self.speech.labels
        self.voices: list[str] = self.speech.voices
        self._index = {(v, int(lab)): i for i, (v, lab) in enumerate(zip(self.voices, self.labels.tolist()))}

    def __len__(self) -> int:
        return len(self.speech)

    def _clip(self, i: int) -> torch.Tensor:
        x = self.speech.utterance(i)  # (1, T)
        return x if self.segment_length is None else fit_length(x, self.segment_length)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self._clip(i), int(self.labels[i])

    def indices(self, label: int) -> list[int]:
        """Items that say ``label``, one per voice of the split."""
        return [i for i, lab in enumerate(self.labels.tolist()) if lab == label]

    def get(self, label: int, voice: str) -> torch.Tensor:
        """The digit ``label`` spoken by ``voice`` (a voice of this split): ``(1, L)``."""
        if not 0 <= int(label) <= 9:
            raise ValueError(f"label must be a digit 0-9, got {label}")
        if (voice, int(label)) not in self._index:
            raise KeyError(f"voice {voice!r} is not in the {self.speech.split!r} split")
        return self._clip(self._index[(voice, int(label))])

    def sample(self, label: int, generator: np.random.Generator | int | None = None) -> torch.Tensor:
        """The digit ``label`` in a random voice of the split: ``(1, L)``."""
        rng = generator if isinstance(generator, np.random.Generator) else np.random.default_rng(generator)
        choices = self.indices(int(label))
        return self._clip(choices[int(rng.integers(len(choices)))])


def _speech_factory(
    arg: str | None, sample_rate: int = 16000, segment_seconds: float | None = 1.0, split: str = "train", **options
) -> SpeechDataset:
    """Registry factory for the ``speech`` spec; extra options (kinds, voices, ...) go to SpeechDataset."""
    return SpeechDataset(split=split, sample_rate=sample_rate, segment_seconds=segment_seconds, **options)


register_dataset(
    "audio",
    "speech",
    _speech_factory,
    help="synthetic speech (espeak-ng): digits, numbers, sentences by 160 voices, split by voice",
)


def _speech_digits_factory(arg: str | None, **options) -> SpeechDataset:
    """Registry factory for ``speech-digits``: the ``speech`` corpus restricted to the spoken digits
    (what the ``av-digits`` pairs use), e.g. for the audio tokenizer of a fusion run."""
    return _speech_factory(arg, kinds=("digits",), **options)


register_dataset(
    "audio",
    "speech-digits",
    _speech_digits_factory,
    help="the spoken digits zero..nine of the speech corpus (160 voices, split by voice)",
)

__all__ = [
    "DIGIT_WORDS",
    "SENTENCES",
    "UTTERANCE_KINDS",
    "number_words",
    "speech_catalogue",
    "split_voices",
    "voices_of_split",
    "SpeechDataset",
    "DigitSpeech",
]
