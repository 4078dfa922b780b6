"""The video modality: the shared modality contract on a tiny moving-digits set, its rates and facts, and
tokenizers built from the video presets (shapes, code grids, first-frame codes, rate)."""

from __future__ import annotations

import pytest
import torch

# the shared contract's checks, run here on a video case (this module's `case` fixture)
from tests.modalities.test_contract import (  # noqa: F401
    test_data_section_rebuilds_the_meta,
    test_file_round_trip,
    test_fit_gives_the_item_shape,
    test_items_have_the_item_shape_and_range,
    test_metrics_see_the_difference_between_identical_and_noisy_inputs,
    test_preview_is_written,
    test_rate_is_bits_per_extent_in_the_modality_unit,
)
from vqfuse.errors import VqfuseError
from vqfuse.modalities import get_modality
from vqfuse.modalities.base import registered_modalities

pytestmark = pytest.mark.usefixtures("single_thread")

# GIF holds 8-bit frames with a palette per frame: grey clips come back to within one grey level
DATA = {"train": "moving-digits", "size": 16, "length": 5}


@pytest.fixture(scope="module")
def case():
    modality = get_modality("video")
    meta = modality.meta(DATA)
    return modality, DATA, meta, modality.dataset(DATA["train"], "test", DATA), 1 / 255 + 1e-6, ".gif"


def test_video_is_registered_with_its_facts():
    m = get_modality("video")
    assert "video" in registered_modalities()
    assert (m.dims, m.time_axis, m.rate_key, m.rate_unit) == (3, 0, "bits_per_pixel", "bits/pixel")
    assert ".mp4" in m.extensions and m.default_output_suffix() == ".mp4"


def test_meta_rate_extent_and_describe():
    m = get_modality("video")
    meta = m.meta({"train": "moving-digits"})
    assert (meta["size"], meta["length"], meta["fps"], meta["channels"]) == (64, 21, 8.0, 1)
    assert m.item_shape(meta) == (21, 64, 64) and m.steps_per_second(meta) == 8.0
    assert m.meta({"train": "moving-emoji"})["channels"] == 3 and "attribution" in meta
    extent = m.extent((21, 64, 64), meta)
    assert extent == 21 * 64 * 64
    assert m.rate_text(14 * 6 * 8 * 8, extent) == "0.0625 bits/pixel"  # 6x8x8 codes of 14 bits
    assert m.duration((21, 64, 64), meta) == pytest.approx(21 / 8)
    assert m.describe((21, 64, 64), meta) == "21 frames 64x64 at 8 fps"
    assert m.describe((1, 32, 48), meta) == "1 frame 32x48 at 8 fps"
    assert m.token_meta(meta) == {"fps": 8.0}


def test_fit_pads_or_cuts_time_and_fits_space():
    m = get_modality("video")
    meta = m.meta({"train": "moving-digits", "size": 16, "length": 9})
    short = torch.rand(2, 1, 3, 20, 30) * 2 - 1
    fitted = m.fit(short, meta)
    assert fitted.shape == (2, 1, 9, 16, 16)
    assert torch.equal(fitted[:, :, 2], fitted[:, :, 8])  # the last frame repeated
    long = torch.rand(1, 1, 12, 16, 16) * 2 - 1
    assert torch.equal(m.fit(long, meta), long[:, :, :9])  # the first frames kept (a causal model's view)
    with pytest.raises(VqfuseError, match="video must be"):
        m.fit(torch.zeros(1, 3, 9, 16, 16), meta)
    with pytest.raises(VqfuseError, match="video must be"):
        m.fit(torch.zeros(1, 16, 16), meta)


def test_colour_digits_and_emoji_have_three_channels():
    m = get_modality("video")
    for data in (
        {"train": "moving-digits", "size": 16, "length": 5, "channels": 3},
        {"train": "moving-emoji", "size": 16, "length": 5},
    ):
        x = m.dataset(data["train"], "test", data)[0]
        assert x.shape == (3, 5, 16, 16)
    with pytest.raises(VqfuseError, match="RGB"):
        m.dataset("moving-emoji", "test", {"train": "moving-emoji", "channels": 1})


# ---- tokenizers from the presets ------------------------------------------------------------------


@pytest.fixture(scope="module", params=["video-moving-digits", "video-moving-emoji"])
def preset_model(request):
    from vqfuse.modalities import get_modality
    from vqfuse.train.build import build_tokenizer
    from vqfuse.train.config import load_config

    config = load_config(request.param)
    torch.manual_seed(0)
    model = build_tokenizer(config, get_modality(config.modality)).eval()
    return config, model


def test_preset_tokenizer_codes_clips_and_images(preset_model):
    config, model = preset_model
    c = config.model["autoencoder"]["in_channels"]
    assert model.codebook_size == 16384 and model.downsample_factors == (4, 8, 8)
    assert model.rate() == pytest.approx(0.0625)  # at the 21-frame training length
    clip = torch.rand(1, c, 21, 64, 64) * 2 - 1
    codes = model.encode(clip)
    assert codes.shape == (1, 6, 8, 8)
    assert model.decode(codes).shape == (1, c, 21, 64, 64)
    image = clip[:, :, :1]
    image_codes = model.encode(image)
    assert image_codes.shape == (1, 1, 8, 8)
    assert model.decode(image_codes).shape == (1, c, 1, 64, 64)
    assert torch.equal(image_codes[:, 0], codes[:, 0])  # frame 0 has the same code as a clip or an image


def test_preset_token_file_round_trip_keeps_the_length(preset_model):
    _, model = preset_model
    c = model.config.autoencoder.in_channels
    for frames in (1, 7, 21):  # 7 is off the 1 + 4k grid: padded at the end, cropped back
        tf = model.encode_item(torch.rand(c, frames, 64, 64) * 2 - 1)
        assert tuple(tf.indices.shape) == (1 + -(-(frames - 1) // 4), 8, 8)
        assert model.decode_item(tf).shape == (c, frames, 64, 64)


def test_preset_items_fit_and_the_discriminator_builds(preset_model):
    from vqfuse.train.build import check_example
    from vqfuse.train.discriminator import build_discriminator, check_discriminator_input

    config, model = preset_model
    c = model.config.autoencoder.in_channels
    example = torch.zeros(c, 21, 64, 64)
    check_example(model, example)
    from vqfuse.errors import ConfigError

    with pytest.raises(ConfigError, match="1 \\+ 4\\*k frames"):
        check_example(model, torch.zeros(c, 20, 64, 64))
    disc = build_discriminator(config.loss.discriminator, 3, c)
    check_discriminator_input(disc, example)


# ---- the CLI on video files: a reconstruction keeps the source's audio track ---------------------------


def _clip_with_audio(path, frames: int = 9, size: int = 16) -> None:
    """An mp4 of moving bars with a 440 Hz AAC track (PyAV, in the test only)."""
    import av
    import numpy as np

    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=8)
        video.width = video.height = size
        video.pix_fmt = "yuv420p"
        audio = out.add_stream("aac", rate=16000)
        for t in range(frames):
            img = np.zeros((size, size, 3), np.uint8)
            img[:, (2 * t) % size] = 255
            for packet in video.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(16000 * frames // 8) / 16000)).astype(np.float32)
        frame = av.AudioFrame.from_ndarray(tone[None], format="flt", layout="mono")
        frame.sample_rate = 16000
        for packet in [*audio.encode(frame), *audio.encode(None), *video.encode(None)]:
            out.mux(packet)


def test_cli_reconstruct_keeps_the_audio_track_and_encode_says_it_is_dropped(tmp_path, capsys):
    import av

    from tests.helpers.files import run_cli
    from vqfuse.modalities import get_modality
    from vqfuse.train.build import build_tokenizer
    from vqfuse.train.config import load_config

    config = load_config("video-moving-emoji")
    torch.manual_seed(0)
    build_tokenizer(config, get_modality("video")).eval().save_pretrained(tmp_path / "model")
    src = tmp_path / "clip.mp4"
    _clip_with_audio(src)
    code, out, err = run_cli(capsys, "reconstruct", tmp_path / "model", src, tmp_path / "out.mp4")
    assert code == 0, err
    assert f"note: {src}: audio: the aac track of {src} copied unchanged" in out
    with av.open(str(tmp_path / "out.mp4")) as c:
        assert len(c.streams.audio) == 1 and c.streams.audio[0].codec_context.name == "aac"
        assert c.streams.video[0].frames == 9
    code, out, err = run_cli(capsys, "encode", tmp_path / "model", src, tmp_path / "clip.vqf")
    assert code == 0, err
    assert "its audio track is not kept in the token file" in out
