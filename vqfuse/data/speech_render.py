"""Rendering utterances: espeak-ng synthesis, trimming, resampling, peak normalisation, caches.

Rendered audio is cached in memory per process and, optionally, on disk under
:func:`~vqfuse.data.cache.cache_dir` (one ``.npz`` per utterance set, read with ``allow_pickle=False``).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from vqfuse.data.audio import check_sample_rate, resample, to_int16
from vqfuse.data.cache import cache_dir
from vqfuse.data.espeak import ESPEAK_SAMPLE_RATE, get_engine, synthesize
from vqfuse.io.atomic import atomic_path

log = logging.getLogger("vqfuse.data")

SPEECH_RENDER_VERSION = 1  # bump when the corpus or its rendering changes, to invalidate disk caches
PEAK = 0.9  # every utterance is scaled to this peak


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
    x = synthesize(utt.text, utt.voice, utt.rate_wpm, utt.pitch)  # (T,) at 22,050 Hz
    x = _trim(x, ESPEAK_SAMPLE_RATE)
    if sample_rate != ESPEAK_SAMPLE_RATE and x.size:
        x = resample(x, ESPEAK_SAMPLE_RATE, sample_rate)
    peak = float(np.abs(x).max()) if x.size else 0.0
    gain = PEAK / peak if peak > 0 else 1.0
    return (x * gain).astype(np.float32), gain


_MEMORY: dict[tuple[int, str], tuple[np.ndarray, float]] = {}  # (rate, utterance key) -> (int16 audio, gain)
_MEMORY_LOCK = threading.Lock()


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
    check_sample_rate(sample_rate)
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
            rendered[keys[i]] = (to_int16(x), gain)
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


__all__ = ["SPEECH_RENDER_VERSION", "PEAK", "Utterance", "render_utterance", "render_corpus"]
