"""Every preset that ships in the package parses and validates (tokenizer presets build their model; fusion
presets check their data, tokenizer entries and prior settings) without training anything."""

import pytest

from vqfuse.fusion.config import check_fusion_config
from vqfuse.train.config import CONFIG_DIR, load_config

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.mark.parametrize("name", sorted(p.stem for p in CONFIG_DIR.glob("*.yaml")))
def test_preset_validates(name, tmp_path):
    config = load_config(name)
    config.out = str(tmp_path / "run")
    if config.task == "fusion":
        specs, settings = check_fusion_config(config)
        assert specs and settings.kind in ("maskgit", "causal")
    else:
        config.train.validate()
        from vqfuse.modalities import get_modality
        from vqfuse.train.build import build_tokenizer

        model = build_tokenizer(config, get_modality(config.modality))
        assert model.codebook_size > 1
