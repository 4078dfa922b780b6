"""Audio files and folders of audio files.

Files are read with soundfile (libsndfile ships inside its wheel: wav incl. RF64/W64, flac, ogg/vorbis,
ogg/opus, mp3, aiff, ...), downmixed to mono and resampled with soxr (high quality) to the model's rate.
Every problem with a file becomes an :class:`~vqfuse.errors.InputFileError` naming it.

Tensors are float32 ``(C, T)`` in [-1, 1]; the datasets yield ``(1, T)``.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from vqfuse.data.files import FileFolderDataset, find_files, no_files_problem
from vqfuse.data.registry import register_dataset
from vqfuse.data.split import check_split
from vqfuse.errors import InputFileError, PathLike, VqfuseError
from vqfuse.io.atomic import atomic_path, describe_os_error

AUDIO_EXTENSIONS: tuple[str, ...] = ("wav", "flac", "ogg", "opus", "mp3")
NO_AUDIO_PROBLEM = no_files_problem("audio", AUDIO_EXTENSIONS)
MIN_SAMPLE_RATE = 1000
MAX_SAMPLE_RATE = 384000
MAX_CHANNELS = 64
# Decoded folders at most this many bytes (int16 at the dataset rate) are kept in memory.
FOLDER_IN_MEMORY_BYTES = 2 * 1024**3

# extension -> (soundfile format, default subtype) for writing
_WRITE_FORMATS: dict[str, tuple[str, str]] = {
    ".wav": ("WAV", "PCM_16"),
    ".flac": ("FLAC", "PCM_16"),
    ".ogg": ("OGG", "VORBIS"),
    ".opus": ("OGG", "OPUS"),
    ".mp3": ("MP3", "MPEG_LAYER_III"),
}
_OPUS_RATES = (8000, 12000, 16000, 24000, 48000)
_WAV_DATA_LOG = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)


# ----------------------------------------------------------------------------------------------
# Reading


def _sf_problem(exc: BaseException) -> str:
    """A one-line reason from a soundfile/libsndfile error."""
    text = str(exc).strip()
    if "Format not recognised" in text or "format not recognised" in text.lower():
        return "not a recognised audio format (or corrupt header)"
    text = re.sub(r"^Error opening '.*?': ", "", text)
    return f"cannot read audio: {text or type(exc).__name__}"


def _check_truncated_wav(info_log: str, path: PathLike) -> None:
    """libsndfile reads what is there of a truncated WAV; its header log says how much is missing."""
    m = _WAV_DATA_LOG.search(info_log)
    if m:
        declared, actual = int(m.group(1)), int(m.group(2))
        if declared - actual > 1:  # a missing pad byte is harmless; missing samples are not
            raise InputFileError(
                path, f"cannot read audio: file is truncated (header declares {declared} data bytes, {actual} present)"
            )


def read_audio(path: PathLike) -> tuple[np.ndarray, int]:
    """Read an audio file at its own rate -> ``(samples (T, C) float32, sample_rate)``, checked.

    Raises :class:`InputFileError` for a missing/unreadable/corrupt/truncated file, an unknown format,
    no samples, a sample rate outside [1 kHz, 384 kHz], more than 64 channels, or NaN/inf samples.
    """
    import soundfile as sf

    p = Path(path)
    try:
        if p.is_dir():
            raise IsADirectoryError(21, "Is a directory", str(p))
        size = p.stat().st_size
    except OSError as exc:
        raise InputFileError(path, describe_os_error(exc, path)) from None
    if size == 0:
        raise InputFileError(path, "empty file (0 bytes)")
    try:
        with sf.SoundFile(str(p)) as f:
            sr, channels, frames, fmt = int(f.samplerate), int(f.channels), int(f.frames), f.format
            if not MIN_SAMPLE_RATE <= sr <= MAX_SAMPLE_RATE:
                raise InputFileError(
                    path, f"unsupported sample rate {sr} Hz (expected {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz)"
                )
            if channels < 1 or channels > MAX_CHANNELS:
                raise InputFileError(path, f"unsupported channel count {channels} (at most {MAX_CHANNELS})")
            if fmt in ("WAV", "WAVEX", "RF64", "W64"):
                _check_truncated_wav(f.extra_info, path)
            data = f.read(dtype="float32", always_2d=True)  # (T, C)
    except InputFileError:
        raise
    except OSError as exc:
        raise InputFileError(path, describe_os_error(exc, path)) from None
    except Exception as exc:  # noqa: BLE001 - libsndfile/cffi errors, decoder failures
        raise InputFileError(path, _sf_problem(exc)) from None
    if data.shape[0] == 0:
        raise InputFileError(path, "no audio samples")
    if fmt not in ("MP3",) and frames > 0 and data.shape[0] < frames:  # mp3 frame counts are estimates
        raise InputFileError(path, f"cannot read audio: file is truncated ({data.shape[0]} of {frames} frames)")
    if not np.isfinite(data).all():
        raise InputFileError(path, "audio contains NaN or infinite samples")
    return data, sr


def resample(x: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """soxr high-quality resampling of ``(T,)`` or ``(T, C)`` float32 samples."""
    if from_rate == to_rate:
        return x
    import soxr

    return soxr.resample(x, from_rate, to_rate, quality="HQ").astype(np.float32, copy=False)


def load_audio_file(path: PathLike, sample_rate: int | None = 16000, mono: bool = True) -> torch.Tensor:
    """Read any audio file soundfile can decode -> float32 ``(1, T)`` (``mono``) or ``(C, T)`` in [-1, 1].

    Channels are averaged to mono; audio is resampled with soxr to ``sample_rate`` (None keeps the
    file's rate). Float files that exceed full scale are scaled down to peak 1 (not clipped).
    Raises :class:`InputFileError` naming the file on any problem.
    """
    data, sr = read_audio(path)  # (T, C)
    if mono:
        data = data.mean(axis=1, keepdims=True, dtype=np.float64).astype(np.float32)  # (T, 1)
    peak = float(np.abs(data).max())
    if peak > 1.0:
        data = data / peak
    if sample_rate is not None:
        data = resample(data, sr, int(sample_rate))
        if data.shape[0] == 0:
            raise InputFileError(path, "no audio samples (too short to resample)")
    x = torch.from_numpy(np.ascontiguousarray(data.T))  # (C, T)
    return x.clamp_(-1.0, 1.0)


# ----------------------------------------------------------------------------------------------
# Samples: int16 storage, clip lengths


def to_int16(x: np.ndarray) -> np.ndarray:
    """Float samples in [-1, 1] -> int16 (full scale 32767, clipped), e.g. to keep audio in memory."""
    return np.clip(np.round(x * 32767.0), -32767, 32767).astype(np.int16)


def int16_to_tensor(a: np.ndarray) -> torch.Tensor:
    """int16 ``(T,)`` -> float32 ``(1, T)`` in [-1, 1]."""
    return torch.from_numpy(a.astype(np.float32) / 32767.0).unsqueeze(0)


def check_sample_rate(sample_rate: int) -> int:
    """``sample_rate`` if it is at least :data:`MIN_SAMPLE_RATE` (1 kHz), else a :class:`VqfuseError`."""
    if int(sample_rate) < MIN_SAMPLE_RATE:
        raise VqfuseError(f"sample_rate must be >= {MIN_SAMPLE_RATE} Hz, got {sample_rate}")
    return sample_rate


def check_segment_seconds(segment_seconds: float | None) -> float | None:
    """``segment_seconds`` if it is None or > 0, else a :class:`VqfuseError`."""
    if segment_seconds is not None and not segment_seconds > 0:
        raise VqfuseError(f"segment_seconds must be > 0 or None, got {segment_seconds}")
    return segment_seconds


def segment_samples(segment_seconds: float | None, sample_rate: int) -> int | None:
    """Samples in a clip of ``segment_seconds`` at ``sample_rate`` (at least 1); None stays None."""
    return None if segment_seconds is None else max(1, round(segment_seconds * sample_rate))


def fit_length(x: torch.Tensor, length: int, generator: np.random.Generator | None = None) -> torch.Tensor:
    """Crop or zero-pad ``(C, T)`` to ``(C, length)``: a random window/offset with ``generator``, else centred."""
    t = x.shape[-1]
    if t == length:
        return x
    if t > length:
        start = int(generator.integers(0, t - length + 1)) if generator is not None else (t - length) // 2
        return x[..., start : start + length]
    pad = length - t
    left = int(generator.integers(0, pad + 1)) if generator is not None else pad // 2
    return torch.nn.functional.pad(x, (left, pad - left))


# ----------------------------------------------------------------------------------------------
# Writing


def _as_samples(x: torch.Tensor | np.ndarray) -> np.ndarray:
    """``(T,)``, ``(C, T)`` or ``(1, C, T)`` -> ``(T, C)`` float32 clipped to [-1, 1]."""
    a = x.detach().to("cpu", torch.float32).numpy() if isinstance(x, torch.Tensor) else np.asarray(x, np.float32)
    if a.ndim == 3 and a.shape[0] == 1:
        a = a[0]
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2 or a.shape[0] > MAX_CHANNELS:
        raise ValueError(f"expected audio (T,) or (C, T) with C <= {MAX_CHANNELS}, got shape {tuple(a.shape)}")
    return np.ascontiguousarray(np.clip(np.nan_to_num(a), -1.0, 1.0).T)  # (T, C)


def save_audio_file(x: torch.Tensor | np.ndarray, path: PathLike, sample_rate: int, subtype: str | None = None) -> None:
    """Write ``(C, T)`` (or ``(T,)``) in [-1, 1] atomically; the format follows the extension.

    .wav (PCM 16-bit unless ``subtype`` says otherwise), .flac, .ogg (Vorbis), .opus (Opus; audio at
    other rates is resampled to 48 kHz, the rate Opus decodes at), .mp3.
    """
    import soundfile as sf

    path = Path(path)
    ext = path.suffix.lower()
    if ext not in _WRITE_FORMATS:
        raise InputFileError(path, f"unsupported audio file extension '{path.suffix}'; use {', '.join(_WRITE_FORMATS)}")
    fmt, default_subtype = _WRITE_FORMATS[ext]
    data = _as_samples(x)  # (T, C)
    rate = int(sample_rate)
    if ext == ".opus" and rate not in _OPUS_RATES:
        data, rate = np.clip(resample(data, rate, 48000), -1.0, 1.0), 48000
    try:
        with atomic_path(path) as tmp:
            sf.write(str(tmp), data, rate, format=fmt, subtype=subtype or default_subtype)
    except InputFileError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise InputFileError(path, f"cannot write audio ({exc})") from None


# ----------------------------------------------------------------------------------------------
# Folder dataset


def find_audio_files(root: PathLike) -> list[Path]:
    """Audio files under ``root`` (recursive, sorted, case-insensitive extensions; hidden entries skipped)."""
    return find_files(root, AUDIO_EXTENSIONS)


def n_windows(length: int, window: int) -> int:
    """Fixed windows cut from ``length`` samples: whole windows, plus a last zero-padded one if at least
    half of it is audio; always at least one."""
    full, rest = divmod(length, window)
    return max(1, full + (1 if rest >= window / 2 else 0))


def _estimate_samples(path: Path, sample_rate: int) -> int:
    """Samples of ``path`` at ``sample_rate`` according to its header (0 if unreadable)."""
    import soundfile as sf

    try:
        info = sf.info(str(path))
        return int(info.frames * sample_rate / max(1, info.samplerate))
    except Exception:  # noqa: BLE001 - the full read reports the problem
        return 0


class AudioFolderDataset(FileFolderDataset):
    """Every audio file under ``path`` (recursive), mono at ``sample_rate``, items ``(1, T)`` in [-1, 1].

    With ``segment_seconds`` each file is cut into consecutive fixed windows (the last one zero-padded,
    see :func:`n_windows`) and items index ``(file, window)`` pairs; with ``None`` an item is a whole file.
    All files of the split are decoded at construction (in threads), so a corrupt or unreadable file is
    found before training: it is logged as ``skipping <file>: <problem>``, kept in ``.skipped`` and left
    out. Decoded audio stays in memory (int16) when it fits in :data:`FOLDER_IN_MEMORY_BYTES`, else
    files are re-read per item.

    The split is by relative path (about ``fraction`` held out, at least one file when there are two).

    Raises:
        InputFileError: the folder is missing, holds no audio files, or none of them can be read.
    """

    kind = "audio"
    extensions = AUDIO_EXTENSIONS
    key_prefix = "audio/"

    def __init__(
        self,
        path: PathLike,
        sample_rate: int = 16000,
        segment_seconds: float | None = 1.0,
        split: str = "train",
        fraction: float = 0.1,
        in_memory: bool | None = None,
        workers: int | None = None,
    ) -> None:
        check_split(split)
        check_segment_seconds(segment_seconds)
        self.sample_rate, self.split, self.segment_seconds = int(sample_rate), split, segment_seconds
        self.segment_length: int | None = segment_samples(segment_seconds, sample_rate)
        files = self._split_files(path, split, fraction)
        if in_memory is None:  # int16 at the dataset rate, estimated from the headers
            in_memory = sum(_estimate_samples(f, self.sample_rate) for f in files) * 2 <= FOLDER_IN_MEMORY_BYTES
        self.in_memory = in_memory

        def load(f: Path) -> np.ndarray | int | str:
            try:
                x = load_audio_file(f, self.sample_rate)[0].numpy()  # (T,)
            except InputFileError as exc:
                return exc.problem
            return to_int16(x) if self.in_memory else len(x)

        results: list[np.ndarray | int] = self._read_all(files, load, workers)
        lengths = [len(r) if isinstance(r, np.ndarray) else int(r) for r in results]
        self.lengths: list[int] = lengths  # samples at sample_rate, per file
        arrays = [r for r in results if isinstance(r, np.ndarray)]  # int16 (T_i,) per file, when in memory
        self._audio: list[np.ndarray] | None = arrays if self.in_memory else None
        # items: (file index, window start sample)
        if self.segment_length is None:
            self.items: list[tuple[int, int]] = [(i, 0) for i in range(len(self.files))]
        else:
            L = self.segment_length
            self.items = [(i, w * L) for i, n in enumerate(lengths) for w in range(n_windows(n, L))]

    def __len__(self) -> int:
        return len(self.items)

    def file_audio(self, i: int) -> torch.Tensor:
        """The whole of file ``i`` at the dataset rate: ``(1, T)``."""
        if self._audio is not None:
            return int16_to_tensor(self._audio[i])
        return load_audio_file(self.files[i], self.sample_rate)

    def __getitem__(self, index: int) -> torch.Tensor:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        i, start = self.items[index % len(self)]
        x = self.file_audio(i)  # (1, T)
        if self.segment_length is None:
            return x
        window = x[:, start : start + self.segment_length]
        return torch.nn.functional.pad(window, (0, self.segment_length - window.shape[1]))  # (1, L)

    @property
    def seconds(self) -> float:
        return sum(self.lengths) / self.sample_rate

    def __repr__(self) -> str:
        return (
            f"AudioFolderDataset({str(self.root)!r}, files={len(self.files)}, n={len(self)}, "
            f"seconds={self.seconds:.0f}, skipped={len(self.skipped)})"
        )


def _folder_factory(
    arg: str | None, sample_rate: int = 16000, segment_seconds: float | None = 1.0, split: str = "train", **options
) -> AudioFolderDataset:
    """Registry factory for ``folder:PATH``."""
    return AudioFolderDataset(
        arg or "", sample_rate=sample_rate, segment_seconds=segment_seconds, split=split, **options
    )


register_dataset(
    "audio", "folder", _folder_factory, arg="PATH", help="every audio file (wav, flac, ogg, opus, mp3) under a folder"
)

__all__ = [
    "AUDIO_EXTENSIONS",
    "MIN_SAMPLE_RATE",
    "MAX_SAMPLE_RATE",
    "MAX_CHANNELS",
    "read_audio",
    "resample",
    "load_audio_file",
    "save_audio_file",
    "find_audio_files",
    "n_windows",
    "to_int16",
    "int16_to_tensor",
    "check_sample_rate",
    "check_segment_seconds",
    "segment_samples",
    "fit_length",
    "AudioFolderDataset",
]
