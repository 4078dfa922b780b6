"""Fixtures of the fusion tests: tiny tokenizer presets and one whole fusion run (trained once per module)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.helpers.configs import AUDIO_PRESET, IMAGE_PRESET, fusion_config
from vqfuse.fusion.pipeline import train_fusion


@pytest.fixture(scope="module")
def presets(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("presets")
    out = {}
    for name, raw in (("image", IMAGE_PRESET), ("audio", AUDIO_PRESET)):
        out[name] = d / f"tiny-{name}.yaml"
        out[name].write_text(yaml.safe_dump(raw))
    return out


@pytest.fixture(scope="module")
def run_dir(presets, tmp_path_factory) -> Path:
    """A whole maskgit fusion run: both tiny tokenizers trained from their presets, tokens, prior."""
    out = tmp_path_factory.mktemp("fusion") / "run"
    tokenizers = {"image": {"preset": str(presets["image"])}, "audio": {"preset": str(presets["audio"]), "n_q": 2}}
    return train_fusion(fusion_config(out, tokenizers), progress=False, log_fn=lambda s: None)
