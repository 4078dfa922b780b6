"""The contract every built-in modality keeps; a new modality adds its entry to CONTRACT and inherits these
checks: dataset items, file round trip, fitting, rates, metrics, previews and its data section."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from vqfuse.modalities import get_modality

pytestmark = pytest.mark.usefixtures("single_thread")

# name -> (data section of a small built-in set, tolerance of a file round trip, a file suffix)
CONTRACT = {
    "image": ({"train": "digits", "size": 16}, 1 / 255 + 1e-6, ".png"),
    "audio": ({"train": "speech-digits", "sample_rate": 16000, "segment_seconds": 0.5}, 1 / 32768 + 1e-6, ".wav"),
    # gif: a palette per frame; grey moving digits keep their 256 grey levels exactly
    "video": ({"train": "moving-digits", "size": 16, "length": 5}, 1 / 255 + 1e-6, ".gif"),
}


@pytest.fixture(scope="module", params=sorted(CONTRACT))
def case(request):
    name = request.param
    data, tol, suffix = CONTRACT[name]
    modality = get_modality(name)
    meta = modality.meta(data)
    dataset = modality.dataset(data["train"], "test", data)
    return modality, data, meta, dataset, tol, suffix


def test_items_have_the_item_shape_and_range(case):
    modality, _, meta, dataset, _, _ = case
    x = dataset[0]
    assert x.dtype == torch.float32 and x.dim() == modality.dims + 1
    assert tuple(x.shape[1:]) == modality.item_shape(meta)
    assert float(x.min()) >= -1 and float(x.max()) <= 1 and float(x.abs().max()) > 0


def test_file_round_trip(case, tmp_path):
    modality, _, meta, dataset, tol, suffix = case
    x = dataset[0]
    path = tmp_path / f"item{suffix}"
    modality.save_file(x, path, meta)
    assert suffix in modality.extensions and path.is_file()
    y = modality.load_file(path, meta)
    assert y.shape == x.shape and float((y - x).abs().max()) <= tol


def test_fit_gives_the_item_shape(case):
    modality, _, meta, dataset, _, _ = case
    x = dataset[0]
    bigger = torch.nn.functional.pad(x, [0, 3] * modality.dims, mode="replicate" if modality.dims > 1 else "constant")
    fitted = modality.fit(bigger[None], meta)
    assert tuple(fitted.shape) == (1, x.shape[0], *modality.item_shape(meta))
    assert torch.equal(modality.fit(x[None], meta), x[None])  # an item that already fits is unchanged


def test_rate_is_bits_per_extent_in_the_modality_unit(case):
    modality, _, meta, dataset, _, _ = case
    size = tuple(dataset[0].shape[1:])
    extent = modality.extent(size, meta)
    assert extent > 0 and modality.rate(1000.0, extent) == pytest.approx(1000.0 / extent / modality.rate_scale)
    assert modality.rate_text(1000.0, extent).endswith(modality.rate_unit) and modality.rate_text(1.0, 0) == "n/a"
    duration = modality.duration(size, meta)
    assert (duration is None) == (modality.time_axis is None or modality.steps_per_second(meta) is None)
    if duration is not None:
        assert duration == pytest.approx(size[modality.time_axis] / modality.steps_per_second(meta))


def test_metrics_see_the_difference_between_identical_and_noisy_inputs(case):
    modality, _, meta, dataset, _, _ = case
    x = torch.stack([dataset[i] for i in range(2)])
    noisy = (x + 0.1 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))).clamp(-1, 1)
    same, worse = modality.metrics(x, x, meta), modality.metrics(noisy, x, meta)
    assert same and set(same) == set(worse) and all(math.isfinite(v) for v in worse.values())
    assert not any(math.isnan(v) for v in same.values())  # identical inputs may score inf (PSNR), never NaN
    assert all(same[k] != worse[k] for k in same)


def test_preview_is_written(case, tmp_path):
    modality, _, meta, dataset, _, _ = case
    x = torch.stack([dataset[i] for i in range(2)])
    written = modality.save_samples(x, x, tmp_path / "preview", meta)
    assert written and all(Path(p).is_file() and Path(p).stat().st_size > 0 for p in written)


def test_data_section_rebuilds_the_meta(case):
    modality, data, meta, _, _, _ = case
    section = modality.data_section(meta, data["train"])
    assert modality.meta(section) == meta and section["train"] == data["train"]
