"""The pretrained tokenizers on held-out data, next to the classic codec of their kind at the same rate.

Each modality's part (`image_part`, `audio_part`, `video_part`) reconstructs held-out items with a shipped
model, scores it and its classic anchor (WebP/JPEG, Opus, H.264) measured here in the same run, and adds a
report section with the pictures, players, a metrics table and the codebook usage.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from vqfuse.demo.context import DemoContext

Part = Callable[[DemoContext, str], None]


def heldout_items(tok: Any, n: int, **data: Any) -> Tensor:
    """(n, C, *item) held-out items from the data the model was trained on (its own test split)."""
    spec = str(tok.meta.get("dataset") or "")
    meta = {**tok.modality.data_section(tok.meta, spec), **data}  # the data as the model saw it (size, rate)
    test = tok.modality.dataset(spec, "test", meta)
    step = max(1, len(test) // n)  # spread over the split: many emoji, voices, digit images
    return torch.stack([_item(test[i * step]) for i in range(min(n, len(test)))])


def longest_utterances(tok: Any, n: int, seconds: float, scan: int = 64) -> Tensor:
    """(n, 1, T) the longest of `scan` held-out utterances spread over the split (different voices), each
    centred in `seconds`: a demo of single digits would be mostly silence."""
    spec = str(tok.meta.get("dataset") or "")
    data = tok.modality.data_section(tok.meta, spec)
    whole = tok.modality.dataset(spec, "test", {**data, "segment_seconds": None})
    fixed = tok.modality.dataset(spec, "test", {**data, "segment_seconds": seconds})
    step = max(1, len(whole) // scan)
    index = sorted(range(0, len(whole), step), key=lambda i: -int(whole[i].shape[-1]))[:n]
    return torch.stack([fixed[i] for i in sorted(index)])


def _item(item: Any) -> Tensor:
    return item[0] if isinstance(item, (tuple, list)) else item


def code_counts(tok: Any, codes: Tensor) -> list[np.ndarray]:
    """Per-code use counts of each quantizer stage; codes (B, stages kept, *latent) as `encode_codes` gives."""
    from vqfuse.evaluate import stage_counts

    return [c.numpy() for c in stage_counts(codes, tok.codebook_size)]


def usage_plot(ctx: DemoContext, tok: Any, codes: Tensor, name: str) -> str:
    """The codebook usage histogram of `codes` as a PNG; returns its report path."""
    from vqfuse.report.plots import plot_code_usage

    png = ctx.path("pretrained", name, "code-usage.png")
    plot_code_usage(code_counts(tok, codes), png)
    return ctx.rel(png)


def _bar(ctx: DemoContext, total: int, what: str) -> Any:
    return tqdm(total=total, desc=what, unit="item", disable=not ctx.progress, dynamic_ncols=True)


def _fmt(v: float | None, digits: int = 2) -> str:
    return "-" if v is None or not math.isfinite(v) else f"{v:.{digits}f}"


# ---- images ------------------------------------------------------------------------------------------


def image_part(ctx: DemoContext, model: str) -> None:
    """emoji64 on held-out emoji: input | vqfuse | WebP | JPEG at the model's bits per pixel."""
    from vqfuse.baselines.image import classic_at_bpp
    from vqfuse.data.emoji import OPENMOJI_ATTRIBUTION
    from vqfuse.data.image_files import save_image_file, tensor_to_uint8
    from vqfuse.modalities.image import image_grid
    from vqfuse.report import Table
    from vqfuse.tokenizer import Tokenizer

    tok = Tokenizer.from_pretrained(model).eval()
    x = heldout_items(tok, ctx.size.images)  # (N, 3, S, S)
    with torch.no_grad():
        codes = tok.encode_codes(x)
        y = tok.decode_codes(codes).clamp(-1, 1)
    side = x.shape[-1]
    bpp = codes[0].numel() * math.log2(tok.codebook_size) / side**2
    anchors: dict[str, list[Tensor]] = {"WebP": [], "JPEG": []}
    rates: dict[str, list[float]] = {"WebP": [], "JPEG": []}
    bar = _bar(ctx, len(x), f"{model}: WebP + JPEG at {bpp:g} bpp")
    for img in x:
        for codec in anchors:
            decoded, actual = classic_at_bpp(tensor_to_uint8(img), codec.lower(), bpp)
            anchors[codec].append(torch.from_numpy(np.array(decoded)).permute(2, 0, 1).float() / 127.5 - 1)
            rates[codec].append(actual)
        bar.update(1)
    bar.close()
    rows = [("vqfuse " + model, y, [bpp])] + [(c, torch.stack(v), rates[c]) for c, v in anchors.items()]
    table = Table(
        caption=f"{len(x)} held-out emoji, {side}x{side}: mean PSNR (dB) and SSIM at the same bits per pixel "
        "(or the smallest file WebP / JPEG can make, when that is larger)",
        header=["codec", "bits per pixel", "PSNR", "SSIM"],
        rows=[
            [name, _fmt(float(np.mean(r)), 3), *[_fmt(v, d) for v, d in _image_scores(tok, out, x)]]
            for name, out, r in rows
        ],
    )
    n = min(8, len(x))
    grid = image_grid([x[:n], y[:n], *[out[:n] for _, out, _ in rows[1:]]])
    png = ctx.path("pretrained", Path(model).name, "grid.png")
    save_image_file(grid, png)
    sec = ctx.report.add_section(
        f"Images: the pretrained {model} tokenizer",
        text=f"`vqfuse reconstruct {model} photo.png out.png`. Held-out emoji (never seen in training), coded "
        f"as {codes[0].numel()} tokens of {int(math.log2(tok.codebook_size))} bits, next to WebP and JPEG "
        "given the same file size, measured in this run.",
    )
    sec.add_image(ctx.rel(png), caption="rows: held-out input | vqfuse | WebP | JPEG (same bits per pixel)")
    sec.add_table(table)
    sec.add_image(usage_plot(ctx, tok, codes, Path(model).name), caption="codebook usage over these images")
    sec.add_text(OPENMOJI_ATTRIBUTION)


def _image_scores(tok: Any, out: Tensor, x: Tensor) -> list[tuple[float, int]]:
    m = tok.modality.metrics(out, x, tok.meta)
    return [(m["psnr"], 2), (m["ssim"], 3)]


# ---- speech -------------------------------------------------------------------------------------------

SPEECH_RATES = (1.5, 3.0, 6.0)  # kbit/s shown for the codec and for Opus


def audio_part(ctx: DemoContext, model: str) -> None:
    """speech16k on held-out voices at each bitrate, with Opus (libopus) at the same bitrates."""
    from vqfuse.baselines.audio import opus_at_kbps
    from vqfuse.data.audio import save_audio_file
    from vqfuse.report import Media, Table
    from vqfuse.tokenizer import Tokenizer

    tok = Tokenizer.from_pretrained(model).eval()
    sr = int(tok.meta["sample_rate"])
    x = longest_utterances(tok, ctx.size.clips, seconds=2.0)  # (N, 1, T): sentences, not lone digits
    rates = [r for r in SPEECH_RATES if r <= max(tok.rates()) + 1e-9]
    sec = ctx.report.add_section(
        f"Speech: the pretrained {model} codec",
        text=f"`vqfuse reconstruct {model} talk.wav out.wav --kbps 3`. Held-out voices (never heard in training) "
        "at each bitrate of one model, next to Opus (libopus through PyAV, bit rate set) at the same bitrates.",
    )
    rows: list[list[str]] = []
    outputs: dict[str, Tensor] = {}
    bar = _bar(ctx, len(rates) * len(x), f"{model}: codec and Opus at {', '.join(f'{r:g}' for r in rates)} kbit/s")
    codes_all = None
    for kbps in rates:
        n_q = tok.n_q_for_rate(kbps)
        with torch.no_grad():
            codes = tok.encode_codes(x, n_q=n_q)
            outputs[f"vqfuse {kbps:g}"] = tok.decode_codes(codes)[..., : x.shape[-1]].clamp(-1, 1)
        codes_all = codes if codes_all is None else codes_all
        opus, actual = [], []
        for clip in x:
            decoded, real = opus_at_kbps(clip[0].numpy(), sr, kbps)
            opus.append(torch.from_numpy(np.array(decoded))[None])
            actual.append(real)
            bar.update(1)
        outputs[f"Opus {kbps:g}"] = torch.stack(opus)
        for name, rate in ((f"vqfuse {kbps:g}", tok.rate(n_q)), (f"Opus {kbps:g}", float(np.mean(actual)))):
            m = tok.modality.metrics(outputs[name], x, tok.meta)
            rows.append(
                [name.split()[0], _fmt(rate), _fmt(m["stoi"], 3), _fmt(m["log_mel_l1"], 3), _fmt(m["si_snr"], 1)]
            )
    bar.close()
    for i in range(len(x)):
        original = ctx.path("pretrained", Path(model).name, f"clip{i}-original.wav")
        save_audio_file(x[i], original, sr)
        row = [Media("audio", ctx.rel(original), "original")]
        for name, y in outputs.items():
            path = ctx.path("pretrained", Path(model).name, f"clip{i}-{name.replace(' ', '-')}kbps.wav")
            save_audio_file(y[i], path, sr)
            row.append(Media("audio", ctx.rel(path), f"{name} kbit/s"))
        sec.add_media_row(f"clip {i}", row)
    sec.add_table(
        Table(
            caption=f"{len(x)} held-out clips of {x.shape[-1] / sr:g} s: STOI (higher is better), log-mel L1 and SI-SNR; "
            "kbit/s as coded (Opus: audio packets, no container)",
            header=["codec", "kbit/s", "STOI", "log-mel L1", "SI-SNR (dB)"],
            rows=rows,
        )
    )
    if codes_all is not None:
        sec.add_image(usage_plot(ctx, tok, codes_all, Path(model).name), caption="codebook usage per residual stage")


# ---- video --------------------------------------------------------------------------------------------


def video_part(ctx: DemoContext, model: str) -> None:
    """moving-digits on held-out clips next to H.264 at the same bits per pixel."""
    from vqfuse.baselines.video import h264_at_bpp
    from vqfuse.report import Media, Table, write_report_video
    from vqfuse.tokenizer import Tokenizer

    tok = Tokenizer.from_pretrained(model).eval()
    x = heldout_items(tok, ctx.size.videos)  # (N, C, T, H, W)
    with torch.no_grad():
        codes = tok.encode_codes(x)
        y = tok.decode_codes(codes)[:, :, : x.shape[2]].clamp(-1, 1)
    pixels = x.shape[2] * x.shape[3] * x.shape[4]
    bpp = codes[0].numel() * math.log2(tok.codebook_size) / pixels
    h264, rates = [], []
    bar = _bar(ctx, len(x), f"{model}: H.264 at {bpp:.3g} bpp")
    for clip in x:
        decoded, actual = h264_at_bpp(_uint8_frames(clip), bpp)
        frames = torch.from_numpy(np.array(decoded)).float() / 127.5 - 1  # (T, H, W, 3)
        h264.append(frames.permute(3, 0, 1, 2)[: clip.shape[0]])
        rates.append(actual)
        bar.update(1)
    bar.close()
    z = torch.stack(h264)
    fps = float(tok.meta.get("fps", 8))
    sec = ctx.report.add_section(
        f"Video: the pretrained {model} tokenizer",
        text=f"`vqfuse reconstruct {model} clip.mp4 out.mp4`. Held-out Moving MNIST clips (test digit images), "
        "coded by a causal 3D tokenizer (the first frame on its own), next to H.264 (libx264) at the same "
        "bits per pixel, measured in this run.",
    )
    for i in range(min(3, len(x))):
        row = []
        for name, clips in (("input", x), ("vqfuse", y), ("H.264", z)):
            path = ctx.path("pretrained", Path(model).name, f"clip{i}-{name.replace('.', '').lower()}.webm")
            write_report_video(_uint8_frames(clips[i]), path, fps)
            row.append(Media("video", ctx.rel(path), name))
        sec.add_media_row(f"clip {i}", row)
    table_rows = []
    for name, out, rate in (("vqfuse " + model, y, bpp), ("H.264", z, float(np.mean(rates)))):
        m = tok.modality.metrics(out, x, tok.meta)
        table_rows.append([name, _fmt(rate, 4), _fmt(m["psnr"]), _fmt(m["ssim"], 3), _fmt(m.get("temporal_mae"), 4)])
    sec.add_table(
        Table(
            caption=f"{len(x)} held-out clips of {x.shape[2]} frames, {x.shape[3]}x{x.shape[4]}: per-frame PSNR "
            "(dB) and SSIM, temporal MAE (difference of frame-to-frame changes, lower is better)",
            header=["codec", "bits per pixel", "PSNR", "SSIM", "temporal MAE"],
            rows=table_rows,
        )
    )
    sec.add_image(usage_plot(ctx, tok, codes, Path(model).name), caption="codebook usage over these clips")


def _uint8_frames(clip: Tensor) -> np.ndarray:
    """(C, T, H, W) in [-1, 1] -> (T, H, W, 3) uint8."""
    frames = ((clip.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 3, 0)
    return frames.expand(*frames.shape[:3], 3).contiguous().numpy() if frames.shape[-1] == 1 else frames.numpy()


PARTS: dict[str, Part] = {"image": image_part, "audio": audio_part, "video": video_part}

__all__ = ["PARTS", "image_part", "audio_part", "video_part", "heldout_items", "longest_utterances", "code_counts"]
