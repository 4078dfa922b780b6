"""Classical codec anchors on short clips: H.264 / H.265 / VP9 / AV1 rate-distortion curves through PyAV.

Settings are those of research/video-anchors.md 3.1: CodecContext encode -> decode with no container,
one GOP per clip, yuv420p (grey clips as Y with U = V = 128; colour as BT.601 full range, scored on
the decoded RGB), bits = packet bytes + extradata. x264's encoder-info SEI (about 0.7 kB per clip,
droppable metadata) is also stripped from the Annex-B stream for a second, "without SEI" rate, and the
stripped stream is what gets decoded, so the figure is known to be decodable.

    python benchmarks/video_anchors.py --clips 50 --length 21            # moving digits, all 4 codecs
    python benchmarks/video_anchors.py --clips 8 --codecs h264 --results-dir /tmp/va   # smoke run
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Literal, Sequence

import av
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS_DIR, environment, environment_line, markdown_table  # noqa: E402

from vqfuse.io.atomic import atomic_write_json, atomic_write_text  # noqa: E402
from vqfuse.metrics.video import video_metrics  # noqa: E402

Codec = Literal["h264", "h265", "vp9", "av1"]
CODECS: tuple[str, ...] = ("h264", "h265", "vp9", "av1")
ENCODERS = {"h264": "libx264", "h265": "libx265", "vp9": "libvpx-vp9", "av1": "libsvtav1"}
DECODERS = {"h264": "h264", "h265": "hevc", "vp9": "vp9", "av1": "libdav1d"}
_X26X_CRFS, _VPX_CRFS = list(range(51, 14, -3)), [*range(63, 22, -4), 20]  # 51 ... 15; 63 ... 23, 20
DEFAULT_CRFS: dict[str, list[int]] = {"h264": _X26X_CRFS, "h265": _X26X_CRFS, "vp9": _VPX_CRFS, "av1": _VPX_CRFS}
OPTIONS: dict[str, dict[str, str]] = {  # research/video-anchors.md 3.1; one GOP per clip
    "h264": {"preset": "slow", "x264-params": "keyint=1000:scenecut=0"},
    "h265": {"preset": "slow", "x265-params": "info=0:log-level=error"},
    "vp9": {"deadline": "good", "cpu-used": "1", "lag-in-frames": "0"},  # no lag: no alt-ref frames
    "av1": {"preset": "6"},
}
SUMMARY_BPPS = (0.0625, 0.075, 0.083, 0.093, 0.10, 0.133, 0.15, 0.20)
FPS = 25  # the rate-control models see a frame rate; any fixed value, stated here
os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints its whole configuration at info level


# ---- colour ---------------------------------------------------------------------------------------------


def _rgb_to_yuv420(rgb: np.ndarray) -> np.ndarray:
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


def _yuv420_to_rgb(yuv: np.ndarray, h: int, w: int) -> np.ndarray:
    """Inverse of _rgb_to_yuv420 (chroma upsampled by pixel repetition): (3H/2, W) -> (H, W, 3) uint8."""
    f = yuv.astype(np.float64)
    y = f[:h]
    up = lambda c: c.reshape(h // 2, w // 2).repeat(2, 0).repeat(2, 1) - 128  # noqa: E731  (H, W)
    cb, cr = up(f[h : h + h // 4]), up(f[h + h // 4 :])
    rgb = np.stack([y + 1.402 * cr, y - 0.344136 * cb - 0.714136 * cr, y + 1.772 * cb], axis=-1)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


# ---- Annex-B SEI stripping ------------------------------------------------------------------------------


def _nal_units(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of each NAL unit in an Annex-B byte string, start code (3 or 4 bytes) included."""
    starts, pos = [], data.find(b"\x00\x00\x01")
    while pos >= 0:
        starts.append(pos - 1 if pos > 0 and data[pos - 1] == 0 else pos)  # 4-byte start code
        pos = data.find(b"\x00\x00\x01", pos + 3)
    return list(zip(starts, starts[1:] + [len(data)]))


def _only_user_data_sei(rbsp: bytes) -> bool:
    """True when every SEI message in this RBSP is user_data_unregistered (payload type 5)."""
    data = rbsp.replace(b"\x00\x00\x03", b"\x00\x00")  # emulation prevention bytes
    i, seen, fields = 0, 0, []
    while i < len(data) and data[i:] != b"\x80":  # 0x80: rbsp_trailing_bits
        value = 0
        while i < len(data) and data[i] == 0xFF:  # payload type / size: each 0xFF adds 255
            value, i = value + 255, i + 1
        if i >= len(data):
            return False
        fields, i = [*fields, value + data[i]], i + 1
        if len(fields) == 2:  # (type, size) read: skip the payload
            if fields[0] != 5:
                return False
            i, seen, fields = i + fields[1], seen + 1, []
    return seen > 0 and not fields


def strip_user_data_sei(packet: bytes, codec: str) -> bytes:
    """Drop SEI NAL units that carry only user-data-unregistered messages (x264's encoder-info string).

    H.264: NAL type 6. H.265: prefix/suffix SEI types 39/40 (x265 with info=0 writes none). Other codecs
    are returned unchanged.
    """
    if codec not in ("h264", "h265"):
        return packet
    header = 1 if codec == "h264" else 2
    kept = []
    for start, end in _nal_units(packet):
        nal = packet[start:end].lstrip(b"\x00")[1:] or b"\x00"  # after the start code's 0x01
        kind = nal[0] & 0x1F if codec == "h264" else (nal[0] >> 1) & 0x3F
        is_sei = kind == 6 if codec == "h264" else kind in (39, 40)
        if not (is_sei and _only_user_data_sei(nal[header:])):
            kept.append(packet[start:end])
    return b"".join(kept) if kept else packet[:0]


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
    ctx = av.CodecContext.create(ENCODERS[codec], "w")
    ctx.width, ctx.height, ctx.pix_fmt = w, h, "yuv420p"
    ctx.time_base, ctx.framerate = Fraction(1, FPS), Fraction(FPS)
    if codec == "vp9":
        ctx.bit_rate = 0  # b=0: constant quality, CRF alone sets the rate
    ctx.options = {**OPTIONS[codec], "crf": str(crf)}
    return ctx


def _frame_to_yuv420(frame: np.ndarray) -> np.ndarray:
    """(H, W, 1|3) uint8 -> (3H/2, W) yuv420p: grey as Y with U = V = 128 (no colour), RGB as BT.601."""
    if frame.shape[-1] == 3:
        return _rgb_to_yuv420(frame)
    h, w = frame.shape[:2]
    yuv = np.full((h * 3 // 2, w), 128, np.uint8)
    yuv[:h] = frame[:, :, 0]
    return yuv


def encode_packets(frames: np.ndarray, codec: Codec, crf: int) -> tuple[list[bytes], int, bytes]:
    """Raw encoder output for (T, H, W, 1|3) uint8 frames: (packets, keyframe count, extradata)."""
    enc = _encoder(codec, crf, frames.shape[1], frames.shape[2])
    packets: list[bytes] = []
    keyframes = 0
    for i in range(len(frames) + 1):
        frame = None  # the last call, with None, flushes the encoder
        if i < len(frames):
            frame = av.VideoFrame.from_ndarray(_frame_to_yuv420(frames[i]), format="yuv420p")
            frame.pts = i
        for p in enc.encode(frame):
            keyframes += int(p.is_keyframe)
            packets.append(bytes(p))
    return packets, keyframes, bytes(enc.extradata or b"")


def encode_clip_details(frames: np.ndarray, codec: Codec, crf: int) -> EncodedClip:
    """Encode and decode one clip (T, H, W, C) uint8, C = 1 (grey) or 3 (RGB); H, W even."""
    frames = frames[..., None] if frames.ndim == 3 else frames
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] not in (1, 3):
        raise ValueError(f"expected (T, H, W, 1|3) uint8 frames, got {frames.shape} {frames.dtype}")
    t, h, w, c = frames.shape
    if h % 2 or w % 2:
        raise ValueError(f"yuv420p needs even frame sizes, got {h}x{w}")
    packets, keyframes, extradata = encode_packets(frames, codec, crf)
    stripped = [strip_user_data_sei(p, codec) for p in packets]
    dec = av.CodecContext.create(DECODERS[codec], "r")
    if extradata:
        dec.extradata = extradata
    out: list[np.ndarray] = []
    for p in [*stripped, None]:
        for f in dec.decode(av.Packet(p) if p is not None else None):
            yuv = f.to_ndarray(format="yuv420p")  # (3H/2, W)
            out.append(yuv[:h, :, None] if c == 1 else _yuv420_to_rgb(yuv, h, w))
    if len(out) != t:
        raise RuntimeError(f"{codec} CRF {crf}: decoded {len(out)} frames of {t}")
    bits = [8 * (sum(map(len, stream)) + len(extradata)) for stream in (packets, stripped)]
    return EncodedClip(decoded=np.stack(out), bits_total=bits[0], bits_without_sei=bits[1], keyframes=keyframes)


def encode_clip(frames: np.ndarray, codec: Codec, crf: int) -> tuple[np.ndarray, int, int]:
    """(decoded (T, H, W, C) uint8, bits_total, bits_without_sei) of one clip; see encode_clip_details."""
    r = encode_clip_details(frames, codec, crf)
    return r.decoded, r.bits_total, r.bits_without_sei


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


# ---- clip sources ---------------------------------------------------------------------------------------


def bouncing_squares(n: int, length: int, size: int = 64, seed: int = 2026) -> np.ndarray:
    """Smoke-test stand-in for moving digits: 2 bright 14x14 squares bouncing at 3.6 px/frame (0.1 of
    the range) on black, composited by max. (N, T, size, size, 1) uint8. Not comparable to digits."""
    rng = np.random.default_rng(seed)
    clips = np.zeros((n, length, size, size, 1), np.uint8)
    for k in [k for k in range(n) for _ in range(2)]:  # two squares per clip
        start, theta, level = rng.uniform(0, 1, 2), rng.uniform(0, 2 * np.pi), int(rng.integers(160, 256))
        path = start + np.arange(length)[:, None] * 0.1 * np.array([np.sin(theta), np.cos(theta)])  # (T, 2)
        path = 1 - np.abs(1 - np.mod(path, 2))  # reflection at both walls: a triangle wave in [0, 1]
        for t, (y, x) in enumerate((path * (size - 14)).astype(int)):
            np.maximum(clips[k, t, y : y + 14, x : x + 14], level, out=clips[k, t, y : y + 14, x : x + 14])
    return clips


def _moving_digit_clips(n: int, length: int) -> np.ndarray:
    """The first n clips of vqfuse.data.moving's fixed test set (seed 2026, held-out digit images),
    (N, T, 64, 64, 1) uint8 (the digits are 8-bit values / 255, so this is exact)."""
    from vqfuse.data.moving import MovingDigitsDataset  # ImportError -> load_clips falls back

    ds = MovingDigitsDataset(split="test", length=length)
    clips = np.stack([ds.clip(ds.rng(i)) for i in range(n)])  # (N, T, S, S, 1) float32 in [0, 1]
    return np.clip(np.rint(clips * 255), 0, 255).astype(np.uint8)


def load_clips(source: str, n: int, length: int, seed: int) -> tuple[np.ndarray, str]:
    """(clips, description) for --source auto|moving|squares."""
    if source in ("auto", "moving"):
        try:
            return _moving_digit_clips(n, length), "moving digits (vqfuse.data.moving test set, seed 2026)"
        except ImportError as exc:
            if source == "moving":
                raise
            print(f"vqfuse.data.moving unavailable ({exc}); using bouncing squares", file=sys.stderr)
    return bouncing_squares(
        n, length, seed=seed
    ), f"bouncing squares (smoke-test stand-in, NOT moving digits), seed {seed}"


# ---- report ---------------------------------------------------------------------------------------------


def _fmt(v: float | None, digits: int = 2) -> str:  # – for values outside the measured range
    return "–" if v is None else f"{v:.{digits}f}"


def _finite(obj: object) -> object:  # strict JSON: +-inf / NaN become None
    if isinstance(obj, (dict, list, tuple)):
        return {k: _finite(v) for k, v in obj.items()} if isinstance(obj, dict) else [_finite(v) for v in obj]
    return None if isinstance(obj, float) and not np.isfinite(obj) else obj


def summarize(curves: dict[str, list[dict]], tokenizer_bpp: float = 0.0625) -> dict[str, dict]:
    out = {}
    for codec, curve in curves.items():
        low = min(curve, key=lambda p: p["bpp"])
        out[codec] = {
            "lowest": {
                "bpp": low["bpp"],
                "bpp_with_sei": low["bpp_with_sei"],
                "psnr": low["psnr"],
                "mse_per_frame": low["mse_per_frame"],
            },
            "at": {
                str(b): {k: at_bpp(curve, b, k) for k in ("psnr", "mse_per_frame", "ssim", "ssim_openstl")}
                for b in SUMMARY_BPPS
            },
            "at_with_sei": {str(b): at_bpp(curve, b, "psnr", "bpp_with_sei") for b in SUMMARY_BPPS},
            "bits_factor": {str(db): bits_factor_for(curve, db, tokenizer_bpp) for db in (20.0, 26.0, 30.0)},
            # where the floor already beats the PSNR, the codec needs at most its floor rate
            "bits_factor_at_most": {
                str(db): low["bpp"] / tokenizer_bpp if low["psnr"] > db else None for db in (20.0, 26.0, 30.0)
            },
        }
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=50)
    parser.add_argument("--length", type=int, default=21)
    parser.add_argument("--seed", type=int, default=2026, help="seed of the bouncing squares")
    parser.add_argument("--source", choices=["auto", "moving", "squares"], default="auto")
    parser.add_argument("--codecs", nargs="+", choices=list(CODECS), default=list(CODECS))
    parser.add_argument("--tokenizer-bpp", type=float, default=0.0625, help="rate the bits factors refer to")
    parser.add_argument("--results-dir", default=str(RESULTS_DIR))
    parser.add_argument("--stem", default="video-anchors")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    env = environment({"av": av.__version__})
    clips, description = load_clips(args.source, args.clips, args.length, args.seed)
    curves = {codec: rd_curve(clips, codec) for codec in args.codecs}
    env["load_average_end"] = environment()["load_average_start"]
    summary = summarize(curves, args.tokenizer_bpp)
    n, t, h, w, c = clips.shape
    parts = [
        "# Classical codec anchors on short clips",
        "Command: `"
        + shlex.join(["python", "benchmarks/video_anchors.py", *(argv if argv is not None else sys.argv[1:])])
        + "`",
        f"Clips: {n} x {t} frames of {h}x{w}, {'grey' if c == 1 else 'RGB'}; {description}. PyAV {av.__version__}.",
        environment_line(env),
        "bpp = bits / (T·H·W), without x264's user-data SEI (the stream decoded and scored is the stripped one); "
        "'with SEI' counts every byte the encoder wrote. PSNR: mean of per-frame PSNRs ([0, 1], peak 1); MSE/MAE: "
        "OpenSTL per-frame sums over C·H·W; SSIM: Gaussian 11x11, σ 1.5, data_range 1; SSIM-OpenSTL: uniform 7x7, "
        "data_range 2 (old scikit-image). Values at a bpp are linear interpolations between CRF points; – = outside "
        f"the measured range. Bits factor: codec rate needed for that PSNR / {args.tokenizer_bpp} bpp (≤: the "
        "codec's lowest point already beats it, so it needs at most that rate).",
    ]
    rows = []
    for codec, s in summary.items():
        at = s["at"]
        cells = [
            f"{_fmt(at[str(b)]['psnr'])} ({_fmt(at[str(b)]['mse_per_frame'], 1)}, {_fmt(at[str(b)]['ssim'], 3)})"
            for b in SUMMARY_BPPS
        ]
        lowest = f"{s['lowest']['bpp']:.3f} → {s['lowest']['psnr']:.1f} (with SEI {s['lowest']['bpp_with_sei']:.3f})"
        factors = " / ".join(
            _fmt(s["bits_factor"][str(db)])
            if s["bits_factor_at_most"][str(db)] is None
            else f"≤{s['bits_factor_at_most'][str(db)]:.2f}"
            for db in (20.0, 26.0, 30.0)
        )
        rows.append([codec, lowest, *cells, factors])
    parts.append(
        markdown_table(
            [
                "codec",
                "lowest bpp → dB",
                *[f"{b} bpp: dB (MSE, SSIM)" for b in SUMMARY_BPPS],
                "bits factor 20 / 26 / 30 dB",
            ],
            rows,
            ["l"] + ["r"] * (len(SUMMARY_BPPS) + 2),
        )
    )
    for codec, curve in curves.items():
        parts.append(f"## {codec} ({ENCODERS[codec]})")
        parts.append(
            markdown_table(
                [
                    "CRF",
                    "bpp",
                    "bpp with SEI",
                    "PSNR",
                    "PSNR of mean MSE",
                    "MSE",
                    "MAE",
                    "SSIM",
                    "SSIM-OpenSTL",
                    "temporal MAE",
                    "keyframes (max)",
                    "s",
                ],
                [
                    [
                        p["crf"],
                        f"{p['bpp']:.4f}",
                        f"{p['bpp_with_sei']:.4f}",
                        _fmt(p["psnr"]),
                        _fmt(p["psnr_of_mean_mse"]),
                        _fmt(p["mse_per_frame"]),
                        _fmt(p["mae_per_frame"]),
                        _fmt(p.get("ssim"), 4),
                        _fmt(p.get("ssim_openstl"), 4),
                        _fmt(p.get("temporal_mae"), 5),
                        p["keyframes_max"],
                        f"{p['encode_decode_s']:.1f}",
                    ]
                    for p in curve
                ],
            )
        )
    md = "\n\n".join(parts)
    data = {
        "environment": env,
        "args": vars(args),
        "clips": {"n": n, "length": t, "height": h, "width": w, "channels": c, "source": description},
        "summary": summary,
        "curves": curves,
    }
    out_dir = Path(args.results_dir)
    atomic_write_json(out_dir / f"{args.stem}.json", _finite(data))
    atomic_write_text(out_dir / f"{args.stem}.md", md.rstrip() + "\n")
    print(md)
    return data


if __name__ == "__main__":
    main()
