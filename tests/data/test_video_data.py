"""Video datasets: the Moving MNIST recipe, splits, determinism, moving emoji, folders and Big Buck Bunny."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from vqfuse.data.emoji import emoji_split_key
from vqfuse.data.moving import MovingDigitsDataset, MovingEmojiDataset, bouncing_positions, digit_split, mnist5k
from vqfuse.data.registry import make_dataset
from vqfuse.data.video_folder import BigBuckBunnyDataset, VideoFolderDataset
from vqfuse.data.video_write import write_video
from vqfuse.errors import InputFileError


def test_digits_and_their_split() -> None:
    images, labels = mnist5k()
    assert images.shape == (5000, 28, 28) and images.dtype == np.uint8 and images.max() == 255
    assert np.bincount(labels).tolist() == [500] * 10
    train, test = digit_split(labels, "train"), digit_split(labels, "test")
    assert len(train) == 4000 and len(test) == 1000 and not set(train) & set(test)
    assert np.bincount(labels[test]).tolist() == [100] * 10  # stratified
    assert np.array_equal(test, digit_split(labels, "test"))  # fixed


def test_speed_is_3_6_px_per_frame_and_digits_stay_inside() -> None:
    d = MovingDigitsDataset("train", length=30, num_digits=1)
    steps, yy, xx = [], *np.mgrid[0:64, 0:64]
    for i in range(20):
        x = (d[i][0].numpy() + 1) / 2  # (T, 64, 64) in [0, 1]
        mass = x.sum(axis=(1, 2))
        assert np.allclose(mass, mass[0], rtol=1e-5)  # never clipped by the canvas edge
        cy, cx = (x * yy).sum(axis=(1, 2)) / mass, (x * xx).sum(axis=(1, 2)) / mass
        steps.extend(np.hypot(np.diff(cy), np.diff(cx)))
    assert np.median(steps) == pytest.approx(3.6, abs=0.35)  # integer positions jitter each step
    pos = bouncing_positions(np.random.default_rng(1), 500, 4, 36)
    assert pos.min() == 0 and pos.max() == 36  # it reaches the walls and bounces off them
    pos = bouncing_positions(np.random.default_rng(1), 500, 4, 36, stochastic=True)
    assert 0 <= pos.min() and pos.max() <= 36


def test_two_digits_are_composited_by_max() -> None:
    d = MovingDigitsDataset("test", length=10)
    for i in range(5):
        rng = d.rng(i)
        which = d.choose(rng)
        pos = bouncing_positions(rng, 10, 2, 36)
        layers = np.zeros((2, 10, 64, 64), np.float32)
        for j, k in enumerate(which):
            for t in range(10):
                y, x = pos[t, j]
                layers[j, t, y : y + 28, x : x + 28] = d.digits[k]
        expected = np.maximum(layers[0], layers[1]) * 2 - 1
        assert np.allclose(d[i][0].numpy(), expected, atol=1e-6)


def test_shapes_range_and_options() -> None:
    x = MovingDigitsDataset("test")[0]
    assert x.shape == (1, 21, 64, 64) and x.dtype == torch.float32
    assert x.min() == -1 and x.max() <= 1 and (x == -1).float().mean() > 0.5  # black background
    c = MovingDigitsDataset("train", colour=True, stochastic_bounce=True, length=9)[3]
    assert c.shape == (3, 9, 64, 64) and -1 <= c.min() and c.max() <= 1
    assert not torch.equal(c[0], c[1]) or not torch.equal(c[1], c[2])  # tinted, not grey
    assert MovingDigitsDataset("train", size=32, num_digits=3)[0].shape == (1, 21, 32, 32)
    assert len(MovingDigitsDataset("test")) == 2000 and len(MovingDigitsDataset("train")) == 10_000
    assert "MNIST" in MovingDigitsDataset.attribution
    assert make_dataset("video", "moving-digits", size=64, split="test", length=5)[0].shape == (1, 5, 64, 64)


def test_determinism_and_labels() -> None:
    a, b = MovingDigitsDataset("test"), MovingDigitsDataset("test")
    assert torch.equal(a[7], b[7]) and a.labels(7) == b.labels(7)
    t1, t2 = MovingDigitsDataset("train"), MovingDigitsDataset("train")
    assert torch.equal(t1[3], t2[3]) and not torch.equal(t1[3], t1[4])
    t2.set_epoch(1)
    assert not torch.equal(t1[3], t2[3])
    assert not torch.equal(MovingDigitsDataset("train", seed=5)[0], t1[0])
    labels = a.labels(7)
    assert len(labels) == 2 and all(0 <= v <= 9 for v in labels)
    _, all_labels = mnist5k()
    test_pool = set(digit_split(all_labels, "test").tolist())
    rng = a.rng(7)
    assert {int(a.pool[k]) for k in a.choose(rng)} <= test_pool  # test clips draw only test digits
    assert [int(all_labels[a.pool[k]]) for k in a.choose(a.rng(7))] == labels


def test_moving_emoji() -> None:
    train, test = MovingEmojiDataset("train"), MovingEmojiDataset("test")
    assert not {emoji_split_key(n) for n in train.names} & {emoji_split_key(n) for n in test.names}
    assert len(test.names) > 100 and len(train.names) > 5 * len(test.names)
    x = test[0]
    assert x.shape == (3, 21, 64, 64) and -1 <= x.min() and x.max() <= 1
    assert torch.equal(x, MovingEmojiDataset("test")[0])
    assert set(test.emoji(0)) <= set(test.names) and 1 <= len(test.emoji(0)) <= 2
    assert (x[:, 1:] - x[:, :-1]).abs().mean() > 0.005  # it moves
    assert "OpenMoji" in MovingEmojiDataset.attribution
    assert make_dataset("video", "moving-emoji", size=32, split="train", length=5)[0].shape == (3, 5, 32, 32)


def _write_clip(path: Path, frames: int, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(3, 1, 8, 8, generator=g) * 2 - 1
    x = torch.nn.functional.interpolate(base, size=(24, 24), mode="bilinear")[:, 0]  # (3, 24, 24)
    write_video(torch.stack([x.roll(k, -1) for k in range(frames)], 1), path, 25)


def test_folder_skips_and_reports(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    for k in range(3):
        _write_clip(tmp_path / f"sub/clip{k}.mp4", 20, k)
    _write_clip(tmp_path / "short.webm", 4, 9)
    (tmp_path / "broken.mp4").write_text("not a video")
    with caplog.at_level(logging.WARNING, logger="vqfuse.data"):
        d = VideoFolderDataset(tmp_path, size=16, length=8, split="all")
    assert len(d.files) == 3 and len(d) == 3 * 2  # 20 frames -> 2 clips of 8
    assert {p.name for p, _ in d.skipped} == {"broken.mp4", "short.webm"}
    assert "skipping" in caplog.text and "broken.mp4" in caplog.text
    assert d[0].shape == (3, 8, 16, 16) and d.in_memory
    lazy = VideoFolderDataset(tmp_path, size=16, length=8, split="all", memory_bytes=0, stride=4)
    assert not lazy.in_memory and len(lazy) == 3 * 4
    assert torch.equal(lazy[2], d[1])  # clip starting at frame 8 of the first file
    ds = make_dataset("video", "folder:" + str(tmp_path), size=16, split="all", length=8)
    assert len(ds) == 6


def test_folder_split_by_file_and_empty_folder(tmp_path: Path) -> None:
    for k in range(6):
        _write_clip(tmp_path / f"c{k}.mp4", 8, k)
    train = VideoFolderDataset(tmp_path, size=16, length=8, split="train")
    test = VideoFolderDataset(tmp_path, size=16, length=8, split="test")
    assert train.keys and test.keys and not set(train.keys) & set(test.keys)
    assert len(train.keys) + len(test.keys) == 6
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputFileError, match="no video files"):
        VideoFolderDataset(tmp_path / "empty")


def test_bigbuckbunny_split_by_time() -> None:
    train, test = BigBuckBunnyDataset("train"), BigBuckBunnyDataset("test")
    assert len(train.frames) == int(132 * 0.7) and test.first_frame == len(train.frames)
    x = test[0]
    assert x.shape == (3, 17, 64, 64) and -1 <= x.min() and x.max() <= 1 and x.std() > 0.05
    assert len(test) == 2 * 8 and torch.equal(test[5], BigBuckBunnyDataset("test")[5])
    t, y, xx = train.crop(3)
    assert t + 17 <= len(train.frames) and torch.equal(train[3], BigBuckBunnyDataset("train")[3])
    assert "Blender" in BigBuckBunnyDataset.attribution
