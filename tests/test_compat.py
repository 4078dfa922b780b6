"""Files written by earlier versions (tests/fixtures/compat, made at commit cec61a8 by make_compat.py) still
load, decode to the same values, and the same inputs encode to the same tokens."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from vqfuse.fusion.model import FusionModel
from vqfuse.io.tokenfile import read_tokens
from vqfuse.tokenizer import Tokenizer

COMPAT = Path(__file__).parent / "fixtures" / "compat"


@pytest.mark.parametrize("name, n_q", [("image-vq", None), ("audio-rvq", 2)])
def test_old_models_and_token_files_decode_unchanged(name, n_q):
    model = Tokenizer.from_pretrained(COMPAT / name)
    tf = read_tokens(COMPAT / f"{name}.vqf")
    expected = load_file(str(COMPAT / f"{name}-expected.safetensors"))
    assert tf.model_id == model.model_id  # the content hash is computed the same way
    torch.testing.assert_close(model.decode_item(tf), expected["decoded"], atol=1e-6, rtol=0)
    again = model.encode_item(expected["input"], n_q=n_q, source=f"{name}.in")
    assert torch.equal(torch.as_tensor(again.indices), torch.as_tensor(tf.indices))
    assert again.codebook_size == tf.codebook_size and again.meta == tf.meta


def test_an_old_fusion_run_loads_and_generates_the_same():
    model = FusionModel.from_run(COMPAT / "fusion-run")
    expected = load_file(str(COMPAT / "fusion-run-expected.safetensors"))
    assert model.stages == {"image": 1, "audio": 2} and model.item_shapes == {"image": (16, 16), "audio": (512,)}
    assert torch.equal(model.encode("image", expected["images"]), expected["image_codes"])
    assert torch.equal(model.encode("audio", expected["audio"]), expected["audio_codes"])
    to_audio = model.generate(
        expected["images"], to="audio", generator=torch.Generator().manual_seed(1), rerank=2, steps=2
    )
    to_image = model.generate(
        expected["audio"], to="image", generator=torch.Generator().manual_seed(2), rerank=1, steps=2
    )
    torch.testing.assert_close(to_audio, expected["to_audio"], atol=1e-6, rtol=0)
    torch.testing.assert_close(to_image, expected["to_image"], atol=1e-6, rtol=0)
