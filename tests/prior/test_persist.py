import json

import pytest
import torch

from vqfuse.errors import InputFileError
from vqfuse.prior import PriorConfig, PriorTransformer, SequenceLayout, load_prior, save_prior

LAYOUT = SequenceLayout([("image", 16, 9), ("audio", 24, 8)])


@pytest.mark.parametrize("causal", [True, False])
def test_save_load_round_trip_gives_identical_logits(tmp_path, causal):
    torch.manual_seed(0)
    model = PriorTransformer(PriorConfig.for_layout(LAYOUT, dim=32, depth=2, heads=4, dropout=0.1, causal=causal))
    with torch.no_grad():  # make every parameter differ from a fresh init
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    model.eval()
    save_prior(model, tmp_path / "prior", LAYOUT)
    assert sorted(f.name for f in (tmp_path / "prior").iterdir()) == ["config.json", "model.safetensors"]
    loaded, layout = load_prior(tmp_path / "prior")
    assert layout == LAYOUT and loaded.config == model.config and not loaded.training
    packed = LAYOUT.pack({s.name: torch.randint(0, s.vocab_size, (2, s.n_tokens)) for s in LAYOUT.segments})
    with torch.no_grad():
        a = model(packed.ids, packed.modalities, packed.positions)
        b = loaded(packed.ids, packed.modalities, packed.positions)
    assert torch.equal(a, b)


def test_layout_is_optional_and_checked(tmp_path):
    model = PriorTransformer(PriorConfig(vocab=50, n_modalities=2, max_len=20, dim=16, depth=1, heads=2))
    save_prior(model, tmp_path / "bare")
    assert load_prior(tmp_path / "bare")[1] is None
    with pytest.raises(ValueError, match="does not fit"):
        save_prior(model, tmp_path / "wrong", LAYOUT)


def test_load_errors(tmp_path):
    model = PriorTransformer(PriorConfig.for_layout(LAYOUT, dim=16, depth=1, heads=2))
    d = save_prior(model, tmp_path / "p", LAYOUT)
    config = json.loads((d / "config.json").read_text())
    (d / "config.json").write_text(json.dumps({**config, "format": "vqfuse-tokenizer/1"}))
    with pytest.raises(InputFileError, match="not a vqfuse prior"):
        load_prior(d)
    config["model"]["depth"] = 2
    (d / "config.json").write_text(json.dumps(config))
    with pytest.raises(InputFileError, match="do not match"):
        load_prior(d)
    config["model"]["bogus"] = 1
    (d / "config.json").write_text(json.dumps(config))
    with pytest.raises(InputFileError, match="invalid prior config"):
        load_prior(d)
    del config["model"]["bogus"]
    config["model"]["depth"] = 1
    (d / "config.json").write_text(json.dumps(config))
    load_prior(d)
    (d / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(InputFileError, match="safetensors"):
        load_prior(d)
    with pytest.raises(InputFileError):
        load_prior(tmp_path / "missing")
