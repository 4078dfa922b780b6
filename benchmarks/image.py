"""Image tokenizer benchmark: held-out emoji, vqfuse tokens vs WebP and JPEG at the same bits per pixel.

Trains (or reuses) three runs: VQ-GAN and VQ-VAE on 32x32 emoji (8x8 tokens, K=1024) and VQ-GAN on
64x64 emoji (16x16 tokens, K=1024); both are 0.625 bits per pixel. For each held-out image, WebP and
JPEG are encoded with Pillow at the highest quality whose file fits the same bit budget
(`vqfuse.baselines.image`).

    python benchmarks/image.py                    # full: trains the three runs, then measures
    python benchmarks/image.py --reuse            # measure existing runs under --runs
"""

from __future__ import annotations

import argparse
import math
import shlex
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS_DIR, environment, environment_line, markdown_table, verdict, write_results  # noqa: E402

from vqfuse.baselines.image import WEBP_RIFF_OVERHEAD, classic_at_budget, psnr_uint8  # noqa: E402
from vqfuse.data.emoji import OPENMOJI_ATTRIBUTION  # noqa: E402
from vqfuse.data.image_files import tensor_to_uint8  # noqa: E402
from vqfuse.modalities import get_modality  # noqa: E402
from vqfuse.tokenizer import Tokenizer  # noqa: E402
from vqfuse.train.config import load_config  # noqa: E402


def laplacian_energy(image: np.ndarray) -> float:
    """Mean squared 4-neighbour Laplacian of the grey image: high-frequency detail (blur lowers it)."""
    g = image.astype(np.float64).mean(axis=2)
    lap = -4 * g[1:-1, 1:-1] + g[:-2, 1:-1] + g[2:, 1:-1] + g[1:-1, :-2] + g[1:-1, 2:]
    return float(np.mean(lap**2))


def evaluate_run(run: Path, size: int) -> dict:
    model = Tokenizer.from_pretrained(run)
    modality = get_modality("image")
    dataset = modality.dataset("emoji", "test", {"size": size})
    images = torch.stack([dataset[i] for i in range(len(dataset))])  # (N, 3, S, S)
    psnrs, originals, recons, all_idx = [], [], [], []
    start = time.perf_counter()
    for batch in images.split(64):
        idx = model.encode(batch)
        rec = model.decode(idx).clamp(-1, 1)
        all_idx.append(idx.reshape(-1))
        for x, y in zip(batch, rec):
            a, b = tensor_to_uint8(x), tensor_to_uint8(y)  # what a user gets as files
            originals.append(a)
            recons.append(b)
            psnrs.append(psnr_uint8(b, a))
    elapsed = time.perf_counter() - start
    idx = torch.cat(all_idx)
    counts = torch.bincount(idx, minlength=model.codebook_size).double()
    probs = counts / counts.sum()
    tokens_per_image = idx.numel() // len(images)
    bpp = tokens_per_image * math.log2(model.codebook_size) / (size * size)
    ssim = modality.metrics(
        torch.stack([torch.from_numpy(r).permute(2, 0, 1).float() / 127.5 - 1 for r in recons]), images, {}
    )["ssim"]
    budget_bytes = bpp * size * size / 8
    classic = {}
    for codec, overhead in (("webp", 0), ("webp_payload", WEBP_RIFF_OVERHEAD), ("jpeg", 0)):
        coded = [classic_at_budget(a, codec.split("_")[0], budget_bytes, overhead) for a in originals]
        results = [(psnr_uint8(decoded, a), bpp) for (decoded, bpp), a in zip(coded, originals)]
        classic[codec] = {
            "psnr": float(np.mean([r[0] for r in results])),
            "bpp": float(np.mean([r[1] for r in results])),
        }
    metrics_file = run / "metrics.json"
    train_metrics = {}
    if metrics_file.is_file():
        import json

        train_metrics = json.loads(metrics_file.read_text())
    return {
        "run": str(run),
        "images": len(images),
        "size": size,
        "tokens_per_image": tokens_per_image,
        "codebook_size": model.codebook_size,
        "bpp": bpp,
        "psnr": float(np.mean(psnrs)),
        "ssim": ssim,
        "usage": float((counts > 0).double().mean()),
        # detail kept: Laplacian energy of reconstructions over that of the originals (1 = as sharp, < 1 = blurrier)
        "sharpness": float(
            np.sum([laplacian_energy(r) for r in recons]) / np.sum([laplacian_energy(a) for a in originals])
        ),
        "perplexity": float(torch.exp(-(probs[probs > 0] * probs[probs > 0].log()).sum())),
        "codec_images_per_s": len(images) / elapsed,
        "classic": classic,
        "train": {
            k: train_metrics.get(k)
            for k in ("steps", "train_items_per_s", "wall_time_s", "skipped_steps")
            if k in train_metrics
        },
    }


VQVAE = ["loss.gan_weight=0", "loss.feature_matching_weight=0"]
RUNS = {
    "vqgan32": ("image-emoji32", 32, []),
    "vqvae32": ("image-emoji32", 32, VQVAE),
    "vqgan64": ("image-emoji64", 64, []),
    "vqvae64": ("image-emoji64", 64, VQVAE),
    "vqgan64-seed1": ("image-emoji64", 64, ["seed=1"]),
}
DEFAULT_RUNS = ["vqgan32", "vqvae32", "vqgan64"]


def seed_line(results: dict) -> str:
    """Spread over training seeds where a `<run>-seedN` sits beside `<run>`."""
    lines = []
    for name in results:
        seeds = [results[n] for n in results if n == name or n.startswith(name + "-seed")]
        if len(seeds) > 1 and "-seed" not in name:
            p = [r["psnr"] for r in seeds]
            lines.append(f"{name}: {len(p)} seeds, PSNR {np.mean(p):.2f} +- {np.std(p):.2f} dB (min {min(p):.2f})")
    return (
        "Seeds: " + "; ".join(lines) + "."
        if lines
        else "One training seed per run (the spread over seeds was not measured)."
    )


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="runs/bench-image", help="where the training runs live")
    parser.add_argument("--reuse", action="store_true", help="measure existing runs, do not train")
    parser.add_argument("--steps32", type=int, default=None, help="training steps of the 32 px runs (preset default)")
    parser.add_argument("--steps64", type=int, default=None, help="training steps of the 64 px run (preset default)")
    parser.add_argument("--only", nargs="*", default=DEFAULT_RUNS, choices=list(RUNS))
    parser.add_argument("--threads", type=int, default=2, help="torch threads (1 when running runs side by side)")
    parser.add_argument("--note", default="", help="extra text for the report (e.g. where reused runs were trained)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    env = environment()
    results = {}
    for name in args.only:
        preset, size, overrides = RUNS[name]
        run = Path(args.runs) / name
        if not args.reuse:
            from vqfuse.train.trainer import train

            steps = args.steps32 if size == 32 else args.steps64
            extra = [f"steps={steps}"] if steps else []
            train(load_config(preset, [*overrides, *extra, f"out={run}"]), progress=False)
        results[name] = evaluate_run(run, size)
        final = sorted((run / "samples").glob("final*.png"))
        if final:
            shutil.copy(final[0], RESULTS_DIR / f"image-{name}-samples.png")
    env["load_average_end"] = environment()["load_average_start"]

    rows = []
    for name, r in results.items():
        rows.append(
            [
                name,
                f"{r['size']}x{r['size']}",
                r["tokens_per_image"],
                r["codebook_size"],
                f"{r['bpp']:.3f}",
                f"{r['psnr']:.2f}",
                f"{r['ssim']:.3f}",
                f"{100 * r['usage']:.1f}%",
                f"{r['perplexity']:.0f}",
                f"{r['classic']['webp']['psnr']:.2f} ({r['classic']['webp']['bpp']:.2f})",
                f"{r['classic']['webp_payload']['psnr']:.2f} ({r['classic']['webp_payload']['bpp']:.2f})",
                f"{r['classic']['jpeg']['psnr']:.2f} ({r['classic']['jpeg']['bpp']:.2f})",
                f"{r['sharpness']:.3f}",
                r["train"].get("steps"),
                f"{r['train'].get('train_items_per_s') or float('nan'):.0f}",
            ]
        )
    table = markdown_table(
        [
            "run",
            "size",
            "tokens",
            "K",
            "bpp",
            "PSNR dB",
            "SSIM",
            "usage",
            "perplexity",
            "WebP dB (bpp)",
            "WebP payload dB (bpp)",
            "JPEG dB (bpp)",
            "sharpness",
            "steps",
            "train img/s",
        ],
        rows,
        ["l"] + ["r"] * 14,
    )
    targets = []
    if "vqgan64" in results:
        r = results["vqgan64"]
        targets.append(
            [
                "64x64: PSNR above WebP (whole file) at the same bpp",
                f"{r['psnr']:.2f} vs {r['classic']['webp']['psnr']:.2f}",
                verdict(r["psnr"] - r["classic"]["webp"]["psnr"], 0.0, True),
            ]
        )
        targets.append(
            [
                "64x64 stretch: 1 dB above WebP",
                f"{r['psnr'] - r['classic']['webp']['psnr']:+.2f} dB",
                verdict(r["psnr"] - r["classic"]["webp"]["psnr"], 1.0, True),
            ]
        )
    if "vqgan32" in results:
        r = results["vqgan32"]
        targets.append(["32x32: PSNR >= 22 dB at 0.625 bpp", f"{r['psnr']:.2f}", verdict(r["psnr"], 22.0, True)])
    for gan, vae in (("vqgan32", "vqvae32"), ("vqgan64", "vqvae64")):
        if gan in results and vae in results:
            g, v = results[gan], results[vae]
            targets.append(
                [
                    f"{gan} sharper than {vae} (sharpness; PSNR)",
                    f"{g['sharpness']:.3f} vs {v['sharpness']:.3f} ({g['psnr']:.2f} vs {v['psnr']:.2f} dB)",
                    verdict(g["sharpness"] - v["sharpness"], 0.0, True),
                ]
            )
    for name, r in results.items():
        targets.append(
            [f"{name}: codebook usage >= 98% on held-out", f"{100 * r['usage']:.1f}%", verdict(r["usage"], 0.98, True)]
        )
    md = "\n\n".join(
        part
        for part in [
            "# Image tokenizers on held-out emoji",
            "Command: `"
            + shlex.join(["python", "benchmarks/image.py", *(argv if argv is not None else sys.argv[1:])])
            + "`",
            environment_line(env),
            table,
            "WebP / JPEG: per image, the highest quality whose file (or, for 'payload', file minus the 20-byte RIFF/VP8 chunk headers) fits the same bit budget as the tokens; a codec that cannot get that small is shown at its smallest file, with its bpp in brackets. PSNR is computed on the 8-bit images a user gets, mean over held-out images. Sharpness: Laplacian energy of the reconstructions over that of the originals (1 = as much fine detail as the input, lower = blurrier).",
            seed_line(results),
            args.note,
            markdown_table(["target", "measured", "verdict"], targets, ["l", "r", "l"]),
            "Sample grids (input row above reconstruction row): "
            + ", ".join(f"`image-{n}-samples.png`" for n in results),
            OPENMOJI_ATTRIBUTION,
        ]
        if part
    )
    write_results("image", {"environment": env, "results": results}, md)
    print(md)
    return results


if __name__ == "__main__":
    main()
