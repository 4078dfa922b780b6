"""Video tokenizer benchmark: held-out moving digits, vqfuse tokens vs H.264 and VP9 (PyAV) on the same clips.

The clips are `moving-digits`' fixed test set (2,000 clips from held-out digit images, seed 2026; the first
`--clips` of them), coded by the model through the public API (`Tokenizer.encode_item` -> token file ->
`decode_item`). In the same run H.264 (x264, slow preset, CRF sweep; rates with and without x264's
encoder-info SEI) and VP9 code the same clips (`benchmarks/video_anchors.py`), interpolated at the
tokenizer's bits per pixel. Also: the first-frame path (each test frame coded alone as a one-frame image,
against the same frames inside clips), codebook usage, windowed encoding of a long clip against one pass, and
encode + decode speed.

    python benchmarks/video.py --model runs/video-digits --clips 500
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import environment, environment_line, markdown_table, verdict, write_results  # noqa: E402
from video_anchors import at_bpp, bits_factor_for, rd_curve  # noqa: E402

from vqfuse.codec import load_model  # noqa: E402
from vqfuse.data.moving import MovingDigitsDataset  # noqa: E402
from vqfuse.data.video_files import to_uint8_frames  # noqa: E402
from vqfuse.io.tokenfile import decode_tokens, encode_tokens  # noqa: E402
from vqfuse.metrics.video import frame_psnr, video_metrics  # noqa: E402

CRFS = {"h264": list(range(51, 29, -3)), "vp9": list(range(63, 35, -4))}
TARGET_PSNR, MOONSHOT_PSNR, TARGET_USAGE = 26.0, 30.0, 0.98


def test_clips(n: int, length: int) -> torch.Tensor:
    """(n, 1, T, 64, 64) in [-1, 1]: the first n clips of the fixed held-out set, as 8-bit frames."""
    ds = MovingDigitsDataset("test", length=length)
    clips = torch.stack([ds[i] for i in range(min(n, len(ds)))])
    return torch.round((clips + 1) * 127.5) / 127.5 - 1  # what a user's video file holds


@torch.no_grad()
def tokenizer_figures(model, clips: torch.Tensor, batch: int) -> dict:
    """Token files of each clip (their bits), reconstructions and metrics; codebook usage of all tokens."""
    outputs, bits, counts = [], [], torch.zeros(model.codebook_size, dtype=torch.long)
    start = time.perf_counter()
    for x in clips:
        tf = decode_tokens(encode_tokens(model.encode_item(x)))  # through the .vqf bytes
        outputs.append(model.decode_item(tf))
        counts += torch.bincount(torch.as_tensor(tf.indices).reshape(-1).long(), minlength=model.codebook_size)
        bits.append(int(torch.as_tensor(tf.indices).numel()) * math.log2(model.codebook_size))
    seconds = time.perf_counter() - start
    recon = torch.stack(outputs).clamp(-1, 1)
    recon = torch.round((recon + 1) * 127.5) / 127.5 - 1  # scored on the 8-bit frames a user gets
    metrics = {k: [] for k in video_metrics(recon[:1], clips[:1])}
    for s in range(0, len(clips), batch):
        for k, v in video_metrics(recon[s : s + batch], clips[s : s + batch]).items():
            metrics[k].append(v * len(clips[s : s + batch]))
    t, h, w = clips.shape[2:]
    per_clip_psnr = frame_psnr(recon, clips, reduction="none")
    return {
        "bpp": float(np.mean(bits)) / (t * h * w),
        **{k: float(np.sum(v)) / len(clips) for k, v in metrics.items()},
        "psnr_std_over_clips": float(per_clip_psnr.std()),
        "codebook_usage": float((counts > 0).float().mean()),
        "perplexity": float(torch.exp(-(p := counts / counts.sum())[p > 0].mul(p[p > 0].log()).sum())),
        "clips_per_s": len(clips) / seconds,
        "recon": recon,
    }


@torch.no_grad()
def first_frame_path(model, clips: torch.Tensor, recon: torch.Tensor, frames: tuple[int, ...]) -> dict:
    """PSNR of frames coded alone as images (T = 1) vs the same frames of the clip reconstructions."""
    alone, inside = [], []
    for f in frames:
        images = clips[:, :, f : f + 1]  # (N, 1, 1, H, W)
        out = torch.stack([model.decode_item(model.encode_item(x)) for x in images]).clamp(-1, 1)
        alone.append(float(frame_psnr(torch.round((out + 1) * 127.5) / 127.5 - 1, images)))
        inside.append(float(frame_psnr(recon[:, :, f : f + 1], images)))
    return {"frames": list(frames), "image_psnr": float(np.mean(alone)), "clip_psnr": float(np.mean(inside))}


@torch.no_grad()
def windowing(model, length: int) -> dict:
    """A clip 4x the training length encoded in windows (the default plan) against one pass."""
    ds = MovingDigitsDataset("test", length=4 * length - 3)
    x = ds[0]
    windowed = model.encode_item(x).indices
    whole = model.encode_item(x, chunking=False).indices
    return {
        "frames": int(x.shape[1]),
        "identical_tokens": bool(torch.equal(torch.as_tensor(windowed), torch.as_tensor(whole))),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a video tokenizer run or model directory")
    parser.add_argument("--clips", type=int, default=500, help="held-out clips (of 2,000)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--note", default="")
    parser.add_argument("--name", default="video", help="results file stem")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model(args.model).eval()
    length = int(model.meta.get("length", 21))
    clips = test_clips(args.clips, length)
    env = environment()
    tok = tokenizer_figures(model, clips, batch=50)
    recon = tok.pop("recon")
    first = first_frame_path(model, clips[: min(200, len(clips))], recon[: min(200, len(clips))], (0, 10, 20))
    frames = [to_uint8_frames(c) for c in clips]  # (T, H, W, 1) uint8 each
    curves = {codec: rd_curve(frames, codec, crfs) for codec, crfs in CRFS.items()}
    bpp, psnr = tok["bpp"], tok["psnr"]
    anchors = {}
    for codec, curve in curves.items():
        anchors[codec] = {
            "psnr_at_tokenizer_bpp": at_bpp(curve, bpp),
            "psnr_at_tokenizer_bpp_with_sei": at_bpp(curve, bpp, rate_key="bpp_with_sei"),
            "bits_factor_for_tokenizer_psnr": bits_factor_for(curve, psnr, bpp),
            "bits_factor_for_tokenizer_psnr_with_sei": bits_factor_for(curve, psnr, bpp, rate_key="bpp_with_sei"),
            "lowest": {k: min(curve, key=lambda p: p["bpp"])[k] for k in ("bpp", "bpp_with_sei", "psnr")},
        }
    win = windowing(model, length)
    data = {
        "command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
        "environment": env,
        "model": str(args.model),
        "model_id": model.model_id,
        "clips": len(clips),
        "length": length,
        "tokenizer": tok,
        "first_frame_path": first,
        "windowing": win,
        "anchors": anchors,
        "curves": curves,
        "note": args.note,
    }

    def fmt(v, d=2):
        return "–" if v is None else f"{v:.{d}f}"

    rows = [["vqfuse", fmt(bpp, 4), fmt(psnr), fmt(tok["mse_per_frame"], 1), fmt(tok.get("ssim_openstl"), 3)]]
    for codec, curve in curves.items():
        point = {k: at_bpp(curve, bpp, k) for k in ("psnr", "mse_per_frame", "ssim_openstl")}
        rows.append([f"{codec} at the same bpp", fmt(bpp, 4), fmt(point["psnr"]), fmt(point["mse_per_frame"], 1),
                     fmt(point["ssim_openstl"], 3)])  # fmt: skip
    h264 = anchors["h264"]
    targets = [
        ["PSNR >= 26 dB at 0.0625 bpp", f"{psnr:.2f} dB at {bpp:.4f}", verdict(psnr, TARGET_PSNR, True)],
        ["moonshot: PSNR >= 30 dB", f"{psnr:.2f} dB", verdict(psnr, MOONSHOT_PSNR, True)],
        ["H.264 needs >= 1.33x the bits for the tokenizer's PSNR (no SEI)", fmt(h264["bits_factor_for_tokenizer_psnr"]),
         verdict(h264["bits_factor_for_tokenizer_psnr"] or 0.0, 1.33, True)],
        ["first-frame (image) PSNR within 1 dB of the same frames in clips",
         f"{first['image_psnr']:.2f} vs {first['clip_psnr']:.2f} dB",
         verdict(-abs(first["image_psnr"] - first["clip_psnr"]), -1.0, True)],
        ["codebook usage >= 98%", f"{tok['codebook_usage']:.1%}", verdict(tok["codebook_usage"], TARGET_USAGE, True)],
        [f"windowed encoding of a {win['frames']}-frame clip = one pass", str(win["identical_tokens"]),
         "PASS" if win["identical_tokens"] else "NOT REACHED"],
    ]  # fmt: skip
    md = [
        "# Video tokenizer on held-out moving digits",
        "",
        f"Command: `{data['command']}`",
        "",
        environment_line(env),
        "",
        f"Model `{args.model}` ({model.model_id}); {len(clips)} held-out clips of {length} frames, 64x64 grey. "
        "PSNR is the mean per-frame PSNR on 8-bit frames; MSE the OpenSTL per-frame sum in [0, 1]; SSIM the "
        "OpenSTL-style variant (uniform 7x7, data range 2).",
        "",
        markdown_table(["coder", "bpp", "PSNR dB", "MSE/frame", "SSIM"], rows, ["l", "r", "r", "r", "r"]),
        "",
        f"H.264 lowest reachable rate {h264['lowest']['bpp']:.4f} bpp -> {h264['lowest']['psnr']:.2f} dB "
        f"({h264['lowest']['bpp_with_sei']:.4f} bpp with its encoder-info SEI); at the tokenizer's rate with the "
        f"SEI counted: {fmt(h264['psnr_at_tokenizer_bpp_with_sei'])} dB. Codebook usage {tok['codebook_usage']:.1%}, "
        f"perplexity {tok['perplexity']:.0f}; encode + decode {tok['clips_per_s']:.1f} clips/s on "
        f"{args.threads} threads.",
        "",
        markdown_table(["target", "measured", "verdict"], targets, ["l", "r", "l"]),
        "",
        args.note,
    ]
    write_results(args.name, data, "\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
