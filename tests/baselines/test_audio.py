"""Opus baselines (vqfuse.baselines.audio): PyAV libopus at a set rate, alignment, libsndfile Ogg Opus."""

from __future__ import annotations

import numpy as np
import pytest

from vqfuse.baselines.audio import (
    OPUS_RATES,
    align,
    best_lag,
    opus_at_kbps,
    opus_encode_packets,
    opus_pre_skip,
    sndfile_opus_decode,
    sndfile_opus_encode,
)


def _vowel(sample_rate: int, seconds: float = 1.5) -> np.ndarray:
    """A synthetic vowel: 7 harmonics of 150 Hz, amplitude-modulated at 3 Hz, peak ~0.7. (T,) float32."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    x = sum(0.3 / k * np.sin(2 * np.pi * 150 * k * t) for k in range(1, 8)) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
    return x.astype(np.float32)


def _snr_db(y: np.ndarray, x: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(x.astype(np.float64) ** 2) / np.sum((x - y.astype(np.float64)) ** 2)))


@pytest.mark.parametrize("sample_rate", [16000, 22050])  # 22050: resampled to 24 kHz and back
def test_6_kbps_hits_the_rate_lines_up_and_keeps_the_waveform(sample_rate: int) -> None:
    x = _vowel(sample_rate)
    y, kbps = opus_at_kbps(x, sample_rate, 6.0)
    assert y.shape == x.shape and y.dtype == np.float32
    assert abs(kbps - 6.0) <= 0.15 * 6.0
    assert abs(best_lag(y, x, sample_rate // 100)) <= 2  # within +-10 ms, the best lag is ~0
    assert _snr_db(y, x) > 8.0


def test_the_pre_skip_is_what_the_alignment_removes() -> None:
    x = _vowel(16000)
    _, head = opus_encode_packets(x, 16000, 12.0, True, 20)
    assert opus_pre_skip(head) == 312  # libopus's lookahead at 16 kHz, in 48 kHz samples (6.5 ms)
    y, _ = opus_at_kbps(x, 16000, 12.0)
    assert abs(best_lag(y, x, 400)) <= 2  # 104 if the pre-skip had been left in


def test_rates_and_quality_rise_from_3_to_6_to_12_kbps() -> None:
    x = _vowel(16000)
    results = [opus_at_kbps(x, 16000, k) for k in OPUS_RATES]
    rates = [kbps for _, kbps in results]
    snrs = [_snr_db(y, x) for y, _ in results]
    assert OPUS_RATES == (3.0, 6.0, 12.0)
    assert rates[0] < rates[1] < rates[2]
    assert abs(rates[0] - 3.0) <= 0.15 * 3.0  # reachable (libsndfile's Opus stops near 6.4)
    assert snrs[0] < snrs[1] < snrs[2]


def test_odd_lengths_and_strided_arrays_come_back_at_their_length() -> None:
    x = _vowel(16000, 0.2)[:3001]
    y, kbps = opus_at_kbps(x, 16000, 12.0)
    assert y.shape == (3001,) and kbps > 0
    strided = _vowel(16000, 0.4)[::2]  # a view, not contiguous
    assert opus_at_kbps(strided, 16000, 6.0)[0].shape == strided.shape


@pytest.mark.parametrize(
    ("x", "sample_rate", "kbps", "match"),
    [
        (np.zeros(1600, np.int16), 16000, 6.0, "float32"),
        (np.zeros(1600, np.float64), 16000, 6.0, "float32"),
        (np.zeros((1, 1600), np.float32), 16000, 6.0, r"\(T,\)"),
        (np.zeros(0, np.float32), 16000, 6.0, "empty"),
        (np.full(1600, np.nan, np.float32), 16000, 6.0, "NaN"),
        (np.zeros(1600, np.float32), 0, 6.0, "sample_rate"),
        (np.zeros(1600, np.float32), 16000, 0.0, "kbps"),
    ],
)
def test_bad_input_raises_value_error(x: np.ndarray, sample_rate: int, kbps: float, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        opus_at_kbps(x, sample_rate, kbps)


def test_align_shifts_a_delayed_copy_back() -> None:
    x = _vowel(16000, 0.5)
    delayed = np.concatenate([np.zeros(37, np.float32), x])
    aligned, lag = align(delayed, x, 160)
    assert lag == 37 and np.array_equal(aligned, x)


def test_sndfile_opus_round_trip() -> None:
    x = _vowel(16000, 1.0)
    data, payload = sndfile_opus_encode(x, 16000, 0.9)
    assert 0 < payload < len(data)  # the payload leaves out the Ogg pages and the Opus headers
    y = sndfile_opus_decode(data, 16000)
    assert abs(len(y) - len(x)) <= 16000 // 100
    assert abs(best_lag(y, x, 160)) <= 2
