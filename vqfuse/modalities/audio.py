"""Audio: mono (1, T) in [-1, 1]; wav/flac/ogg/opus/mp3 files; listenable previews; SI-SNR/STOI/mel metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

import vqfuse.data.speech  # noqa: F401  (registers the "speech" audio dataset)
from vqfuse.data.audio import load_audio_file, save_audio_file  # (registers "folder:PATH")
from vqfuse.data.registry import make_dataset
from vqfuse.errors import VqfuseError
from vqfuse.io.atomic import atomic_path
from vqfuse.losses.reconstruction import mel_spectrogram
from vqfuse.metrics.audio import log_mel_l1, mr_stft_distance, si_snr, stoi
from vqfuse.modalities.base import Modality, register_modality

DEFAULT_SAMPLE_RATE = 16000
DEFAULT_SEGMENT_SECONDS = 1.0
MAX_PREVIEW_CLIPS = 4


def _sample_rate(meta_or_data: dict[str, Any]) -> int:
    return int(meta_or_data.get("sample_rate", DEFAULT_SAMPLE_RATE))


def _segment_seconds(data: dict[str, Any]) -> float | None:
    value = data.get("segment_seconds", DEFAULT_SEGMENT_SECONDS)
    return None if value is None else float(value)


def save_log_mel_png(inputs: Tensor, outputs: Tensor, path: Path, sample_rate: int) -> Path:
    """One PNG: log-mel spectrograms of ``inputs`` (top row) above ``outputs`` (bottom row), one column
    per clip; inputs/outputs are ``(N, 1, T)``. Written atomically (matplotlib Agg, no pyplot state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n = inputs.shape[0]
    mels = [
        mel_spectrogram(x.float(), sample_rate, n_fft=1024, n_mels=80, hop_length=256)[0].clamp_min(1e-5).log()
        for x in (*inputs, *outputs)
    ]  # each (80, frames)
    lo = min(float(m.min()) for m in mels)
    hi = max(float(m.max()) for m in mels)
    fig = Figure(figsize=(3.2 * n, 4.8), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, n, squeeze=False)
    seconds = inputs.shape[-1] / sample_rate
    for k, mel in enumerate(mels):
        row, col = divmod(k, n)
        ax = axes[row][col]
        ax.imshow(
            mel.numpy(),
            origin="lower",
            aspect="auto",
            vmin=lo,
            vmax=hi,
            cmap="magma",
            extent=(0.0, seconds, 0, mel.shape[0]),
        )
        ax.set_title(f"{'input' if row == 0 else 'output'} {col}", fontsize=9)
        ax.set_xlabel("s", fontsize=8)
        ax.tick_params(labelsize=7)
        if col == 0:
            ax.set_ylabel("mel bin", fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path


class AudioModality(Modality):
    name = "audio"
    dims = 1
    extensions = (".wav", ".flac", ".ogg", ".opus", ".mp3")
    time_axis = 0
    rate_unit, rate_scale, rate_key = "kbit/s", 1000.0, "kbps"
    noun = "speech"
    repair_mode = "enhance"
    element = "samples"
    study_snr_db = -5.0  # clean spoken digits are classified almost perfectly on their own

    def dataset(self, spec: str, split: str, data: dict[str, Any]) -> Dataset:
        """``speech`` or ``folder:PATH``; data keys ``sample_rate`` (16000), ``segment_seconds`` (1.0)."""
        return make_dataset(
            "audio", spec, sample_rate=_sample_rate(data), segment_seconds=_segment_seconds(data), split=split
        )

    def meta(self, data: dict[str, Any]) -> dict[str, Any]:
        meta: dict[str, Any] = {"sample_rate": _sample_rate(data), "dataset": data.get("train", "")}
        seconds = _segment_seconds(data)
        meta["segment_seconds"] = seconds
        if seconds is not None:
            meta["item_shape"] = [max(1, round(seconds * meta["sample_rate"]))]
        return meta

    def steps_per_second(self, meta: dict[str, Any]) -> float | None:
        return float(_sample_rate(meta))

    def extent(self, size: tuple[int, ...] | list[int], meta: dict[str, Any]) -> float:
        """Seconds: audio rates are per second (kbit/s)."""
        return size[0] / float(_sample_rate(meta))

    def describe(self, size: tuple[int, ...] | list[int], meta: dict[str, Any]) -> str:
        return f"{size[0] / _sample_rate(meta):g} s at {_sample_rate(meta)} Hz"

    def token_meta(self, meta: dict[str, Any]) -> dict[str, Any]:
        return {"sample_rate": _sample_rate(meta)}

    def fit(self, x: Tensor, meta: dict[str, Any]) -> Tensor:
        """(B, 1, T) or (B, T) -> (B, 1, N), N the item length: centred, cut or zero-padded."""
        if x.dim() == 2:
            x = x.unsqueeze(1)
        if x.dim() != 3 or x.shape[1] != 1:
            raise VqfuseError(f"audio must be (B, 1, T) or (B, T), got {tuple(x.shape)}")
        shape = self.item_shape(meta)
        if shape is None:
            return x.float()
        n, t = shape[0], x.shape[-1]
        if t > n:
            start = (t - n) // 2
            x = x[..., start : start + n]
        elif t < n:
            left = (n - t) // 2
            x = F.pad(x, (left, n - t - left))
        return x.float()

    def load_file(self, path: Path, meta: dict[str, Any]) -> Tensor:
        return load_audio_file(path, _sample_rate(meta))  # (1, T)

    def save_file(self, x: Tensor, path: Path, meta: dict[str, Any]) -> None:
        save_audio_file(x, path, _sample_rate(meta))

    def save_samples(self, inputs: Tensor, outputs: Tensor, path: Path, meta: dict[str, Any]) -> list[Path]:
        """``<stem>-<i>-input.wav`` / ``<stem>-<i>-output.wav`` for up to 4 clips, and ``<stem>.png`` with
        their log-mel spectrograms (inputs above outputs)."""
        sr = _sample_rate(meta)
        path = Path(path)
        stem = path.name[: -len(path.suffix)] if path.suffix.lower() in (".wav", ".png") else path.name
        n = min(inputs.shape[0], MAX_PREVIEW_CLIPS)
        x = inputs[:n].detach().float().cpu().clamp(-1, 1)  # (n, 1, T)
        y = outputs[:n].detach().float().cpu().clamp(-1, 1)
        written: list[Path] = []
        for i in range(n):
            for kind, clip in (("input", x[i]), ("output", y[i])):
                p = path.parent / f"{stem}-{i}-{kind}.wav"
                save_audio_file(clip, p, sr)
                written.append(p)
        written.append(save_log_mel_png(x, y, path.parent / f"{stem}.png", sr))
        return written

    def metrics(self, outputs: Tensor, inputs: Tensor, meta: dict[str, Any]) -> dict[str, float]:
        sr = _sample_rate(meta)
        est, ref = outputs.detach().float().clamp(-1, 1), inputs.detach().float()
        return {
            "si_snr": float(si_snr(est, ref)),
            "stoi": float(stoi(est, ref, sr)),
            "log_mel_l1": float(log_mel_l1(est, ref, sr)),
            "mr_stft": float(mr_stft_distance(est, ref)),
        }

    def damage(self, items: Tensor, generator: Any, settings: dict[str, Any]) -> tuple[Tensor, Tensor | None]:
        """Noise at ``snr_db`` (0) dB, ``noise`` "white" or "babble"."""
        from vqfuse.fusion.damage import add_noise

        snr, kind = float(settings.get("snr_db", 0.0)), settings.get("noise", "white")
        return add_noise(items, snr, generator, kind=kind), None

    def repair_output(self, damaged: Tensor, decoded: Tensor, reencoded: Tensor, mask: Tensor | None) -> Tensor:
        """Enhancement as a spectral gain on the noisy input (phase kept); inpainting as the base does."""
        if mask is not None:
            return super().repair_output(damaged, decoded, reencoded, mask)
        from vqfuse.modalities.audio_gain import spectral_gain

        return spectral_gain(damaged, decoded, reencoded)

    def repair_scores(self, repaired: Tensor, clean: Tensor, damaged: Tensor, mask: Tensor | None) -> dict[str, Tensor]:
        """SI-SNR improvement (dB) over the damaged input, per item."""
        base = si_snr(damaged, clean, reduction="none")
        return {"si_snr_improvement": si_snr(repaired, clean, reduction="none") - base}

    def make_judge(self, num_classes: int) -> Any:
        from vqfuse.fusion.judge_kinds import AudioJudge

        return AudioJudge(num_classes=num_classes)


register_modality(AudioModality())
