"""Tests for vqfuse.modalities.audio: registration, datasets, files, previews and metrics."""

from __future__ import annotations

import math

import pytest
import soundfile as sf
import torch
from PIL import Image

from vqfuse.data.audio import AudioFolderDataset
from vqfuse.data.speech import SpeechDataset
from vqfuse.errors import InputFileError
from vqfuse.modalities import get_modality
from vqfuse.modalities.audio import AudioModality

SR = 16000


def _tones(batch: int, seconds: float = 1.0) -> torch.Tensor:
    t = torch.arange(int(SR * seconds)) / SR
    return torch.stack(
        [
            0.5 * torch.sin(2 * math.pi * (200 + 100 * b) * t) * (0.6 + 0.4 * torch.sin(2 * math.pi * 2 * t))
            for b in range(batch)
        ]
    ).unsqueeze(1)  # (B, 1, T)


def test_registered_and_basic_facts():
    m = get_modality("audio")
    assert isinstance(m, AudioModality)
    assert m.dims == 1 and m.default_output_suffix() == ".wav"
    assert set(m.extensions) == {".wav", ".flac", ".ogg", ".opus", ".mp3"}


def test_meta():
    m = AudioModality()
    meta = m.meta({"train": "speech", "sample_rate": 8000, "segment_seconds": 0.5})
    assert meta["sample_rate"] == 8000 and meta["dataset"] == "speech"
    assert meta["item_shape"] == [4000]
    assert m.meta({"train": "speech"})["sample_rate"] == 16000


def test_dataset_specs(tmp_path):
    m = AudioModality()
    ds = m.dataset("speech", "test", {"sample_rate": SR, "segment_seconds": 0.5})
    assert isinstance(ds, SpeechDataset) and ds.split == "test" and ds[0].shape == (1, 8000)
    for i in range(3):
        sf.write(tmp_path / f"c{i}.flac", _tones(1)[0, 0].numpy(), SR)
    folder = m.dataset(f"folder:{tmp_path}", "all", {"segment_seconds": 0.25})
    assert isinstance(folder, AudioFolderDataset) and len(folder) == 12 and folder[0].shape == (1, 4000)


def test_load_and_save_file(tmp_path):
    m = AudioModality()
    meta = {"sample_rate": SR}
    x = _tones(1)[0]  # (1, T)
    for ext in (".wav", ".flac"):
        path = tmp_path / f"x{ext}"
        m.save_file(x, path, meta)
        y = m.load_file(path, meta)
        assert y.shape == x.shape and torch.allclose(x, y, atol=1e-4)
    sf.write(tmp_path / "hi.wav", 0.1 * torch.randn(22050).numpy(), 44100)  # 0.5 s at 44.1 kHz
    assert m.load_file(tmp_path / "hi.wav", meta).shape == (1, 8000)
    (tmp_path / "bad.wav").write_text("nope")
    with pytest.raises(InputFileError, match="bad.wav"):
        m.load_file(tmp_path / "bad.wav", meta)


def test_save_samples_writes_wavs_and_png(tmp_path):
    m = AudioModality()
    inputs = _tones(6)
    outputs = inputs + 0.05 * torch.randn_like(inputs)
    paths = m.save_samples(inputs, outputs, tmp_path / "samples" / "step-000100", {"sample_rate": SR})
    names = sorted(p.name for p in paths)
    expected = sorted([f"step-000100-{i}-{k}.wav" for i in range(4) for k in ("input", "output")] + ["step-000100.png"])
    assert names == expected
    assert all(p.is_file() and p.stat().st_size > 0 for p in paths)
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == expected  # no temp files
    data, sr = sf.read(tmp_path / "samples" / "step-000100-2-output.wav")
    assert sr == SR and data.shape == (SR,)
    with Image.open(tmp_path / "samples" / "step-000100.png") as img:
        assert img.format == "PNG" and img.size[0] > img.size[1] > 100


def test_metrics():
    m = AudioModality()
    x = _tones(2)
    same = m.metrics(x, x, {"sample_rate": SR})
    assert set(same) == {"si_snr", "stoi", "log_mel_l1", "mr_stft"}
    assert all(isinstance(v, float) for v in same.values())
    assert same["si_snr"] > 60 and same["stoi"] > 0.99 and same["log_mel_l1"] == 0.0 and same["mr_stft"] < 1e-5
    worse = m.metrics(x + 0.2 * torch.randn_like(x), x, {"sample_rate": SR})
    assert worse["si_snr"] < same["si_snr"] and worse["log_mel_l1"] > 0 and worse["mr_stft"] > 0
