"""A tokenizer: encoder -> any quantizer -> decoder, for 1D (audio), 2D (images) and 3D (video).

The tokenizer is the codec: `encode` / `decode` take inputs of any size (each spatial axis padded up to a
multiple of the downsampling factor, and cropped back on decoding) and of any length along the modality's
time axis (processed in overlapping windows, see :mod:`vqfuse.chunking`, so memory stays bounded). It
also answers its rate facts: stages and their codebook sizes, frames per second, the rate (bits per pixel,
kbit/s ...) that each number of stages gives.

Saved as a directory: `config.json` (architecture + modality metadata) and `model.safetensors`.
Loading reads JSON and tensors only; nothing is unpickled and no code runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import torch
from torch import Tensor, nn

from vqfuse.chunking import CHUNK_SECONDS, CROSSFADE_SECONDS, MARGIN_SECONDS, Chunking, apply_chunked, pad_to_multiple
from vqfuse.errors import ConfigError, InputFileError, PathLike
from vqfuse.io.model_dir import CONFIG_FILE, load_model_dir, save_model_dir, weights_fingerprint
from vqfuse.io.tokenfile import TokenFile, check_decodable, stage_codes, staged_tokenfile
from vqfuse.nets.autoencoder import AutoencoderConfig, causal_context, drop_first_steps, repeat_first_step
from vqfuse.nets.spectral import SpectralConfig, build_decoder, build_encoder
from vqfuse.quantize.base import QuantizerOutput
from vqfuse.quantize.builder import build_quantizer

if TYPE_CHECKING:
    from vqfuse.modalities.base import Modality

FORMAT = "vqfuse-tokenizer/1"
ChunkingLike = Chunking | bool


@dataclass
class TokenizerConfig:
    """Architecture of a tokenizer plus what its modality needs to read and write files.

    Args:
        modality: a registered modality name ("image", "audio", ...).
        autoencoder: the Encoder/Decoder shape (its `dims` must suit the modality): an AutoencoderConfig
            (waveform / pixel convs) or a SpectralConfig (`kind: spectral`, audio).
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
        self.encoder = build_encoder(config.autoencoder)
        self.quantizer = build_quantizer(config.quantizer, config.autoencoder.latent_dim)
        # a spectral decoder is conditioned on the number of stages kept (one AdaLN entry each)
        self.decoder = build_decoder(config.autoencoder, self.quantizer.n_stages)
        self.model_id = ""  # content hash of the weights, set by save_pretrained / from_pretrained

    # ---- facts --------------------------------------------------------------------------------------

    @property
    def modality(self) -> "Modality":
        from vqfuse.modalities import get_modality

        return get_modality(self.config.modality)

    @property
    def meta(self) -> dict[str, Any]:
        return self.config.meta

    @property
    def codebook_size(self) -> int:
        return self.quantizer.codebook_size

    @property
    def n_stages(self) -> int:
        """Quantizer stages (1 unless residual); `n_q` keeps the first n_q of them."""
        return self.quantizer.n_stages

    @property
    def downsample_factors(self) -> tuple[int, ...]:
        return self.config.autoencoder.downsample_factors

    def stage_sizes(self, n_q: int | None = None) -> list[int]:
        return self.quantizer.stage_sizes(n_q)

    def check_n_q(self, n_q: int | None) -> None:
        """Raise ConfigError unless `n_q` (stages kept; None: all) suits this model."""
        if n_q is None:
            return
        if not self.quantizer.variable_rate:
            raise ConfigError(
                f"--n-q needs a residual quantizer ('rvq'); this model's quantizer is "
                f"{self.config.quantizer.get('kind', '?')!r}"
            )
        if not 1 <= n_q <= self.n_stages:
            raise ConfigError(f"--n-q must be in 1..{self.n_stages}, got {n_q}")

    @property
    def frame_rate(self) -> float | None:
        """Token frames per second along the modality's time axis (50 for 16 kHz audio and hop 320)."""
        axis = self.modality.time_axis
        steps = self.modality.steps_per_second(self.meta)
        return None if axis is None or steps is None else steps / self.downsample_factors[axis]

    def rate(self, n_q: int | None = None) -> float:
        """The code stream's rate with `n_q` stages, in the modality's unit (bits/pixel, kbit/s ...)."""
        bits = sum(math.log2(k) for k in self.stage_sizes(n_q))  # per latent position
        item = self.modality.item_shape(self.meta)
        if self.time_lead and item is not None:
            # The first frame has a latent step of its own, so the rate depends on the length: a 21-frame
            # clip at 4x8x8 has 6x8x8 codes (0.0625 bits/pixel at K = 16384), not 21/4 x 8 x 8 (0.0547).
            positions = math.prod(self.config.autoencoder.latent_shape(item))  # type: ignore[union-attr]
            return self.modality.rate(bits * positions, self.modality.extent(item, self.meta))
        return self.modality.rate(bits, self.modality.extent(self.downsample_factors, self.meta))

    def rates(self) -> list[float]:
        """The rate of each choice of stages: n_q = 1 .. n_stages (a single one for fixed-rate quantizers)."""
        if not self.quantizer.variable_rate:
            return [self.rate()]
        return [self.rate(n) for n in range(1, self.n_stages + 1)]

    def n_q_for_rate(self, value: float, what: str = "the rate") -> int | None:
        """The most stages whose rate does not exceed `value` (None, all stages, for fixed-rate models);
        `what` names the value in the error (e.g. "--kbps")."""
        rates = self.rates()
        if not math.isfinite(value) or value < rates[0] * (1 - 1e-9):
            listed = ", ".join(f"{r:g}" for r in rates)
            raise ConfigError(
                f"{what} {value:g} is below the lowest bitrate of this model; "
                f"allowed: {listed} {self.modality.rate_unit}"
            )
        n = max(n for n, r in enumerate(rates, start=1) if r <= value * (1 + 1e-9))
        return n if self.quantizer.variable_rate else None

    @property
    def time_lead(self) -> int:
        """Copies of the first frame the encoder puts in front (first_frame_alone video), else 0."""
        return int(getattr(self.config.autoencoder, "time_lead", 0))

    def causal_context(self) -> int | None:
        """For a causal 3D (video) autoencoder without attention: the latent steps of past context its
        encoder and decoder read (see `vqfuse.nets.autoencoder.causal_context`); None otherwise."""
        cfg = self.config.autoencoder
        if not isinstance(cfg, AutoencoderConfig) or not cfg.causal or cfg.dims != 3:
            return None
        contexts = [causal_context(net, cfg.downsample_factors[0]) for net in (self.encoder, self.decoder)]
        return None if None in contexts else max(c for c in contexts if c is not None)

    def chunking(self, plan: ChunkingLike = True) -> Chunking | None:
        """The windows along the time axis: None (one go) for untimed modalities or `plan=False`; the
        default plan (CHUNK_SECONDS, MARGIN_SECONDS, CROSSFADE_SECONDS) for True; a Chunking as given.

        Causal video without attention gets margins of its whole past context instead (25 latent steps,
        100 frames, for the moving-digits preset) and no crossfade: every kept output then sees exactly
        what it sees in one pass, so windows give the one-pass tokens; memory still depends on the window
        only. With attention the context is unbounded and the default (approximate) plan is used."""
        if plan is False or self.frame_rate is None:
            return None
        if isinstance(plan, Chunking):
            return plan
        default = Chunking.from_seconds(self.frame_rate, CHUNK_SECONDS, MARGIN_SECONDS, CROSSFADE_SECONDS)
        context = self.causal_context()
        return default if context is None else Chunking(default.chunk, margin=context, crossfade=0)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    # ---- training -----------------------------------------------------------------------------------

    def _n_q_kwargs(self, n_q: int | None) -> dict[str, int]:
        self.check_n_q(n_q)
        return {} if n_q is None else {"n_q": n_q}

    def forward(self, x: Tensor, n_q: int | None = None, bypass_quantizer: bool = False) -> TokenizerOutput:
        """x (B, C, *spatial) -> reconstruction (B, C, *spatial) and the quantizer's result.

        bypass_quantizer: feed the continuous latent to the decoder (training warm-up before the codebooks
        are initialised from encoder outputs); the decoder is then conditioned as for all stages.
        """
        z = self.encoder(x)  # (B, D, *latent)
        if bypass_quantizer:
            return TokenizerOutput(self.run_decoder(z), bypassed(z))
        quant = self.quantizer(z, **self._n_q_kwargs(n_q))
        n_used = self.quantizer.to_stages(quant.indices).shape[1] if self.quantizer.variable_rate else None
        return TokenizerOutput(self.run_decoder(quant.quantized, n_used), quant)

    def run_decoder(self, z: Tensor, n_q: int | None = None) -> Tensor:
        """Latents (B, D, *latent) -> (B, C, *spatial) in one pass; `n_q` (stages the latents hold) conditions
        decoders that take it (spectral) and is ignored by the others. None: all stages."""
        if getattr(self.decoder, "conditioned", False):
            return self.decoder(z, n_q)
        return self.decoder(z)

    # ---- codes with a stage axis (B, S, *latent) ----------------------------------------------------

    def _axis(self) -> int:
        return 2 + (self.modality.time_axis or 0)

    @torch.no_grad()
    def encode_latents(self, x: Tensor, chunking: ChunkingLike = True) -> Tensor:
        """(B, C, *spatial), sizes multiples of the factors (1 + f*k frames for first_frame_alone video)
        -> encoder output (B, D, *latent), windowed."""
        return self._encode_aligned(repeat_first_step(x, self.time_lead), chunking)

    def _encode_aligned(self, x: Tensor, chunking: ChunkingLike) -> Tensor:
        # x: (B, C, *spatial), the first frame already repeated in front where the model wants it, so that
        # every window is a plain f-frames-per-latent-step run and the repetition happens once per clip
        hop = self.downsample_factors[self._axis() - 2]
        fn: Callable[[Tensor], Tensor] = self.encoder.forward_aligned if self.time_lead else self.encoder  # type: ignore[assignment]
        return apply_chunked(fn, x, self.chunking(chunking), in_step=hop, out_step=1, axis=self._axis())

    @torch.no_grad()
    def decode_latents(self, z: Tensor, chunking: ChunkingLike = True, n_q: int | None = None) -> Tensor:
        """(B, D, *latent) -> decoder output (B, C, *latent * factors), windowed like `encode_latents`
        (minus the repeated first frames: 1 + f*(k-1) frames for k latent steps of first_frame_alone video);
        `n_q`: the stages the latents hold (see `run_decoder`)."""
        hop = self.downsample_factors[self._axis() - 2]
        if self.time_lead:  # windows decode f frames per step; the repeated first frames go once, at the end
            aligned: Callable[[Tensor], Tensor] = self.decoder.forward_aligned  # type: ignore[assignment]
            y = apply_chunked(aligned, z, self.chunking(chunking), in_step=1, out_step=hop, axis=self._axis())
            return drop_first_steps(y, self.time_lead)
        return apply_chunked(
            lambda w: self.run_decoder(w, n_q), z, self.chunking(chunking), in_step=1, out_step=hop, axis=self._axis()
        )

    @torch.no_grad()
    def encode_codes(self, x: Tensor, n_q: int | None = None, chunking: ChunkingLike = True) -> Tensor:
        """(B, C, *spatial) of any size -> codes (B, S, *latent), latent = ceil(spatial / factors)."""
        cfg = self.config.autoencoder
        if x.dim() != cfg.dims + 2 or x.shape[1] != cfg.in_channels:
            raise ValueError(f"expected (B, {cfg.in_channels}, <{cfg.dims} axes>), got {tuple(x.shape)}")
        # first-frame copies in front (video), then every axis padded at its end to a multiple of its factor
        led = repeat_first_step(x.float(), self.time_lead)
        padded = torch.stack([pad_to_multiple(item, self.downsample_factors) for item in led])
        z = self._encode_aligned(padded.to(self.device), chunking)
        return self.quantizer.to_stages(self.quantizer.encode(z, **self._n_q_kwargs(n_q)))

    @torch.no_grad()
    def decode_codes(
        self, codes: Tensor, size: list[int] | tuple[int, ...] | None = None, chunking: ChunkingLike = True
    ) -> Tensor:
        """codes (B, S, *latent) -> (B, C, *size), unclamped (the padded size when `size` is None)."""
        z = self.quantizer.decode(self.quantizer.from_stages(codes.long().to(self.device)))  # (B, D, *latent)
        x = self.decode_latents(z, chunking, codes.shape[1] if self.quantizer.variable_rate else None)
        if size is not None:
            x = x[(slice(None), slice(None)) + tuple(slice(0, int(s)) for s in size)]
        return x

    # ---- the public edge: the quantizer's own index layout ------------------------------------------

    @torch.no_grad()
    def encode(self, x: Tensor, n_q: int | None = None) -> Tensor:
        """x (B, C, *spatial), any size -> indices (B, *latent), or (B, n_q, *latent) for residual quantizers."""
        return self.quantizer.from_stages(self.encode_codes(x, n_q))

    @torch.no_grad()
    def decode(self, indices: Tensor, size: list[int] | tuple[int, ...] | None = None) -> Tensor:
        """indices as returned by `encode` -> (B, C, *latent * factors), cropped to `size` when given."""
        return self.decode_codes(self.quantizer.to_stages(indices), size)

    # ---- one item <-> a token file ------------------------------------------------------------------

    @torch.no_grad()
    def encode_item(
        self, x: Tensor, n_q: int | None = None, source: str = "", chunking: ChunkingLike = True
    ) -> TokenFile:
        """One item (C, *spatial) in [-1, 1], any size -> a TokenFile recording the original size
        (`meta["size"]`), the source file name and what the modality needs to decode it alone."""
        codes = self.encode_codes(x.unsqueeze(0), n_q, chunking)[0].cpu()  # (S, *latent)
        meta: dict[str, Any] = {"size": [int(n) for n in x.shape[1:]]}
        if source:
            meta["source"] = source
        meta.update(self.modality.token_meta(self.meta))
        return staged_tokenfile(
            codes,
            self.stage_sizes(codes.shape[0]),
            self.quantizer.variable_rate,
            model_id=self.model_id,
            modality=self.config.modality,
            meta=meta,
        )

    def check_tokenfile(self, tf: TokenFile, path: PathLike = "<tokens>") -> list[int]:
        """Raise unless this model can decode `tf`; returns the original spatial size to crop to."""
        lead = self.time_lead
        size = tf.meta.get("size")
        if lead and isinstance(size, list) and size and isinstance(size[0], int):
            # k latent frames came from the first frame's copies plus the clip: check the length with them
            tf = replace(tf, meta={**tf.meta, "size": [size[0] + lead, *size[1:]]})
        size = check_decodable(
            tf,
            path,
            modality=self.config.modality,
            model_id=self.model_id,
            codebook_size=int(self.codebook_size),
            max_stages=self.n_stages,
            staged=self.quantizer.variable_rate,
            factors=tuple(self.downsample_factors),
        )
        if lead:
            size = [size[0] - lead, *size[1:]]
        return size

    @torch.no_grad()
    def decode_item(self, tf: TokenFile, path: PathLike = "<tokens>", chunking: ChunkingLike = True) -> Tensor:
        """A TokenFile -> one item (C, *size) in [-1, 1], cropped to the original size."""
        size = self.check_tokenfile(tf, path)
        return self.decode_codes(stage_codes(tf).unsqueeze(0), size, chunking)[0].float().cpu().clamp(-1, 1)

    # ---- persistence --------------------------------------------------------------------------------

    def save_pretrained(self, directory: str | Path) -> Path:
        """Writes config.json and model.safetensors (each atomically) into `directory`."""
        config = self.config.to_dict()
        config.pop("format")
        self.model_id = save_model_dir(directory, self, config, FORMAT)
        return Path(directory)

    @classmethod
    def from_pretrained(cls, directory: str | Path, device: str | torch.device = "cpu") -> "Tokenizer":
        """Loads a directory written by `save_pretrained` (or a run directory holding `model/`)."""
        model, raw = load_model_dir(
            resolve_model_dir(directory), FORMAT, "tokenizer", lambda raw: cls(TokenizerConfig.from_dict(raw)), device
        )
        model.model_id = raw.get("model_id", "")
        return model


def bypassed(z: Tensor) -> QuantizerOutput:
    """A quantizer result that passes z (B, D, *latent) through: no codes, no loss."""
    indices = torch.zeros((z.shape[0], 0, *z.shape[2:]), dtype=torch.long, device=z.device)
    return QuantizerOutput(quantized=z, indices=indices, loss=z.new_zeros(()), metrics={"bypass": torch.ones(())})


def resolve_model_dir(path: str | Path) -> Path:
    """A model directory, a run directory whose `model/` holds the final model, or the name of a model that
    ships with the package (`vqfuse.pretrained`: "speech16k", ...) where no such path exists."""
    from vqfuse.pretrained import builtin_model, builtin_models

    path = Path(path)
    if not path.exists() and builtin_model(str(path)) is not None:
        return builtin_model(str(path))  # type: ignore[return-value]
    if (path / CONFIG_FILE).is_file():
        return path
    if (path / "model" / CONFIG_FILE).is_file():
        return path / "model"
    if not path.exists():
        names = ", ".join(builtin_models()) or "none"
        raise InputFileError(path, f"model directory does not exist (built-in models: {names})")
    raise InputFileError(path, f"not a vqfuse model or run directory (no {CONFIG_FILE} here or in model/)")


__all__ = ["Tokenizer", "TokenizerConfig", "TokenizerOutput", "resolve_model_dir", "weights_fingerprint", "FORMAT"]
