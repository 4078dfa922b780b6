"""The plug-in proof: a modality that vqfuse does not ship (a 3-channel sensor signal at 100 Hz in its own
text file format) is defined and registered here, in the test, and then trained, encoded to a token file,
decoded, evaluated and fused with images and speech through the ordinary CLI, with no package change."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from torch import Tensor
from torch.utils.data import Dataset

from tests.helpers.configs import AUDIO_PRESET, IMAGE_PRESET, PRIOR
from tests.helpers.data import RATE, SECONDS, TinyPairs
from vqfuse.cli import main
from vqfuse.data.registry import register_dataset
from vqfuse.errors import InputFileError, VqfuseError
from vqfuse.fusion.model import FusionModel
from vqfuse.io.atomic import atomic_write_text
from vqfuse.io.tokenfile import read_tokens
from vqfuse.modalities.base import Modality, register_modality

pytestmark = pytest.mark.usefixtures("single_thread")

SENSOR_HZ, SENSOR_STEPS = 100, 32  # items of 0.32 s, 3 channels


def sensor_signal(label: int, phase: float) -> Tensor:
    """(3, SENSOR_STEPS): a sine per channel whose frequency encodes the label."""
    t = torch.arange(SENSOR_STEPS) / SENSOR_HZ
    freq = 3.0 + 4.0 * label
    return torch.stack([0.8 * torch.sin(2 * math.pi * freq * t + phase + c) for c in range(3)])


class SensorData(Dataset):
    def __init__(self, split: str) -> None:
        n = {"train": 24, "test": 8, "all": 32}[split]
        self.items = [sensor_signal(i % 4, 0.3 * i) for i in range(n)]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> Tensor:
        return self.items[i]


class SensorModality(Modality):
    """Files: `.sensor` text, one line per time step, one comma-separated value per channel, in [-1, 1]."""

    name, dims, extensions = "sensor", 1, (".sensor",)
    time_axis = 0
    rate_unit, rate_scale, rate_key = "bit/s", 1.0, "bits_per_second"

    def dataset(self, spec: str, split: str, data: dict[str, Any]) -> Dataset:
        if spec != "toy-sensor":
            raise VqfuseError(f"unknown sensor dataset {spec!r}")
        return SensorData(split)

    def meta(self, data: dict[str, Any]) -> dict[str, Any]:
        return {"rate_hz": SENSOR_HZ, "item_shape": [SENSOR_STEPS], "dataset": data.get("train", "")}

    def steps_per_second(self, meta: dict[str, Any]) -> float | None:
        return float(meta.get("rate_hz", SENSOR_HZ))

    def extent(self, size, meta) -> float:
        return size[0] / float(meta.get("rate_hz", SENSOR_HZ))

    def load_file(self, path: Path, meta: dict[str, Any]) -> Tensor:
        try:
            rows = np.loadtxt(path, delimiter=",", ndmin=2, dtype=np.float32)
        except ValueError as exc:
            raise InputFileError(path, f"not a sensor file: {exc}") from None
        if rows.shape[1] != 3 or not np.isfinite(rows).all():
            raise InputFileError(path, f"expected 3 finite columns, got {rows.shape[1]}")
        return torch.from_numpy(rows.T.copy()).clamp(-1, 1)  # (3, T)

    def save_file(self, x: Tensor, path: Path, meta: dict[str, Any]) -> None:
        lines = [",".join(f"{v:.6f}" for v in row) for row in x.detach().float().T.tolist()]
        atomic_write_text(path, "\n".join(lines) + "\n")

    def save_samples(self, inputs: Tensor, outputs: Tensor, path: Path, meta: dict[str, Any]) -> list[Path]:
        written = []
        for kind, batch in (("input", inputs), ("output", outputs)):
            p = Path(path).parent / f"{Path(path).name}-{kind}.sensor"
            self.save_file(batch[0], p, meta)
            written.append(p)
        return written

    def metrics(self, outputs: Tensor, inputs: Tensor, meta: dict[str, Any]) -> dict[str, float]:
        return {"rmse": float((outputs.clamp(-1, 1) - inputs).pow(2).mean().sqrt())}

    def fit(self, x: Tensor, meta: dict[str, Any]) -> Tensor:
        x = x.unsqueeze(0) if x.dim() == 2 else x
        n = int(self.item_shape(meta)[0])
        x = x[..., :n]
        return torch.nn.functional.pad(x, (0, n - x.shape[-1])).float()


register_modality(SensorModality())


class TriPairs(TinyPairs):
    """The pipeline tests' image + audio pairs, with a sensor signal of the same label as a third modality."""

    modalities = ("image", "audio", "sensor")

    @property
    def item_rows(self) -> list[tuple[int, int, int]]:
        return [(j, k, i) for i, (j, k) in enumerate(self.pairs)]

    def sensor(self, i: int) -> Tensor:
        return sensor_signal(self.labels[i], 0.1 * i)


register_dataset("paired", "tri-toy", lambda arg, **kw: TriPairs(**kw), replace=True)

SENSOR_PRESET = {
    "task": "tokenizer",
    "modality": "sensor",
    "data": {"train": "toy-sensor"},
    "model": {
        "autoencoder": {
            "dims": 1,
            "in_channels": 3,
            "channels": 8,
            "channel_mults": [1, 2, 2],
            "strides": [2, 2],
            "latent_dim": 8,
            "norm_groups": 4,
        },
        "quantizer": {"kind": "rvq", "codebook_size": 16, "n_quantizers": 2, "codebook_dim": 4},
    },
    "loss": {"gan_weight": 0.0},
    "train": {
        "steps": 3,
        "batch_size": 8,
        "warmup_steps": 1,
        "log_every": 1,
        "sample_every": 0,
        "checkpoint_every": 0,
        "ema_decay": None,
    },
}


def run(capsys, *args: Any) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_modality_defined_in_a_test_trains_codes_evaluates_and_fuses(tmp_path, capsys):
    preset = tmp_path / "sensor.yaml"
    preset.write_text(yaml.safe_dump(SENSOR_PRESET))
    code, _, err = run(capsys, "train", preset, f"out={tmp_path / 'sensor'}", "--no-progress")
    assert code == 0, err
    model = tmp_path / "sensor" / "model"

    # a file of any length through a token file and back
    signal = torch.cat([sensor_signal(1, 0.0), sensor_signal(2, 0.0)], dim=1)[:, :57]  # (3, 57): not a multiple of 4
    SensorModality().save_file(signal, tmp_path / "walk.sensor", {})
    code, out, err = run(capsys, "encode", model, tmp_path / "walk.sensor", tmp_path / "walk.vqf", "--n-q", "1")
    assert code == 0, err
    assert "bit/s" in out and "s of sensor" in out  # the rate and real-time factor in the modality's units
    tf = read_tokens(tmp_path / "walk.vqf")
    assert tf.modality == "sensor" and tf.shape == (1, 15) and tf.meta["size"] == [57]
    code, _, err = run(capsys, "decode", model, tmp_path / "walk.vqf", tmp_path / "back.sensor")
    assert code == 0, err
    assert SensorModality().load_file(tmp_path / "back.sensor", {}).shape == (3, 57)
    (tmp_path / "bad.sensor").write_text("1,2\n")
    code, _, err = run(capsys, "encode", model, tmp_path / "bad.sensor", tmp_path / "bad.vqf")
    assert (
        code == 1
        and err.strip().splitlines()[-1] == f"error: {tmp_path / 'bad.sensor'}: expected 3 finite columns, got 2"
    )

    code, out, err = run(capsys, "evaluate", model, "--out", tmp_path / "ev")
    assert code == 0, err
    report = json.loads((tmp_path / "ev" / "evaluation.json").read_text())
    assert report["modality"] == "sensor" and {"rmse", "bits_per_second", "codebook_usage"} <= set(report["metrics"])
    assert report["metrics"]["bits_per_second"] == pytest.approx(2 * 4 * SENSOR_HZ / 4)  # 2 stages x 4 bits, hop 4

    # a prior over three modalities
    presets = {}
    for name, raw in (("image", IMAGE_PRESET), ("audio", AUDIO_PRESET)):
        presets[name] = tmp_path / f"{name}.yaml"
        presets[name].write_text(yaml.safe_dump(raw))
    fusion = {
        "task": "fusion",
        "modality": "paired",
        "name": "tri",
        "data": {"train": "tri-toy", "size": 16, "sample_rate": RATE, "segment_seconds": SECONDS},
        "tokenizers": {
            "image": {"preset": str(presets["image"])},
            "audio": {"preset": str(presets["audio"]), "n_q": 2},
            "sensor": {"model": str(model)},
        },
        "prior": PRIOR,
        "train": {"steps": 3, "batch_size": 8, "warmup_steps": 1, "log_every": 1, "checkpoint_every": 0},
    }
    (tmp_path / "tri.yaml").write_text(yaml.dump(fusion, sort_keys=False))
    code, _, err = run(capsys, "train", tmp_path / "tri.yaml", f"out={tmp_path / 'tri'}", "--no-progress")
    assert code == 0, err
    fm = FusionModel.from_run(tmp_path / "tri")
    assert fm.names == ("image", "audio", "sensor") and fm.stages["sensor"] == 2
    heldout = json.loads((tmp_path / "tri" / "metrics.json").read_text())["heldout"]
    assert {"sensor|image,audio/accuracy", "joint/loss"} <= set(heldout)
    code, out, err = run(
        capsys, "generate", tmp_path / "tri", "--from", tmp_path / "walk.sensor", "--to", "image", tmp_path / "walk.png"
    )
    assert code == 0 and "from sensor" in out, err
    code, out, err = run(capsys, "generate", tmp_path / "tri", "--joint", "2", tmp_path / "joint")
    assert code == 0 and "image + audio + sensor" in out, err
    assert sorted(p.name for p in (tmp_path / "joint").iterdir()) == [
        "sample-000.png",
        "sample-000.sensor",
        "sample-000.wav",
        "sample-001.png",
        "sample-001.sensor",
        "sample-001.wav",
    ]


def test_pairs_csv_with_columns_named_by_modality(tmp_path, capsys):
    """`pairs:CSV` whose header names three modalities (the sensor one defined here) feeds a fusion run."""
    from vqfuse.data.audio import save_audio_file
    from vqfuse.data.image_files import save_image_file
    from vqfuse.data.paired import make_paired_dataset

    data, sensor = TriPairs("all"), SensorModality()
    lines = ["image,audio,sensor,label"]
    for i in range(12):
        j, k = data.pairs[i]
        save_image_file(data.image(j), tmp_path / f"{i}.png")
        save_audio_file(data.audio(k), tmp_path / f"{i}.wav", RATE)
        sensor.save_file(data.sensor(i), tmp_path / f"{i}.sensor", {})
        lines.append(f"{i}.png,{i}.wav,{i}.sensor,digit{data.labels[i]}")
    (tmp_path / "broken.sensor").write_text("1,2\n")
    lines.append("0.png,0.wav,broken.sensor,digit0")  # an unreadable file: its row is reported and left out
    (tmp_path / "pairs.csv").write_text("\n".join(lines) + "\n")
    options = {"size": 16, "sample_rate": RATE, "segment_seconds": SECONDS}
    ds = make_paired_dataset(f"pairs:{tmp_path / 'pairs.csv'}", "all", **options)
    assert ds.modalities == ("image", "audio", "sensor") and len(ds) == 12 and len(ds.skipped) == 1
    item = ds[3]
    assert item["image"].shape == (3, 16, 16) and item["audio"].shape == (1, 512) and item["sensor"].shape == (3, 32)
    assert ds.class_names == [f"digit{c}" for c in range(4)] and item["label"] == data.labels[3]
    torch.testing.assert_close(item["sensor"], sensor.load_file(tmp_path / "3.sensor", {}))
    train, test = (make_paired_dataset(f"pairs:{tmp_path / 'pairs.csv'}", s, **options) for s in ("train", "test"))
    assert len(train) + len(test) == 12 and len(test) >= 1
    (tmp_path / "short.csv").write_text("image,audio,sensor\n0.png,0.wav\n")
    with pytest.raises(InputFileError, match="line 2: expected a file for each of image, audio, sensor"):
        make_paired_dataset(f"pairs:{tmp_path / 'short.csv'}", "all", **options)
