"""Short runs stay sound and bounded: the `steps=N` cap of a fusion run's tokenizers (an explicit
`tokenizers.<name>.steps` wins), a quantizer bypass longer than the run, and the held-out evaluation of a
10-step run."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.helpers.configs import AUDIO_PRESET, tiny_config
from vqfuse.fusion.config import PriorSettings, tokenizer_specs
from vqfuse.tokenizer import Tokenizer
from vqfuse.train.config import load_config
from vqfuse.train.short_runs import bypass_steps, heldout_limit, spread_indices
from vqfuse.train.trainer import train

pytestmark = pytest.mark.usefixtures("single_thread")

FUSION = {
    "task": "fusion",
    "modality": "paired",
    "data": {"train": "av-digits", "size": 32, "sample_rate": 16000, "segment_seconds": 1.0},
    "tokenizers": {
        "image": {"preset": "image-emoji32", "overrides": ["data=digits"]},  # the preset's own 1,500 steps
        "audio": {"preset": "audio-speech16k-waveform", "steps": 800, "n_q": 2},
        "video": {"model": "moving-digits"},  # reused, never trained: no cap
    },
    "prior": {"kind": "maskgit", "dim": 32, "depth": 1, "heads": 2},
    "train": {"steps": 1500, "batch_size": 32},
}


@pytest.fixture()
def fusion_yaml(tmp_path: Path) -> Path:
    path = tmp_path / "fusion.yaml"
    path.write_text(yaml.safe_dump(FUSION))
    return path


def _steps(path: Path, overrides: list[str]) -> dict[str, int | None]:
    """The steps each tokenizer of the fusion config would train (None: a reused model)."""
    config = load_config(str(path), overrides)
    return {
        name: spec.run_config(Path(config.out)).train.steps if spec.preset else None
        for name, spec in tokenizer_specs(config).items()
    }


def test_without_a_steps_override_the_presets_steps_stand(fusion_yaml):
    assert _steps(fusion_yaml, []) == {"image": 1500, "audio": 800, "video": None}
    assert _steps(fusion_yaml, ["batch_size=8"]) == {"image": 1500, "audio": 800, "video": None}
    assert PriorSettings.from_config(load_config(str(fusion_yaml)).prior).max_items is None


@pytest.mark.parametrize("key", ["steps", "train.steps"])
def test_a_steps_override_caps_every_trained_tokenizer(fusion_yaml, key):
    assert _steps(fusion_yaml, [f"{key}=10"]) == {"image": 10, "audio": 10, "video": None}
    assert _steps(fusion_yaml, [f"{key}=1000"]) == {"image": 1000, "audio": 800, "video": None}  # min(own, N)
    config = load_config(str(fusion_yaml), [f"{key}=10", "batch_size=8"])
    assert config.train.steps == 10 and config.tokenizers["video"] == {"model": "moving-digits"}
    assert PriorSettings.from_config(config.prior).max_items == 20  # a quarter of the 80 drawn in 10 steps
    config = load_config(str(fusion_yaml), [f"{key}=1"])
    assert PriorSettings.from_config(config.prior).max_items == 32  # at least one batch


def test_an_explicit_tokenizer_steps_override_wins(fusion_yaml):
    assert _steps(fusion_yaml, ["steps=10", "tokenizers.audio.steps=50"]) == {"image": 10, "audio": 50, "video": None}
    assert _steps(fusion_yaml, ["tokenizers.image.steps=3000", "steps=10"])["image"] == 3000
    whole = "tokenizers.audio={preset: audio-speech16k-waveform, steps: 30}"
    assert _steps(fusion_yaml, ["steps=10", whole])["audio"] == 30
    config = load_config(str(fusion_yaml), ["steps=10", "prior.max_items=1000"])
    assert PriorSettings.from_config(config.prior).max_items == 1000


def test_the_shipped_fusion_presets_are_capped_too():
    for name in ("fusion-av-digits", "fusion-av-moving-digits"):
        config = load_config(name, ["steps=10"])
        trained = [s for s in tokenizer_specs(config).values() if s.preset is not None]
        assert trained and all(s.run_config(Path(config.out)).train.steps == 10 for s in trained), name
        full = load_config(name)
        assert all(s.max_steps is None for s in tokenizer_specs(full).values()), name


def test_the_spectral_speech_preset_validates_and_trains_its_quantizer_at_10_steps():
    config = load_config("audio-speech16k", ["steps=10"])
    config.train.validate()
    assert config.train.quantizer_bypass_steps == 500  # the preset's warm-up is kept ...
    assert bypass_steps(config.train) == 5  # ... but ends by half of the run, then k-means and 5 quantized steps
    assert bypass_steps(load_config("audio-speech16k").train) == 500  # the full run is unchanged
    assert bypass_steps(load_config("audio-speech16k", ["steps=1"]).train) == 0


SPECTRAL = {
    **AUDIO_PRESET,
    "model": {
        "autoencoder": {
            "kind": "spectral",
            "n_fft": 64,
            "hop": 16,
            "frames_per_latent": 2,
            "enc_dim": 16,
            "enc_mlp": 32,
            "enc_blocks": 1,
            "dec_dim": 16,
            "dec_mlp": 32,
            "dec_blocks": 1,
            "latent_dim": 8,
        },
        "quantizer": {"kind": "rvq", "codebook_size": 16, "n_quantizers": 2, "codebook_dim": 4, "normalize": True},
    },
}


@pytest.mark.parametrize("train_section", [{"steps": 4}, {"steps": 50, "max_minutes": 0.0}])
def test_a_bypass_longer_than_the_run_still_initialises_the_quantizer(tmp_path, train_section):
    """Bypass 100 steps in a 4-step run, or a run stopped by max_minutes after its first step: the saved
    tokenizer's codebooks are k-means-initialised on the data, not left at their random start."""
    raw = {**SPECTRAL, "train": {**SPECTRAL["train"], "quantizer_bypass_steps": 100, "quantizer_init_batches": 2}}
    path = tmp_path / "spectral.yaml"
    path.write_text(yaml.safe_dump({**raw, "train": {**raw["train"], **train_section}}))
    run = train(load_config(str(path), [f"out={tmp_path / 'run'}"]), progress=False)
    assert Tokenizer.from_pretrained(run / "model").quantizer.initialized


def test_heldout_evaluation_is_bounded_by_the_items_trained_on(tmp_path):
    assert heldout_limit(2000, 10, 4) == 40 and heldout_limit(2000, 1500, 4) == 2000  # video smoke vs full run
    assert heldout_limit(12, 0, 8) == 8 and spread_indices(10, 3) == [0, 4, 9] and spread_indices(3, 5) == [0, 1, 2]
    run = train(tiny_config(tmp_path / "one", train={"steps": 1, "sample_every": 0}), progress=False)
    metrics = yaml.safe_load((run / "metrics.json").read_text())
    assert metrics["heldout"]["n_items"] == 8  # one batch of the 12 held-out images
