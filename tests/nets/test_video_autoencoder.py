"""Causal 3D autoencoder with the first frame coded alone (MAGVIT-v2 / Cosmos layout): images (T = 1) and
clips of 1 + 4k frames share one latent space; nothing in a latent frame depends on a later frame."""

from __future__ import annotations

import pytest
import torch

from vqfuse.nets.autoencoder import AutoencoderConfig, Decoder, Encoder, causal_context

pytestmark = pytest.mark.usefixtures("single_thread")

# 4x8x8: time is downsampled in the first two steps only
STRIDES = ((2, 2, 2), (2, 2, 2), (1, 2, 2))


def _nets(**overrides) -> tuple[AutoencoderConfig, Encoder, Decoder]:
    kwargs = (
        dict(
            dims=3,
            in_channels=1,
            channels=4,
            channel_mults=(1, 2, 2, 2),
            strides=STRIDES,
            latent_dim=3,
            norm_groups=2,
            causal=True,
            first_frame_alone=True,
        )
        | overrides
    )
    cfg = AutoencoderConfig(**kwargs)
    torch.manual_seed(0)
    return cfg, Encoder(cfg).eval(), Decoder(cfg).eval()


@pytest.mark.parametrize("frames, latent_frames", [(1, 1), (5, 2), (9, 3), (21, 6)])
def test_shapes_for_one_plus_4k_frames(frames, latent_frames):
    cfg, enc, dec = _nets()
    assert cfg.downsample_factors == (4, 8, 8) and cfg.time_lead == 3
    x = torch.randn(1, 1, frames, 32, 32)
    with torch.no_grad():
        z = enc(x)
        assert z.shape == (1, 3, latent_frames, 4, 4)
        assert cfg.latent_shape((frames, 32, 32)) == (latent_frames, 4, 4)
        assert dec(z).shape == x.shape


def test_off_grid_lengths_are_refused_by_the_net():
    _, enc, _ = _nets()
    with pytest.raises(ValueError, match="1 \\+ 4\\*k frames"):
        enc(torch.randn(1, 1, 8, 32, 32))


def test_first_latent_frame_is_the_image_code_of_the_first_frame():
    _, enc, dec = _nets()
    clip = torch.randn(1, 1, 9, 32, 32)
    with torch.no_grad():
        z_clip, z_image = enc(clip), enc(clip[:, :, :1])
        torch.testing.assert_close(z_clip[:, :, :1], z_image, rtol=0, atol=1e-5)
        # and the decoder gives the image back from latent frame 0 alone, as the clip's frame 0
        torch.testing.assert_close(dec(z_clip)[:, :, :1], dec(z_image), rtol=0, atol=1e-5)


@pytest.mark.parametrize("attention", [False, True])
@pytest.mark.parametrize("t", [1, 4, 5, 8])
def test_a_later_frame_never_changes_earlier_latent_frames(t, attention):
    """Latent frame j covers frames 4j-3 .. 4j (frame 0 alone for j = 0): changing frame t leaves latent
    frames j < ceil(t / 4) untouched, and the decoder's frames before 4 * ceil(t / 4) - 3 likewise."""
    _, enc, dec = _nets(attention=attention, attention_heads=1)
    x = torch.randn(1, 1, 13, 32, 32)
    first_changed = -(-t // 4)  # latent frame holding frame t
    x2 = x.clone()
    x2[:, :, t] += 1.0
    with torch.no_grad():
        z, z2 = enc(x), enc(x2)
        torch.testing.assert_close(z[:, :, :first_changed], z2[:, :, :first_changed], rtol=0, atol=1e-5)
        assert not torch.allclose(z[:, :, first_changed], z2[:, :, first_changed])
        z3 = z.clone()
        z3[:, :, first_changed] += 1.0
        y, y3 = dec(z), dec(z3)
    kept = 4 * first_changed - 3  # output frames before latent frame `first_changed`'s own
    torch.testing.assert_close(y[:, :, :kept], y3[:, :, :kept], rtol=0, atol=1e-5)
    assert not torch.allclose(y[:, :, kept:], y3[:, :, kept:])


def test_causal_norm_and_attention_use_no_later_frame():
    """GroupNorm statistics per frame and block-causal attention: frame 0's output of each is fixed
    whatever frames 1.. hold."""
    from vqfuse.nets.blocks import AttnBlock, Norm

    torch.manual_seed(0)
    for block in (Norm(3, 8, 2, causal=True), AttnBlock(3, 8, 2, 2, causal=True)):
        x = torch.randn(2, 8, 3, 4, 4)
        x2 = x.clone()
        x2[:, :, 1:] = torch.randn_like(x2[:, :, 1:]) * 5
        with torch.no_grad():
            torch.testing.assert_close(block(x)[:, :, :1], block(x2)[:, :, :1], rtol=0, atol=1e-5)


def test_causal_context_is_the_measured_reach():
    """`causal_context` (derived from the layout) is exactly how far a change travels into later latent
    frames, for the encoder and the decoder."""
    # one norm group: per-frame statistics over a tiny latent grid must not saturate (two numbers per
    # group normalise to +-1 whatever their values, which would hide a dependence)
    _, enc, dec = _nets(channel_mults=(1, 1, 1, 1), norm_groups=1)
    f = 4
    ctx_enc, ctx_dec = causal_context(enc, f), causal_context(dec, f)
    assert ctx_enc is not None and ctx_dec is not None
    x = torch.randn(1, 1, 1 + f * (ctx_enc + 4), 16, 16)
    x2 = x.clone()
    x2[:, :, 1] += 1.0  # frame 1 belongs to latent frame 1
    with torch.no_grad():
        changed = (enc(x) - enc(x2)).abs().amax(dim=(0, 1, 3, 4)) > 0
        assert int(changed.nonzero().max()) == 1 + ctx_enc
        z = enc(x)
        z2 = z.clone()
        z2[:, :, 1] += 1.0
        changed = (dec(z) - dec(z2)).abs().amax(dim=(0, 1, 3, 4)) > 0
    last_latent = (int(changed.nonzero().max()) + 3) // f  # undo the dropped lead frames
    assert last_latent == 1 + ctx_dec
    _, enc_attn, _ = _nets(attention=True)
    assert causal_context(enc_attn, f) is None


def test_first_frame_alone_needs_causal_and_stays_out_of_old_configs():
    with pytest.raises(ValueError, match="needs causal"):
        AutoencoderConfig(dims=3, first_frame_alone=True)
    assert "first_frame_alone" not in AutoencoderConfig(dims=2).to_dict()  # saved image/audio configs unchanged
    cfg = AutoencoderConfig(dims=3, causal=True, first_frame_alone=True, strides=STRIDES, channel_mults=(1, 1, 1, 1))
    assert AutoencoderConfig.from_dict(cfg.to_dict()) == cfg


def test_gradients_reach_every_parameter():
    cfg, enc, dec = _nets(attention=True, attention_heads=2)
    enc.train(), dec.train()
    dec(enc(torch.randn(2, 1, 5, 16, 16))).square().mean().backward()
    for module in (enc, dec):
        for name, p in module.named_parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
