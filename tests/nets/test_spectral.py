import json

import pytest
import torch

from vqfuse.nets.autoencoder import AutoencoderConfig
from vqfuse.nets.spectral import SpectralConfig, SpectralDecoder, SpectralEncoder, istft_same, stft_same, synthesize
from vqfuse.tokenizer import Tokenizer, TokenizerConfig

pytestmark = pytest.mark.usefixtures("single_thread")

# small widths, the real STFT grid (640/160, two frames per latent: 320 samples per token frame)
TINY = SpectralConfig(enc_dim=16, enc_mlp=32, enc_blocks=1, dec_dim=16, dec_mlp=32, dec_blocks=2, latent_dim=8)
RVQ = {"kind": "rvq", "codebook_size": 16, "n_quantizers": 4, "codebook_dim": 4, "normalize": True}


def speechlike(n: int, length: int, seed: int = 0) -> torch.Tensor:
    """(n, 1, length): a few harmonics plus noise, amplitude well inside [-1, 1]."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(length) / 16000
    f0 = 100 + 150 * torch.rand(n, 1, 1, generator=g)
    x = sum(torch.sin(2 * torch.pi * k * f0 * t) / k for k in range(1, 6))
    return 0.2 * x + 0.01 * torch.randn(n, 1, length, generator=g)


def test_config_from_dict_dispatches_on_kind():
    assert isinstance(AutoencoderConfig.from_dict(TINY.to_dict()), SpectralConfig)
    assert isinstance(AutoencoderConfig.from_dict({"dims": 1, "in_channels": 1}), AutoencoderConfig)  # old configs
    with pytest.raises(ValueError, match="kind"):
        AutoencoderConfig.from_dict({"kind": "wavelet"})
    with pytest.raises(ValueError, match="unknown"):
        AutoencoderConfig.from_dict({"kind": "spectral", "channels": 16})
    assert TINY.downsample_factors == (320,) and TINY.dims == 1 and TINY.in_channels == 1


@pytest.mark.parametrize("length", [320, 3200, 16000])
def test_shapes_50hz_latent_and_same_length_output(length):
    torch.manual_seed(0)
    enc, dec = SpectralEncoder(TINY), SpectralDecoder(TINY, n_conditions=4)
    x = speechlike(2, length)
    z = enc(x)
    assert z.shape == (2, 8, length // 320)  # 50 frames per second at 16 kHz
    assert dec(z, 2).shape == x.shape
    with pytest.raises(ValueError, match="multiple"):
        enc(x[..., :-1])


def test_stft_round_trip_is_exact():
    x = speechlike(3, 4800)[:, 0]
    spec = stft_same(x, 640, 160)
    assert spec.shape == (3, 321, 30)  # T / hop frames: "same" framing
    torch.testing.assert_close(istft_same(spec, 640, 160), x, atol=1e-5, rtol=0)


def test_head_fed_true_log_magnitude_and_phase_reconstructs_the_signal():
    x = speechlike(2, 3200)
    spec = stft_same(x[:, 0], TINY.n_fft, TINY.hop)
    y = synthesize(torch.log(spec.abs().clamp_min(1e-12)), torch.angle(spec), TINY)
    assert y.shape == x.shape
    torch.testing.assert_close(y, x, atol=1e-4, rtol=0)
    # the clip on log|X| is active: a too-loud spectrum is limited, not reproduced
    loud = synthesize(torch.full((1, 321, 20), 20.0), torch.zeros(1, 321, 20), TINY)
    assert loud.abs().max() < torch.exp(torch.tensor(TINY.max_log_magnitude)) * 2


def test_vector_phase_head_synthesises_the_signal_and_has_three_outputs_per_bin():
    cfg = SpectralConfig(**(TINY.to_dict() | {"phase": "vector"}))
    assert SpectralDecoder(cfg, 4).head.out_features == 2 * 3 * 321
    x = speechlike(2, 3200)
    spec = stft_same(x[:, 0], cfg.n_fft, cfg.hop)
    direction = 3.0 * torch.stack([spec.real, spec.imag], dim=1)  # any length: only the direction counts
    y = synthesize(torch.log(spec.abs().clamp_min(1e-12)), direction, cfg)
    torch.testing.assert_close(y, x, atol=1e-4, rtol=0)
    z = SpectralEncoder(cfg)(x)
    assert SpectralDecoder(cfg, 4)(z, 2).shape == x.shape
    with pytest.raises(ValueError, match="phase"):
        SpectralConfig(phase="polar")


def test_gradients_reach_every_parameter_and_conditioning_matters():
    torch.manual_seed(0)
    model = Tokenizer(TokenizerConfig("audio", TINY, dict(RVQ), {"sample_rate": 16000}))
    # the AdaLN tables start equal for every n_q; move them apart as training would
    with torch.no_grad():
        for name, p in model.decoder.named_parameters():
            if name.endswith(("scale.weight", "shift.weight")):
                p.add_(0.3 * torch.randn_like(p))
    x = speechlike(2, 3200)
    model.train()
    out = model(x, n_q=4)
    (out.reconstruction.pow(2).mean() + out.quant.loss).backward()
    no_grad = [
        n
        for n, p in model.named_parameters()
        if p.requires_grad and (p.grad is None or not p.grad.abs().sum() > 0) and "scale" not in n and "shift" not in n
    ]  # AdaLN rows of other n_q get no gradient here
    assert no_grad == []
    model.eval()
    z = model.encoder(x)
    assert not torch.allclose(model.decoder(z, 1), model.decoder(z, 4), atol=1e-4)
    torch.testing.assert_close(model.decoder(z, None), model.decoder(z, 4))  # None: all stages


def test_bypass_passes_the_latent_and_initialisation_fills_every_stage():
    torch.manual_seed(0)
    model = Tokenizer(TokenizerConfig("audio", TINY, dict(RVQ), {"sample_rate": 16000}))
    x = speechlike(4, 6400)
    out = model(x, bypass_quantizer=True)
    torch.testing.assert_close(out.reconstruction, model.run_decoder(model.encoder(x)))
    assert out.quant.indices.shape == (4, 0, 20) and float(out.quant.loss) == 0.0
    assert not model.quantizer.initialized
    with torch.no_grad():
        model.quantizer.initialize(model.encoder(x))
    assert model.quantizer.initialized
    # k-means on 80 vectors for 16 codes: every stage's codes are used on those vectors
    idx = model.quantizer.encode(model.encoder(x))
    assert all(len(torch.unique(idx[:, s])) >= 12 for s in range(4))


def test_save_load_round_trip_and_token_files(tmp_path):
    torch.manual_seed(0)
    model = Tokenizer(TokenizerConfig("audio", TINY, dict(RVQ), {"sample_rate": 16000}))
    model.train()
    model(speechlike(4, 3200))  # k-means init and EMA updates: buffers that must survive saving
    model.eval()
    model.save_pretrained(tmp_path / "m")
    saved = json.loads((tmp_path / "m" / "config.json").read_text())
    assert saved["autoencoder"]["kind"] == "spectral"
    loaded = Tokenizer.from_pretrained(tmp_path / "m")
    x = speechlike(1, 5000)[0]  # not a multiple of 320: the codec pads and crops
    for n_q in (1, 4):
        tf = loaded.encode_item(x, n_q=n_q)
        assert tuple(tf.indices.shape) == (n_q, 16)
        assert torch.equal(tf.indices, model.encode_item(x, n_q=n_q).indices)
        y = loaded.decode_item(tf)
        assert y.shape == x.shape
        torch.testing.assert_close(y, model.decode_item(tf))
        # decode() of the first n_q stages is conditioned like forward(n_q=...)
        xp = torch.nn.functional.pad(x, (0, 120))[None]
        torch.testing.assert_close(loaded.decode(loaded.encode(xp, n_q=n_q)), loaded(xp, n_q=n_q).reconstruction)


def test_long_files_in_windows_match_one_pass():
    torch.manual_seed(0)
    model = Tokenizer(TokenizerConfig("audio", TINY, dict(RVQ), {"sample_rate": 16000})).eval()
    x = speechlike(1, 16000 * 23)[0]  # three 10 s windows with margins and crossfades
    tf = model.encode_item(x, n_q=3)
    assert torch.equal(tf.indices, model.encode_item(x, n_q=3, chunking=False).indices)
    torch.testing.assert_close(model.decode_item(tf), model.decode_item(tf, chunking=False), atol=1e-4, rtol=0)
