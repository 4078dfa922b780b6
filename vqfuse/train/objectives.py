"""The tokenizer's training objective: generator (autoencoder) loss and discriminator loss.

Generator:
    nll   = rec_w * rec(x_hat, x) [+ perceptual_w * LPIPS] [+ stft_w * MR-STFT + mel_w * mel]   (audio terms)
          [+ complex_stft_w * compressed complex STFT MSE + log_magnitude_w * log|X| MSE
           + phase_derivative_w * phase differences over time and frequency]                  (spectral codec)
    total = nll + quantizer_w * quant.loss
          + gan_w * factor(step) * adaptive_w * G_adv(D(x_hat))      from gan_start, ramped over gan_warmup
          + fm_w * factor(step) * FM(D(x), D(x_hat))                 feature matching, same ramp
    adaptive_w = ||d nll / d W_last|| / ||d G_adv / d W_last||, capped at adaptive_max (taming); 1 when off.

Discriminator (from disc_start <= gan_start):
    total = D_adv(D(x), D(sg(x_hat))) + r1_w * R1(x) + lecam_w * LeCam

Both return `(loss, logs)`; logs are detached scalar tensors whose keys depend only on the config, so
they can be stacked, gathered across processes and averaged.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import Tensor, nn

from vqfuse.errors import ConfigError
from vqfuse.losses import (
    DiscriminatorWarmup,
    LeCamRegularizer,
    LocalLPIPS,
    adaptive_generator_weight,
    discriminator_loss,
    feature_matching_loss,
    generator_loss,
    multi_resolution_stft_loss,
    multi_scale_mel_loss,
    r1_penalty,
    reconstruction_loss,
)
from vqfuse.losses.spectral import complex_stft_loss, dac_mel_loss, log_magnitude_loss, phase_derivative_loss
from vqfuse.tokenizer import TokenizerOutput
from vqfuse.train.config import LossConfig

Logs = dict[str, Tensor]
REC_KINDS = ("l1", "l2", "l1+l2")
GAN_KINDS = ("hinge", "non_saturating")
MEL_SCALES = ("default", "dac7")


def _split(logits: Tensor | Sequence[Tensor], n: int) -> tuple[Any, Any]:
    """Logits of cat([a, b]) (first n items are a) -> (logits_a, logits_b), per scale for lists."""
    if isinstance(logits, Tensor):
        return logits[:n], logits[n:]
    return [t[:n] for t in logits], [t[n:] for t in logits]


def _split_features(features: list, n: int) -> tuple[list, list]:
    """Per-layer features (or per-scale lists of them) of cat([a, b]) -> (features_a, features_b)."""
    a, b = [], []
    for f in features:
        fa, fb = _split(f, n)
        a.append(fa)
        b.append(fb)
    return a, b


def _mean_logit(logits: Tensor | Sequence[Tensor]) -> Tensor:
    items = [logits] if isinstance(logits, Tensor) else list(logits)
    return torch.stack([t.detach().float().mean() for t in items]).mean()


class TokenizerObjective:
    """Losses of one tokenizer run.

    Args:
        loss: the run's LossConfig (validated here).
        dims: spatial axes of the data (1 audio, 2 image, 3 video).
        in_channels: channels of the data.
        meta: model meta (audio losses read `sample_rate`).
    """

    def __init__(self, loss: LossConfig, dims: int, in_channels: int, meta: dict[str, Any]) -> None:
        self.cfg = loss
        self.dims, self.meta = dims, meta
        self._validate(in_channels)
        self.gan: DiscriminatorWarmup | None = None
        if loss.gan_weight > 0:
            self.gan = DiscriminatorWarmup(loss.disc_start, loss.gan_start, loss.gan_warmup)
        self.lpips: nn.Module | None = None
        if loss.perceptual_weight > 0:
            try:
                self.lpips = LocalLPIPS(loss.perceptual_weights_path)  # type: ignore[arg-type]
            except (FileNotFoundError, ValueError) as exc:
                raise ConfigError(f"loss.perceptual_weights_path: {exc}") from exc
        self.lecam = LeCamRegularizer() if (self.gan and loss.lecam_weight > 0) else None

    # ---- configuration ------------------------------------------------------------------------------

    def _validate(self, in_channels: int) -> None:
        c = self.cfg
        if c.reconstruction not in REC_KINDS:
            raise ConfigError(f"loss.reconstruction must be one of {', '.join(REC_KINDS)}, got {c.reconstruction!r}")
        if c.gan_kind not in GAN_KINDS:
            raise ConfigError(f"loss.gan_kind must be one of {', '.join(GAN_KINDS)}, got {c.gan_kind!r}")
        weights = (
            "reconstruction_weight",
            "quantizer_weight",
            "gan_weight",
            "feature_matching_weight",
            "r1_weight",
            "lecam_weight",
            "perceptual_weight",
            "stft_weight",
            "mel_weight",
            "complex_stft_weight",
            "log_magnitude_weight",
            "phase_derivative_weight",
        )
        for name in weights:
            if getattr(c, name) < 0:
                raise ConfigError(f"loss.{name} must be >= 0, got {getattr(c, name)}")
        if c.gan_weight > 0:
            if min(c.disc_start, c.gan_start, c.gan_warmup) < 0:
                raise ConfigError("loss.disc_start, loss.gan_start and loss.gan_warmup must be >= 0")
            if c.gan_start < c.disc_start:
                raise ConfigError(
                    f"loss.gan_start ({c.gan_start}) must be >= loss.disc_start ({c.disc_start}): the generator "
                    "must not learn from an untrained discriminator"
                )
            if c.adaptive_max <= 0:
                raise ConfigError(f"loss.adaptive_max must be > 0, got {c.adaptive_max}")
        if c.perceptual_weight > 0:
            if not c.perceptual_weights_path:
                raise ConfigError(
                    "loss.perceptual_weight > 0 needs loss.perceptual_weights_path (a local LPIPS "
                    "safetensors file; vqfuse never downloads weights)"
                )
            if self.dims not in (2, 3) or in_channels != 3:
                raise ConfigError("loss.perceptual_weight needs RGB images or video")
        audio_terms = (
            c.stft_weight,
            c.mel_weight,
            c.complex_stft_weight,
            c.log_magnitude_weight,
            c.phase_derivative_weight,
        )
        if max(audio_terms) > 0 and self.dims != 1:
            raise ConfigError(
                "loss.stft_weight / mel_weight / complex_stft_weight / log_magnitude_weight apply to "
                "audio (1D) data only"
            )
        if c.mel_scales not in MEL_SCALES:
            raise ConfigError(f"loss.mel_scales must be one of {', '.join(MEL_SCALES)}, got {c.mel_scales!r}")
        if c.mel_weight > 0 and not self.meta.get("sample_rate"):
            raise ConfigError("loss.mel_weight needs the model meta to hold a sample_rate")

    @property
    def uses_gan(self) -> bool:
        return self.gan is not None

    def train_discriminator(self, step: int) -> bool:
        """Whether the discriminator is updated at (0-based) `step`."""
        return self.gan is not None and self.gan.train_discriminator(step)

    def gan_factor(self, step: int) -> float:
        """Ramp of the generator's adversarial terms at `step` (0 before gan_start)."""
        return 0.0 if self.gan is None else self.gan.generator_factor(step)

    def to(self, device: torch.device | str) -> "TokenizerObjective":
        for module in (self.lpips, self.lecam):
            if module is not None:
                module.to(device)
        return self

    def state_dict(self) -> dict[str, Tensor]:
        """The objective's own state (LeCam EMAs); LPIPS weights are fixed and not saved."""
        return {} if self.lecam is None else {f"lecam.{k}": v for k, v in self.lecam.state_dict().items()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        if self.lecam is not None:
            self.lecam.load_state_dict({k[len("lecam.") :]: v for k, v in state.items() if k.startswith("lecam.")})

    def buffers(self) -> list[Tensor]:
        return [] if self.lecam is None else list(self.lecam.buffers())

    # ---- generator ----------------------------------------------------------------------------------

    def generator(
        self,
        x: Tensor,
        out: TokenizerOutput,
        step: int,
        disc: nn.Module | None = None,
        last_layer_weight: Tensor | None = None,
    ) -> tuple[Tensor, Logs]:
        """Generator loss of one batch.

        Args:
            x: inputs (B, C, *spatial).
            out: the tokenizer's output on x.
            step: 0-based training step (gates the adversarial terms).
            disc: the discriminator, parameters frozen by the caller (gradients reach x_hat only).
            last_layer_weight: the decoder's last weight, for the adaptive weight.
        """
        c = self.cfg
        x_hat = out.reconstruction.float()  # (B, C, *spatial)
        x = x.float()
        logs: Logs = {}
        rec = reconstruction_loss(x_hat, x, c.reconstruction)  # type: ignore[arg-type]
        nll = c.reconstruction_weight * rec
        logs["rec"] = rec
        if self.lpips is not None:
            p = self.lpips(x_hat, x)
            nll = nll + c.perceptual_weight * p
            logs["perceptual"] = p
        if c.stft_weight > 0:
            s = multi_resolution_stft_loss(x_hat, x)
            nll = nll + c.stft_weight * s
            logs["stft"] = s
        if c.mel_weight > 0:
            sr = int(self.meta["sample_rate"])
            m = dac_mel_loss(x_hat, x, sr) if c.mel_scales == "dac7" else multi_scale_mel_loss(x_hat, x, sample_rate=sr)
            nll = nll + c.mel_weight * m
            logs["mel"] = m
        spectral_terms = (
            ("complex_stft", c.complex_stft_weight, complex_stft_loss),
            ("log_magnitude", c.log_magnitude_weight, log_magnitude_loss),
            ("phase_derivative", c.phase_derivative_weight, phase_derivative_loss),
        )
        for name, weight, loss_fn in spectral_terms:  # on the codec's STFT grid
            if weight > 0:
                term = loss_fn(x_hat, x, c.spectral_n_fft, c.spectral_hop)
                nll = nll + weight * term
                logs[name] = term
        quant = out.quant.loss.float()
        total = nll + c.quantizer_weight * quant
        logs["quant"] = quant

        if self.gan is not None:
            zero = x_hat.new_zeros(())
            gan, weight, fm = zero, zero, zero
            factor = self.gan_factor(step)
            if factor > 0:
                if disc is None:
                    raise ValueError("the adversarial term is on at this step but no discriminator was given")
                n = x.shape[0]
                if c.feature_matching_weight > 0:
                    logits, features = disc(torch.cat([x, x_hat]))  # real and fake in one pass
                    _, fake_logits = _split(logits, n)
                    real_feats, fake_feats = _split_features(features, n)
                    fm = feature_matching_loss(real_feats, fake_feats)
                    total = total + c.feature_matching_weight * factor * fm
                else:
                    fake_logits, _ = disc(x_hat)
                gan = generator_loss(fake_logits, c.gan_kind)  # type: ignore[arg-type]
                if c.adaptive_weight and last_layer_weight is not None:
                    adaptive = adaptive_generator_weight(nll, gan, last_layer_weight, max_weight=c.adaptive_max)
                else:
                    adaptive = torch.ones_like(gan)
                weight = c.gan_weight * factor * adaptive
                total = total + weight * gan
            logs.update(gan=gan, gan_weight=weight)
            if c.feature_matching_weight > 0:
                logs["fm"] = fm
        logs["g_total"] = total
        return total, {k: v.detach().float() for k, v in logs.items()}

    # ---- discriminator ------------------------------------------------------------------------------

    def discriminator(self, x: Tensor, x_hat: Tensor, disc: nn.Module) -> tuple[Tensor, Logs]:
        """Discriminator loss on real `x` vs detached fake `x_hat`, (B, C, *spatial) each."""
        c = self.cfg
        n = x.shape[0]
        real = x.detach()
        if c.r1_weight > 0:
            real = real.clone().requires_grad_(True)
        logits, _ = disc(torch.cat([real, x_hat.detach().to(real.dtype)]))  # one pass: one DDP forward
        real_logits, fake_logits = _split(logits, n)
        d = discriminator_loss(real_logits, fake_logits, c.gan_kind)  # type: ignore[arg-type]
        total = d
        logs: Logs = {"d": d}
        if c.r1_weight > 0:
            r1 = r1_penalty(real_logits, real)
            total = total + c.r1_weight * r1
            logs["r1"] = r1
        if self.lecam is not None:
            lc = self.lecam(real_logits, fake_logits)
            total = total + c.lecam_weight * lc
            logs["lecam"] = lc
        logs.update(logits_real=_mean_logit(real_logits), logits_fake=_mean_logit(fake_logits))
        return total, {k: v.detach().float() for k, v in logs.items()}

    def discriminator_log_keys(self) -> list[str]:
        """Keys of `discriminator`'s logs (so steps before disc_start can log zeros under the same keys)."""
        keys = ["d"] + (["r1"] if self.cfg.r1_weight > 0 else []) + (["lecam"] if self.lecam is not None else [])
        return keys + ["logits_real", "logits_fake"]


__all__ = ["TokenizerObjective"]
