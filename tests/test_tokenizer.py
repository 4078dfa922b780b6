import json

import pytest
import torch

from vqfuse.errors import ConfigError, InputFileError
from vqfuse.modalities.base import Modality, register_modality
from vqfuse.nets.autoencoder import AutoencoderConfig
from vqfuse.tokenizer import Tokenizer, TokenizerConfig


class VolumeModality(Modality):
    """A 3D modality known only to this module: the tokenizer works for any registered modality."""

    name, dims, extensions = "test-volume", 3, (".vol",)

    def _unused(self, *args, **kwargs):
        raise NotImplementedError

    dataset = meta = load_file = save_file = save_samples = metrics = fit = _unused


register_modality(VolumeModality())

TINY = {
    "image": (
        AutoencoderConfig(dims=2, in_channels=3, channels=8, channel_mults=(1, 2), latent_dim=8, norm_groups=4),
        (2, 3, 16, 16),
    ),
    "audio": (
        AutoencoderConfig(
            dims=1, in_channels=1, channels=4, channel_mults=(1, 2, 2), strides=(4, 5), latent_dim=8, norm_groups=4
        ),
        (2, 1, 400),
    ),
    "test-volume": (
        AutoencoderConfig(
            dims=3, in_channels=3, channels=8, channel_mults=(1, 2), latent_dim=8, norm_groups=4, causal=True
        ),
        (1, 3, 4, 8, 8),
    ),
}


@pytest.mark.parametrize("modality", list(TINY))
@pytest.mark.parametrize(
    "quantizer",
    [
        {"kind": "vq", "codebook_size": 32},
        {"kind": "rvq", "codebook_size": 16, "n_quantizers": 2},
        {"kind": "fsq", "levels": [5, 5, 4]},
        {"kind": "lfq", "codebook_size": 64},
    ],
)
def test_round_trip_and_save_load(modality, quantizer, tmp_path):
    torch.manual_seed(0)
    ae, shape = TINY[modality]
    model = Tokenizer(TokenizerConfig(modality=modality, autoencoder=ae, quantizer=quantizer))
    x = torch.rand(*shape) * 2 - 1
    out = model(x)
    assert out.reconstruction.shape == x.shape
    (out.reconstruction.pow(2).mean() + out.quant.loss).backward()
    model.eval()
    idx = model.encode(x)
    torch.testing.assert_close(model.decode(idx), model(x).reconstruction)
    model.save_pretrained(tmp_path / "m")
    loaded = Tokenizer.from_pretrained(tmp_path / "m")
    assert loaded.model_id == model.model_id and len(loaded.model_id) == 16
    assert torch.equal(loaded.encode(x), idx)
    torch.testing.assert_close(loaded.decode(idx), model.decode(idx))


@pytest.mark.parametrize("modality", list(TINY))
def test_any_size_encodes_and_decodes_back_to_that_size(modality):
    """Every axis is padded up to a multiple of its factor and cropped back: odd sizes work."""
    torch.manual_seed(0)
    ae, shape = TINY[modality]
    model = Tokenizer(
        TokenizerConfig(modality=modality, autoencoder=ae, quantizer={"kind": "vq", "codebook_size": 32})
    ).eval()
    odd = tuple(n + f - 1 for n, f in zip(shape[2:], model.downsample_factors))  # never a multiple
    x = torch.rand(shape[0], shape[1], *odd) * 2 - 1
    idx = model.encode(x)
    assert idx.shape[1:] == tuple(-(-n // f) for n, f in zip(odd, model.downsample_factors))
    assert model.decode(idx, size=odd).shape == x.shape
    tf = model.encode_item(x[0])
    assert tf.meta["size"] == list(odd) and torch.equal(torch.as_tensor(tf.indices), idx[0])
    torch.testing.assert_close(model.decode_item(tf), model.decode(idx, size=odd)[0].clamp(-1, 1))


def test_n_q_needs_residual_quantizer():
    ae, shape = TINY["audio"]
    model = Tokenizer(TokenizerConfig(modality="audio", autoencoder=ae, quantizer={"kind": "vq", "codebook_size": 8}))
    with pytest.raises(ConfigError, match="residual"):
        model.encode(torch.zeros(*shape), n_q=1)


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(InputFileError, match="does not exist"):
        Tokenizer.from_pretrained(tmp_path / "missing")
    ae, _ = TINY["image"]
    model = Tokenizer(TokenizerConfig(autoencoder=ae, quantizer={"kind": "vq", "codebook_size": 8}))
    model.save_pretrained(tmp_path / "m")
    (tmp_path / "m" / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(InputFileError, match="model.safetensors"):
        Tokenizer.from_pretrained(tmp_path / "m")
    model.save_pretrained(tmp_path / "m")
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    cfg["quantizer"]["codebook_size"] = 16
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(InputFileError, match="do not match"):
        Tokenizer.from_pretrained(tmp_path / "m")
