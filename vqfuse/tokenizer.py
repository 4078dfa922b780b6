"""A tokenizer: encoder -> any quantizer -> decoder, for 1D (audio), 2D (images) and 3D (video).

Saved as a directory: `config.json` (architecture + modality metadata) and `model.safetensors`.
Loading reads JSON and tensors only; nothing is unpickled and no code runs.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from vqfuse.errors import InputFileError
from vqfuse.io.weights import load_json, load_state_into, save_json, save_weights
from vqfuse.nets.autoencoder import AutoencoderConfig
from vqfuse.nets.spectral import SpectralConfig, build_autoencoder
from vqfuse.quantize.base import QuantizerOutput
from vqfuse.quantize.builder import build_quantizer
from vqfuse.quantize.residual import ResidualVQ

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
FORMAT = "vqfuse-tokenizer/1"


@dataclass
class TokenizerConfig:
    """Architecture of a tokenizer plus what its modality needs to read and write files.

    Args:
        modality: "image", "audio" or "video".
        autoencoder: the Encoder/Decoder shape (its `dims` must suit the modality): an AutoencoderConfig
            (waveform/pixel convs) or a SpectralConfig (`kind: spectral`, audio).
        quantizer: quantizer spec, see `vqfuse.quantize.builder.build_quantizer`.
        meta: modality facts, e.g. {"image_size": 64} or {"sample_rate": 16000}.
    """

    modality: str = "image"
    autoencoder: AutoencoderConfig | SpectralConfig = field(default_factory=AutoencoderConfig)
    quantizer: dict[str, Any] = field(default_factory=lambda: {"kind": "vq", "codebook_size": 1024})
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "modality": self.modality,
            "autoencoder": self.autoencoder.to_dict(),
            "quantizer": dict(self.quantizer),
            "meta": dict(self.meta),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TokenizerConfig":
        return cls(
            modality=d["modality"],
            autoencoder=AutoencoderConfig.from_dict(d["autoencoder"]),
            quantizer=dict(d["quantizer"]),
            meta=dict(d.get("meta", {})),
        )


@dataclass
class TokenizerOutput:
    reconstruction: Tensor  # same shape as the input
    quant: QuantizerOutput


class Tokenizer(nn.Module):
    """encoder -> quantizer -> decoder. Inputs are channel-first (B, C, *spatial), in [-1, 1]."""

    def __init__(self, config: TokenizerConfig) -> None:
        super().__init__()
        self.config = config
        self.quantizer = build_quantizer(config.quantizer, config.autoencoder.latent_dim)
        # a spectral decoder is conditioned on the number of residual stages kept (one AdaLN entry each)
        n_stages = self.quantizer.n_quantizers if isinstance(self.quantizer, ResidualVQ) else 1
        self.encoder, self.decoder = build_autoencoder(config.autoencoder, n_stages)
        self.model_id = ""  # content hash of the weights, set by save_pretrained / from_pretrained

    @property
    def codebook_size(self) -> int:
        return self.quantizer.codebook_size

    @property
    def is_residual(self) -> bool:
        return isinstance(self.quantizer, ResidualVQ)

    @property
    def downsample_factors(self) -> tuple[int, ...]:
        return self.config.autoencoder.downsample_factors

    def _quantizer_kwargs(self, n_q: int | None) -> dict[str, int]:
        if n_q is None:
            return {}
        if not self.is_residual:
            raise ValueError("n_q (bitrate choice) needs a residual quantizer ('rvq')")
        return {"n_q": n_q}

    def forward(self, x: Tensor, n_q: int | None = None, bypass_quantizer: bool = False) -> TokenizerOutput:
        """x (B, C, *spatial) -> reconstruction (B, C, *spatial) and the quantizer's result.

        bypass_quantizer: feed the continuous latent to the decoder (training warm-up before the codebooks
        are initialised from encoder outputs); the decoder is then conditioned as for all stages.
        """
        z = self.encoder(x)  # (B, D, *latent)
        if bypass_quantizer:
            quant = bypassed(z)
            return TokenizerOutput(self.decode_latents(z), quant)
        quant = self.quantizer(z, **self._quantizer_kwargs(n_q))
        n_used = quant.indices.shape[1] if self.is_residual else None
        return TokenizerOutput(self.decode_latents(quant.quantized, n_used), quant)

    def decode_latents(self, z: Tensor, n_q: int | None = None) -> Tensor:
        """Latents (B, D, *latent) -> (B, C, *spatial); `n_q` (stages the latents hold) conditions decoders
        that take it (spectral) and is ignored by the others. None: all stages."""
        if getattr(self.decoder, "conditioned", False):
            return self.decoder(z, n_q)
        return self.decoder(z)

    @torch.no_grad()
    def encode(self, x: Tensor, n_q: int | None = None) -> Tensor:
        """x (B, C, *spatial) -> indices (B, *latent), or (B, n_q, *latent) for residual quantizers."""
        return self.quantizer.encode(self.encoder(x), **self._quantizer_kwargs(n_q))

    @torch.no_grad()
    def decode(self, indices: Tensor) -> Tensor:
        """indices as returned by `encode` -> (B, C, *spatial)."""
        n_q = indices.shape[1] if self.is_residual else None
        return self.decode_latents(self.quantizer.decode(indices), n_q)

    # ---- persistence --------------------------------------------------------------------------------

    def save_pretrained(self, directory: str | Path) -> Path:
        """Writes config.json and model.safetensors (each atomically) into `directory`."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = self.state_dict()
        save_weights(state, directory / WEIGHTS_FILE, metadata={"format": FORMAT})
        config = self.config.to_dict()
        config["model_id"] = weights_fingerprint(state)
        save_json(config, directory / CONFIG_FILE)
        self.model_id = config["model_id"]
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | Path, device: str | torch.device = "cpu") -> "Tokenizer":
        """Loads a directory written by `save_pretrained` (or a run directory holding `model/`)."""
        directory = resolve_model_dir(directory)
        raw = load_json(directory / CONFIG_FILE)
        if raw.get("format") != FORMAT:
            raise InputFileError(directory / CONFIG_FILE, f"not a vqfuse tokenizer config (format {raw.get('format')!r})")
        try:
            model = cls(TokenizerConfig.from_dict(raw))
        except (KeyError, TypeError, ValueError) as exc:
            raise InputFileError(directory / CONFIG_FILE, f"invalid tokenizer config: {exc}") from exc
        load_state_into(model, directory / WEIGHTS_FILE, device)
        model.model_id = raw.get("model_id", "")
        return model.to(device).eval()


def bypassed(z: Tensor) -> QuantizerOutput:
    """A quantizer result that passes z (B, D, *latent) through: no codes, no loss."""
    indices = torch.zeros((z.shape[0], 0, *z.shape[2:]), dtype=torch.long, device=z.device)
    return QuantizerOutput(quantized=z, indices=indices, loss=z.new_zeros(()), metrics={"bypass": torch.ones(())})


def weights_fingerprint(state: dict[str, Tensor]) -> str:
    """A short content hash of the weights: token files record it so that decoding with another model
    is caught."""
    h = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        h.update(name.encode())
        h.update(tensor.numpy().tobytes() if tensor.dtype != torch.bfloat16 else tensor.float().numpy().tobytes())
    return h.hexdigest()[:16]


def resolve_model_dir(path: str | Path) -> Path:
    """A model directory, or a run directory whose `model/` holds the final model."""
    path = Path(path)
    if (path / CONFIG_FILE).is_file():
        return path
    if (path / "model" / CONFIG_FILE).is_file():
        return path / "model"
    if not path.exists():
        raise InputFileError(path, "model directory does not exist")
    raise InputFileError(path, f"not a vqfuse model or run directory (no {CONFIG_FILE} here or in model/)")
