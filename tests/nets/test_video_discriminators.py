"""Video discriminators (per-frame 2D PatchGAN, 3D space-time PatchGAN, both) and the gradients they give."""

from __future__ import annotations

import pytest
import torch

import vqfuse.modalities  # noqa: F401  (registers the video discriminator kinds)
from vqfuse.losses.adversarial import adaptive_generator_weight, feature_matching_loss, generator_loss
from vqfuse.nets.video_discriminators import FrameDiscriminator, SpaceTimeDiscriminator
from vqfuse.train.discriminator import build_discriminator

pytestmark = pytest.mark.usefixtures("single_thread")


def test_frame_discriminator_folds_frames_into_the_batch():
    torch.manual_seed(0)
    disc = FrameDiscriminator(in_channels=1, channels=8, n_layers=2)
    x = torch.randn(2, 1, 5, 16, 16)
    logits, features = disc(x)
    assert logits.shape == (2, 1, 5, 4, 4) and features[0].shape[:3] == (2, 8, 5)
    # frame 3 of clip 1 is judged on its own, as the 2D PatchGAN judges that image
    alone, _ = disc.disc(x[1:, :, 3])
    torch.testing.assert_close(logits[1:, :, 3], alone)
    strided, _ = FrameDiscriminator(in_channels=1, channels=8, n_layers=2, frame_stride=2)(x)
    assert strided.shape == (2, 1, 3, 4, 4)
    multi, feats = FrameDiscriminator(in_channels=1, channels=8, n_layers=2, n_scales=2)(x)
    assert [t.shape for t in multi] == [(2, 1, 5, 4, 4), (2, 1, 5, 2, 2)] and len(feats) == 2
    assert disc(torch.randn(1, 1, 1, 16, 16))[0].shape == (1, 1, 1, 4, 4)  # single images too


@pytest.mark.parametrize(
    "spec",
    [
        {"kind": "frame", "channels": 8, "n_layers": 2},
        {"kind": "patch", "channels": 8, "n_layers": 2, "stride": 2},  # the 3D space-time PatchGAN
        {"kind": "spacetime", "channels": 8, "space_time": {"n_layers": 2}, "frame": {"n_layers": 2}},
    ],
)
def test_gradients_reach_the_generator_through_each_kind(spec):
    torch.manual_seed(0)
    disc = build_discriminator(spec, dims=3, in_channels=3)
    real = torch.randn(2, 3, 9, 16, 16)
    weight = torch.randn(3, 3, 3, 3, 3, requires_grad=True)  # stands in for the decoder's last conv
    fake = torch.nn.functional.conv3d(real, weight, padding=1)
    real_logits, real_feats = disc(real)
    fake_logits, fake_feats = disc(fake)
    gan = generator_loss(fake_logits)
    rec = (fake - real).abs().mean()
    w = adaptive_generator_weight(rec, gan, weight)  # the image tokenizer's balancing, unchanged
    assert torch.isfinite(w) and w > 0
    fm = feature_matching_loss(real_feats, fake_feats)  # real features are detached inside
    (rec + w * gan + fm).backward()
    assert weight.grad is not None and weight.grad.abs().sum() > 0
    for name, p in disc.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


def test_spacetime_joins_both_members():
    disc = SpaceTimeDiscriminator(in_channels=1, channels=8, space_time={"n_layers": 2}, frame={"n_layers": 2})
    logits, features = disc(torch.randn(1, 1, 5, 16, 16))
    assert len(logits) == 2 and len(features) == 2
    assert logits[0].shape == (1, 1, 5, 4, 4)  # 3D, stride (1, 2, 2): time kept for short clips
    assert logits[1].shape == (1, 1, 5, 4, 4)  # per frame


def test_video_kinds_refuse_other_data():
    from vqfuse.errors import ConfigError

    with pytest.raises(ConfigError, match="for video"):
        build_discriminator({"kind": "frame"}, dims=2, in_channels=3)
