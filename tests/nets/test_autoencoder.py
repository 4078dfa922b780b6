import json

import pytest
import torch

from vqfuse.nets import AttnBlock, AutoencoderConfig, Decoder, Encoder

# Tiny configs: (config kwargs, input shape, latent spatial shape)
CASES = {
    "audio": (
        dict(dims=1, in_channels=1, channels=8, channel_mults=(1, 2, 2, 4, 4), strides=(2, 4, 5, 8), norm_groups=4),
        (2, 1, 640),
        (2,),
    ),
    "image": (dict(dims=2, in_channels=3, channels=8, channel_mults=(1, 2, 2), norm_groups=4), (2, 3, 32, 32), (8, 8)),
    "video": (
        dict(dims=3, in_channels=3, channels=8, channel_mults=(1, 2, 2), norm_groups=4),
        (1, 3, 4, 16, 16),
        (1, 4, 4),
    ),
    "video_space_first": (
        dict(dims=3, in_channels=3, channels=8, channel_mults=(1, 2, 2), strides=((1, 2, 2), 2), norm_groups=4),
        (1, 3, 4, 16, 16),
        (2, 4, 4),
    ),
}


def _build(name: str, **overrides) -> tuple[AutoencoderConfig, Encoder, Decoder, torch.Tensor]:
    kwargs, shape, _ = CASES[name]
    cfg = AutoencoderConfig(**(kwargs | dict(latent_dim=4) | overrides))
    torch.manual_seed(0)
    return cfg, Encoder(cfg), Decoder(cfg), torch.randn(shape)


@pytest.mark.parametrize("upsample", ["nearest", "transpose"])
@pytest.mark.parametrize("name", list(CASES))
def test_shapes_and_roundtrip(name, upsample):
    cfg, enc, dec, x = _build(name, upsample=upsample)
    z = enc(x)
    assert z.shape == (x.shape[0], 4, *CASES[name][2])
    assert tuple(n // f for n, f in zip(x.shape[2:], cfg.downsample_factors)) == CASES[name][2]
    assert dec(z).shape == x.shape


@pytest.mark.parametrize("name", ["audio", "image", "video"])
def test_gradients_reach_every_parameter(name):
    cfg, enc, dec, x = _build(name, attention=True, attention_heads=2, dropout=0.1)
    dec(enc(x)).square().mean().backward()
    for module in (enc, dec):
        for pname, p in module.named_parameters():
            assert p.grad is not None, pname
            assert torch.isfinite(p.grad).all(), pname
            assert p.grad.abs().sum() > 0, pname
    assert dec.last_layer_weight is dec.conv_out.conv.weight
    assert dec.last_layer_weight.grad is not None


@pytest.mark.parametrize("name", ["audio", "video"])
def test_causal_encoder_and_decoder(name):
    """Changing the input from time step t on leaves every earlier output untouched."""
    cfg, enc, dec, x = _build(name, causal=True, attention=True)
    enc.eval(), dec.eval()
    if name == "video":
        x = torch.randn(1, 3, 8, 16, 16)  # 8 frames -> 2 latent steps
    f = cfg.downsample_factors[0]  # time downsampling: audio 320, video 4
    t = x.shape[2] // 2  # first changed input step, a multiple of f
    keep = t // f  # latent steps that must not change
    assert keep >= 1 and t % f == 0
    x2 = x.clone()
    x2[:, :, t:] = torch.randn_like(x2[:, :, t:])
    z, z2 = enc(x), enc(x2)
    torch.testing.assert_close(z[:, :, :keep], z2[:, :, :keep], rtol=0, atol=1e-5)
    assert not torch.allclose(z[:, :, keep:], z2[:, :, keep:])

    z3 = z.clone()
    z3[:, :, keep:] = torch.randn_like(z3[:, :, keep:])
    y, y3 = dec(z), dec(z3)
    torch.testing.assert_close(y[:, :, : keep * f], y3[:, :, : keep * f], rtol=0, atol=1e-5)
    assert not torch.allclose(y[:, :, keep * f :], y3[:, :, keep * f :])


@pytest.mark.parametrize("name", ["audio", "video"])
def test_non_causal_encoder_leaks_future(name):
    """Sanity check that the causal test above can fail."""
    cfg, enc, _, x = _build(name)
    if name == "video":
        x = torch.randn(1, 3, 8, 16, 16)
    x2 = x.clone()
    x2[:, :, x.shape[2] // 2 :] += 1.0
    assert not torch.allclose(enc(x)[:, :, :1], enc(x2)[:, :, :1])


def test_attention_flag_adds_attention_blocks():
    _, plain_enc, plain_dec, _ = _build("image")
    cfg, enc, dec, x = _build("image", attention=True, attention_heads=2)
    for plain, with_attn in ((plain_enc, enc), (plain_dec, dec)):
        assert not any(isinstance(m, AttnBlock) for m in plain.modules())
        blocks = [m for m in with_attn.modules() if isinstance(m, AttnBlock)]
        assert len(blocks) == 1 and blocks[0].heads == 2
        n_plain = sum(p.numel() for p in plain.parameters())
        assert sum(p.numel() for p in with_attn.parameters()) > n_plain
    assert dec(enc(x)).shape == x.shape


def test_config_round_trip_through_json():
    cfg = AutoencoderConfig(dims=3, channels=16, channel_mults=(1, 2, 4), strides=((1, 2, 2), 2), causal=True)
    data = json.loads(json.dumps(cfg.to_dict()))
    assert data["strides"] == [[1, 2, 2], 2] and data["channel_mults"] == [1, 2, 4]
    back = AutoencoderConfig.from_dict(data)
    assert back == cfg
    assert isinstance(back.channel_mults, tuple) and back.strides == ((1, 2, 2), 2)
    default = AutoencoderConfig()
    assert AutoencoderConfig.from_dict(json.loads(json.dumps(default.to_dict()))) == default


def test_downsample_factor():
    assert AutoencoderConfig().downsample_factor == 4
    assert AutoencoderConfig(dims=1, channel_mults=(1, 1, 1, 1, 1), strides=(2, 4, 5, 8)).downsample_factor == 320
    cfg = AutoencoderConfig(dims=3, channel_mults=(1, 2, 2), strides=((1, 2, 2), 2))
    assert cfg.downsample_factors == (2, 4, 4)
    with pytest.raises(ValueError, match="downsample_factors"):
        cfg.downsample_factor
    assert AutoencoderConfig(channel_mults=(1,)).downsample_factor == 1


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(dims=4), "dims"),
        (dict(channel_mults=(1, 2, 2), strides=(2,)), "strides"),
        (dict(strides=(2, (1, 2, 2))), "stride"),
        (dict(upsample="bilinear"), "upsample"),
        (dict(pad_mode="reflect"), "pad_mode"),
        (dict(blocks_per_level=0), "blocks_per_level"),
    ],
)
def test_config_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AutoencoderConfig(**kwargs)


def test_from_dict_rejects_unknown_keys():
    with pytest.raises(ValueError, match="unknown"):
        AutoencoderConfig.from_dict({"dims": 2, "n_channels": 3})


def test_encoder_rejects_indivisible_input():
    _, enc, dec, _ = _build("image")
    with pytest.raises(ValueError, match="divisible"):
        enc(torch.randn(1, 3, 30, 32))
    with pytest.raises(ValueError, match="expected"):
        dec(torch.randn(1, 5, 8, 8))


def test_narrow_full_rate_layers_and_group_clamping():
    cfg = AutoencoderConfig(dims=1, in_channels=1, channels=12, channel_mults=(1, 2), latent_dim=4, norm_groups=32)
    enc = Encoder(cfg)
    assert enc.conv_in.conv.out_channels == 12
    assert enc.levels[0][0].norm1.norm.num_groups == 12
    assert enc(torch.randn(1, 1, 64)).shape == (1, 4, 32)
