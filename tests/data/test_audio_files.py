"""Tests for vqfuse.data.audio: reading odd-but-valid files, rejecting bad ones, writing, folder datasets."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from vqfuse.data.audio import AudioFolderDataset, load_audio_file, n_windows, save_audio_file
from vqfuse.data.registry import make_dataset
from vqfuse.errors import InputFileError, VqfuseError


def _sine(freq: float, sr: int, seconds: float = 1.0, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _peak_hz(x: torch.Tensor | np.ndarray, sr: int) -> float:
    a = np.asarray(x, dtype=np.float64).reshape(-1)
    spec = np.abs(np.fft.rfft(a * np.hanning(len(a))))
    return float(np.fft.rfftfreq(len(a), 1 / sr)[np.argmax(spec)])


# ---------------------------------------------------------------------------------------------- reading


def test_resampling_keeps_frequency(tmp_path):
    path = tmp_path / "a440.wav"
    sf.write(path, _sine(440, 44100), 44100, subtype="PCM_16")
    x = load_audio_file(path, 16000)
    assert x.shape == (1, 16000) and x.dtype == torch.float32
    assert abs(_peak_hz(x, 16000) - 440) < 2.0
    assert abs(float(x.abs().max()) - 0.5) < 0.01


@pytest.mark.parametrize(
    "name, subtype, fmt, atol",
    [
        ("pcm24.wav", "PCM_24", "WAV", 1e-6),
        ("float.wav", "FLOAT", "WAV", 1e-7),
        ("pcm16.wav", "PCM_16", "WAV", 1e-4),
        ("ulaw.wav", "ULAW", "WAV", 0.02),
        ("rf64.wav", "PCM_16", "RF64", 1e-4),
        ("w64.w64", "PCM_32", "W64", 1e-6),
        ("u8.wav", "PCM_U8", "WAV", 0.01),
        ("a.flac", "PCM_16", "FLAC", 1e-4),
        ("a24.flac", "PCM_24", "FLAC", 1e-6),
    ],
)
def test_lossless_and_odd_wavs_match(tmp_path, name, subtype, fmt, atol):
    ref = _sine(300, 16000, 0.5)
    path = tmp_path / name
    sf.write(path, ref, 16000, subtype=subtype, format=fmt)
    x = load_audio_file(path, 16000)  # same rate: no resampling
    assert x.shape == (1, len(ref))
    assert np.allclose(x[0].numpy(), ref, atol=atol)


@pytest.mark.parametrize("channels", [2, 3, 5])
def test_multichannel_is_averaged(tmp_path, channels):
    rng = np.random.default_rng(channels)
    data = (rng.uniform(-0.5, 0.5, size=(8000, channels))).astype(np.float32)
    path = tmp_path / f"c{channels}.wav"
    sf.write(path, data, 16000, subtype="FLOAT")
    x = load_audio_file(path, 16000)
    assert x.shape == (1, 8000)
    assert np.allclose(x[0].numpy(), data.mean(axis=1), atol=1e-6)
    multi = load_audio_file(path, 16000, mono=False)
    assert multi.shape == (channels, 8000)
    assert np.allclose(multi.numpy(), data.T, atol=1e-6)


@pytest.mark.parametrize("sr", [8000, 11025, 22050, 48000])
def test_sample_rates_convert(tmp_path, sr):
    path = tmp_path / f"r{sr}.wav"
    sf.write(path, _sine(1000, sr, 0.5), sr, subtype="PCM_16")
    x = load_audio_file(path, 16000)
    assert abs(x.shape[1] - 8000) <= 1
    assert abs(_peak_hz(x, 16000) - 1000) < 4.0
    native = load_audio_file(path, None)
    assert native.shape == (1, int(sr * 0.5))


@pytest.mark.parametrize(
    "name, fmt, subtype, sr",
    [("a.ogg", "OGG", "VORBIS", 44100), ("a.opus", "OGG", "OPUS", 48000), ("a.mp3", "MP3", "MPEG_LAYER_III", 44100)],
)
def test_lossy_formats_read(tmp_path, name, fmt, subtype, sr):
    path = tmp_path / name
    sf.write(path, _sine(440, sr, 1.0), sr, format=fmt, subtype=subtype)
    x = load_audio_file(path, 16000)
    assert abs(x.shape[1] - 16000) < 1200  # codecs may add priming/padding
    assert abs(_peak_hz(x, 16000) - 440) < 3.0
    assert 0.3 < float(x.abs().max()) <= 1.0


def test_float_file_over_full_scale_is_scaled_not_clipped(tmp_path):
    data = np.array([0.1, 2.0, -4.0, 0.5] * 100, dtype=np.float32)
    path = tmp_path / "loud.wav"
    sf.write(path, data, 16000, subtype="FLOAT")
    x = load_audio_file(path, 16000)
    assert np.allclose(x[0].numpy(), data / 4.0, atol=1e-6)


# ---------------------------------------------------------------------------------------------- bad files


def _wav_bytes(tmp_path: Path) -> bytes:
    p = tmp_path / "good.wav"
    sf.write(p, _sine(440, 16000), 16000, subtype="PCM_16")
    return p.read_bytes()


def _bad_file(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / f"{kind}.wav"
    if kind == "truncated_header":
        path.write_bytes(_wav_bytes(tmp_path)[:30])
    elif kind == "truncated_data":
        b = _wav_bytes(tmp_path)
        path.write_bytes(b[: len(b) // 2])
    elif kind == "random_bytes":
        path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    elif kind == "empty_file":
        path.write_bytes(b"")
    elif kind == "zero_frames":
        sf.write(path, np.zeros((0, 1), np.float32), 16000)
    elif kind == "text":
        path = tmp_path / "notes.txt.wav"
        path.write_text("this is not audio\n" * 100)
    elif kind == "nan":
        sf.write(path, np.array([0.0, np.nan, 0.1] * 50, np.float32), 16000, subtype="FLOAT")
    elif kind == "inf":
        sf.write(path, np.array([0.0, np.inf, 0.1] * 50, np.float32), 16000, subtype="FLOAT")
    elif kind == "rate_low":
        sf.write(path, _sine(100, 500, 1.0), 500)
    elif kind == "rate_high":
        sf.write(path, _sine(100, 768000, 0.01), 768000)
    elif kind == "channels":
        sf.write(path, np.zeros((100, 65), np.float32), 16000)
    return path


@pytest.mark.parametrize(
    "kind, problem",
    [
        ("truncated_header", "cannot read audio"),
        ("truncated_data", "truncated"),
        ("random_bytes", "not a recognised audio format"),
        ("empty_file", "empty file"),
        ("zero_frames", "no audio samples"),
        ("text", "not a recognised audio format"),
        ("nan", "NaN or infinite"),
        ("inf", "NaN or infinite"),
        ("rate_low", "unsupported sample rate 500 Hz"),
        ("rate_high", "unsupported sample rate 768000 Hz"),
        ("channels", "channel count 65"),
    ],
)
def test_bad_files_raise_input_file_error_naming_the_file(tmp_path, kind, problem):
    path = _bad_file(tmp_path, kind)
    with pytest.raises(InputFileError) as info:
        load_audio_file(path, 16000)
    assert info.value.path == str(path)
    assert str(path) in str(info.value)
    assert problem in info.value.problem
    assert "\n" not in str(info.value)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(InputFileError, match="no such file"):
        load_audio_file(tmp_path / "missing.wav", 16000)
    with pytest.raises(InputFileError, match="directory"):
        load_audio_file(tmp_path, 16000)


# ---------------------------------------------------------------------------------------------- writing


@pytest.mark.parametrize("ext, atol", [(".wav", 1e-4), (".flac", 1e-4)])
def test_save_lossless_round_trip(tmp_path, ext, atol):
    x = torch.from_numpy(_sine(500, 16000, 0.25)).unsqueeze(0)  # (1, T)
    path = tmp_path / "sub" / f"out{ext}"
    save_audio_file(x, path, 16000)
    assert sf.info(path).subtype == "PCM_16" and sf.info(path).samplerate == 16000
    y = load_audio_file(path, 16000)
    assert y.shape == x.shape and torch.allclose(x, y, atol=atol)
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp files left


@pytest.mark.parametrize("ext", [".ogg", ".opus", ".mp3"])
def test_save_lossy_formats(tmp_path, ext):
    x = torch.from_numpy(_sine(440, 16000, 1.0)).unsqueeze(0)
    path = tmp_path / f"out{ext}"
    save_audio_file(x, path, 16000)
    y = load_audio_file(path, 16000)
    assert abs(_peak_hz(y, 16000) - 440) < 3.0


def test_save_clips_and_rejects_unknown_extension(tmp_path):
    path = tmp_path / "loud.wav"
    save_audio_file(torch.tensor([[0.0, 3.0, -3.0, 0.5]]), path, 8000)
    data, _ = sf.read(path)
    assert data.max() <= 1.0 and data.min() >= -1.0
    with pytest.raises(InputFileError, match="unsupported audio file extension"):
        save_audio_file(torch.zeros(1, 10), tmp_path / "x.xyz", 16000)


# ---------------------------------------------------------------------------------------------- folders


def _make_folder(root: Path, n: int = 12) -> None:
    for i in range(n):
        sub = root / ("a" if i % 2 else "b")
        sub.mkdir(parents=True, exist_ok=True)
        ext = ["wav", "flac", "ogg"][i % 3]
        sr = [16000, 22050, 44100][i % 3]
        sf.write(sub / f"clip{i}.{ext}", _sine(200 + 50 * i, sr, 1.0 + 0.5 * (i % 4)), sr)


def test_folder_dataset_windows_and_split(tmp_path):
    _make_folder(tmp_path)
    (tmp_path / "readme.txt").write_text("not audio")
    full = AudioFolderDataset(tmp_path, sample_rate=16000, segment_seconds=0.5, split="all")
    assert len(full.files) == 12
    assert len(full) == sum(n_windows(n, 8000) for n in full.lengths)
    for i in (0, len(full) - 1):
        x = full[i]
        assert x.shape == (1, 8000) and x.dtype == torch.float32 and float(x.abs().max()) <= 1.0
    train = AudioFolderDataset(tmp_path, 16000, 0.5, "train")
    test = AudioFolderDataset(tmp_path, 16000, 0.5, "test")
    assert len(test.files) >= 1 and not set(train.keys) & set(test.keys)
    assert set(train.keys) | set(test.keys) == set(full.keys)
    whole = AudioFolderDataset(tmp_path, 16000, None, "all")
    assert len(whole) == 12 and {whole[i].shape[1] for i in range(12)} == {16000, 24000, 32000, 40000}
    lazy = AudioFolderDataset(tmp_path, 16000, 0.5, "all", in_memory=False)
    assert len(lazy) == len(full) and torch.allclose(lazy[3], full[3], atol=1e-4)


def test_n_windows():
    assert n_windows(16000, 16000) == 1
    assert n_windows(100, 16000) == 1
    assert n_windows(24000, 16000) == 2  # half a window or more gets a padded window
    assert n_windows(23999, 16000) == 1
    assert n_windows(48000, 16000) == 3


def test_folder_skips_unreadable_files_with_warning(tmp_path, caplog):
    _make_folder(tmp_path, 4)
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF garbage" * 10)
    with caplog.at_level(logging.WARNING, logger="vqfuse.data"):
        ds = AudioFolderDataset(tmp_path, 16000, 1.0, "all")
    assert len(ds.files) == 4 and [p for p, _ in ds.skipped] == [bad]
    assert any("broken.wav" in r.getMessage() for r in caplog.records)


def test_folder_errors(tmp_path):
    with pytest.raises(InputFileError, match="no audio files"):
        AudioFolderDataset(tmp_path, 16000)
    (tmp_path / "bad.wav").write_bytes(b"nope")
    with pytest.raises(InputFileError, match="none of the 1 audio files"):
        AudioFolderDataset(tmp_path, 16000, split="all")
    with pytest.raises(InputFileError, match="does not exist"):
        AudioFolderDataset(tmp_path / "missing", 16000)


def test_registry_folder_spec(tmp_path):
    _make_folder(tmp_path, 4)
    ds = make_dataset("audio", f"folder:{tmp_path}", sample_rate=8000, segment_seconds=0.25, split="all")
    assert isinstance(ds, AudioFolderDataset) and ds[0].shape == (1, 2000)
    with pytest.raises(VqfuseError, match="needs an argument"):
        make_dataset("audio", "folder", sample_rate=8000, segment_seconds=0.25, split="all")
