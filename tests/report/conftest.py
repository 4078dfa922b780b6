"""Fixtures of the report tests: a tiny trained tokenizer run, and small media files for hand-made reports."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.helpers.configs import tiny_config


@pytest.fixture(scope="session")
def tokenizer_run(tmp_path_factory) -> Path:
    """A tiny image tokenizer trained for 4 steps (samples at steps 2 and 4); the trainer leaves its report."""
    import torch

    from vqfuse.train import train

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return train(tiny_config(tmp_path_factory.mktemp("runs") / "tiny"), progress=False)
    finally:
        torch.set_num_threads(threads)


def write_media(folder: Path) -> dict[str, str]:
    """A PNG, a WAV and a WebM video under `folder`; returns their paths relative to it."""
    import soundfile as sf
    from PIL import Image

    from vqfuse.report import write_report_video

    (folder / "media").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (24, 40, 3), dtype=np.uint8)).save(folder / "media" / "grid.png")
    t = np.arange(8000) / 8000
    sf.write(folder / "media" / "tone.wav", (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 8000)
    frames = rng.integers(0, 255, (12, 32, 48, 3), dtype=np.uint8)  # (T, H, W, C)
    write_report_video(frames, folder / "media" / "clip.webm", fps=6)
    return {"image": "media/grid.png", "audio": "media/tone.wav", "video": "media/clip.webm"}
