"""Opus baselines for speech: libopus through PyAV at a set bit rate, and Ogg Opus through libsndfile.

`opus_at_kbps` is the anchor at a given rate: PyAV's libopus encoder with its bit rate set to exactly that
rate, raw packets with no container; the rate reported is the audio payload (packet bytes over the input's
duration). Settings (`opus_settings`): libopus's VBR from 6 kbit/s up and CBR below, since VBR does not go
below about 5 kbit/s on speech; 40 ms frames, or 20 ms below 2.5 kbit/s, where libopus emits only
concealment (silent) frames for longer ones. Measured on six speech test clips at 16 kHz (payload kbit/s,
STOI over the clips joined):

    aim     VBR 40 ms      CBR 40 ms      VBR 20 ms
    3       4.88  0.689    3.09  0.714    5.33  0.689
    6       6.08  0.899    6.19  0.863    6.29  0.880
    12      12.62 0.976    12.38 0.963    12.52 0.974

(pure tones are the exception: VBR spends 15-25% over the aim on a sine, and CBR at 6 kbit/s loses its
waveform). The libsndfile functions (`sndfile_opus_*`, `calibrate_sndfile_opus`) are the older anchor of
`benchmarks/audio.py`: Ogg Opus at a compression level, which libsndfile maps to 256..6 kbit/s, so its
lowest rate is about 6.4 kbit/s payload. `align` lines a decoded signal up by cross-correlation.
"""

from __future__ import annotations

import io
import math
from fractions import Fraction

import av
import numpy as np
import soundfile as sf
import soxr

__all__ = [
    "OPUS_RATES",
    "OPUS_SAMPLE_RATES",
    "OPUS_VBR_FROM_KBPS",
    "OPUS_LONG_FRAMES_FROM_KBPS",
    "align",
    "best_lag",
    "calibrate_sndfile_opus",
    "ogg_packet_sizes",
    "opus_at_kbps",
    "opus_codec_rate",
    "opus_decode_packets",
    "opus_encode_packets",
    "opus_pre_skip",
    "opus_settings",
    "sndfile_opus_decode",
    "sndfile_opus_encode",
    "sndfile_opus_rates",
]

OPUS_RATES: tuple[float, ...] = (3.0, 6.0, 12.0)  # kbit/s: the Opus anchors of the speech benchmark
OPUS_SAMPLE_RATES: tuple[int, ...] = (8000, 12000, 16000, 24000, 48000)  # what libopus encodes
OPUS_DECODE_RATE = 48000  # FFmpeg's libopus decoder always outputs 48 kHz
OPUS_VBR_FROM_KBPS = 6.0  # VBR at and above this rate, CBR below (libopus's VBR floor is about 5 kbit/s)
OPUS_LONG_FRAMES_FROM_KBPS = 2.5  # 40 ms frames from here up; below, libopus only codes 20 ms ones


def _check_audio(x: np.ndarray, sample_rate: int) -> None:
    """Raise ValueError unless `x` is a non-empty, finite (T,) float32 array and the rate a positive int."""
    if not isinstance(x, np.ndarray) or x.dtype != np.float32 or x.ndim != 1:
        shape, dtype = getattr(x, "shape", None), getattr(x, "dtype", None)
        raise ValueError(f"expected mono (T,) float32 audio, got {type(x).__name__} {shape} {dtype}")
    if len(x) == 0:
        raise ValueError("audio is empty (0 samples)")
    if not np.isfinite(x).all():
        raise ValueError("audio holds NaN or infinite samples")
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive integer, got {sample_rate!r}")


# ---- libopus through PyAV --------------------------------------------------------------------------------


def opus_codec_rate(sample_rate: int) -> int:
    """The rate `opus_at_kbps` encodes at: `sample_rate` itself when libopus takes it, else the lowest
    accepted rate above it (48 kHz above 48 kHz)."""
    return next((r for r in OPUS_SAMPLE_RATES if r >= sample_rate), OPUS_SAMPLE_RATES[-1])


def opus_settings(kbps: float) -> tuple[bool, int]:
    """(vbr, frame_ms) that `opus_at_kbps` uses at `kbps` unless told otherwise (see the module notes)."""
    return kbps >= OPUS_VBR_FROM_KBPS, 40 if kbps >= OPUS_LONG_FRAMES_FROM_KBPS else 20


def opus_encode_packets(
    x: np.ndarray, sample_rate: int, kbps: float, vbr: bool, frame_ms: float
) -> tuple[list[bytes], bytes]:
    """libopus packets of mono float32 `x` (T,) at an accepted `sample_rate`, and the OpusHead (extradata).

    The encoder is flushed, so the packets cover the input plus the encoder's lookahead (the pre-skip).
    """
    enc = av.CodecContext.create("libopus", "w")
    enc.sample_rate, enc.layout, enc.format = sample_rate, "mono", "flt"
    enc.bit_rate = round(kbps * 1000)
    enc.time_base = Fraction(1, sample_rate)
    enc.options = {"vbr": "on" if vbr else "off", "frame_duration": f"{frame_ms:g}"}
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(x)[None], format="flt", layout="mono")  # (1, T)
    frame.sample_rate, frame.pts = sample_rate, 0
    packets = [bytes(p) for p in enc.encode(frame)] + [bytes(p) for p in enc.encode(None)]
    return packets, bytes(enc.extradata)


def opus_pre_skip(head: bytes) -> int:
    """Samples at 48 kHz to drop from the decoder's output (RFC 7845: OpusHead bytes 10-11, little-endian)."""
    if len(head) < 19 or head[:8] != b"OpusHead":
        raise ValueError("not an OpusHead header")
    return int.from_bytes(head[10:12], "little")


def opus_decode_packets(packets: list[bytes], head: bytes) -> np.ndarray:
    """Decode raw Opus packets with libopus: (T48,) float32 at 48 kHz, pre-skip removed."""
    pre_skip = opus_pre_skip(head)
    dec = av.CodecContext.create("libopus", "r")
    dec.extradata = head[:10] + b"\x00\x00" + head[12:]  # pre-skip 0: removed here, not by the decoder
    dec.options = {"request_sample_fmt": "flt"}
    out: list[np.ndarray] = []
    for p in [*packets, None]:
        for f in dec.decode(av.Packet(p) if p is not None else None):
            if f.sample_rate != OPUS_DECODE_RATE:
                raise RuntimeError(f"libopus decoded at {f.sample_rate} Hz, expected {OPUS_DECODE_RATE}")
            a = f.to_ndarray().reshape(-1)  # (1, n) mono
            out.append(a.astype(np.float32) / 32768 if a.dtype == np.int16 else a.astype(np.float32))
    return np.concatenate(out)[pre_skip:] if out else np.zeros(0, np.float32)


def _resample(x: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    return x if from_rate == to_rate else soxr.resample(x, from_rate, to_rate, quality="HQ").astype(np.float32)


def opus_at_kbps(
    x: np.ndarray, sample_rate: int, kbps: float, vbr: bool | None = None, frame_ms: float | None = None
) -> tuple[np.ndarray, float]:
    """Opus (libopus through PyAV) at `kbps` kbit/s: (decoded (T,) float32 at `sample_rate`, actual kbit/s).

    x: mono (T,) float32. Encoded at `opus_codec_rate(sample_rate)` (soxr in and out when that differs),
    decoded at 48 kHz and resampled back; the codec's pre-skip is removed, so the output lines up with
    `x`, and it is cut or zero-padded to len(x). actual kbit/s = packet bits / (T / sample_rate) / 1000:
    the audio payload, no container. `vbr` (True: VBR, False: CBR) and `frame_ms` (2.5 ... 120) default
    to `opus_settings(kbps)`.
    """
    _check_audio(x, sample_rate)
    if not (isinstance(kbps, (int, float)) and math.isfinite(kbps) and 0.5 <= kbps <= 512):
        raise ValueError(f"kbps must be within libopus's 0.5..512 kbit/s, got {kbps!r}")
    default_vbr, default_frame_ms = opus_settings(kbps)
    vbr = default_vbr if vbr is None else vbr
    frame_ms = default_frame_ms if frame_ms is None else frame_ms
    codec_rate = opus_codec_rate(sample_rate)
    packets, head = opus_encode_packets(_resample(x, sample_rate, codec_rate), codec_rate, kbps, vbr, frame_ms)
    y = _resample(opus_decode_packets(packets, head), OPUS_DECODE_RATE, sample_rate)
    out = np.zeros(len(x), np.float32)
    out[: min(len(x), len(y))] = y[: len(x)]
    return out, sum(map(len, packets)) * 8 / (len(x) / sample_rate) / 1000


# ---- alignment -----------------------------------------------------------------------------------------


def best_lag(est: np.ndarray, ref: np.ndarray, max_lag: int) -> int:
    """Delay (samples) of `est` relative to `ref` maximising their cross-correlation within +-max_lag."""
    n = len(ref) + len(est)
    size = 1 << (n - 1).bit_length()
    xc = np.fft.irfft(np.fft.rfft(est, size) * np.conj(np.fft.rfft(ref, size)), size)
    lags = np.r_[0 : max_lag + 1, -max_lag:0]
    return int(lags[int(np.argmax(xc[lags]))])


def align(est: np.ndarray, ref: np.ndarray, max_lag: int) -> tuple[np.ndarray, int]:
    """`est` shifted by its best lag and cut or zero-padded to the length of `ref`: (aligned (T,), lag)."""
    lag = best_lag(est, ref, max_lag)
    if lag > 0:
        est = est[lag:]
    elif lag < 0:
        est = np.concatenate([np.zeros(-lag, est.dtype), est])
    out = np.zeros(len(ref), np.float32)
    out[: min(len(ref), len(est))] = est[: len(ref)]
    return out, lag


# ---- Ogg Opus through libsndfile -----------------------------------------------------------------------


def ogg_packet_sizes(data: bytes) -> list[int]:
    """Sizes of the packets of an Ogg stream (a packet spans segments until one shorter than 255 bytes)."""
    sizes, pos, current = [], 0, 0
    while pos + 27 <= len(data):
        if data[pos : pos + 4] != b"OggS":
            raise ValueError(f"no Ogg page at byte {pos}")
        nseg = data[pos + 26]
        lacing = data[pos + 27 : pos + 27 + nseg]
        pos += 27 + nseg
        for s in lacing:
            current += s
            if s < 255:
                sizes.append(current)
                current = 0
        pos += sum(lacing)
    return sizes


def sndfile_opus_encode(x: np.ndarray, sample_rate: int, level: float) -> tuple[bytes, int]:
    """Ogg Opus file bytes of mono float32 `x` at libsndfile compression `level`, and the audio payload in
    bytes (all packets but the OpusHead and OpusTags headers; no Ogg page headers)."""
    buf = io.BytesIO()
    sf.write(buf, x, sample_rate, format="OGG", subtype="OPUS", compression_level=level)
    data = buf.getvalue()
    return data, sum(ogg_packet_sizes(data)[2:])


def sndfile_opus_decode(data: bytes, sample_rate: int) -> np.ndarray:
    """Ogg Opus bytes -> mono (T,) float32 at `sample_rate` (libsndfile removes the pre-skip)."""
    y, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    return _resample(y.mean(axis=1), sr, sample_rate)


def sndfile_opus_rates(clips: list[np.ndarray], sample_rate: int, level: float) -> tuple[float, float]:
    """(whole-file kbps, payload kbps) of encoding every clip as its own file at `level`."""
    seconds = sum(len(c) for c in clips) / sample_rate
    files = [sndfile_opus_encode(c, sample_rate, level) for c in clips]
    return sum(len(d) for d, _ in files) * 8 / seconds / 1000, sum(p for _, p in files) * 8 / seconds / 1000


def calibrate_sndfile_opus(clips: list[np.ndarray], sample_rate: int, target_kbps: float, iters: int = 12) -> dict:
    """The compression level whose payload bitrate on these clips is closest to `target_kbps` (bisection:
    the bitrate falls as the level rises; libsndfile maps level 0..1 linearly to 256..6 kbit/s per channel).
    When even level 1.0 is above the target, level 1.0 (the lowest bitrate libsndfile offers)."""
    tried: dict[float, float] = {}

    def payload(level: float) -> float:
        if level not in tried:
            tried[level] = sndfile_opus_rates(clips, sample_rate, level)[1]
        return tried[level]

    lo, hi = 0.0, 1.0  # payload(lo) > target >= payload(hi)
    if payload(hi) < target_kbps:
        for _ in range(iters):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if payload(mid) > target_kbps else (lo, mid)
        level = min((lo, hi), key=lambda lv: abs(payload(lv) - target_kbps))
    else:
        level = hi
    return {
        "target_kbps": target_kbps,
        "compression_level": round(level, 6),
        "payload_kbps": payload(level),
        "lowest_payload_kbps": payload(1.0),
        "reachable": payload(1.0) <= target_kbps * 1.05,
    }
