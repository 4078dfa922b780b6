"""A modality owns everything kind-specific: datasets, file I/O, rates, fitting, previews, quality metrics.

The tokenizer, the codec, the trainer, the evaluator, the CLI and fusion only talk to this interface, so a
new kind of data (video, a sensor signal) plugs in by registering another `Modality`; nothing outside its
own module names it.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset


class Modality(ABC):
    """One kind of data. Items are float tensors (C, *spatial) in [-1, 1].

    Class attributes:
        name: registry name, also recorded in models and token files.
        dims: spatial axes of one item: 1 audio (T,), 2 image (H, W), 3 video (T, H, W).
        extensions: file suffixes the CLI reads, lower case with the dot; the first is the default output.
        time_axis: the spatial axis that long inputs are windowed along (0 = first), None to process an
            item in one go (images).
        rate_unit, rate_scale, rate_key: how a code stream's rate is shown: bits per `extent` unit divided
            by `rate_scale`, e.g. ("bits/pixel", 1, "bits_per_pixel") or ("kbit/s", 1000, "kbps").
        noun: what items are called in report keys and file names ("speech_to_image"); defaults to `name`.
        repair_mode: how `vqfuse repair` mends a damaged item: "inpaint" (the missing elements are given
            by a mask and re-infilled; known elements are copied back exactly), "enhance" (no mask: the
            tokens the prior finds least likely are re-infilled) or None (no repair).
        element, mask_help: what one element of an item is called ("pixels", "samples") and what a mask
            file for `vqfuse repair --mask` is, in words.
        robustness_sweep: whether the fused-classification study sweeps degradations of this modality's
            items (`vqfuse.fusion.robustness.degrade`: noise, dropout, occlusion of 2D items).
        study_snr_db: white noise (dB SNR) added to this modality's items in the fused-classification
            study so that it does not saturate on its own; None leaves items clean.
    """

    name: str
    dims: int
    extensions: tuple[str, ...]
    time_axis: int | None = None
    rate_unit: str = "bits/element"
    rate_scale: float = 1.0
    rate_key: str = "bits_per_element"
    repair_mode: str | None = None
    element: str = "elements"
    mask_help: str = "a mask file"
    study_snr_db: float | None = None
    robustness_sweep: bool = False

    @property
    def noun(self) -> str:
        return self.name

    @abstractmethod
    def dataset(self, spec: str, split: str, data: dict[str, Any]) -> Dataset:
        """Items are float tensors (C, *spatial) in [-1, 1]. `data` is the run config's data section."""

    @abstractmethod
    def meta(self, data: dict[str, Any]) -> dict[str, Any]:
        """Facts stored with the model (image size, sample rate ...), from the run config's data section."""

    def data_section(self, meta: dict[str, Any], spec: str) -> dict[str, Any]:
        """The inverse of `meta`: the data section that rebuilds dataset `spec` the way the model saw it."""
        data = {k: v for k, v in meta.items() if k != "attribution"}
        data["train"] = spec
        return data

    @abstractmethod
    def load_file(self, path: Path, meta: dict[str, Any]) -> Tensor:
        """One file -> (C, *spatial) in [-1, 1]; raises InputFileError naming the file."""

    @abstractmethod
    def save_file(self, x: Tensor, path: Path, meta: dict[str, Any]) -> None:
        """(C, *spatial) in [-1, 1] -> one file, written atomically."""

    def save_output(self, x: Tensor, path: Path, meta: dict[str, Any], source: Path | None = None) -> str:
        """Write a decoded item; `source` is the file it was reconstructed from (None when decoding a token
        file), so that what the tokens do not carry (a video's audio track) can be kept. Returns a note for
        the user ("" for none)."""
        self.save_file(x, path, meta)
        return ""

    def encode_note(self, path: Path) -> str:
        """What encoding `path` to tokens leaves behind, in words ("" for nothing)."""
        return ""

    @abstractmethod
    def save_samples(self, inputs: Tensor, outputs: Tensor, path: Path, meta: dict[str, Any]) -> list[Path]:
        """A preview a person can look at or listen to (input | reconstruction); returns files written."""

    @abstractmethod
    def metrics(self, outputs: Tensor, inputs: Tensor, meta: dict[str, Any]) -> dict[str, float]:
        """Quality of a batch of reconstructions (B, C, *spatial), averaged per item."""

    @abstractmethod
    def fit(self, x: Tensor, meta: dict[str, Any]) -> Tensor:
        """A batch (B, C, *any) -> (B, C, *item_shape): what a fixed-length consumer (a fusion prior) needs;
        raises VqfuseError on a wrong channel count or rank."""

    # ---- shapes and rates ---------------------------------------------------------------------------

    def item_shape(self, meta: dict[str, Any]) -> tuple[int, ...] | None:
        """Spatial shape of one training item, or None where items vary in size."""
        shape = meta.get("item_shape")
        return None if shape is None else tuple(int(n) for n in shape)

    def steps_per_second(self, meta: dict[str, Any]) -> float | None:
        """Signal steps per second along `time_axis` (the sample rate, the frame rate); None if untimed."""
        return None

    def duration(self, size: tuple[int, ...] | list[int], meta: dict[str, Any]) -> float | None:
        """Seconds of signal in an item of spatial `size`, None for untimed data."""
        rate = self.steps_per_second(meta)
        if rate is None or self.time_axis is None:
            return None
        return size[self.time_axis] / float(rate)

    def extent(self, size: tuple[int, ...] | list[int], meta: dict[str, Any]) -> float:
        """How much signal an item of spatial `size` holds, in the unit a rate is per (pixels, seconds)."""
        return float(math.prod(size))

    def rate(self, bits: float, extent: float) -> float:
        """Rate of `bits` spent on `extent` units of signal, in `rate_unit`."""
        return bits / extent / self.rate_scale if extent > 0 else float("nan")

    def rate_text(self, bits: float, extent: float) -> str:
        if extent <= 0:
            return "n/a"
        return f"{self.rate(bits, extent):.4g} {self.rate_unit}"

    def describe(self, size: tuple[int, ...] | list[int], meta: dict[str, Any]) -> str:
        """An item of spatial `size` in words, e.g. "32x32 px" or "1 s at 16000 Hz"."""
        return "x".join(str(int(n)) for n in size)

    def token_meta(self, meta: dict[str, Any]) -> dict[str, Any]:
        """Facts a token file records besides its size, so that it can be decoded alone (e.g. a sample rate)."""
        return {}

    def info_rows(self, meta: dict[str, Any]) -> dict[str, Any]:
        """Extra facts `vqfuse info` shows for a model of this modality."""
        return {}

    def default_output_suffix(self) -> str:
        return self.extensions[0]

    # ---- repair and judged evaluation (fusion) --------------------------------------------------------

    def load_mask(self, path: Path, meta: dict[str, Any]) -> Tensor:
        """A mask file -> (1, 1, *item_shape) bool, True = missing, fitted like the items."""
        from vqfuse.errors import VqfuseError

        raise VqfuseError(f"{path}: {self.name} items are not repaired with a mask")

    def damage(self, items: Tensor, generator: Any, settings: dict[str, Any]) -> tuple[Tensor, Tensor | None]:
        """The damage the repair evaluation applies to clean items (B, C, *item): (damaged items, the
        missing-element mask (B, 1, *item) bool for "inpaint", None for "enhance")."""
        raise NotImplementedError(f"{self.name} defines no repair damage")

    def repair_output(self, damaged: Tensor, decoded: Tensor, reencoded: Tensor, mask: Tensor | None) -> Tensor:
        """The repaired items from the damaged input, the decoded repaired tokens and the decoded damaged
        tokens (all (B, C, *item)): by default the decoded items with the known elements copied back."""
        if mask is None:
            return decoded
        return torch.where(mask.expand_as(damaged), decoded, damaged)

    def repair_scores(self, repaired: Tensor, clean: Tensor, damaged: Tensor, mask: Tensor | None) -> dict[str, Tensor]:
        """Per-item quality of repaired items {figure: (B,)}, higher is better."""
        raise NotImplementedError(f"{self.name} defines no repair score")

    def make_judge(self, num_classes: int) -> Any:
        """A classifier of real items (a `vqfuse.fusion.judges.Judge`) that scores generations, or None."""
        return None


_MODALITIES: dict[str, Modality] = {}


def register_modality(modality: Modality) -> None:
    """Makes `modality` known by its name (a later registration of the same name replaces it)."""
    _MODALITIES[modality.name] = modality


def get_modality(name: str) -> Modality:
    from vqfuse.errors import ConfigError

    if name not in _MODALITIES:
        raise ConfigError(f"unknown modality {name!r}; known: {', '.join(sorted(_MODALITIES))}")
    return _MODALITIES[name]


def registered_modalities() -> list[str]:
    return sorted(_MODALITIES)
