"""Measured repair on held-out items: inpainting (masked PSNR) and speech enhancement (SI-SNR improvement),
each with and without the other modality as condition."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Literal

import torch
from torch import Tensor

from vqfuse.fusion.damage import (
    add_noise,
    masked_psnr,
    random_box_mask,
)
from vqfuse.fusion.repair import (
    REMASK_FRACTION,
    encode_audio_tokens,
    encode_image_tokens,
    enhance,
    inpaint,
)
from vqfuse.metrics.audio import si_snr
from vqfuse.prior import SequenceLayout
from vqfuse.prior.transformer import PriorTransformer
from vqfuse.tokenizer import Tokenizer

# ---- evaluation -----------------------------------------------------------------------------------------


def _num(x: Tensor | float) -> float | None:
    """A JSON-able float (None for NaN / inf)."""
    v = float(x)
    return v if math.isfinite(v) else None


def _accuracy(pred: Tensor, truth: Tensor, where: Tensor) -> float | None:
    n = int(where.sum())
    return float((pred == truth)[where].float().mean()) if n else None


@torch.no_grad()
def evaluate_repair(prior: PriorTransformer, layout: SequenceLayout, image_tok: Tokenizer, audio_tok: Tokenizer,
                    images: Tensor, audio: Tensor, *, n_q: int | None = None, snr_db: float | Sequence[float] = 0.0,
                    noise_kind: Literal["white", "babble"] = "white",
                    mask_fn: Callable[..., Tensor] | None = None, frac_range: tuple[float, float] = (0.25, 0.5),
                    dilation: int = 1, remask_fraction: float = REMASK_FRACTION, remask_stages_from: int | None = None,
                    steps: int = 8, cfg_scale: float | None = None, temperature: float = 0.0, seed: int = 0,
                    image_name: str = "image", audio_name: str = "audio") -> dict[str, Any]:
    """Repair a batch of paired images (B, 3, H, W) and speech (B, 1, T), each with the other modality's
    clean tokens as condition and without (NULL). Masks, noise and sampling seeds are shared by both.

    Returns a JSON-able dict: "inpaint" (masked PSNR conditioned / unconditioned / `fill` (the damaged
    input) / `tokenizer` (clean tokens decoded, the ceiling), token accuracy at the re-infilled positions)
    and "enhance" (one entry per SNR: SI-SNR of the noisy input and its improvement conditioned /
    unconditioned (the spectral-gain output), `*_decoded` (the repaired tokens' decoded waveform) and
    `reencoded` (noisy tokens decoded unchanged), token accuracy against the clean tokens).
    """
    g = torch.Generator().manual_seed(seed)
    b, _, height, width = images.shape
    if audio.shape[0] != b:
        raise ValueError(f"images and audio must pair up, got batches {b} and {audio.shape[0]}")
    clean_img_tok = encode_image_tokens(image_tok, images)  # (B, h, w)
    clean_aud_tok = encode_audio_tokens(audio_tok, audio, n_q)  # (B, n_q, F)
    common = dict(steps=steps, cfg_scale=cfg_scale, temperature=temperature, image_name=image_name,
                  audio_name=audio_name)

    # inpainting
    mask = (mask_fn(b, height, width, generator=g) if mask_fn is not None
            else random_box_mask(b, height, width, frac_range, g)).to(images.device)  # (B, 1, H, W)
    runs = {"conditioned": clean_aud_tok, "unconditioned": None}
    inpaint_out = {k: inpaint(prior, layout, image_tok, images, mask, cond, dilation=dilation,
                              generator=torch.Generator().manual_seed(seed + 1), **common)
                   for k, cond in runs.items()}
    unknown = next(iter(inpaint_out.values())).unknown
    ceiling = image_tok.decode(clean_img_tok).to(images.device)
    fill = images.masked_fill(mask.expand_as(images), 0.0)
    inpaint_report: dict[str, Any] = {
        "mask_fraction": _num(mask.float().mean()),
        "unknown_token_fraction": _num(unknown.float().mean()),
        "masked_psnr": {**{k: _num(masked_psnr(r.images, images, mask)) for k, r in inpaint_out.items()},
                        "fill": _num(masked_psnr(fill, images, mask)),
                        "tokenizer": _num(masked_psnr(torch.where(mask, ceiling, images), images, mask))},
        "token_accuracy": {**{k: _accuracy(r.tokens, clean_img_tok, unknown) for k, r in inpaint_out.items()},
                           "damaged": _accuracy(next(iter(inpaint_out.values())).damaged_tokens, clean_img_tok,
                                                unknown)},
    }

    # enhancement
    enhance_reports = []
    for level in ([snr_db] if isinstance(snr_db, (int, float)) else list(snr_db)):
        noisy = add_noise(audio, float(level), g, kind=noise_kind)
        base = si_snr(noisy, audio, reduction="none")  # (B,)
        out = {k: enhance(prior, layout, audio_tok, noisy,
                          clean_img_tok if k == "conditioned" else None, n_q=n_q, remask_fraction=remask_fraction,
                          remask_stages_from=remask_stages_from,
                          generator=torch.Generator().manual_seed(seed + 2), **common)
               for k in ("conditioned", "unconditioned")}
        noisy_tok = out["conditioned"].noisy_tokens
        everywhere = torch.ones_like(noisy_tok, dtype=torch.bool)

        def gain(x: Tensor) -> float | None:  # mean SI-SNR improvement (dB) of x over the noisy input
            return _num((si_snr(x, audio, reduction="none") - base).mean())

        enhance_reports.append({
            "snr_db": float(level),
            "noise": noise_kind,
            "si_snr_noisy": _num(base.mean()),
            "si_snr_improvement": {
                **{k: gain(r.audio) for k, r in out.items()},
                **{f"{k}_decoded": gain(r.decoded) for k, r in out.items()},
                "reencoded": gain(out["conditioned"].reencoded)},
            "unknown_token_fraction": {k: _num(r.unknown.float().mean()) for k, r in out.items()},
            "token_accuracy": {**{k: _accuracy(r.tokens, clean_aud_tok, everywhere) for k, r in out.items()},
                               "noisy": _accuracy(noisy_tok, clean_aud_tok, everywhere)},
        })
    return {"n_items": b, "steps": steps, "cfg_scale": cfg_scale, "temperature": temperature,
            "inpaint": inpaint_report,
            "enhance": enhance_reports[0] if isinstance(snr_db, (int, float)) else enhance_reports}


__all__ = ["evaluate_repair"]
