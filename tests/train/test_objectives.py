import pytest
import torch
from torch import nn

from vqfuse.errors import ConfigError
from vqfuse.quantize.base import QuantizerOutput
from vqfuse.tokenizer import TokenizerOutput
from vqfuse.train.config import LossConfig
from vqfuse.train.discriminator import build_discriminator, check_discriminator_input
from vqfuse.train.objectives import TokenizerObjective

pytestmark = pytest.mark.usefixtures("single_thread")

GAN = dict(
    gan_weight=0.5,
    disc_start=1,
    gan_start=2,
    gan_warmup=2,
    discriminator={"kind": "patch", "channels": 8, "n_layers": 2},
)


def _fake_output(x, last):
    """A 'decoder' whose output depends on `last` (the last layer weight), plus a quantizer loss."""
    x_hat = torch.tanh(x * last.sum())  # (B, C, H, W)
    quant = QuantizerOutput(
        quantized=x, indices=torch.zeros(x.shape[0], 2, 2, dtype=torch.long), loss=torch.tensor(0.25)
    )
    return TokenizerOutput(x_hat, quant)


class Exploding(nn.Module):
    def forward(self, x):
        raise AssertionError("the discriminator must not run before gan_start")


def test_gan_start_before_disc_start_is_rejected():
    with pytest.raises(ConfigError, match="gan_start"):
        TokenizerObjective(LossConfig(**{**GAN, "disc_start": 5, "gan_start": 3}), 2, 3, {})


@pytest.mark.parametrize(
    "bad",
    [
        dict(reconstruction="huber"),
        dict(gan_kind="wgan", gan_weight=1.0),
        dict(perceptual_weight=1.0),
        dict(stft_weight=1.0),
        dict(quantizer_weight=-1.0),
    ],
)
def test_invalid_loss_configs(bad):
    with pytest.raises(ConfigError):
        TokenizerObjective(LossConfig(**bad), 2, 3, {})


def test_reconstruction_and_quantizer_terms_without_gan():
    obj = TokenizerObjective(LossConfig(reconstruction="l2", reconstruction_weight=2.0, quantizer_weight=0.5), 2, 3, {})
    x = torch.rand(2, 3, 8, 8)
    last = torch.ones(4, requires_grad=True)
    out = _fake_output(x, last)
    loss, logs = obj.generator(x, out, step=0)
    rec = (out.reconstruction - x).pow(2).mean()
    torch.testing.assert_close(loss, 2.0 * rec + 0.5 * 0.25)
    assert set(logs) == {"rec", "quant", "g_total"} and not obj.uses_gan


def test_adversarial_term_is_gated_ramped_and_adaptive():
    obj = TokenizerObjective(LossConfig(**GAN, feature_matching_weight=1.0), 2, 3, {})
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    last = torch.full((4,), 0.25, requires_grad=True)
    # before gan_start: no discriminator call, zero adversarial logs, same keys
    loss0, logs0 = obj.generator(x, _fake_output(x, last), step=1, disc=Exploding(), last_layer_weight=last)
    assert logs0["gan"] == 0 and logs0["gan_weight"] == 0 and logs0["fm"] == 0
    assert obj.train_discriminator(1) and not obj.train_discriminator(0)
    torch.manual_seed(0)
    disc = build_discriminator(GAN["discriminator"], dims=2, in_channels=3).requires_grad_(False)
    out = _fake_output(x, last)
    loss2, logs2 = obj.generator(x, out, step=2, disc=disc, last_layer_weight=last)
    assert set(logs2) == set(logs0)
    assert logs2["gan"] != 0 and logs2["fm"] > 0
    # step 2 is the first of a 2-step ramp: factor 0.5; weight = gan_weight * factor * adaptive
    rec_grad = torch.autograd.grad((out.reconstruction - x).abs().mean(), last, retain_graph=True)[0]
    gan_grad = torch.autograd.grad(-disc(out.reconstruction)[0].mean(), last, retain_graph=True)[0]
    adaptive = rec_grad.norm() / (gan_grad.norm() + 1e-4)
    torch.testing.assert_close(logs2["gan_weight"], (0.5 * 0.5 * adaptive).detach(), rtol=1e-4, atol=1e-6)
    expected = logs2["rec"] + logs2["quant"] + logs2["gan_weight"] * logs2["gan"] + 0.5 * logs2["fm"]
    torch.testing.assert_close(loss2.detach(), expected, rtol=1e-5, atol=1e-6)
    loss2.backward()
    assert last.grad is not None and all(p.grad is None for p in disc.parameters())


def test_fixed_weight_when_adaptive_is_off():
    obj = TokenizerObjective(LossConfig(**{**GAN, "adaptive_weight": False, "gan_warmup": 0}), 2, 3, {})
    x = torch.rand(2, 3, 16, 16)
    last = torch.ones(4, requires_grad=True)
    disc = build_discriminator(GAN["discriminator"], dims=2, in_channels=3).requires_grad_(False)
    _, logs = obj.generator(x, _fake_output(x, last), step=2, disc=disc, last_layer_weight=last)
    assert float(logs["gan_weight"]) == pytest.approx(0.5)


def test_discriminator_loss_with_r1_and_lecam():
    obj = TokenizerObjective(LossConfig(**GAN, r1_weight=1.0, lecam_weight=0.1), 2, 3, {})
    disc = build_discriminator(
        {"kind": "multiscale", "n_scales": 2, "channels": 8, "n_layers": 1}, dims=2, in_channels=3
    )
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    fake = torch.rand(2, 3, 16, 16, requires_grad=True)
    loss, logs = obj.discriminator(x, fake, disc)
    assert list(logs) == obj.discriminator_log_keys() == ["d", "r1", "lecam", "logits_real", "logits_fake"]
    loss.backward()
    assert fake.grad is None  # the fake is detached
    assert all(p.grad is not None for p in disc.parameters())
    assert obj.state_dict().keys() == {"lecam.ema_real", "lecam.ema_fake"}


def test_audio_losses_use_the_sample_rate():
    obj = TokenizerObjective(LossConfig(stft_weight=1.0, mel_weight=1.0), 1, 1, {"sample_rate": 16000})
    x = torch.randn(2, 1, 4096) * 0.1
    last = torch.ones(2, requires_grad=True)
    loss, logs = obj.generator(x, _fake_output(x, last), step=0)
    assert {"stft", "mel"} <= set(logs) and torch.isfinite(loss)
    with pytest.raises(ConfigError, match="sample_rate"):
        TokenizerObjective(LossConfig(mel_weight=1.0), 1, 1, {})


def test_discriminator_builder_errors():
    with pytest.raises(ConfigError, match="kind"):
        build_discriminator({"kind": "stylegan"}, 2, 3)
    with pytest.raises(ConfigError):
        build_discriminator({"kind": "patch", "bogus": 1}, 2, 3)
    disc = build_discriminator({"kind": "patch", "n_layers": 4, "channels": 4}, 2, 3)
    with pytest.raises(ConfigError, match="does not fit"):
        check_discriminator_input(disc, torch.zeros(3, 8, 8))


def test_audio_discriminators():
    x = torch.randn(2, 1, 2048) * 0.1
    for spec in (
        {"kind": "mstft", "channels": 4, "n_ffts": [256, 128]},
        {"kind": "mpd", "channels": 4, "periods": [2, 3]},
        {"kind": "audio", "channels": 4, "stft": {"n_ffts": [256]}, "period": {"periods": [2]}},
    ):
        logits, features = build_discriminator(spec, dims=1, in_channels=1)(x)
        assert isinstance(logits, list) and len(logits) == len(features)
    with pytest.raises(ConfigError, match="audio"):
        build_discriminator({"kind": "mpd"}, dims=2, in_channels=3)
