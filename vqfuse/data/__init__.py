"""Datasets: built-in image data (emoji, digits, photos), image folders, splits and a spec registry.

Every image dataset yields float32 tensors ``(3, S, S)`` in [-1, 1]; build one from a spec string
with :func:`image_dataset` (``emoji``, ``digits``, ``photos``, ``folder:PATH``).
"""

from vqfuse.data.images import (
    IMAGE_EXTENSIONS,
    OPENMOJI_ATTRIBUTION,
    DigitsDataset,
    EmojiDataset,
    FolderDataset,
    PhotosDataset,
    load_image_file,
    save_image_file,
)
from vqfuse.data.paired import PairedDataset, make_paired_dataset
from vqfuse.data.registry import dataset_entries, image_dataset, make_dataset, parse_spec, register_dataset
from vqfuse.data.split import is_heldout, select_split, split_items

__all__ = [
    "IMAGE_EXTENSIONS",
    "OPENMOJI_ATTRIBUTION",
    "DigitsDataset",
    "EmojiDataset",
    "FolderDataset",
    "PhotosDataset",
    "load_image_file",
    "save_image_file",
    "image_dataset",
    "make_dataset",
    "parse_spec",
    "register_dataset",
    "dataset_entries",
    "is_heldout",
    "split_items",
    "select_split",
    "PairedDataset",
    "make_paired_dataset",
]
