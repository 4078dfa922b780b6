"""Adversarial losses: known values, multi-scale averaging, gradients, regularisers, schedule."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

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


def full(v: float, shape: tuple[int, ...] = (2, 1, 4, 4)) -> torch.Tensor:
    return torch.full(shape, float(v))


@pytest.mark.parametrize(
    ("real", "fake", "expected"),
    [(2.0, -2.0, 0.0), (0.0, 0.0, 1.0), (0.5, 0.5, 0.5 * (0.5 + 1.5)), (-1.0, 1.0, 0.5 * (2.0 + 2.0))],
)
def test_hinge_discriminator_known_values(real: float, fake: float, expected: float) -> None:
    loss = discriminator_loss(full(real), full(fake), kind="hinge")
    assert loss.item() == pytest.approx(expected)


@pytest.mark.parametrize(("real", "fake"), [(0.0, 0.0), (2.0, -2.0), (-1.0, 3.0)])
def test_non_saturating_discriminator_known_values(real: float, fake: float) -> None:
    # 0.5 * (-log sigmoid(real) - log(1 - sigmoid(fake)))
    sig = lambda v: 1.0 / (1.0 + math.exp(-v))  # noqa: E731
    expected = 0.5 * (-math.log(sig(real)) - math.log(1.0 - sig(fake)))
    loss = discriminator_loss(full(real, (3, 1, 5)), full(fake, (3, 1, 5)), kind="non_saturating")
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_generator_loss_values_and_sign() -> None:
    assert generator_loss(full(1.5), "hinge").item() == pytest.approx(-1.5)
    assert generator_loss(full(0.0), "non_saturating").item() == pytest.approx(math.log(2.0))
    for kind in ("hinge", "non_saturating"):
        fake = torch.zeros(2, 1, 3, 3, 3, requires_grad=True)  # 3D (video) logits
        generator_loss(fake, kind).backward()
        assert (fake.grad < 0).all(), "raising fake logits must lower the generator loss"
        assert generator_loss(full(2.0), kind) < generator_loss(full(-2.0), kind)


def test_list_inputs_average_over_scales() -> None:
    reals = [full(0.0), full(2.0, (2, 1, 2, 2))]
    fakes = [full(0.0), full(-2.0, (2, 1, 2, 2))]
    for kind in ("hinge", "non_saturating"):
        per_scale = [discriminator_loss(r, f, kind) for r, f in zip(reals, fakes)]
        assert discriminator_loss(reals, fakes, kind).item() == pytest.approx(sum(per_scale).item() / 2)
        g_scale = [generator_loss(f, kind) for f in fakes]
        assert generator_loss(fakes, kind).item() == pytest.approx(sum(g_scale).item() / 2)
    with pytest.raises(ValueError):
        discriminator_loss(reals, fakes[:1])
    with pytest.raises(ValueError):
        generator_loss(full(0.0), kind="wgan")  # type: ignore[arg-type]


def test_feature_matching_zero_for_identical_and_grads_only_to_fake() -> None:
    real = [torch.randn(2, 4, 8, 8, requires_grad=True), torch.randn(2, 8, 4, 4, requires_grad=True)]
    same = [r.detach().clone().requires_grad_(True) for r in real]
    assert feature_matching_loss(real, same).item() == 0.0

    fake = [torch.randn_like(r).requires_grad_(True) for r in real]
    loss = feature_matching_loss(real, fake)
    expected = sum((f - r).abs().mean() for r, f in zip(real, fake)) / 2
    assert loss.item() == pytest.approx(expected.item())
    loss.backward()
    assert all(r.grad is None for r in real)
    assert all(f.grad is not None and f.grad.abs().sum() > 0 for f in fake)


def test_feature_matching_nested_scales() -> None:
    real = [[torch.zeros(1, 2, 4)], [torch.zeros(1, 2, 4), torch.zeros(1, 3, 2)]]
    fake = [[torch.ones(1, 2, 4)], [torch.full((1, 2, 4), 3.0), torch.full((1, 3, 2), 5.0)]]
    # scale 0: 1; scale 1: mean(3, 5) = 4; mean over scales = 2.5
    assert feature_matching_loss(real, fake).item() == pytest.approx(2.5)


def test_adaptive_weight_matches_independent_ratio_and_is_clamped() -> None:
    torch.manual_seed(0)
    decoder = nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 3))
    last = decoder[2].weight
    z, target, direction = torch.randn(4, 5), torch.randn(4, 3), torch.randn(3)

    def losses() -> tuple[torch.Tensor, torch.Tensor]:
        x_hat = decoder(z)
        return F.l1_loss(x_hat, target), -(x_hat * direction).mean() * 0.1

    # independent: fresh graphs, one gradient per loss w.r.t. the decoder's last layer
    g_rec = torch.autograd.grad(losses()[0], last)[0]
    g_gan = torch.autograd.grad(losses()[1], last)[0]
    expected = g_rec.norm() / (g_gan.norm() + 1e-4)

    rec, gan = losses()
    w = adaptive_generator_weight(rec, gan, last)
    assert not w.requires_grad
    assert w.item() == pytest.approx(expected.item(), rel=1e-5)
    # graph is retained: the total loss can still be backpropagated
    (rec + w * gan).backward()
    assert last.grad is not None

    x_hat = decoder(z)
    tiny_gan = x_hat.mean() * 1e-12
    w_clamped = adaptive_generator_weight(F.l1_loss(x_hat, target), tiny_gan, last, max_weight=10.0)
    assert w_clamped.item() == pytest.approx(10.0)

    with torch.no_grad():
        x_hat = decoder(z)
        assert adaptive_generator_weight(F.l1_loss(x_hat, target), x_hat.mean(), last).item() == 0.0


def test_r1_penalty_closed_form_linear_discriminator() -> None:
    torch.manual_seed(0)
    # D(x) = sum(w * x) + b per sample, so dD/dx = w and the penalty is ||w||^2
    w = torch.randn(1, 3, 4, 4)
    real = torch.randn(5, 3, 4, 4, requires_grad=True)
    logits = (real * w).flatten(1).sum(1) + 0.3
    pen = r1_penalty(logits, real)
    assert pen.item() == pytest.approx(w.pow(2).sum().item(), rel=1e-5)

    # conv patch discriminator: sum over patch logits; check against an explicit gradient
    conv = nn.Conv2d(3, 1, 3, padding=1)
    real2 = torch.randn(2, 3, 6, 6, requires_grad=True)
    out = conv(real2)
    g = torch.autograd.grad(out.sum(), real2, retain_graph=True)[0]
    expected = g.pow(2).flatten(1).sum(1).mean()
    pen2 = r1_penalty(out, real2)
    assert pen2.item() == pytest.approx(expected.item(), rel=1e-5)
    pen2.backward()  # create_graph: penalty trains D
    assert conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0

    with pytest.raises(ValueError, match="require grad"):
        r1_penalty(out.detach(), real2.detach())


def test_lecam_ema_moves_toward_logits_and_penalty() -> None:
    reg = LeCamRegularizer(decay=0.9)
    real, fake = full(2.0), full(-3.0)
    prev_r, prev_f = reg.ema_real.item(), reg.ema_fake.item()
    for _ in range(20):
        reg.update(real, fake)
        assert abs(reg.ema_real.item() - 2.0) < abs(prev_r - 2.0)
        assert abs(reg.ema_fake.item() + 3.0) < abs(prev_f + 3.0)
        prev_r, prev_f = reg.ema_real.item(), reg.ema_fake.item()
    assert reg.ema_real.item() == pytest.approx(2.0 * (1 - 0.9**20), rel=1e-5)
    assert "ema_real" in reg.state_dict() and "ema_fake" in reg.state_dict()

    # penalty with explicit EMAs, no update
    reg.ema_real.fill_(1.0)
    reg.ema_fake.fill_(-1.0)
    r = torch.tensor([0.5, -2.0], requires_grad=True)
    f = torch.tensor([2.0, 0.0])
    pen = reg(r, f, update=False)
    expected = ((0.5 + 1.0) ** 2 + 0.0) / 2 + (0.0 + 1.0**2) / 2
    assert pen.item() == pytest.approx(expected)
    assert reg.ema_real.item() == 1.0
    pen.backward()
    assert r.grad is not None

    reg.train()
    reg([r.detach()], [f])  # list inputs, updates in training mode
    assert reg.ema_real.item() != 1.0


def test_adversarial_factor_schedule() -> None:
    assert adversarial_factor(0, start_step=10, warmup_steps=4) == 0.0
    assert adversarial_factor(9, start_step=10, warmup_steps=4) == 0.0
    assert adversarial_factor(10, start_step=10, warmup_steps=4) == pytest.approx(0.25)
    assert adversarial_factor(11, start_step=10, warmup_steps=4) == pytest.approx(0.5)
    assert adversarial_factor(13, start_step=10, warmup_steps=4) == 1.0
    assert adversarial_factor(1000, start_step=10, warmup_steps=4) == 1.0
    assert adversarial_factor(10, start_step=10, warmup_steps=0) == 1.0
    values = [adversarial_factor(s, 5, 10) for s in range(30)]
    assert values == sorted(values)


def test_discriminator_warmup_trains_d_before_g_uses_it() -> None:
    sched = DiscriminatorWarmup(disc_train_start=100, start_step=200, warmup_steps=50)
    assert not sched.train_discriminator(99) and sched.train_discriminator(100)
    assert sched.generator_factor(150) == 0.0  # D trains, G ignores it
    assert 0.0 < sched.generator_factor(200) < sched.generator_factor(220) < 1.0
    assert sched.generator_factor(300) == 1.0
    with pytest.raises(ValueError, match="untrained"):
        DiscriminatorWarmup(disc_train_start=500, start_step=100)
