"""espeak-ng (shipped inside the ``espeakng-loader`` package) through ctypes, and its English voices.

:func:`synthesize` speaks one utterance -> float32 samples at 22,050 Hz on one module-level engine
(initialised on first use, serialised by a lock: espeak-ng keeps global state). :func:`all_voices`
lists the voice catalogue: English accents x voice variants.
"""

from __future__ import annotations

import ctypes
import threading
from pathlib import Path
from typing import Sequence

import numpy as np

from vqfuse.errors import VqfuseError

ESPEAK_SAMPLE_RATE = 22050

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
# Voices

# English accents shipped with espeak-ng (en-Shaw is Shavian script, left out).
ACCENTS: tuple[str, ...] = (
    "en",
    "en-us",
    "en-gb-x-rp",
    "en-029",
    "en-gb-scotland",
    "en-us-nyc",
    "en-gb-x-gbclan",
    "en-gb-x-gbcwmd",
)
# Voice variants (files in espeak-ng-data/voices/!v); "" is the accent's default voice. Robotic, whispered
# and effect variants are left out.
VARIANTS: tuple[str, ...] = (
    "",
    "m1",
    "m2",
    "m3",
    "m4",
    "m5",
    "m6",
    "m7",
    "f1",
    "f2",
    "f3",
    "f4",
    "Alex",
    "Annie",
    "belinda",
    "david",
    "grandpa",
    "michel",
    "quincy",
    "steph",
)


def voice_name(accent: str, variant: str = "") -> str:
    """``("en-us", "f3")`` -> ``"en-us+f3"``; the default variant gives just the accent."""
    return f"{accent}+{variant}" if variant else accent


def all_voices(accents: Sequence[str] = ACCENTS, variants: Sequence[str] = VARIANTS) -> list[str]:
    """Every accent x variant voice name, e.g. ``"en-gb-scotland+m3"`` (160 with the defaults)."""
    return [voice_name(a, v) for a in accents for v in variants]


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
            raise VqfuseError(
                "speech synthesis needs the 'espeakng-loader' package: pip install espeakng-loader"
            ) from exc
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
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Synchronize.restype = ctypes.c_int
        lib.espeak_Info.argtypes = [ctypes.c_void_p]
        lib.espeak_Info.restype = ctypes.c_char_p
        self._lib = lib
        self.lock = threading.Lock()
        self._chunks: list[bytes] = []
        self._callback = _SYNTH_CALLBACK(self._collect)  # keep a reference: ctypes must not free it
        rate = lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, _BUFFER_MS, str(self.data_path).encode(), _INITIALIZE_DONT_EXIT
        )
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


__all__ = [
    "ESPEAK_SAMPLE_RATE",
    "ACCENTS",
    "VARIANTS",
    "voice_name",
    "all_voices",
    "EspeakEngine",
    "get_engine",
    "synthesize",
]
