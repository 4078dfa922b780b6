"""Repair damaged inputs through tokens with a masked (MaskGIT) prior over the joint sequence
[image tokens, audio tokens], with or without the other modality as condition.

- Image inpainting: the tokens whose cell (dilated by `dilation` cells) overlaps the missing pixels are
  re-infilled by the prior; the decoded image fills the missing pixels only (known pixels are kept).
- Speech enhancement: the noisy speech's audio tokens that the prior finds least likely (and, optionally,
  every token of the finer residual stages) are re-infilled, then decoded. By default (`output="gain"`)
  the repair acts as a spectral gain on the noisy input: |STFT(decode(repaired))| / |STFT(decode(noisy
  tokens))|, clamped to [0, 1], multiplies the noisy STFT, whose phase is kept. Both magnitudes pass through
  the same decoder, so its colouring cancels out, and a codec that does not reproduce phase (spectral and
  adversarial training) still yields a waveform aligned with the input. `output="decoded"` returns the
  decoded waveform of the repaired tokens instead.

Without a condition the other modality's segment holds NULL tokens, the way classifier-free-guidance
training (`drop_condition`) shows an absent condition: exactly the unconditional half of guidance
(`maskgit_decode` with guidance scale 0). Audio tokens (B, n_q, F) sit in the sequence frame-major:
all n_q stages of frame t, then frame t + 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from vqfuse.fusion.damage import token_mask_from_pixels
from vqfuse.fusion.tokens import encode_with_stages, flatten_codes, unflatten_codes
from vqfuse.prior import SequenceLayout, maskgit_decode, null_condition
from vqfuse.prior.sampling import eval_mode, model_device
from vqfuse.prior.transformer import PriorTransformer
from vqfuse.tokenizer import Tokenizer

# ---- token-level repair ---------------------------------------------------------------------------------


def _flat(tokens: Tensor, layout: SequenceLayout, name: str) -> Tensor:
    """(B, *grid) local codes -> (B, n) as they sit in `name`'s segment (row-major; audio grids must come
    flattened frame-major already)."""
    tokens = tokens.reshape(tokens.shape[0], -1)
    n = layout.segment(name).n_tokens
    if tokens.shape[1] != n:
        raise ValueError(f"{name!r} holds {n} tokens in the layout, got {tokens.shape[1]}")
    return tokens.long()


def _other(layout: SequenceLayout, target: str, condition_name: str | None) -> str | None:
    if condition_name is not None:
        layout.modality_index(condition_name)
        return condition_name
    others = [n for n in layout.names if n != target]
    return others[0] if len(others) == 1 else None


def infill(prior: PriorTransformer, layout: SequenceLayout, target: str, known: Tensor, known_mask: Tensor,
           condition: Tensor | None = None, *, condition_name: str | None = None, steps: int = 8,
           cfg_scale: float | None = None, temperature: float = 0.0, noise: float = 4.5,
           generator: torch.Generator | None = None) -> Tensor:
    """Re-infill the unknown tokens of the `target` segment; known tokens are kept.

    Args:
        known: (B, n) local codes of the target, read where known_mask (B, n) is True.
        condition: (B, n_c) local codes of the other segment (`condition_name`, default: the layout's only
            other segment), or None: that segment then holds NULL tokens (the unconditional prior).
        cfg_scale: classifier-free guidance scale with a condition (None: the conditional model alone).
        temperature: 0 picks the most likely code (repair is estimation rather than generation).
    Returns:
        (B, n) local codes.
    """
    other = _other(layout, target, condition_name)
    b = known.shape[0]
    common = dict(known=known, known_mask=known_mask, steps=steps, temperature=temperature, noise=noise,
                  generator=generator)
    if other is None:  # the layout has no segment to condition on
        if condition is not None:
            raise ValueError("a condition needs condition_name when the layout has several other segments")
        return maskgit_decode(prior, layout, {}, target, batch_size=b, **common)
    order = [n for n in layout.names if n in (target, other)]
    if condition is None:  # NULL condition: guidance at scale 0 is exactly its unconditional half
        placeholder = torch.zeros(b, layout.segment(other).n_tokens, dtype=torch.long)
        return maskgit_decode(prior, layout, {other: placeholder}, target, order=order, cfg_scale=0.0, **common)
    return maskgit_decode(prior, layout, {other: _flat(condition, layout, other)}, target, order=order,
                          cfg_scale=cfg_scale, **common)


@torch.no_grad()
def token_log_probs(prior: PriorTransformer, layout: SequenceLayout, target: str, tokens: Tensor,
                    condition: Tensor | None = None, *, condition_name: str | None = None, groups: int = 4) -> Tensor:
    """log p(token) (B, n) of each `target` token under the prior with that token masked out.

    The positions are split into `groups` interleaved groups (position i in group i % groups); one batched
    pass per group masks that group and scores it given the rest (and the condition, or NULL without one).
    """
    b, n = tokens.shape
    groups = max(1, min(groups, n))
    other = _other(layout, target, condition_name)
    names = {target: tokens}
    if other is not None:
        names[other] = (_flat(condition, layout, other) if condition is not None
                        else torch.zeros(b, layout.segment(other).n_tokens, dtype=torch.long))
    device = model_device(prior)
    order = [nm for nm in layout.names if nm in names]
    packed = layout.pack({k: v.to(device) for k, v in names.items()}, order)
    ids = packed.ids
    if other is not None and condition is None:
        ids = null_condition(ids, layout, order, condition=[other])
    sl = layout.slices(order)[target]
    lo, hi = layout.vocab_range(target)
    group = torch.arange(n, device=device) % groups  # (n,)
    masked = group[None, :] == torch.arange(groups, device=device)[:, None]  # (G, n)
    inp = ids.repeat(groups, 1)  # (G*B, L), rows g*B..g*B+B-1 mask group g
    rows = masked.repeat_interleave(b, 0)  # (G*B, n)
    inp[:, sl] = inp[:, sl].masked_fill(rows, layout.mask_id)
    with eval_mode(prior):
        logits = prior(inp, packed.modalities, packed.positions)[:, sl, lo:hi].float()  # (G*B, n, K)
    logp = logits.log_softmax(-1).gather(-1, tokens.to(device).repeat(groups, 1)[..., None])[..., 0]  # (G*B, n)
    return (logp.reshape(groups, b, n) * masked[:, None].float()).sum(0)  # each position from its group's pass


# ---- image inpainting -----------------------------------------------------------------------------------


@dataclass
class InpaintResult:
    images: Tensor    # (B, 3, H, W) composite: known pixels of the input, missing ones decoded
    decoded: Tensor   # (B, 3, H, W) the decoded repaired tokens
    tokens: Tensor    # (B, h, w) repaired tokens
    damaged_tokens: Tensor  # (B, h, w) tokens of the damaged (filled) image
    unknown: Tensor   # (B, h, w) bool, the re-infilled tokens


def _module_device(module: torch.nn.Module) -> torch.device:
    return next(module.parameters()).device


def encode_image_tokens(image_tok: Tokenizer, images: Tensor) -> Tensor:
    """images (B, C, H, W) -> (B, h, w) codes."""
    tokens = image_tok.encode(images.to(_module_device(image_tok)))
    if tokens.dim() != 3:
        raise ValueError(f"image tokens must be (B, h, w), got {tuple(tokens.shape)} (residual image "
                         "tokenizers are not supported)")
    return tokens


@torch.no_grad()
def inpaint(prior: PriorTransformer, layout: SequenceLayout, image_tok: Tokenizer, images: Tensor,
            pixel_mask: Tensor, condition_audio_tokens: Tensor | None = None, *, steps: int = 8,
            cfg_scale: float | None = None, dilation: int = 1, fill: float = 0.0, temperature: float = 0.0,
            noise: float = 4.5, generator: torch.Generator | None = None, image_name: str = "image",
            audio_name: str = "audio") -> InpaintResult:
    """Inpaint images (B, 3, H, W) where pixel_mask (B, 1, H, W) is True, through the image tokens.

    The damaged image (missing pixels set to `fill`) is encoded; the tokens whose cell overlaps the missing
    region (dilated by `dilation` cells) are re-infilled by the prior given the known tokens and the audio
    tokens ((B, n_q, F) or flat (B, F * n_q); None: NULL condition); the decoded image fills the missing
    pixels.
    """
    mask = pixel_mask.bool().to(images.device)
    if condition_audio_tokens is not None and condition_audio_tokens.dim() == 3:
        condition_audio_tokens = flatten_codes(condition_audio_tokens)  # (B, F * n_q)
    damaged = images.masked_fill(mask.expand_as(images), fill)
    tokens = encode_image_tokens(image_tok, damaged)  # (B, h, w)
    b, h, w = tokens.shape
    unknown = token_mask_from_pixels(mask, (h, w), dilation).to(tokens.device)  # (B, h, w)
    flat = infill(prior, layout, image_name, tokens.reshape(b, -1), ~unknown.reshape(b, -1),
                  condition_audio_tokens, condition_name=audio_name, steps=steps, cfg_scale=cfg_scale,
                  temperature=temperature, noise=noise, generator=generator)  # (B, h*w)
    repaired = flat.reshape(b, h, w).to(tokens.device)
    decoded = image_tok.decode(repaired).to(images.device)  # (B, 3, H, W)
    composite = torch.where(mask.expand_as(images), decoded, images)
    return InpaintResult(composite, decoded, repaired, tokens, unknown)


# ---- speech enhancement ---------------------------------------------------------------------------------

# Share of the audio tokens re-infilled by default, chosen in an exploratory run (not a committed benchmark) on 48
# training pairs of av-digits at 0 dB white noise: SI-SNR improvement of the conditioned gain output 0.3 -> +2.6
# dB, 0.6 -> +3.6, 0.8 -> +3.3, 1.0 -> +2.6.
REMASK_FRACTION = 0.6


def _stft(x: Tensor, n_fft: int, hop: int) -> Tensor:
    """(B, 1, T) -> (B, n_fft // 2 + 1, frames) complex, centred Hann frames (reflect padding where the
    signal is long enough)."""
    sig = x.reshape(x.shape[0], -1).float()
    pad_mode = "reflect" if sig.shape[-1] > n_fft // 2 else "constant"
    return torch.stft(sig, n_fft, hop, window=torch.hann_window(n_fft, device=sig.device), center=True,
                      pad_mode=pad_mode, return_complex=True)


# Half-width (bins and frames) of the mean filter on the gain. In an exploratory run (not a committed
# benchmark) on 48 training pairs at 0 dB, conditioned SI-SNR improvement rose with the filter: CPU
# tokenizers (bench-fusion seed 0) +3.28 dB (none) -> +3.51 (3x3) -> +3.68 (5x5); GPU codec (bench-fusion-gpucodec
# seed 0) +0.32 -> +0.54 (3x3; 5x5 was not tried at this remask fraction, and beat 3x3 at 0.2 and 0.4). A noisy
# gain leaves "musical noise"; smoothing it is the usual cure. Committed figures: benchmarks/results/fusion*.md.
GAIN_SMOOTHING = 2


def spectral_gain(noisy: Tensor, estimate: Tensor, reference: Tensor, *, n_fft: int = 512,
                  hop: int = 128, smoothing: int = GAIN_SMOOTHING) -> Tensor:
    """Apply the gain clamp(|STFT(estimate)| / |STFT(reference)|, 0, 1), averaged over a (2 smoothing + 1)^2
    neighbourhood of frequency bins and frames (0: no smoothing), to the noisy input's STFT, keeping the noisy
    phase. noisy, estimate, reference: (B, 1, T) -> (B, 1, T).

    With estimate = decode(repaired tokens) and reference = decode(noisy tokens), the gain is what the
    token repair removed, measured through one decoder (its own colouring and phase errors cancel)."""
    if not noisy.shape == estimate.shape == reference.shape:
        raise ValueError(f"shape mismatch: noisy {tuple(noisy.shape)}, estimate {tuple(estimate.shape)}, "
                         f"reference {tuple(reference.shape)}")
    if smoothing < 0:
        raise ValueError(f"smoothing must be >= 0, got {smoothing}")
    spec = _stft(noisy, n_fft, hop)  # (B, F, frames)
    gain = (_stft(estimate, n_fft, hop).abs() / _stft(reference, n_fft, hop).abs().clamp(min=1e-8)).clamp(0, 1)
    if smoothing:
        size = 2 * smoothing + 1  # mean over the bins and frames that exist (edges average fewer)
        gain = F.avg_pool2d(gain[:, None], size, stride=1, padding=smoothing, count_include_pad=False)[:, 0]
    window = torch.hann_window(n_fft, device=spec.device)
    out = torch.istft(spec * gain, n_fft, hop, window=window, center=True, length=noisy.shape[-1])  # (B, T)
    return out[:, None].to(noisy.dtype)


ENHANCE_OUTPUTS = ("gain", "decoded")


@dataclass
class EnhanceResult:
    audio: Tensor          # (B, 1, T) enhanced speech (see `enhance`'s output)
    decoded: Tensor        # (B, 1, T) the decoded repaired tokens
    reencoded: Tensor      # (B, 1, T) the decoded noisy tokens (unrepaired)
    tokens: Tensor         # (B, n_q, F) repaired tokens
    noisy_tokens: Tensor   # (B, n_q, F) tokens of the noisy speech
    unknown: Tensor        # (B, n_q, F) bool, the re-infilled tokens
    scores: Tensor         # (B, n_q, F) log p(noisy token) under the prior with the token masked


def encode_audio_tokens(audio_tok: Tokenizer, audio: Tensor, n_q: int | None) -> Tensor:
    """audio (B, 1, T) -> (B, n_q, F) codes on the tokenizer's device."""
    return encode_with_stages(audio_tok, audio.to(_module_device(audio_tok)), n_q)


def decode_audio_tokens(audio_tok: Tokenizer, tokens: Tensor, length: int) -> Tensor:
    """(B, n_q, F) codes -> (B, 1, length) audio (cropped or zero-padded to `length`)."""
    out = audio_tok.decode_codes(tokens)
    if out.shape[-1] >= length:
        return out[..., :length]
    return F.pad(out, (0, length - out.shape[-1]))


def select_unknown(scores: Tensor, remask_fraction: float, remask_stages_from: int | None = None) -> Tensor:
    """scores (B, n_q, F) -> (B, n_q, F) bool: per item the round(remask_fraction * n_q * F) least likely
    tokens, plus every token of the stages >= remask_stages_from."""
    if not 0.0 <= remask_fraction <= 1.0:
        raise ValueError(f"remask_fraction must be in [0, 1], got {remask_fraction}")
    b, n_q, f = scores.shape
    k = round(remask_fraction * n_q * f)
    rank = scores.reshape(b, -1).argsort(1).argsort(1)  # 0 = least likely
    unknown = (rank < k).reshape(b, n_q, f)
    if remask_stages_from is not None:
        unknown[:, remask_stages_from:] = True
    return unknown


@torch.no_grad()
def enhance_tokens(prior: PriorTransformer, layout: SequenceLayout, tokens: Tensor,
                   condition_image_tokens: Tensor | None = None, *, remask_fraction: float = REMASK_FRACTION,
                   remask_stages_from: int | None = None, score_groups: int = 4, steps: int = 8,
                   cfg_scale: float | None = None, temperature: float = 0.0, noise: float = 4.5,
                   generator: torch.Generator | None = None, image_name: str = "image",
                   audio_name: str = "audio") -> tuple[Tensor, Tensor, Tensor]:
    """Repair audio tokens (B, n_q, F): score each (masked out, given the rest and the image condition or
    NULL), mark the least likely and the finer stages unknown, re-infill them.
    Returns (repaired (B, n_q, F), unknown (B, n_q, F) bool, scores (B, n_q, F))."""
    b, n_q, f = tokens.shape
    flat = _flat(flatten_codes(tokens), layout, audio_name)  # (B, F * n_q), frame-major
    scores = unflatten_codes(token_log_probs(prior, layout, audio_name, flat, condition_image_tokens,
                                             condition_name=image_name, groups=score_groups).cpu(), n_q, (f,))
    unknown = select_unknown(scores, remask_fraction, remask_stages_from).to(tokens.device)
    repaired = infill(prior, layout, audio_name, flat, ~flatten_codes(unknown), condition_image_tokens,
                      condition_name=image_name, steps=steps, cfg_scale=cfg_scale, temperature=temperature,
                      noise=noise, generator=generator)
    return unflatten_codes(repaired.to(tokens.device), n_q, (f,)), unknown, scores


@torch.no_grad()
def enhance(prior: PriorTransformer, layout: SequenceLayout, audio_tok: Tokenizer, noisy: Tensor,
            condition_image_tokens: Tensor | None = None, *, n_q: int | None = None,
            remask_fraction: float = REMASK_FRACTION, remask_stages_from: int | None = None,
            score_groups: int = 4, steps: int = 8, cfg_scale: float | None = None, temperature: float = 0.0,
            noise: float = 4.5, output: Literal["gain", "decoded"] = "gain",
            generator: torch.Generator | None = None, image_name: str = "image",
            audio_name: str = "audio") -> EnhanceResult:
    """Enhance noisy speech (B, 1, T) through its audio tokens (see `enhance_tokens`), conditioned on the
    image tokens ((B, h, w) or flat; None: NULL condition).

    output: "gain" (default) applies the repair as a spectral gain to the noisy input, keeping its phase
    (see `spectral_gain`); "decoded" returns the decoded repaired tokens."""
    if output not in ENHANCE_OUTPUTS:
        raise ValueError(f"output must be one of {ENHANCE_OUTPUTS}, got {output!r}")
    tokens = encode_audio_tokens(audio_tok, noisy, n_q)  # (B, n_q, F)
    repaired, unknown, scores = enhance_tokens(
        prior, layout, tokens, condition_image_tokens, remask_fraction=remask_fraction,
        remask_stages_from=remask_stages_from, score_groups=score_groups, steps=steps, cfg_scale=cfg_scale,
        temperature=temperature, noise=noise, generator=generator, image_name=image_name, audio_name=audio_name)
    decoded = decode_audio_tokens(audio_tok, repaired, noisy.shape[-1]).to(noisy.device)
    reencoded = decode_audio_tokens(audio_tok, tokens, noisy.shape[-1]).to(noisy.device)
    audio = spectral_gain(noisy, decoded, reencoded) if output == "gain" else decoded
    return EnhanceResult(audio, decoded, reencoded, repaired, tokens, unknown, scores)


__all__ = ["infill", "token_log_probs", "InpaintResult", "inpaint", "encode_image_tokens", "spectral_gain",
           "GAIN_SMOOTHING", "ENHANCE_OUTPUTS", "REMASK_FRACTION", "EnhanceResult", "encode_audio_tokens",
           "decode_audio_tokens", "select_unknown", "enhance_tokens", "enhance"]
