"""Tiny untrained tokenizers, and a stand-in for the held-out evaluation."""

from __future__ import annotations

from pathlib import Path

import torch

from tests.helpers.files import SR
from vqfuse.nets.autoencoder import AutoencoderConfig
from vqfuse.tokenizer import Tokenizer, TokenizerConfig

TINY_AE = dict(dims=2, in_channels=3, channels=8, channel_mults=(1, 2), latent_dim=8, norm_groups=4)
# hop 4 * 8 * 10 = 320: 50 frames/s at 16 kHz, like the speech preset, but 4 channels wide
TINY_AUDIO_AE = dict(
    dims=1, in_channels=1, channels=4, channel_mults=(1, 2, 2, 4), strides=(4, 8, 10), latent_dim=8, norm_groups=2
)


def make_audio_model(
    directory: Path | None = None, seed: int = 0, quantizer: dict | None = None, **autoencoder
) -> Tokenizer:
    """A tiny untrained audio tokenizer: hop 320 (50 frames/s at 16 kHz), residual VQ of 4 stages x 1024
    codes (0.5 kbit/s a stage); saved into `directory` when given."""
    torch.manual_seed(seed)
    cfg = TokenizerConfig(
        modality="audio",
        autoencoder=AutoencoderConfig(**(TINY_AUDIO_AE | autoencoder)),
        quantizer=quantizer or {"kind": "rvq", "codebook_size": 1024, "n_quantizers": 4},
        meta={"sample_rate": SR, "dataset": "speech", "segment_seconds": 1.0, "item_shape": [SR]},
    )
    model = Tokenizer(cfg).eval()
    if directory is not None:
        model.save_pretrained(directory)
    return model


def make_model(directory: Path, seed: int = 0, quantizer: dict | None = None, dataset: str = "digits") -> Tokenizer:
    """A tiny untrained image tokenizer (downsampling 2, K=32) saved into `directory`."""
    torch.manual_seed(seed)
    cfg = TokenizerConfig(
        modality="image",
        autoencoder=AutoencoderConfig(**TINY_AE),
        quantizer=quantizer or {"kind": "vq", "codebook_size": 32},
        meta={"image_size": 16, "dataset": dataset},
    )
    model = Tokenizer(cfg).eval()
    model.save_pretrained(directory)
    return model


def fake_evaluate_tokenizer(model, modality, dataset, batch_size, meta, accelerator=None):
    """Stand-in for vqfuse.evaluate.evaluate_tokenizer: the modality's metrics on one batch."""
    x = torch.stack([dataset[i] for i in range(min(len(dataset), batch_size))])
    with torch.no_grad():
        y = model(x).reconstruction
    return {**modality.metrics(y, x, meta), "items": len(dataset), "codebook": {"usage": 0.5}}
