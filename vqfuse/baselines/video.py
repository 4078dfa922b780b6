"""Classic video codecs through PyAV: H.264 / H.265 / VP9 / AV1 on short clips, and H.264 at a bpp budget.

Settings are those of research/video-anchors.md 3.1: CodecContext encode -> decode with no container,
one GOP per clip, yuv420p (grey clips as Y with U = V = 128; colour as BT.601 full range, scored on the
decoded RGB), bits = packet bytes + extradata. x264's encoder-info SEI (about 0.7 kB per clip, droppable
metadata) is also stripped from the Annex-B stream for a second, "without SEI" rate, and the stripped
stream is what gets decoded, so that figure is known to be decodable. `benchmarks/video_anchors.py` draws
its rate-distortion curves with this module.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from fractions import Fraction
from typing import Iterable, Literal, Sequence

import av
import numpy as np
import torch

from vqfuse.baselines.annexb import strip_user_data_sei
from vqfuse.metrics.video import video_metrics

__all__ = [
    "CODECS",
    "CRF_RANGES",
    "DEFAULT_CRFS",
    "EncodedClip",
    "at_bpp",
    "bits_factor_for",
    "codec_at_bpp",
    "encode_clip",
    "encode_clip_details",
    "encode_packets",
    "h264_at_bpp",
    "rate_for",
    "rd_curve",
    "rgb_to_yuv420",
    "strip_user_data_sei",
    "yuv420_to_rgb",
]

Codec = Literal["h264", "h265", "vp9", "av1"]
CODECS: tuple[str, ...] = ("h264", "h265", "vp9", "av1")
ENCODERS = {"h264": "libx264", "h265": "libx265", "vp9": "libvpx-vp9", "av1": "libsvtav1"}
DECODERS = {"h264": "h264", "h265": "hevc", "vp9": "vp9", "av1": "libdav1d"}
CRF_RANGES: dict[str, tuple[int, int]] = {"h264": (0, 51), "h265": (0, 51), "vp9": (0, 63), "av1": (0, 63)}
_X26X_CRFS, _VPX_CRFS = list(range(51, 14, -3)), [*range(63, 22, -4), 20]  # 51 ... 15; 63 ... 23, 20
DEFAULT_CRFS: dict[str, list[int]] = {"h264": _X26X_CRFS, "h265": _X26X_CRFS, "vp9": _VPX_CRFS, "av1": _VPX_CRFS}
OPTIONS: dict[str, dict[str, str]] = {  # research/video-anchors.md 3.1; one GOP per clip
    "h264": {"preset": "slow", "x264-params": "keyint=1000:scenecut=0"},
    "h265": {"preset": "slow", "x265-params": "info=0:log-level=error"},
    "vp9": {"deadline": "good", "cpu-used": "1", "lag-in-frames": "0"},  # no lag: no alt-ref frames
    "av1": {"preset": "6"},
}
FPS = 25  # the rate-control models see a frame rate; any fixed value, stated here


# ---- colour ---------------------------------------------------------------------------------------------


def rgb_to_yuv420(rgb: np.ndarray) -> np.ndarray:
    """BT.601 full range: (H, W, 3) uint8 -> (3H/2, W) uint8 planar yuv420p (chroma: 2x2 means)."""
    f = rgb.astype(np.float64)
    r, g, b = f[..., 0], f[..., 1], f[..., 2]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = 128 - 0.168736 * r - 0.331264 * g + 0.5 * b
    cr = 128 + 0.5 * r - 0.418688 * g - 0.081312 * b
    h, w = y.shape
    sub = lambda c: c.reshape(h // 2, 2, w // 2, 2).mean((1, 3))  # noqa: E731  (H/2, W/2)
    planes = [y, sub(cb).reshape(h // 4, w), sub(cr).reshape(h // 4, w)]
    return np.clip(np.rint(np.concatenate(planes)), 0, 255).astype(np.uint8)


def yuv420_to_rgb(yuv: np.ndarray, h: int, w: int) -> np.ndarray:
    """Inverse of rgb_to_yuv420 (chroma upsampled by pixel repetition): (3H/2, W) -> (H, W, 3) uint8."""
    f = yuv.astype(np.float64)
    y = f[:h]
    up = lambda c: c.reshape(h // 2, w // 2).repeat(2, 0).repeat(2, 1) - 128  # noqa: E731  (H, W)
    cb, cr = up(f[h : h + h // 4]), up(f[h + h // 4 :])
    rgb = np.stack([y + 1.402 * cr, y - 0.344136 * cb - 0.714136 * cr, y + 1.772 * cb], axis=-1)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def frame_to_yuv420(frame: np.ndarray) -> np.ndarray:
    """(H, W, 1|3) uint8 -> (3H/2, W) yuv420p: grey as Y with U = V = 128 (no colour), RGB as BT.601."""
    if frame.shape[-1] == 3:
        return rgb_to_yuv420(frame)
    h, w = frame.shape[:2]
    yuv = np.full((h * 3 // 2, w), 128, np.uint8)
    yuv[:h] = frame[:, :, 0]
    return yuv


# ---- encode / decode ------------------------------------------------------------------------------------


@dataclass
class EncodedClip:
    decoded: np.ndarray  # (T, H, W, C) uint8, decoded from the stripped stream
    bits_total: int  # packets + extradata, as the encoder wrote them
    bits_without_sei: int  # the same with user-data SEI NAL units removed
    keyframes: int  # 1 when the clip is one GOP


def _encoder(codec: str, crf: int, h: int, w: int) -> av.CodecContext:
    if codec not in ENCODERS:
        raise ValueError(f"codec must be one of {CODECS}, got {codec!r}")
    if codec == "av1":
        os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints its whole configuration at info level
    ctx = av.CodecContext.create(ENCODERS[codec], "w")
    ctx.width, ctx.height, ctx.pix_fmt = w, h, "yuv420p"
    ctx.time_base, ctx.framerate = Fraction(1, FPS), Fraction(FPS)
    if codec == "vp9":
        ctx.bit_rate = 0  # b=0: constant quality, CRF alone sets the rate
    ctx.options = {**OPTIONS[codec], "crf": str(crf)}
    return ctx


def check_frames(frames: np.ndarray) -> np.ndarray:
    """(T, H, W) or (T, H, W, 1|3) uint8 with T, H, W > 0 and H, W even -> (T, H, W, C); else ValueError."""
    if not isinstance(frames, np.ndarray):
        raise ValueError(f"expected a numpy array of frames, got {type(frames).__name__}")
    frames = frames[..., None] if frames.ndim == 3 else frames
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] not in (1, 3):
        raise ValueError(f"expected (T, H, W, 1|3) uint8 frames, got {frames.shape} {frames.dtype}")
    t, h, w, _ = frames.shape
    if t == 0 or h == 0 or w == 0:
        raise ValueError(f"frames are empty: shape {frames.shape}")
    if h % 2 or w % 2:
        raise ValueError(f"yuv420p needs even frame sizes, got {h}x{w}")
    return frames


def encode_packets(frames: np.ndarray, codec: Codec, crf: int) -> tuple[list[bytes], int, bytes]:
    """Raw encoder output for (T, H, W, 1|3) uint8 frames: (packets, keyframe count, extradata)."""
    enc = _encoder(codec, crf, frames.shape[1], frames.shape[2])
    packets: list[bytes] = []
    keyframes = 0
    for i in range(len(frames) + 1):
        frame = None  # the last call, with None, flushes the encoder
        if i < len(frames):
            frame = av.VideoFrame.from_ndarray(frame_to_yuv420(frames[i]), format="yuv420p")
            frame.pts = i
        for p in enc.encode(frame):
            keyframes += int(p.is_keyframe)
            packets.append(bytes(p))
    return packets, keyframes, bytes(enc.extradata or b"")


def encode_clip_details(frames: np.ndarray, codec: Codec, crf: int) -> EncodedClip:
    """Encode and decode one clip (T, H, W, C) uint8, C = 1 (grey) or 3 (RGB); H, W even."""
    frames = check_frames(frames)
    t, h, w, c = frames.shape
    packets, keyframes, extradata = encode_packets(frames, codec, crf)
    stripped = [strip_user_data_sei(p, codec) for p in packets]
    dec = av.CodecContext.create(DECODERS[codec], "r")
    if extradata:
        dec.extradata = extradata
    out: list[np.ndarray] = []
    for p in [*stripped, None]:
        for f in dec.decode(av.Packet(p) if p is not None else None):
            yuv = f.to_ndarray(format="yuv420p")  # (3H/2, W)
            out.append(yuv[:h, :, None] if c == 1 else yuv420_to_rgb(yuv, h, w))
    if len(out) != t:
        raise RuntimeError(f"{codec} CRF {crf}: decoded {len(out)} frames of {t}")
    bits = [8 * (sum(map(len, stream)) + len(extradata)) for stream in (packets, stripped)]
    return EncodedClip(decoded=np.stack(out), bits_total=bits[0], bits_without_sei=bits[1], keyframes=keyframes)


def encode_clip(frames: np.ndarray, codec: Codec, crf: int) -> tuple[np.ndarray, int, int]:
    """(decoded (T, H, W, C) uint8, bits_total, bits_without_sei) of one clip; see encode_clip_details."""
    r = encode_clip_details(frames, codec, crf)
    return r.decoded, r.bits_total, r.bits_without_sei


# ---- at a bits-per-pixel budget -------------------------------------------------------------------------


def codec_at_bpp(frames: np.ndarray, codec: Codec, bpp: float) -> tuple[EncodedClip, int]:
    """The lowest CRF (best quality) whose stream fits `bpp`: (encoded clip, CRF).

    Bits are those of the decoded stream (packets without x264's user-data SEI, plus extradata) over
    T * H * W. CRF is bisected over the codec's whole range (rate falls as CRF rises); when even the
    highest CRF does not fit, that one is returned with its larger rate.
    """
    frames = check_frames(frames)
    if codec not in CRF_RANGES:
        raise ValueError(f"codec must be one of {CODECS}, got {codec!r}")
    if not (isinstance(bpp, (int, float)) and math.isfinite(bpp) and bpp > 0):
        raise ValueError(f"bpp must be a positive number, got {bpp!r}")
    budget = bpp * frames.shape[0] * frames.shape[1] * frames.shape[2]
    tried: dict[int, EncodedClip] = {}

    def coded(crf: int) -> EncodedClip:
        if crf not in tried:
            tried[crf] = encode_clip_details(frames, codec, crf)
        return tried[crf]

    lo, hi = CRF_RANGES[codec]  # invariant once the first check passes: hi fits
    if coded(hi).bits_without_sei <= budget:
        while lo < hi:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if coded(mid).bits_without_sei <= budget else (mid + 1, hi)
    return coded(hi), hi


def h264_at_bpp(frames: np.ndarray, bpp: float) -> tuple[np.ndarray, float]:
    """libx264 at `bpp` bits per pixel: (decoded (T, H, W, 3) uint8, actual bits per pixel).

    frames: (T, H, W, 3) uint8 (or (T, H, W, 1) grey), H and W even. The best quality (lowest CRF) at or
    under `bpp`; see codec_at_bpp.
    """
    clip, _ = codec_at_bpp(frames, "h264", bpp)
    t, h, w = clip.decoded.shape[:3]
    return clip.decoded, clip.bits_without_sei / (t * h * w)


# ---- rate-distortion curves -----------------------------------------------------------------------------


def _to_tensor(clips: np.ndarray) -> torch.Tensor:
    """(N, T, H, W, C) uint8 -> (N, C, T, H, W) float in [-1, 1]."""
    return torch.from_numpy(clips).permute(0, 4, 1, 2, 3).double() / 127.5 - 1


def rd_curve(clips: Sequence[np.ndarray] | np.ndarray, codec: Codec, crfs: Iterable[int] | None = None) -> list[dict]:
    """One point per CRF over equal-shape clips (N, T, H, W, C) uint8: mean bpp (with / without SEI),
    the metrics of vqfuse.metrics.video (psnr = mean per-frame PSNR, mse_per_frame = OpenSTL MSE, ...), keyframes.

    bpp = bits / (T * H * W) per clip, averaged over clips. Points are ordered by CRF as given.
    """
    originals = np.stack([c if c.ndim == 4 else c[..., None] for c in clips])  # (N, T, H, W, C)
    n, t, h, w, _ = originals.shape
    reference = _to_tensor(originals)
    points = []
    for crf in crfs if crfs is not None else DEFAULT_CRFS[codec]:
        start = time.perf_counter()
        encoded = [encode_clip_details(c, codec, crf) for c in originals]
        seconds = time.perf_counter() - start
        metrics = video_metrics(_to_tensor(np.stack([e.decoded for e in encoded])), reference)
        points.append(
            {
                "crf": crf,
                "bpp": float(np.mean([e.bits_without_sei for e in encoded])) / (t * h * w),
                "bpp_with_sei": float(np.mean([e.bits_total for e in encoded])) / (t * h * w),
                **metrics,
                "keyframes_max": max(e.keyframes for e in encoded),
                "encode_decode_s": seconds,
            }
        )
    return points


def _interp(curve: Sequence[dict], xkey: str, ykey: str, x: float, rate_key: str) -> float | None:
    """ykey at x, linear between the points sorted by rate, on the lowest-rate segment that spans x;
    None when no segment does (no extrapolation)."""
    pts = [(p[xkey], p[ykey]) for p in sorted(curve, key=lambda p: p[rate_key])]
    for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
        if min(x0, x1) <= x <= max(x0, x1):
            return float(y0 if x1 == x0 else y0 + (x - x0) / (x1 - x0) * (y1 - y0))
    return float(pts[0][1]) if len(pts) == 1 and pts[0][0] == x else None


def at_bpp(curve: Sequence[dict], bpp: float, key: str = "psnr", rate_key: str = "bpp") -> float | None:
    """`key` linearly interpolated at `bpp` between CRF points: None below the lowest reachable rate and
    above the highest point measured."""
    return _interp(curve, rate_key, key, bpp, rate_key)


def rate_for(curve: Sequence[dict], value: float, key: str = "psnr", rate_key: str = "bpp") -> float | None:
    """The lowest rate at which `key` reaches `value`, interpolating linearly. None when the curve never
    reaches it, or when its lowest point already exceeds it (the codec cannot go below its floor, so
    the rate it would need is unknown)."""
    return _interp(curve, key, rate_key, value, rate_key)


def bits_factor_for(
    curve: Sequence[dict], psnr: float, bpp: float, key: str = "psnr", rate_key: str = "bpp"
) -> float | None:
    """How many times the bits of `bpp` the codec needs to reach `psnr` (e.g. 1.33 for a tokenizer that
    gets 26 dB at 0.0625 bpp where H.264 needs 0.083); None where rate_for is None."""
    rate = rate_for(curve, psnr, key, rate_key)
    return None if rate is None else rate / bpp
