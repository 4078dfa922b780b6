"""`vqfuse repair` on the tiny fusion run of test_pipeline: inpainting with a mask file, enhancement of speech
of any length (windows), conditions from files of the other modality, and one-line errors."""

from pathlib import Path

import pytest
import torch

from tests.helpers.data import RATE
from tests.helpers.data import write_pair_inputs as write_inputs
from tests.helpers.files import run_cli as run
from vqfuse.data.audio import load_audio_file, save_audio_file
from vqfuse.data.image_files import load_image_file, save_image_file
from vqfuse.fusion.model import FusionModel

pytestmark = pytest.mark.usefixtures("single_thread")


def write_mask(path: Path, size: tuple[int, int], box: tuple[int, int, int, int]) -> None:
    """Black image (kept) with a white box (missing): box = (top, left, height, width) in pixels."""
    m = torch.full((3, *size), -1.0)
    top, left, h, w = box
    m[:, top : top + h, left : left + w] = 1.0
    save_image_file(m, path)


def test_cli_inpaints_only_the_masked_pixels(run_dir, tmp_path, capsys):  # noqa: F811
    src = tmp_path / "in"
    write_inputs(src)
    write_mask(tmp_path / "hole.png", (16, 16), (4, 4, 8, 6))
    for extra in ([], ["--condition", str(src / "zero.wav")]):
        out = tmp_path / f"fixed{len(extra)}.png"
        code, text, err = run(
            capsys, "repair", run_dir, src / "zero.png", out, "--mask", tmp_path / "hole.png", "--steps", "2", *extra
        )
        assert code == 0, err
        assert text.startswith(f"inpainted {src / 'zero.png'} (19% of pixels missing")
        assert ("with a condition" in text) == bool(extra)
        before, after = load_image_file(src / "zero.png"), load_image_file(out)
        assert after.shape == before.shape == (3, 16, 16)
        keep = torch.ones(16, 16, dtype=torch.bool)
        keep[4:12, 4:10] = False
        assert (after - before)[:, keep].abs().max() <= 1 / 127.5 + 1e-6  # known pixels kept (8-bit rounding)


def test_cli_enhances_speech_of_any_length_in_windows(run_dir, tmp_path, capsys):  # noqa: F811
    src = tmp_path / "in"
    write_inputs(src)
    model = FusionModel.from_run(run_dir)
    long = torch.cat([load_audio_file(src / "zero.wav", RATE)] * 3, dim=-1)[..., :1300]  # 2.5 windows of 512
    save_audio_file(long, tmp_path / "long.wav", RATE)
    code, text, err = run(
        capsys,
        "repair",
        run_dir,
        tmp_path / "long.wav",
        tmp_path / "clean.wav",
        "--condition",
        src / "zero.png",
        "--steps",
        "2",
    )
    assert code == 0, err
    assert model.item_shapes["audio"] == (512,) and "(3 windows" in text and "with a condition" in text
    assert load_audio_file(tmp_path / "clean.wav", RATE).shape == (1, 1300)


@pytest.mark.parametrize(
    "args, message",
    [
        (["{src}/zero.png", "{tmp}/o.png"], "error: inpainting needs --mask MASK"),
        (
            ["{src}/zero.wav", "{tmp}/o.wav", "--mask", "{tmp}/hole.png"],
            "error: --mask / --missing are for inpainting; speech is enhanced without them",
        ),
        (["{src}/zero.wav", "{tmp}/o.png"], "error: {tmp}/o.png: the repaired audio should end with one of"),
        (["{src}/notes.txt", "{tmp}/o.png"], "error: {src}/notes.txt: the input must be an image or audio file"),
        (
            ["{src}/zero.png", "{tmp}/o.png", "--mask", "{tmp}/empty.png"],
            "error: {tmp}/empty.png: the mask marks no pixel",
        ),
        (
            ["{src}/zero.png", "{tmp}/o.png", "--mask", "{tmp}/hole.png", "--condition", "{src}/zero.png"],
            "error: {src}/zero.png: the condition (to repair image) must be an audio file",
        ),
        (["{src}/missing.wav", "{tmp}/o.wav"], "error: {src}/missing.wav"),
    ],
)
def test_cli_repair_errors_are_one_line_and_write_nothing(args, message, run_dir, tmp_path, capsys):  # noqa: F811
    src = tmp_path / "in"
    write_inputs(src)
    write_mask(tmp_path / "hole.png", (16, 16), (0, 0, 8, 8))
    write_mask(tmp_path / "empty.png", (16, 16), (0, 0, 0, 0))
    fmt = {"src": src, "tmp": tmp_path}
    code, _, err = run(capsys, "repair", run_dir, *[a.format(**fmt) for a in args])
    assert code == 1 and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith(message.format(**fmt))
    assert not (tmp_path / "o.png").exists() and not (tmp_path / "o.wav").exists()
