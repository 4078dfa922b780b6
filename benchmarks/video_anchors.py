"""Classical codec anchors on short clips: H.264 / H.265 / VP9 / AV1 rate-distortion curves through PyAV.

The encoding (settings of research/video-anchors.md 3.1: no container, one GOP per clip, yuv420p, bits
with and without x264's user-data SEI) and the curves live in `vqfuse.baselines.video`; this script picks
the clips, runs the curves and writes the report.

    python benchmarks/video_anchors.py --clips 50 --length 21            # moving digits, all 4 codecs
    python benchmarks/video_anchors.py --clips 8 --codecs h264 --results-dir /tmp/va   # smoke run
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import av
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS_DIR, environment, environment_line, markdown_table  # noqa: E402

from vqfuse.baselines.video import CODECS, ENCODERS, at_bpp, bits_factor_for, rd_curve  # noqa: E402
from vqfuse.io.atomic import atomic_write_json, atomic_write_text  # noqa: E402

SUMMARY_BPPS = (0.0625, 0.075, 0.083, 0.093, 0.10, 0.133, 0.15, 0.20)


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
