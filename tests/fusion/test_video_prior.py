"""A token prior over one modality (video) through the fusion pipeline: trained on moving digits, sampled,
and repairing missing frames and a masked region of a clip file (known pixels copied back exactly)."""

from pathlib import Path

import pytest
import torch

from tests.helpers.configs import PRIOR
from tests.helpers.files import run_cli
from vqfuse.data.moving import MovingDigitsDataset
from vqfuse.data.video_files import read_video
from vqfuse.data.video_write import write_video
from vqfuse.fusion.model import FusionModel
from vqfuse.fusion.pipeline import train_fusion
from vqfuse.nets.autoencoder import AutoencoderConfig
from vqfuse.tokenizer import Tokenizer, TokenizerConfig
from vqfuse.train.config import RunConfig

pytestmark = pytest.mark.usefixtures("single_thread")
SIZE, LENGTH = 16, 9


@pytest.fixture(scope="module")
def video_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("video-prior")
    ae = AutoencoderConfig(dims=3, in_channels=1, channels=4, channel_mults=(1, 1, 1), latent_dim=4,
                           strides=((2, 2, 2), (2, 2, 2)), norm_groups=1, causal=True, first_frame_alone=True)  # fmt: skip
    meta = {"size": SIZE, "length": LENGTH, "fps": 8.0, "channels": 1, "item_shape": [LENGTH, SIZE, SIZE],
            "dataset": "moving-digits"}  # fmt: skip
    torch.manual_seed(0)
    Tokenizer(TokenizerConfig("video", ae, {"kind": "fsq", "levels": [4, 4, 2]}, meta)).save_pretrained(root / "tok")
    config = RunConfig.from_dict({
        "name": "video-prior", "task": "fusion", "modality": "paired", "out": str(root / "run"),
        "data": {"train": "moving-digits", "size": SIZE, "length": LENGTH, "items": 24},
        "tokenizers": {"video": {"model": str(root / "tok")}},
        "prior": {**PRIOR, "samples": 2},
        "train": {"steps": 4, "batch_size": 8, "warmup_steps": 1, "log_every": 2, "checkpoint_every": 4},
    })  # fmt: skip
    return train_fusion(config, progress=False, log_fn=lambda s: None)


def test_a_one_modality_prior_trains_and_samples_clips(video_run):
    model = FusionModel.from_run(video_run)
    assert model.names == ("video",) and model.token_shapes["video"] == (3, 4, 4)  # 1 + 8 frames at 4x4x4
    clips = model.sample_joint(2, generator=torch.Generator().manual_seed(0))["video"]
    assert clips.shape == (2, 1, LENGTH, SIZE, SIZE) and float(clips.abs().max()) <= 1


def test_repair_fills_missing_frames_and_a_hole_keeping_known_pixels(video_run, tmp_path, capsys):
    clip = MovingDigitsDataset("test", length=LENGTH + 4, size=SIZE)[0]  # 13 frames: two windows of 9
    src = tmp_path / "clip.gif"  # grey gif frames are lossless
    write_video(clip, src, 8.0)
    mask = torch.full((3, SIZE, SIZE), -1.0)
    mask[:, 4:8, 4:8] = 1.0
    from vqfuse.data.image_files import save_image_file

    save_image_file(mask, tmp_path / "hole.png")
    code, out, err = run_cli(capsys, "repair", video_run, src, tmp_path / "fixed.gif", "--missing", "4-6",
                             "--mask", tmp_path / "hole.png", "--steps", "2")  # fmt: skip
    assert code == 0, err
    assert out.startswith(f"inpainted {src} (") and "2 windows" in out
    before = read_video(src, channels=1)[0]
    after = read_video(tmp_path / "fixed.gif", channels=1)[0]
    assert after.shape == before.shape == (1, LENGTH + 4, SIZE, SIZE)
    known = torch.ones_like(before, dtype=torch.bool)
    known[:, 3:6] = False
    known[:, :, 4:8, 4:8] = False
    assert float((after - before)[known].abs().max()) <= 1 / 127.5 + 1e-6
    for args, message in (
        (["--missing", "9-30"], "the input has 13"),
        (["--missing", "x"], "frame ranges"),
        ([], "inpainting needs --mask MASK (an image file, white = missing in every frame"),
    ):
        code, _, err = run_cli(capsys, "repair", video_run, src, tmp_path / "o.gif", *args)
        assert code == 1 and message in err.strip().splitlines()[-1]
    assert not (tmp_path / "o.gif").exists()


def test_generate_frames_continues_a_clip_keeping_its_frames(video_run, tmp_path, capsys):
    clip = MovingDigitsDataset("test", length=5, size=SIZE)[1]  # 5 frames = 1 + 4: two latent frames known
    src = tmp_path / "start.gif"
    write_video(clip, src, 8.0)
    args = ["generate", video_run, "--from", src, "--to", "video", tmp_path / "more.gif", "--frames", "4"]
    code, out, err = run_cli(capsys, *args, "--temperature", "0")
    assert code == 0, err
    assert out.startswith(f"continued {src} by 4 steps")
    before = read_video(src, channels=1)[0]
    after = read_video(tmp_path / "more.gif", channels=1)[0]
    assert after.shape == (1, 9, SIZE, SIZE)
    assert float((after[:, :5] - before).abs().max()) <= 1 / 127.5 + 1e-6  # the given frames kept
    model = FusionModel.from_run(video_run)
    x = before[None]
    a = model.continue_items("video", x, 4, temperature=0.0, generator=torch.Generator().manual_seed(0))
    b = model.continue_items("video", x, 4, temperature=0.0, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and torch.equal(a[:, :, :5], x)  # reproducible; the given frames kept exactly
    code, _, err = run_cli(capsys, *args[:-1], "5")  # 5 + 5 frames do not fit in a 9-frame segment
    assert code == 1 and "ask for 1 to 4 more" in err
