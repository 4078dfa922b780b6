"""vqfuse.chunking and windowed audio in vqfuse.codec: windows equal one-shot processing wherever the margin
covers the receptive field, crossfades hide per-window differences, long files stay bounded in memory."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from tests.helpers.files import SR, tone, wav_samples, write_wav
from tests.helpers.models import make_audio_model
from vqfuse import codec
from vqfuse.chunking import Chunking, Window, apply_chunked, plan_windows
from vqfuse.io.paths import BatchResult
from vqfuse.io.tokenfile import TokenFile, read_tokens
from vqfuse.nets.blocks import Norm
from vqfuse.tokenizer import Tokenizer

pytestmark = pytest.mark.usefixtures("single_thread")

HOP = 320


# ----------------------------------------------------------------------------------------------
# Plans and the generic windowing


@pytest.mark.parametrize("n, chunk, margin", [(1000, 100, 10), (101, 50, 0), (7, 3, 2), (513, 100, 30), (145, 100, 25)])
def test_plan_windows_partition_the_signal(n, chunk, margin):
    plan = Chunking(chunk, margin)
    ws = plan_windows(n, plan)
    if n <= plan.window:
        assert ws == [Window(0, n, 0, n)]
        return
    assert len(ws) == math.ceil(n / chunk)
    assert ws[0].keep_start == 0 and ws[-1].keep_stop == n
    assert all(a.keep_stop == b.keep_start for a, b in zip(ws, ws[1:]))
    sizes = [w.keep_stop - w.keep_start for w in ws]
    assert max(sizes) <= chunk and max(sizes) - min(sizes) <= 1  # spread evenly, no runt at the end
    assert all(w.start == max(0, w.keep_start - margin) and w.stop == min(n, w.keep_stop + margin) for w in ws)


def test_chunking_from_seconds():
    assert Chunking.from_seconds(50, 10, 1, 0.5) == Chunking(500, 50, 25)
    assert Chunking.from_seconds(50, 0.5, 0.2, 0.06) == Chunking(25, 10, 3)
    assert Chunking(500, 50).window == 600
    with pytest.raises(ValueError):
        Chunking(0)


def local_nets(hop: int = 4) -> tuple[nn.Module, nn.Module]:
    """An encoder-like (stride hop) and a decoder-like (x hop) net, each seeing about 2 frames around."""
    torch.manual_seed(0)
    enc = nn.Sequential(
        nn.Conv1d(2, 8, 7, padding=3), nn.SiLU(), nn.Conv1d(8, 5, 2 * hop, stride=hop, padding=hop // 2)
    )
    dec = nn.Sequential(
        nn.Upsample(scale_factor=hop), nn.Conv1d(5, 8, 5, padding=2), nn.SiLU(), nn.Conv1d(8, 2, 7, padding=3)
    )
    return enc, dec


@pytest.mark.parametrize("crossfade", [0, 3])
def test_apply_chunked_equals_whole_for_a_local_network(crossfade):
    enc, dec = local_nets()
    x = torch.randn(3, 2, 97 * 4)  # (B, C, T): 97 frames
    plan = Chunking(chunk=10, margin=3 + crossfade, crossfade=crossfade)  # margin >= receptive field + crossfade
    with torch.no_grad():
        z = apply_chunked(enc, x, plan, in_step=4, out_step=1)  # (3, 5, 97)
        torch.testing.assert_close(z, enc(x), atol=1e-5, rtol=1e-5)
        y = apply_chunked(dec, z, plan, in_step=1, out_step=4)  # (3, 2, 388)
        torch.testing.assert_close(y, dec(z), atol=1e-5, rtol=1e-5)
        # unbatched (C, T), and a time axis that is not the last one: (B, C, T, H) chunked along T
        torch.testing.assert_close(apply_chunked(enc, x[0], plan, in_step=4), enc(x[0]), atol=1e-5, rtol=1e-5)
        conv2d = nn.Conv2d(2, 3, (5, 3), padding=(2, 1))
        v = torch.randn(2, 2, 61, 6)
        torch.testing.assert_close(apply_chunked(conv2d, v, Chunking(8, 4, 2), axis=2), conv2d(v), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="multiple of the step 4"):
        apply_chunked(enc, x[..., :-1], plan, in_step=4)


def test_crossfade_weights_sum_to_one_and_hide_seams():
    x = torch.linspace(0, 1, 400).view(1, 1, 400)
    torch.testing.assert_close(apply_chunked(lambda w: w, x, Chunking(50, 10, 8)), x, atol=1e-6, rtol=0)

    def centred(w: torch.Tensor) -> torch.Tensor:  # depends on the whole window, like GroupNorm
        return w - w.mean(dim=-1, keepdim=True)

    hard = apply_chunked(centred, x, Chunking(50, 10, 0))
    soft = apply_chunked(centred, x, Chunking(50, 10, 8))
    step = float(x[0, 0, 1] - x[0, 0, 0])
    jump_hard = hard.diff(dim=-1).abs().max().item()
    jump_soft = soft.diff(dim=-1).abs().max().item()
    assert jump_hard > 10 * step  # a hard cut leaves a step at every boundary
    assert jump_soft < jump_hard / 4  # the crossfade spreads it over 16 samples


# ----------------------------------------------------------------------------------------------
# Tokenizers


def bounded_model(kind: str) -> Tokenizer:
    """A tiny audio tokenizer with a finite receptive field: causal (per-step norms), or non-causal with its
    GroupNorms removed (GroupNorm statistics span the whole input, so nothing else is finite)."""
    if kind == "causal":
        return make_audio_model(seed=1, causal=True)
    model = make_audio_model(seed=2)
    for m in model.modules():
        if isinstance(m, Norm):
            m.norm = nn.Identity()
    return model


def receptive_frames(net: nn.Module, channels: int, in_step: int, frames: int = 64) -> int:
    """How many frames either side of the middle frame the middle output frame depends on."""
    x = torch.randn(1, channels, frames * in_step, requires_grad=True)
    y = net(x)  # (1, C', frames * out_step)
    out_step = y.shape[-1] // frames
    y[..., frames // 2 * out_step : (frames // 2 + 1) * out_step].sum().backward()
    hit = (x.grad[0].abs().sum(0) > 0).nonzero()[:, 0] // in_step  # frames with a nonzero gradient
    assert 0 < hit.min() and hit.max() < frames - 1, "the probe is too short for this receptive field"
    return int(max(frames // 2 - hit.min(), hit.max() - frames // 2))


@pytest.mark.parametrize("kind", ["causal", "no-norm"])
def test_chunked_encode_and_decode_equal_one_shot(kind):
    model = bounded_model(kind)
    rf = max(receptive_frames(model.encoder, 1, HOP), receptive_frames(model.decoder, 8, 1))
    assert rf < 24  # causal layers look twice as far back
    plan = Chunking(chunk=20, margin=rf + 4, crossfade=4)  # 200 frames -> 10 windows
    x = tone(4.0)  # (1, 64000): 200 frames
    whole = model.encode_item(x, chunking=False)
    windowed = model.encode_item(x, chunking=plan)
    assert whole.shape == windowed.shape == (4, 200)
    assert torch.equal(whole.indices, windowed.indices)
    z_whole = model.encode_latents(x[None], chunking=False)  # (1, 8, 200)
    z_windowed = model.encode_latents(x[None], chunking=plan)
    assert (z_whole - z_windowed).abs().max() <= 1e-4 * z_whole.abs().max()
    y_whole = model.decode_item(whole, chunking=False)  # (1, 64000)
    y_windowed = model.decode_item(whole, chunking=plan)
    assert y_whole.shape == y_windowed.shape == x.shape
    assert (y_whole - y_windowed).abs().max() <= 1e-4 * y_whole.abs().max()


def test_long_token_sequence_decodes_like_one_shot():
    """30 s of random tokens through the default windows (500 frames + 50 either side) and in one go."""
    model = bounded_model("no-norm")
    assert model.chunking() == Chunking(500, 50, 25)
    torch.manual_seed(3)
    indices = torch.randint(0, 1024, (4, 1500))
    tf = TokenFile(indices, model.model_id, "audio", [1024] * 4, {"size": [1500 * HOP]})
    y_default = model.decode_item(tf)  # 3 windows
    y_whole = model.decode_item(tf, chunking=False)
    assert y_default.shape == (1, 1500 * HOP)
    assert (y_default - y_whole).abs().max() <= 1e-4 * y_whole.abs().max()


def test_three_minutes_round_trip_in_bounded_windows(tmp_path, monkeypatch):
    """A 3-minute file: every layer's output stays the size of one window (12 s), not of the file, and the
    decoded file has exactly the input's length."""
    model = make_audio_model(seed=5)
    src = write_wav(tmp_path / "long.wav", 180.0)
    window = model.chunking().window  # 600 frames = 12 s
    largest = {"encoder": 0, "decoder": 0}
    calls = {"encoder": 0, "decoder": 0}

    def watch(name: str):
        def hook(module, inputs, output):
            largest[name] = max(largest[name], output.numel())

        return hook

    for name in largest:
        net = getattr(model, name)
        net.register_forward_pre_hook(lambda m, i, _n=name: calls.__setitem__(_n, calls[_n] + 1))
        for sub in net.modules():
            sub.register_forward_hook(watch(name))
    r = codec.encode_file(model, src, tmp_path / "long.vqf", kbps=1)
    tf = read_tokens(tmp_path / "long.vqf")
    assert tf.shape == (2, 9000) and r.duration == 180 and r.bits == pytest.approx(9000 * 2 * 10)
    d = codec.decode_file(model, tmp_path / "long.vqf", tmp_path / "long-out.wav")
    assert d.duration == 180 and wav_samples(tmp_path / "long-out.wav").shape == (180 * SR,)
    assert calls == {"encoder": 18, "decoder": 18}  # 18 windows of 10 s (+ 1 s either side)
    in_file = dict(largest)
    largest.update(encoder=0, decoder=0)
    z = model.encode_latents(torch.zeros(1, 1, window * HOP), chunking=False)  # one 12 s window
    model.decode_latents(z, chunking=False)
    assert in_file == largest  # the largest layer output for the file is that of a single window
    assert largest["encoder"] < 4 * 180 * SR / 10  # while the file at full rate x 4 channels is 10x that
    summary = codec.summary_line("encoded", BatchResult(done=[r], seconds=1.0), model.modality)
    assert summary == "encoded 1 file: 18000 tokens, 1 kbit/s, 100 tokens/s, 180 s of audio in 1.00 s (180x real time)"
