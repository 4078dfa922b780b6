"""Models that ship inside the package load by name, from Python and the CLI."""

import pytest
import torch

from tests.helpers.files import run_cli, write_wav
from vqfuse.errors import InputFileError
from vqfuse.pretrained import builtin_models
from vqfuse.tokenizer import Tokenizer

pytestmark = pytest.mark.usefixtures("single_thread")


def test_builtin_models_are_model_directories_with_a_model_card():
    models = builtin_models()
    assert {"speech16k", "moving-digits"} <= set(models)
    for path in models.values():
        if (path / "fusion.json").is_file():  # a fusion model: prior + tokenizers (or the names of shipped ones)
            assert (path / "prior" / "model.safetensors").is_file()
        else:
            assert (path / "config.json").is_file() and (path / "model.safetensors").is_file()
        assert (path / "README.md").is_file() and (path / "card.json").is_file()


def test_the_fusion_model_generates_by_name():
    from vqfuse.fusion.model import FusionModel

    model = FusionModel.from_run("av-digits")
    assert set(model.names) == {"image", "audio"}
    speech = torch.zeros(1, 1, 16000)
    g = torch.Generator().manual_seed(0)
    image = model.generate(speech, to="image", source="audio", generator=g, rerank=1)
    assert image.shape[-2:] == (32, 32)


def test_a_builtin_model_loads_by_name_and_reconstructs(tmp_path, capsys):
    model = Tokenizer.from_pretrained("speech16k")
    assert model.config.modality == "audio" and model.meta["sample_rate"] == 16000
    x = torch.zeros(1, 1, 1600)
    assert model.decode_codes(model.encode_codes(x)).shape[-1] >= 1600
    src = write_wav(tmp_path / "talk.wav", 0.3)
    code, out, err = run_cli(capsys, "reconstruct", "speech16k", src, tmp_path / "out.wav", "--kbps", "3")
    assert code == 0, err
    assert (tmp_path / "out.wav").is_file()


def test_an_unknown_name_lists_the_builtin_models():
    with pytest.raises(InputFileError, match="built-in models: .*speech16k"):
        Tokenizer.from_pretrained("no-such-model")


def test_the_video_model_reconstructs_a_clip_right_after_install(tmp_path, capsys):
    from vqfuse.data.moving import MovingDigitsDataset
    from vqfuse.data.video_files import read_video
    from vqfuse.data.video_write import write_video

    clip = MovingDigitsDataset("test", length=5)[0]  # (1, 5, 64, 64)
    write_video(clip, tmp_path / "clip.mp4", 8.0)
    code, out, err = run_cli(capsys, "reconstruct", "moving-digits", tmp_path / "clip.mp4", tmp_path / "out.mp4")
    assert code == 0, err
    y, info = read_video(tmp_path / "out.mp4", channels=1)
    assert y.shape == (1, 5, 64, 64) and info.fps == 8
