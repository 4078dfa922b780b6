"""Tests for vqfuse.data: splits, built-in image datasets, folder datasets, image files, registry."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vqfuse.data import (
    OPENMOJI_ATTRIBUTION,
    DigitsDataset,
    EmojiDataset,
    FolderDataset,
    PhotosDataset,
    image_dataset,
    is_heldout,
    load_image_file,
    make_dataset,
    register_dataset,
    save_image_file,
    split_items,
)
from vqfuse.data import emoji as emoji_mod
from vqfuse.data import photos as photos_mod
from vqfuse.data.cache import cache_dir
from vqfuse.data.registry import parse_spec
from vqfuse.data.split import heldout_score
from vqfuse.errors import InputFileError, VqfuseError


def _in_range(x: torch.Tensor) -> bool:
    return x.dtype == torch.float32 and float(x.min()) >= -1.0 and float(x.max()) <= 1.0


# ---------------------------------------------------------------------------------------------- split


def test_is_heldout_is_stable_and_near_fraction():
    keys = [f"item/{i}" for i in range(20000)]
    held = [is_heldout(k, 0.1) for k in keys]
    assert held == [is_heldout(k, 0.1) for k in keys]
    assert 0.09 < sum(held) / len(keys) < 0.11
    # pinned values: a change to the hash would silently reshuffle every split
    assert heldout_score("emoji/1F600") == pytest.approx(0.122133, abs=1e-6)
    assert heldout_score("photos/astronaut") == pytest.approx(0.307742, abs=1e-6)
    assert is_heldout("x", 0.0) is False and is_heldout("x", 1.0) is True
    assert [is_heldout(k, 0.5, salt="a") for k in keys[:200]] != [is_heldout(k, 0.5, salt="b") for k in keys[:200]]


def test_split_items_keeps_order_and_min_heldout():
    items = list(range(1000))
    train, test = split_items(items, str, 0.1)
    assert sorted(train + test) == items and not set(train) & set(test)
    assert train == sorted(train) and test == sorted(test)
    # membership depends on the key only, not on the other items
    _, test_sub = split_items(items[:500], str, 0.1)
    assert test_sub == [t for t in test if t < 500]
    small_train, small_test = split_items(["a", "b", "c"], str, 0.0, min_heldout=2)
    assert len(small_test) == 2 and len(small_train) == 1
    one_train, one_test = split_items(["a"], str, 1.0, min_heldout=1)
    assert (len(one_train), len(one_test)) == (0, 1)  # hash decided; min_heldout never forces train empty


# ---------------------------------------------------------------------------------------------- emoji


def test_emoji_dataset_all_splits():
    train, test = EmojiDataset(32, "train"), EmojiDataset(32, "test")
    assert len(train) + len(test) > 4000
    assert 0.05 < len(test) / (len(train) + len(test)) < 0.15
    assert not set(train.names) & set(test.names)
    # all skin tones of one emoji are on the same side
    base = {emoji_mod.emoji_split_key(n) for n in train.names}
    assert not base & {emoji_mod.emoji_split_key(n) for n in test.names}
    again = EmojiDataset(32, "test")
    assert again.names == test.names and np.array_equal(again.images, test.images)
    x = train[0]
    assert x.shape == (3, 32, 32) and _in_range(x)
    allx = test.as_tensor()  # (N, 3, 32, 32)
    assert allx.shape == (len(test), 3, 32, 32) and _in_range(allx)
    assert bool((allx.amin(dim=(1, 2, 3)) < 0.9).all())  # no blank (all white) item
    assert 0.0 < float(allx.mean()) < 0.95  # mostly white background, but with colour
    assert "OpenMoji" in OPENMOJI_ATTRIBUTION and EmojiDataset.attribution == OPENMOJI_ATTRIBUTION


def test_emoji_disk_cache_roundtrip():
    names, imgs = emoji_mod.render_emoji(32)
    files = list(cache_dir().glob("openmoji-*-32px-*.npy"))
    assert len(files) == 1
    key = next(k for k in emoji_mod._EMOJI_MEMORY if k[0] == 32)
    saved = emoji_mod._EMOJI_MEMORY.pop(key)
    try:
        names2, imgs2 = emoji_mod.render_emoji(32)  # from disk this time
        assert names2 == names and np.array_equal(imgs2, imgs)
    finally:
        emoji_mod._EMOJI_MEMORY[key] = saved


# ---------------------------------------------------------------------------------------------- digits


def test_digits_dataset_labels():
    train, test = DigitsDataset(16, "train"), DigitsDataset(16, "test")
    assert len(train) + len(test) == 1797 and not set(train.keys) & set(test.keys)
    for ds in (train, test):
        assert ds.labels.dtype == torch.int64 and ds.labels.shape == (len(ds),)
        assert set(ds.labels.tolist()) == set(range(10))
    x = train[3]
    assert isinstance(x, torch.Tensor) and x.shape == (3, 16, 16) and _in_range(x)
    assert torch.equal(x[0], x[1]) and torch.equal(x[1], x[2])
    assert train.label(3) == int(train.labels[3])
    assert float(x.max()) > 0.5 and float(x.min()) == -1.0  # white ink on black


# ---------------------------------------------------------------------------------------------- photos


def test_photos_dataset():
    photos = photos_mod.load_photos()
    assert len(photos) >= 10
    train = PhotosDataset(24, "train", crops_per_photo=3)
    test = PhotosDataset(24, "test", crops_per_photo=3)
    assert len(test.photo_names) >= 2 and len(train.photo_names) >= 8
    assert not set(train.photo_names) & set(test.photo_names)
    assert len(train) == 3 * len(train.photo_names)
    x = train[4]
    assert x.shape == (3, 24, 24) and _in_range(x)
    assert torch.equal(x, train[4]) and torch.equal(x, PhotosDataset(24, "train", crops_per_photo=3)[4])
    assert not torch.equal(train[3], train[4])  # different crops of one photo
    assert train.crop_box(4) != train.crop_box(5)


# ---------------------------------------------------------------------------------------------- folder


def _rand_image(h: int, w: int, seed: int, mode: str = "RGB") -> Image.Image:
    a = (np.random.default_rng(seed).random((h, w, 3)) * 255).astype(np.uint8)
    return Image.fromarray(a, "RGB").convert(mode)


@pytest.fixture
def messy_folder(tmp_path: Path) -> Path:
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    _rand_image(40, 60, 0).save(tmp_path / "a.png")
    _rand_image(50, 30, 1, "L").save(tmp_path / "sub" / "b.PNG")
    _rand_image(33, 33, 2, "RGBA").save(tmp_path / "sub" / "deeper" / "c.webp")
    _rand_image(64, 48, 3).save(tmp_path / "d.JPG", quality=90)
    _rand_image(20, 20, 4, "P").save(tmp_path / "e.gif")
    good_png = (tmp_path / "a.png").read_bytes()
    corrupt = bytearray(good_png)
    corrupt[len(corrupt) // 2 : len(corrupt) // 2 + 40] = b"\0" * 40
    (tmp_path / "corrupt.png").write_bytes(bytes(corrupt))
    jpg = (tmp_path / "d.JPG").read_bytes()
    (tmp_path / "sub" / "truncated.jpg").write_bytes(jpg[: len(jpg) // 2])
    (tmp_path / "notes.png").write_text("this is not an image\n")
    (tmp_path / "readme.txt").write_text("ignored: not an image extension\n")
    return tmp_path


@pytest.mark.parametrize("in_memory", [True, False])
def test_folder_dataset_skips_bad_files(messy_folder: Path, caplog, in_memory: bool):
    with caplog.at_level(logging.WARNING, logger="vqfuse.data"):
        ds = FolderDataset(messy_folder, 16, "all", in_memory=in_memory)
    assert sorted(ds.keys) == ["a.png", "d.JPG", "e.gif", "sub/b.PNG", "sub/deeper/c.webp"]
    skipped = {p.name: why for p, why in ds.skipped}
    assert set(skipped) == {"corrupt.png", "truncated.jpg", "notes.png"}
    assert "truncated" in skipped["truncated.jpg"]
    assert "cannot identify image file" in skipped["notes.png"]
    assert "corrupt" in skipped["corrupt.png"] or "truncated" in skipped["corrupt.png"]
    for name in skipped:  # one warning line per bad file, naming it
        assert any(name in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)
    for i in range(len(ds)):
        x = ds[i]
        assert x.shape == (3, 16, 16) and _in_range(x)
    grey = ds[ds.keys.index("sub/b.PNG")]
    assert torch.equal(grey[0], grey[1])


def test_folder_dataset_splits_disjoint(messy_folder: Path):
    train = FolderDataset(messy_folder, 8, "train")
    test = FolderDataset(messy_folder, 8, "test")
    assert len(test) >= 1 and not set(train.keys) & set(test.keys)


def test_folder_dataset_errors(tmp_path: Path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputFileError) as exc:
        FolderDataset(empty, 16)
    assert str(empty) in str(exc.value) and "no image files" in str(exc.value)
    (empty / "x.txt").write_text("hi")
    with pytest.raises(InputFileError, match="no image files"):
        FolderDataset(empty, 16)
    missing = tmp_path / "missing"
    with pytest.raises(InputFileError) as exc:
        FolderDataset(missing, 16)
    assert str(exc.value) == f"{missing}: folder does not exist"
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.png").write_text("nope")
    (bad / "b.jpg").write_bytes(b"\xff\xd8\xff")
    with pytest.raises(InputFileError, match="none of the 2 image files could be read"):
        FolderDataset(bad, 16, "all")


# ---------------------------------------------------------------------------------------------- files


def test_image_file_roundtrip_and_errors(tmp_path: Path):
    x = torch.rand(3, 10, 14) * 2 - 1
    out = tmp_path / "out" / "x.png"
    save_image_file(x, out)
    y = load_image_file(out)
    assert y.shape == (3, 10, 14) and _in_range(y)
    assert float((x - y).abs().max()) <= 1 / 127.5 + 1e-6  # 8-bit quantisation only
    save_image_file(x[0], tmp_path / "grey.jpg")
    assert load_image_file(tmp_path / "grey.jpg").shape == (3, 10, 14)
    (tmp_path / "t.png").write_text("text")
    with pytest.raises(InputFileError) as exc:
        load_image_file(tmp_path / "t.png")
    assert str(exc.value) == f"{tmp_path / 't.png'}: cannot identify image file (not an image or corrupt)"
    with pytest.raises(InputFileError, match="file does not exist"):
        load_image_file(tmp_path / "nope.png")
    with pytest.raises(InputFileError, match="unsupported image file extension"):
        save_image_file(x, tmp_path / "x.xyz")


# ---------------------------------------------------------------------------------------------- registry


def test_registry_specs(messy_folder: Path):
    ds = image_dataset("digits", 8, "test")
    assert isinstance(ds, DigitsDataset) and ds[0].shape == (3, 8, 8)
    folder = image_dataset(f"folder:{messy_folder}", 8, "all")
    assert isinstance(folder, FolderDataset) and len(folder) == 5
    assert isinstance(image_dataset(" Digits ", 8, "train"), DigitsDataset)
    with pytest.raises(VqfuseError) as exc:
        image_dataset("x", 8, "train")
    # other test modules may register extra datasets after the built-in ones
    assert str(exc.value).startswith("unknown dataset 'x'; choose emoji, digits, photos")
    assert "folder:PATH" in str(exc.value)
    with pytest.raises(VqfuseError, match="needs an argument: folder:PATH"):
        image_dataset("folder:", 8, "train")
    with pytest.raises(VqfuseError, match="takes no argument"):
        image_dataset("emoji:big", 8, "train")
    with pytest.raises(VqfuseError, match="unknown split"):
        image_dataset("digits", 8, "validation")
    entry, arg = parse_spec("image", "folder:/a:b")
    assert entry.name == "folder" and arg == "/a:b"


def test_registry_other_modalities():
    register_dataset("test-audio", "beeps", lambda arg, n: list(range(n)), replace=True)
    assert make_dataset("test-audio", "beeps", n=3) == [0, 1, 2]
    with pytest.raises(VqfuseError, match="choose beeps"):
        make_dataset("test-audio", "emoji", n=3)
