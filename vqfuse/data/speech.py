"""Synthetic speech from espeak-ng (shipped inside the ``espeakng-loader`` package): nothing is downloaded.

- :func:`synthesize`: one utterance -> float32 samples at 22,050 Hz, through ctypes on one module-level
  espeak-ng engine (initialised on first use, serialised by a lock: espeak-ng keeps global state).
- :class:`SpeechDataset`: a built-in corpus of spoken digits ("zero" .. "nine"), numbers ("forty two")
  and short sentences, spoken by many voices (English accents x voice variants) at varied rates and
  pitches. Train and test are split **by voice**: a held-out voice never speaks in the train split.
- :class:`DigitSpeech`: spoken digits by label and voice, for pairing with image digits.

Audio is resampled with soxr (high quality) to the dataset's rate and peak-normalised to 0.9.
Rendered audio is cached in memory per process and, optionally, on disk under
:func:`vqfuse.data.images.cache_dir` (``.npz`` read with ``allow_pickle=False``).
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from vqfuse.data.images import cache_dir
from vqfuse.data.registry import register_dataset
from vqfuse.data.split import check_split, select_split
from vqfuse.errors import VqfuseError
from vqfuse.io.atomic import atomic_path

log = logging.getLogger("vqfuse.data")

ESPEAK_SAMPLE_RATE = 22050
SPEECH_RENDER_VERSION = 1  # bump when the corpus or its rendering changes, to invalidate disk caches
PEAK = 0.9  # every utterance is scaled to this peak

# espeak-ng constants (speak_lib.h)
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000  # return an error instead of calling exit() when the data is missing
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_PARAM_RATE = 1
_PARAM_PITCH = 3
_BUFFER_MS = 1000  # audio handed to the callback per call; longer means fewer Python calls
_SYNTH_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)

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

# English accents shipped with espeak-ng (en-Shaw is Shavian script, left out).
ACCENTS: tuple[str, ...] = (
    "en", "en-us", "en-gb-x-rp", "en-029", "en-gb-scotland", "en-us-nyc", "en-gb-x-gbclan", "en-gb-x-gbcwmd",
)  # fmt: skip
# Voice variants (files in espeak-ng-data/voices/!v); "" is the accent's default voice. Robotic, whispered
# and effect variants are left out.
VARIANTS: tuple[str, ...] = (
    "", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4",
    "Alex", "Annie", "belinda", "david", "grandpa", "michel", "quincy", "steph",
)  # fmt: skip
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


def voice_name(accent: str, variant: str = "") -> str:
    """``("en-us", "f3")`` -> ``"en-us+f3"``; the default variant gives just the accent."""
    return f"{accent}+{variant}" if variant else accent


def all_voices(accents: Sequence[str] = ACCENTS, variants: Sequence[str] = VARIANTS) -> list[str]:
    """Every accent x variant voice name, e.g. ``"en-gb-scotland+m3"`` (160 with the defaults)."""
    return [voice_name(a, v) for a in accents for v in variants]


def _stable_int(*parts: object) -> int:
    return int.from_bytes(hashlib.sha256("\x00".join(map(str, parts)).encode()).digest()[:8], "big")


@dataclass(frozen=True)
class Utterance:
    """One item of the corpus: what is said, by which voice, how fast and how high."""

    text: str
    voice: str
    rate_wpm: int
    pitch: int
    kind: str  # "digits", "numbers" or "sentences"
    label: int  # the digit 0-9 for digit utterances, else -1

    @property
    def key(self) -> str:
        return f"{self.voice}|{self.rate_wpm}|{self.pitch}|{self.text}"


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
        rng = np.random.default_rng(_stable_int("speech-voice", voice))
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
            r = np.random.default_rng(_stable_int("speech-prosody", voice, text))
            rate = int(r.integers(rate_range[0], rate_range[1] + 1))
            pitch = int(r.integers(pitch_range[0], pitch_range[1] + 1))
            out.append(Utterance(text, voice, rate, pitch, kind, label))
    return out


# ----------------------------------------------------------------------------------------------
# The espeak-ng engine


class EspeakEngine:
    """libespeak-ng through ctypes in synchronous mode; the callback collects int16 samples.

    Not re-entrant: espeak-ng keeps global state, so use :func:`get_engine` (one per process) and
    call :meth:`synthesize`, which holds the engine's lock for the whole utterance.
    """

    def __init__(self) -> None:
        try:
            import espeakng_loader
        except ImportError as exc:  # pragma: no cover - declared dependency
            raise VqfuseError("speech synthesis needs the 'espeakng-loader' package: pip install espeakng-loader") from exc
        self.data_path = Path(espeakng_loader.get_data_path())
        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_SYNTH_CALLBACK]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                                     ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]  # fmt: skip
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Synchronize.restype = ctypes.c_int
        lib.espeak_Info.argtypes = [ctypes.c_void_p]
        lib.espeak_Info.restype = ctypes.c_char_p
        self._lib = lib
        self.lock = threading.Lock()
        self._chunks: list[bytes] = []
        self._callback = _SYNTH_CALLBACK(self._collect)  # keep a reference: ctypes must not free it
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, _BUFFER_MS, str(self.data_path).encode(), _INITIALIZE_DONT_EXIT)
        if rate <= 0:
            raise VqfuseError(f"espeak-ng failed to initialise (data at {self.data_path})")
        self.sample_rate = int(rate)
        lib.espeak_SetSynthCallback(self._callback)
        self.version: str = (lib.espeak_Info(None) or b"unknown").decode()
        self._variants = {p.name for p in (self.data_path / "voices" / "!v").iterdir()}
        self._voice: str | None = None

    def _collect(self, wav: ctypes.POINTER(ctypes.c_short), n: int, events: ctypes.c_void_p) -> int:  # type: ignore[valid-type]
        if n > 0 and wav:
            self._chunks.append(ctypes.string_at(wav, 2 * n))  # n int16 samples, copied
        return 0  # 0: continue synthesis

    def _set_voice(self, voice: str) -> None:
        if voice == self._voice:
            return
        _, _, variant = voice.partition("+")
        if variant and variant not in self._variants:  # espeak-ng silently ignores unknown variants
            raise VqfuseError(f"unknown espeak-ng voice variant {variant!r} in {voice!r}")
        if self._lib.espeak_SetVoiceByName(voice.encode()) != 0:
            self._voice = None
            raise VqfuseError(f"unknown espeak-ng voice {voice!r}")
        self._voice = voice

    def synthesize(self, text: str, voice: str = "en-us", rate_wpm: int = 175, pitch: int = 50) -> np.ndarray:
        """Speak ``text`` -> int16 samples ``(T,)`` at :attr:`sample_rate` (22,050 Hz)."""
        data = text.encode("utf-8") + b"\x00"
        with self.lock:
            self._set_voice(voice)
            self._lib.espeak_SetParameter(_PARAM_RATE, int(rate_wpm), 0)
            self._lib.espeak_SetParameter(_PARAM_PITCH, int(pitch), 0)
            self._chunks = []
            err = self._lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
            self._lib.espeak_Synchronize()
            chunks, self._chunks = self._chunks, []
        if err != 0:
            raise VqfuseError(f"espeak-ng could not speak {text!r} with voice {voice!r} (error {err})")
        return np.frombuffer(b"".join(chunks), dtype=np.int16).copy()


_ENGINE: EspeakEngine | None = None
_ENGINE_LOCK = threading.Lock()


def get_engine() -> EspeakEngine:
    """The process's espeak-ng engine, initialised on first use."""
    global _ENGINE
    with _ENGINE_LOCK:
        if _ENGINE is None:
            _ENGINE = EspeakEngine()
        return _ENGINE


def synthesize(text: str, voice: str = "en-us", rate_wpm: int = 175, pitch: int = 50) -> np.ndarray:
    """Speak ``text`` with an espeak-ng voice -> float32 ``(T,)`` in [-1, 1) at 22,050 Hz.

    Args:
        voice: an accent (``"en-us"``, ``"en-gb-x-rp"``, ...) optionally with a variant (``"en-us+f3"``).
        rate_wpm: speaking rate in words per minute (espeak-ng accepts 80-450).
        pitch: base pitch, 0-100 (50 is the voice's normal pitch).
    """
    return get_engine().synthesize(text, voice, rate_wpm, pitch).astype(np.float32) / 32768.0


# ----------------------------------------------------------------------------------------------
# Rendering (synthesis + resampling + normalisation), cached


def _trim(x: np.ndarray, sample_rate: int, threshold: float = 1e-3, margin_s: float = 0.02) -> np.ndarray:
    """Drop leading/trailing near-silence (below ``threshold`` x peak), keeping ``margin_s`` either side."""
    peak = float(np.abs(x).max()) if x.size else 0.0
    if peak == 0.0:
        return x
    loud = np.flatnonzero(np.abs(x) > threshold * peak)
    margin = int(margin_s * sample_rate)
    return x[max(0, loud[0] - margin) : loud[-1] + 1 + margin]


def render_utterance(utt: Utterance, sample_rate: int) -> tuple[np.ndarray, float]:
    """Synthesise, trim, resample (soxr HQ) and peak-normalise one utterance -> (float32 (T,), gain).

    ``gain`` is the factor applied for normalisation: divide by it to get espeak-ng's own level.
    """
    import soxr

    x = synthesize(utt.text, utt.voice, utt.rate_wpm, utt.pitch)  # (T,) at 22,050 Hz
    x = _trim(x, ESPEAK_SAMPLE_RATE)
    if sample_rate != ESPEAK_SAMPLE_RATE and x.size:
        x = soxr.resample(x, ESPEAK_SAMPLE_RATE, sample_rate, quality="HQ").astype(np.float32)
    peak = float(np.abs(x).max()) if x.size else 0.0
    gain = PEAK / peak if peak > 0 else 1.0
    return (x * gain).astype(np.float32), gain


_MEMORY: dict[tuple[int, str], tuple[np.ndarray, float]] = {}  # (rate, utterance key) -> (int16 audio, gain)
_MEMORY_LOCK = threading.Lock()


def _to_int16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x * 32767.0), -32767, 32767).astype(np.int16)


def _cache_file(utterances: Sequence[Utterance], sample_rate: int) -> Path:
    h = hashlib.sha256("\n".join(u.key for u in utterances).encode()).hexdigest()[:16]
    return cache_dir() / f"speech-{sample_rate}hz-espeak{get_engine().version}-r{SPEECH_RENDER_VERSION}-{h}.npz"


def render_corpus(
    utterances: Sequence[Utterance], sample_rate: int = 16000, disk_cache: bool = True
) -> tuple[list[np.ndarray], np.ndarray]:
    """Audio of every utterance as int16 arrays ``(T_i,)`` (peak 0.9 of full scale) and their gains ``(N,)``.

    Rendered once per process (about 1,000x faster than real time on one core); with ``disk_cache``
    the set is stored as one ``.npz`` under :func:`cache_dir`, written atomically.
    """
    if sample_rate < 1000:
        raise VqfuseError(f"sample_rate must be >= 1000 Hz, got {sample_rate}")
    keys = [(sample_rate, u.key) for u in utterances]
    with _MEMORY_LOCK:
        missing = [i for i, k in enumerate(keys) if k not in _MEMORY]
    if missing and disk_cache:
        _load_disk_cache(utterances, sample_rate, keys)
        with _MEMORY_LOCK:
            missing = [i for i, k in enumerate(keys) if k not in _MEMORY]
    if missing:
        order = sorted(missing, key=lambda i: utterances[i].voice)  # fewer voice switches
        rendered = {}
        for i in order:
            x, gain = render_utterance(utterances[i], sample_rate)
            rendered[keys[i]] = (_to_int16(x), gain)
        with _MEMORY_LOCK:
            _MEMORY.update(rendered)
    if disk_cache and utterances and not _cache_file(utterances, sample_rate).is_file():
        _write_disk_cache(utterances, sample_rate, keys)
    with _MEMORY_LOCK:
        entries = [_MEMORY[k] for k in keys]
    return [a for a, _ in entries], np.array([g for _, g in entries], dtype=np.float64)


def _load_disk_cache(utterances: Sequence[Utterance], sample_rate: int, keys: list[tuple[int, str]]) -> None:
    file = _cache_file(utterances, sample_rate)
    if not file.is_file():
        return
    try:
        with np.load(file, allow_pickle=False) as z:
            data, offsets, gains = z["data"], z["offsets"], z["gains"]
        if data.dtype != np.int16 or offsets.shape != (len(keys) + 1,) or gains.shape != (len(keys),):
            raise ValueError(f"unexpected contents (offsets {offsets.shape} for {len(keys)} utterances)")
        with _MEMORY_LOCK:
            for i, k in enumerate(keys):
                _MEMORY.setdefault(k, (data[offsets[i] : offsets[i + 1]].copy(), float(gains[i])))
    except (OSError, ValueError, KeyError) as exc:
        log.info("ignoring unreadable speech cache %s: %s", file, exc)


def _write_disk_cache(utterances: Sequence[Utterance], sample_rate: int, keys: list[tuple[int, str]]) -> None:
    file = _cache_file(utterances, sample_rate)
    with _MEMORY_LOCK:
        entries = [_MEMORY[k] for k in keys]
    offsets = np.zeros(len(entries) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(a) for a, _ in entries])
    data = np.concatenate([a for a, _ in entries]) if entries else np.zeros(0, np.int16)
    gains = np.array([g for _, g in entries], dtype=np.float64)
    try:
        with atomic_path(file) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, data=data, offsets=offsets, gains=gains)
    except OSError as exc:  # a read-only home is not an error, just slower next time
        log.info("could not write speech cache %s: %s", file, exc)


# ----------------------------------------------------------------------------------------------
# Datasets


def split_voices(voices: Sequence[str], split: str, fraction: float = 0.15) -> list[str]:
    """The voices of one split (``"train"``, ``"test"``, ``"all"``), by a stable hash of the voice name."""
    return select_split(list(voices), lambda v: f"speech/voice/{v}", split, fraction, min_heldout=2)


def fit_length(x: torch.Tensor, length: int, generator: np.random.Generator | None = None) -> torch.Tensor:
    """Crop or zero-pad ``(C, T)`` to ``(C, length)``: a random window/offset with ``generator``, else centred."""
    t = x.shape[-1]
    if t == length:
        return x
    if t > length:
        start = int(generator.integers(0, t - length + 1)) if generator is not None else (t - length) // 2
        return x[..., start : start + length]
    pad = length - t
    left = int(generator.integers(0, pad + 1)) if generator is not None else pad // 2
    return torch.nn.functional.pad(x, (left, pad - left))


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
        if segment_seconds is not None and not segment_seconds > 0:
            raise VqfuseError(f"segment_seconds must be > 0 or None, got {segment_seconds}")
        self.split, self.sample_rate, self.seed, self.epoch = split, int(sample_rate), seed, 0
        self.segment_seconds = segment_seconds
        self.segment_length: int | None = None if segment_seconds is None else max(1, round(segment_seconds * sample_rate))
        pool = list(dict.fromkeys(voices)) if voices is not None else all_voices()
        self.voice_names: list[str] = split_voices(pool, split, fraction) if split != "all" else pool
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
        a = self._audio[i]
        return torch.from_numpy(a.astype(np.float32) / 32767.0).unsqueeze(0)  # (1, T_i)

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
        return (f"SpeechDataset(split={self.split!r}, n={len(self)}, voices={len(self.voice_names)}, "
                f"seconds={self.seconds:.0f}, sample_rate={self.sample_rate})")  # fmt: skip


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
        self.speech = SpeechDataset(split, sample_rate, None, kinds=("digits",), voices=voices, fraction=fraction,
                                    disk_cache=disk_cache)  # fmt: skip
        self.sample_rate = int(sample_rate)
        self.segment_length = None if segment_seconds is None else max(1, round(segment_seconds * sample_rate))
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


def _speech_factory(arg: str | None, sample_rate: int = 16000, segment_seconds: float | None = 1.0,
                    split: str = "train", **options) -> SpeechDataset:  # fmt: skip
    """Registry factory for the ``speech`` spec; extra options (kinds, voices, ...) go to SpeechDataset."""
    return SpeechDataset(split=split, sample_rate=sample_rate, segment_seconds=segment_seconds, **options)


register_dataset("audio", "speech", _speech_factory,
                 help="synthetic speech (espeak-ng): digits, numbers, sentences by 160 voices, split by voice")  # fmt: skip


def _speech_digits_factory(arg: str | None, **options) -> SpeechDataset:
    """Registry factory for ``speech-digits``: the ``speech`` corpus restricted to the spoken digits
    (what the ``av-digits`` pairs use), e.g. for the audio tokenizer of a fusion run."""
    return _speech_factory(arg, kinds=("digits",), **options)


register_dataset("audio", "speech-digits", _speech_digits_factory,
                 help="the spoken digits zero..nine of the speech corpus (160 voices, split by voice)")  # fmt: skip

__all__ = [
    "ESPEAK_SAMPLE_RATE",
    "ACCENTS",
    "VARIANTS",
    "DIGIT_WORDS",
    "SENTENCES",
    "Utterance",
    "EspeakEngine",
    "get_engine",
    "synthesize",
    "number_words",
    "voice_name",
    "all_voices",
    "speech_catalogue",
    "render_utterance",
    "render_corpus",
    "split_voices",
    "fit_length",
    "SpeechDataset",
    "DigitSpeech",
]
