"""Long clips through a causal video tokenizer in windows along time: what is exact and what is not.

Exact (tested): without attention, windows whose margins hold the nets' whole causal context
(`Tokenizer.causal_context`, the default plan for causal video) give the one-pass latents and tokens, and
a clip's tokens begin with the tokens of its own first frames (the first frame is handled once per clip,
not per window). Not exact: with causal attention the context is the whole past, so the default plan
falls back to the seconds-based margins and crossfade, which only approximate one pass.
"""

from __future__ import annotations

import pytest
import torch

import vqfuse.modalities  # noqa: F401  (registers "video")
from vqfuse.chunking import Chunking, plan_windows
from vqfuse.nets.autoencoder import AutoencoderConfig
from vqfuse.tokenizer import Tokenizer, TokenizerConfig

pytestmark = pytest.mark.usefixtures("single_thread")


def _tokenizer(**overrides) -> Tokenizer:
    ae = AutoencoderConfig(
        **(
            dict(
                dims=3,
                in_channels=1,
                channels=4,
                channel_mults=(1, 1, 1, 1),
                strides=((2, 2, 2), (2, 2, 2), (1, 2, 2)),
                latent_dim=5,
                norm_groups=1,
                causal=True,
                first_frame_alone=True,
            )
            | overrides
        )
    )
    torch.manual_seed(0)
    meta = {"size": 16, "length": 21, "fps": 8.0, "channels": 1, "item_shape": [21, 16, 16]}
    return Tokenizer(TokenizerConfig("video", ae, {"kind": "fsq", "levels": [8, 8, 8, 8, 4]}, meta)).eval()


def test_windows_with_the_causal_context_give_the_one_pass_tokens():
    model = _tokenizer()
    context = model.causal_context()
    assert context is not None and context > 0
    plan = model.chunking()
    assert plan is not None and (plan.margin, plan.crossfade) == (context, 0)
    frames = 1 + 4 * (2 * context + 12)  # long enough for several windows of 4 latent frames
    x = torch.rand(1, 1, frames, 16, 16) * 2 - 1
    small = Chunking(chunk=4, margin=context)
    assert len(plan_windows(model.config.autoencoder.latent_shape(x.shape[2:])[0], small)) > 3
    whole = model.encode_latents(x, chunking=False)
    windowed = model.encode_latents(x, chunking=small)
    torch.testing.assert_close(windowed, whole, rtol=0, atol=1e-5)
    codes = model.encode_codes(x, chunking=small)
    assert torch.equal(codes, model.encode_codes(x, chunking=False))
    # decoding in windows: the same frames as one pass
    y_whole = model.decode_codes(codes, chunking=False)
    y_windowed = model.decode_codes(codes, chunking=small)
    assert y_whole.shape == x.shape
    torch.testing.assert_close(y_windowed, y_whole, rtol=0, atol=1e-5)
    # and a clip's codes start with those of its first 21 frames coded alone (first frame handled once)
    assert torch.equal(codes[:, :, :6], model.encode_codes(x[:, :, :21], chunking=False))


def test_short_margins_are_not_exact():
    model = _tokenizer()
    x = torch.rand(1, 1, 1 + 4 * 40, 16, 16) * 2 - 1
    whole = model.encode_latents(x, chunking=False)
    cut = model.encode_latents(x, chunking=Chunking(chunk=4, margin=1))
    assert not torch.allclose(cut, whole, atol=1e-4)


def test_attention_falls_back_to_the_approximate_plan():
    model = _tokenizer(attention=True)
    assert model.causal_context() is None
    plan = model.chunking()
    default = Chunking.from_seconds(model.frame_rate, 10.0, 1.0, 0.5)
    assert plan == default  # seconds-based margins and crossfade: close to one pass, not equal
