"""Speech enhancement through tokens as a spectral gain: the repair's magnitude change, measured through one
decoder, applied to the noisy input's STFT with its phase kept (`AudioModality.repair_output`).

Both magnitudes pass through the same decoder, so its colouring cancels out, and a codec that does not
reproduce phase (spectral and adversarial training) still yields a waveform aligned with the input.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

# Half-width (bins and frames) of the mean filter on the gain. In an exploratory run (not a committed
# benchmark) on 48 training pairs at 0 dB, conditioned SI-SNR improvement rose with the filter: CPU
# tokenizers (bench-fusion seed 0) +3.28 dB (none) -> +3.51 (3x3) -> +3.68 (5x5); GPU codec (bench-fusion-gpucodec
# seed 0) +0.32 -> +0.54 (3x3; 5x5 was not tried at this remask fraction, and beat 3x3 at 0.2 and 0.4). A noisy
# gain leaves "musical noise"; smoothing it is the usual cure. Committed figures: benchmarks/results/fusion*.md.
GAIN_SMOOTHING = 2


def _stft(x: Tensor, n_fft: int, hop: int) -> Tensor:
    """(B, 1, T) -> (B, n_fft // 2 + 1, frames) complex, centred Hann frames (reflect padding where the
    signal is long enough)."""
    sig = x.reshape(x.shape[0], -1).float()
    pad_mode = "reflect" if sig.shape[-1] > n_fft // 2 else "constant"
    return torch.stft(
        sig,
        n_fft,
        hop,
        window=torch.hann_window(n_fft, device=sig.device),
        center=True,
        pad_mode=pad_mode,
        return_complex=True,
    )


def spectral_gain(
    noisy: Tensor,
    estimate: Tensor,
    reference: Tensor,
    *,
    n_fft: int = 512,
    hop: int = 128,
    smoothing: int = GAIN_SMOOTHING,
) -> Tensor:
    """Apply the gain clamp(|STFT(estimate)| / |STFT(reference)|, 0, 1), averaged over a (2 smoothing + 1)^2
    neighbourhood of frequency bins and frames (0: no smoothing), to the noisy input's STFT, keeping the noisy
    phase. noisy, estimate, reference: (B, 1, T) -> (B, 1, T).

    With estimate = decode(repaired tokens) and reference = decode(noisy tokens), the gain is what the
    token repair removed, measured through one decoder (its own colouring and phase errors cancel)."""
    if not noisy.shape == estimate.shape == reference.shape:
        raise ValueError(
            f"shape mismatch: noisy {tuple(noisy.shape)}, estimate {tuple(estimate.shape)}, "
            f"reference {tuple(reference.shape)}"
        )
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


__all__ = ["GAIN_SMOOTHING", "spectral_gain"]
