"""Tests for vqfuse.nets.audio_discriminators: MS-STFT and multi-period discriminators."""

from __future__ import annotations

import pytest
import torch

from vqfuse.losses.adversarial import discriminator_loss, feature_matching_loss, generator_loss
from vqfuse.nets.audio_discriminators import MultiPeriodDiscriminator, MultiScaleSTFTDiscriminator
from vqfuse.nets.discriminators import CombinedDiscriminator, MultiScaleDiscriminator

pytestmark = pytest.mark.usefixtures("single_thread")


def _check_output(out, n_members: int, batch: int) -> None:
    logits, features = out
    assert isinstance(logits, list) and isinstance(features, list)
    assert len(logits) == len(features) == n_members
    for lg, feats in zip(logits, features):
        assert lg.shape[0] == batch and lg.shape[1] == 1 and lg.dim() == 4
        assert len(feats) >= 3 and all(f.shape[0] == batch for f in feats)


def test_ms_stft_shapes_and_gradients():
    torch.manual_seed(0)
    disc = MultiScaleSTFTDiscriminator(n_ffts=(1024, 512, 256), channels=8)
    x = torch.randn(2, 1, 16000, requires_grad=True)
    out = disc(x)
    _check_output(out, 3, 2)
    for (lg, _), n_fft in zip(zip(*out), (1024, 512, 256)):
        frames = (16000 - n_fft) // (n_fft // 4) + 1
        assert lg.shape == (2, 1, frames, (n_fft // 2 + 1 + 7) // 8)  # freq axis halved 3 times
    loss = sum(lg.mean() for lg in out[0]) + sum(f.mean() for fs in out[1] for f in fs)
    loss.backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is not None for p in disc.parameters() if p.requires_grad)


def test_mpd_shapes_and_gradients():
    torch.manual_seed(0)
    disc = MultiPeriodDiscriminator(periods=(2, 3, 5, 7, 11), channels=8)
    x = torch.randn(2, 1, 16000, requires_grad=True)
    out = disc(x)
    _check_output(out, 5, 2)
    for lg, p in zip(out[0], (2, 3, 5, 7, 11)):
        assert lg.shape[-1] == p  # one column per phase
    sum(lg.mean() for lg in out[0]).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_odd_lengths_and_errors():
    disc = MultiPeriodDiscriminator(periods=(3, 7), channels=4)
    logits, _ = disc(torch.randn(1, 1, 1001))
    assert len(logits) == 2
    stft = MultiScaleSTFTDiscriminator(n_ffts=(256,), channels=4)
    with pytest.raises(ValueError, match="at least 256 samples"):
        stft(torch.randn(1, 1, 100))


def test_combined_with_losses():
    torch.manual_seed(0)
    combined = CombinedDiscriminator(
        [
            MultiScaleSTFTDiscriminator(n_ffts=(512, 256), channels=4),
            MultiPeriodDiscriminator(periods=(2, 3), channels=4),
            MultiScaleDiscriminator(n_scales=2, dims=1, in_channels=1, channels=4, n_layers=2),
        ]
    )
    real = torch.randn(2, 1, 4000)
    fake = torch.randn(2, 1, 4000, requires_grad=True)
    real_logits, real_feats = combined(real)
    fake_logits, fake_feats = combined(fake)
    assert len(real_logits) == len(real_feats) == 2 + 2 + 2
    d = discriminator_loss(real_logits, [lg.detach() for lg in fake_logits])
    g = generator_loss(fake_logits) + feature_matching_loss(real_feats, fake_feats)
    assert torch.isfinite(d) and torch.isfinite(g)
    g.backward()
    assert fake.grad is not None and fake.grad.abs().sum() > 0


@pytest.mark.parametrize("norm", ["weight", "spectral", "none"])
def test_norms(norm):
    for disc in (
        MultiScaleSTFTDiscriminator(n_ffts=(256,), channels=4, norm=norm),
        MultiPeriodDiscriminator(periods=(2,), channels=4, norm=norm),
    ):
        logits, _ = disc(torch.randn(1, 1, 2048))
        assert torch.isfinite(logits[0]).all()
    with pytest.raises(ValueError):
        MultiPeriodDiscriminator(norm="batch")


def test_stereo_input():
    disc = MultiScaleSTFTDiscriminator(n_ffts=(256,), channels=4, in_channels=2)
    logits, _ = disc(torch.randn(2, 2, 2048))
    assert logits[0].shape[0] == 2
    mpd = MultiPeriodDiscriminator(periods=(2,), channels=4, in_channels=2)
    assert mpd(torch.randn(2, 2, 2048))[0][0].shape[0] == 2
