"""Adversarial losses and regularisers for VQ-GAN style training (any spatial dimensionality).

Logits and features may be tensors of any shape, e.g. (B, 1, H, W) for a 2D PatchGAN,
(B, 1, T) for a 1D audio discriminator or (B, 1, T, H, W) for a 3D video discriminator.
Every function that takes logits also accepts a list of tensors (one per scale of a multi-scale
discriminator) and averages the per-scale losses.

Schedule convention (see `adversarial_factor` and `DiscriminatorWarmup`): the discriminator starts
training at `disc_train_start`, *before* the generator sees any adversarial gradient; the
generator's adversarial weight ramps linearly from 0 to 1 starting at `start_step`. Switching on the
generator term against an untrained discriminator feeds the decoder noise gradients, so
`disc_train_start <= start_step` is enforced.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Logits = Union[Tensor, Sequence[Tensor]]
AdvKind = Literal["hinge", "non_saturating"]

__all__ = [
    "discriminator_loss",
    "generator_loss",
    "feature_matching_loss",
    "adaptive_generator_weight",
    "r1_penalty",
    "LeCamRegularizer",
    "adversarial_factor",
    "DiscriminatorWarmup",
]


def _as_list(x: Logits) -> list[Tensor]:
    """A tensor -> [tensor]; a list/tuple of tensors -> list. Rejects empty lists."""
    if isinstance(x, Tensor):
        return [x]
    out = list(x)
    if not out:
        raise ValueError("expected a tensor or a non-empty list of tensors")
    return out


def _check_kind(kind: str) -> None:
    if kind not in ("hinge", "non_saturating"):
        raise ValueError(f"unknown adversarial loss kind {kind!r}; expected 'hinge' or 'non_saturating'")


def discriminator_loss(real_logits: Logits, fake_logits: Logits, kind: AdvKind = "hinge") -> Tensor:
    """Discriminator loss, averaged over scales.

    hinge:          0.5 * (mean(relu(1 - D(x))) + mean(relu(1 + D(G(z)))))
    non_saturating: 0.5 * (mean(softplus(-D(x))) + mean(softplus(D(G(z)))))   (= BCE with logits)

    The 0.5 follows taming-transformers, so hinge with real=fake=0 gives 1 and real=+2/fake=-2 gives 0.
    `fake_logits` should come from detached generator outputs.
    """
    _check_kind(kind)
    reals, fakes = _as_list(real_logits), _as_list(fake_logits)
    if len(reals) != len(fakes):
        raise ValueError(f"got {len(reals)} real scales but {len(fakes)} fake scales")
    losses = []
    for r, f in zip(reals, fakes):
        if kind == "hinge":
            losses.append(0.5 * (F.relu(1.0 - r).mean() + F.relu(1.0 + f).mean()))
        else:
            losses.append(0.5 * (F.softplus(-r).mean() + F.softplus(f).mean()))
    return torch.stack(losses).mean()


def generator_loss(fake_logits: Logits, kind: AdvKind = "hinge") -> Tensor:
    """Generator adversarial loss, averaged over scales.

    hinge:          -mean(D(G(z)))
    non_saturating: mean(softplus(-D(G(z))))  (= -log sigmoid(D(G(z))))
    Both decrease as the fake logits increase.
    """
    _check_kind(kind)
    losses = []
    for f in _as_list(fake_logits):
        losses.append(-f.mean() if kind == "hinge" else F.softplus(-f).mean())
    return torch.stack(losses).mean()


def feature_matching_loss(
    real_features: Sequence[Tensor] | Sequence[Sequence[Tensor]],
    fake_features: Sequence[Tensor] | Sequence[Sequence[Tensor]],
) -> Tensor:
    """Mean L1 between discriminator features of real and fake inputs.

    Accepts one list of per-layer features, or a list (scales) of such lists. Real features are
    detached so gradients flow only into the generator through the fake features. The L1 is a mean
    over elements per layer, then a mean over layers and scales.
    """
    if len(real_features) != len(fake_features):
        raise ValueError(f"got {len(real_features)} real but {len(fake_features)} fake feature entries")
    if not real_features:
        raise ValueError("feature lists are empty")
    losses: list[Tensor] = []
    for r, f in zip(real_features, fake_features):
        if isinstance(r, Tensor) != isinstance(f, Tensor):
            raise ValueError("real and fake features must have the same nesting")
        if isinstance(r, Tensor):
            if r.shape != f.shape:
                raise ValueError(f"feature shape mismatch: real {tuple(r.shape)} vs fake {tuple(f.shape)}")
            losses.append((f - r.detach()).abs().mean())
        else:
            losses.append(feature_matching_loss(r, f))  # one scale: mean over its layers
    return torch.stack(losses).mean()


def adaptive_generator_weight(
    rec_loss: Tensor, gan_loss: Tensor, last_layer_weight: Tensor, max_weight: float = 1e4, eps: float = 1e-4
) -> Tensor:
    """taming-transformers' adaptive weight ||dL_rec/dW|| / (||dL_gan/dW|| + eps), W = decoder's last layer.

    Uses torch.autograd.grad(..., retain_graph=True) so the caller can still backprop the total loss.
    The result is clamped to [0, max_weight] and detached. If gradients cannot be taken (e.g. an
    evaluation step under torch.no_grad()), returns 0 — the adversarial term is then off.
    """
    if not (torch.is_grad_enabled() and rec_loss.requires_grad and gan_loss.requires_grad):
        return torch.zeros((), device=rec_loss.device, dtype=rec_loss.dtype)
    (rec_grad,) = torch.autograd.grad(rec_loss, last_layer_weight, retain_graph=True)
    (gan_grad,) = torch.autograd.grad(gan_loss, last_layer_weight, retain_graph=True)
    weight = torch.linalg.vector_norm(rec_grad) / (torch.linalg.vector_norm(gan_grad) + eps)
    return weight.clamp(0.0, max_weight).detach()


def r1_penalty(real_logits: Logits, real_inputs: Tensor) -> Tensor:
    """R1 gradient penalty: mean over the batch of ||dD(x)/dx||^2 on real data (no gamma/2 factor).

    `real_inputs` (B, C, *spatial) must have requires_grad=True before the discriminator is run on it.
    The graph is kept (create_graph=True) so the penalty can be backpropagated into D. With a list of
    logits (multi-scale D), per-scale penalties are averaged.
    """
    if not real_inputs.requires_grad:
        raise ValueError("r1_penalty: real_inputs must require grad (call real.requires_grad_(True) before D)")
    penalties = []
    for logits in _as_list(real_logits):
        (grad,) = torch.autograd.grad(logits.sum(), real_inputs, create_graph=True)
        penalties.append(grad.pow(2).reshape(grad.shape[0], -1).sum(dim=1).mean())  # (B,) -> ()
    return torch.stack(penalties).mean()


class LeCamRegularizer(nn.Module):
    """LeCam regularisation (Tseng et al., 2021) with EMAs of the mean real / fake logits.

    penalty = mean(relu(D(x) - ema_fake)^2) + mean(relu(ema_real - D(G(z)))^2)

    The EMAs are buffers (saved in state_dict). `forward` updates them first (only in training mode,
    unless `update=False`) and then returns the penalty, which should be added to the D loss with a
    small weight (e.g. 1e-3 .. 0.3).
    """

    ema_real: Tensor
    ema_fake: Tensor

    def __init__(self, decay: float = 0.99) -> None:
        super().__init__()
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.register_buffer("ema_real", torch.zeros(()))
        self.register_buffer("ema_fake", torch.zeros(()))

    @staticmethod
    def _flat(logits: Logits) -> Tensor:
        return torch.cat([t.reshape(-1) for t in _as_list(logits)])  # all scales, (N,)

    @torch.no_grad()
    def update(self, real_logits: Logits, fake_logits: Logits) -> None:
        """ema <- decay * ema + (1 - decay) * mean(logits), for real and fake."""
        r = self._flat(real_logits).float().mean().to(self.ema_real)
        f = self._flat(fake_logits).float().mean().to(self.ema_fake)
        self.ema_real.mul_(self.decay).add_(r, alpha=1.0 - self.decay)
        self.ema_fake.mul_(self.decay).add_(f, alpha=1.0 - self.decay)

    def forward(self, real_logits: Logits, fake_logits: Logits, update: bool | None = None) -> Tensor:
        """Update EMAs (default: when training) and return the scalar penalty."""
        if update is None:
            update = self.training
        if update:
            self.update(real_logits, fake_logits)
        real, fake = self._flat(real_logits), self._flat(fake_logits)
        return F.relu(real - self.ema_fake).pow(2).mean() + F.relu(self.ema_real - fake).pow(2).mean()


def adversarial_factor(step: int, start_step: int, warmup_steps: int = 0) -> float:
    """Weight multiplier of the generator's adversarial loss at `step`.

    0 for step < start_step; then (step - start_step + 1) / warmup_steps, capped at 1, so the factor
    is 1 from step start_step + warmup_steps - 1 on (warmup_steps <= 0: a hard switch to 1).
    Only the GENERATOR is gated by this: the discriminator should already be trained from an earlier
    `disc_train_start` (see `DiscriminatorWarmup`) so it is useful when the generator starts using it.
    """
    if step < start_step:
        return 0.0
    if warmup_steps <= 0:
        return 1.0
    return min(1.0, (step - start_step + 1) / warmup_steps)


@dataclass(frozen=True)
class DiscriminatorWarmup:
    """When D trains and how strongly G uses it.

    disc_train_start: first step at which the discriminator is updated.
    start_step: first step at which the generator's adversarial term is non-zero (>= disc_train_start).
    warmup_steps: length of the generator's linear ramp from 0 to 1.
    """

    disc_train_start: int = 0
    start_step: int = 0
    warmup_steps: int = 0

    def __post_init__(self) -> None:
        if self.disc_train_start > self.start_step:
            raise ValueError(
                f"disc_train_start ({self.disc_train_start}) must be <= start_step ({self.start_step}): "
                "the generator must not use an untrained discriminator"
            )
        if min(self.disc_train_start, self.start_step, self.warmup_steps) < 0:
            raise ValueError("steps must be non-negative")

    def train_discriminator(self, step: int) -> bool:
        """Whether the discriminator is updated at `step`."""
        return step >= self.disc_train_start

    def generator_factor(self, step: int) -> float:
        """Multiplier of the generator's adversarial loss at `step`."""
        return adversarial_factor(step, self.start_step, self.warmup_steps)
