"""Small input files for tests: PNG images and WAV tones at 16 kHz."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

SR = 16000


def tone(seconds: float, seed: int = 0) -> torch.Tensor:
    """(1, T) a slowly modulated tone plus a little noise, in [-1, 1]."""
    t = torch.arange(round(seconds * SR)) / SR
    noise = torch.from_numpy(np.random.default_rng(seed).standard_normal(t.numel()).astype(np.float32))
    return (0.4 * torch.sin(2 * np.pi * 220 * t) * (0.6 + 0.4 * torch.sin(2 * np.pi * 0.5 * t)) + 0.02 * noise)[None]


def write_wav(path: Path, seconds: float, seed: int = 0) -> Path:
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, tone(seconds, seed)[0].numpy(), SR, subtype="PCM_16")
    return path


def wav_samples(path: Path) -> np.ndarray:
    import soundfile as sf

    data, rate = sf.read(path, dtype="int16")
    assert rate == SR
    return data


def write_png(path: Path, width: int, height: int, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


def run_cli(capsys, *args) -> tuple[int, str, str]:
    """`vqfuse ARGS` in-process: (exit code, stdout, stderr)."""
    from vqfuse.cli import main

    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err
