"""Training losses: adversarial, reconstruction (pixel / spectral) and local-weights LPIPS."""

from vqfuse.losses.adversarial import (
    DiscriminatorWarmup,
    LeCamRegularizer,
    adaptive_generator_weight,
    adversarial_factor,
    discriminator_loss,
    feature_matching_loss,
    generator_loss,
    r1_penalty,
)
from vqfuse.losses.perceptual import LocalLPIPS, LPIPSNetwork
from vqfuse.losses.reconstruction import (
    mel_filterbank,
    mel_spectrogram,
    multi_resolution_stft_loss,
    multi_scale_mel_loss,
    reconstruction_loss,
    stft_magnitude,
)

__all__ = [
    "discriminator_loss",
    "generator_loss",
    "feature_matching_loss",
    "adaptive_generator_weight",
    "r1_penalty",
    "LeCamRegularizer",
    "adversarial_factor",
    "DiscriminatorWarmup",
    "reconstruction_loss",
    "stft_magnitude",
    "multi_resolution_stft_loss",
    "mel_filterbank",
    "mel_spectrogram",
    "multi_scale_mel_loss",
    "LPIPSNetwork",
    "LocalLPIPS",
]
