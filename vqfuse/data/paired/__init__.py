"""Paired image + audio datasets for multimodal fusion (nothing is downloaded).

Every dataset here is a :class:`PairedDataset` whose items are dicts::

    {"image": (3, S, S) float32 in [-1, 1], "audio": (1, L) float32 in [-1, 1], "label": int}

with mono audio at ``sample_rate`` (16 kHz by default) cut or zero-padded, centred, to a fixed
``segment_seconds``. Build one from a spec with :func:`make_paired_dataset`:

- ``av-digits`` (:class:`AVDigitsDataset`): scikit-learn's handwritten digits, each paired with
  ``pairings`` random spoken digits of the same label (espeak-ng voices), as in the MMVAE recipe.
- ``av-emoji`` (:class:`AVEmojiDataset`): OpenMoji emoji paired with their Unicode name spoken by
  ``pairings`` random voices; the label is the emoji's index in the dataset.
- ``av-moving-digits`` (:class:`AVMovingDigitsDataset`): moving-digits clips (``"video"``, not
  ``"image"``) with their digits spoken in order; the label is the ordered pair ``10 * first + second``.
- ``pairs:PATH`` (:class:`PairsCSVDataset`): a CSV of ``image path, audio path[, label]`` rows.

The held-out split keeps both sides unseen: built-in test pairs use only held-out images (the
image datasets' own deterministic split) and only held-out voices (:func:`~vqfuse.data.speech.split_voices`);
CSV pairs are split by image path.

One module per source (:mod:`.av_digits`, :mod:`.av_emoji`, :mod:`.pairs_csv`, :mod:`.av_moving`), each
registering itself under the ``paired`` modality on import; :mod:`.base` holds what they share.
"""

from __future__ import annotations

import os
from typing import Any

# Importing a source registers it; the import order is the order specs are listed in.
from vqfuse.data.paired.av_digits import AVDigitsDataset
from vqfuse.data.paired.av_emoji import AVEmojiDataset, emoji_spoken_name
from vqfuse.data.paired.base import MODALITY, PairedDataset
from vqfuse.data.paired.pairs_csv import PairRow, PairsCSVDataset, read_pairs_csv
from vqfuse.data.registry import dataset_entries, make_dataset
from vqfuse.errors import VqfuseError

# After pairs:PATH, so the first three specs keep their order.
from vqfuse.data.paired.av_moving import AVMovingDigitsDataset  # isort: skip


def paired_specs() -> list[str]:
    """The known paired dataset specs: ``["av-digits", "av-emoji", "pairs:PATH", "av-moving-digits"]``."""
    return [e.usage for e in dataset_entries(MODALITY)]


def make_multimodal_dataset(spec: str, split: str, names: tuple[str, ...], options: dict[str, Any]) -> Any:
    """The dataset a token prior over the modalities `names` trains on: a paired spec, or for a single
    modality that modality's own dataset spec (`SingleModalityDataset`)."""
    if len(names) == 1 and spec.partition(":")[0].lower() not in {e.name for e in dataset_entries(MODALITY)}:
        from vqfuse.data.paired.single import single_modality_dataset

        return single_modality_dataset(names[0], spec, split, options)
    return make_paired_dataset(spec, split, **options)


def make_paired_dataset(spec: str, split: str = "train", **options: Any) -> PairedDataset:
    """A paired dataset from a spec: ``av-digits``, ``av-emoji`` or ``pairs:PATH`` (a CSV).

    ``options`` go to the dataset's class (``size``, ``pairings``, ``segment_seconds``, ...).
    Raises :class:`VqfuseError` for an unknown spec (listing the known ones) or option.
    """
    s = spec.strip()
    if s.lower().endswith(".csv") and not s.lower().startswith("pairs:") and os.path.isfile(s):
        raise VqfuseError(f"unknown dataset '{s}'; choose {', '.join(paired_specs())} (for this CSV, write pairs:{s})")
    return make_dataset(MODALITY, s, split=split, **options)


__all__ = [
    "make_multimodal_dataset",
    "PairedDataset",
    "AVDigitsDataset",
    "AVEmojiDataset",
    "AVMovingDigitsDataset",
    "PairsCSVDataset",
    "PairRow",
    "emoji_spoken_name",
    "read_pairs_csv",
    "make_paired_dataset",
    "paired_specs",
]
