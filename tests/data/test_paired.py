"""Tests for vqfuse.data.paired: av-digits, av-emoji, pairs:CSV and the paired spec factory."""

from __future__ import annotations

import logging
import unicodedata
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image
from torch.utils.data import DataLoader

from vqfuse.data import make_paired_dataset as exported_factory
from vqfuse.data.audio import fit_length
from vqfuse.data.digits import DigitsDataset
from vqfuse.data.emoji import emoji_text
from vqfuse.data.espeak import all_voices
from vqfuse.data.paired import (
    AVDigitsDataset,
    AVEmojiDataset,
    PairedDataset,
    PairsCSVDataset,
    emoji_spoken_name,
    make_paired_dataset,
    paired_specs,
    read_pairs_csv,
)
from vqfuse.data.speech import DIGIT_WORDS, split_voices
from vqfuse.data.speech_render import render_corpus, render_utterance
from vqfuse.errors import InputFileError, VqfuseError

pytestmark = pytest.mark.usefixtures("single_thread")

# A small voice pool keeps speech rendering to a fraction of a second; both splits get voices.
POOL = all_voices()[::8]  # 20 voices across accents and variants


def _check_item(item: dict, size: int, length: int) -> None:
    assert set(item) == {"image", "audio", "label"}
    img, aud = item["image"], item["audio"]
    assert img.shape == (3, size, size) and img.dtype == torch.float32
    assert aud.shape == (1, length) and aud.dtype == torch.float32
    assert -1.0 <= float(img.min()) and float(img.max()) <= 1.0
    assert -1.0 <= float(aud.min()) and float(aud.max()) <= 1.0
    assert float(aud.abs().max()) > 0.3  # speech, not silence
    assert isinstance(item["label"], int)


# ---------------------------------------------------------------------------------------------- av-digits


@pytest.fixture(scope="module")
def digits() -> dict[str, AVDigitsDataset]:
    return {s: AVDigitsDataset(s, size=16, pairings=3, voices=POOL) for s in ("train", "test")}


def test_av_digits_items_and_labels(digits):
    ds = digits["train"]
    assert isinstance(ds, PairedDataset) and ds.num_classes == 10
    assert len(ds) == 3 * len(ds.images) == len(ds.labels)
    for i in (0, 1, len(ds) // 2, len(ds) - 1):
        item = ds[i]
        _check_item(item, 16, 16000)
        info = ds.describe(i)
        # the digit spoken is the digit shown
        assert item["label"] == info["audio_label"] == ds.images.label(info["image_index"])
        assert info["text"] == DIGIT_WORDS[item["label"]]
        assert torch.equal(item["audio"], ds.speech.get(item["label"], info["voice"]))
        assert torch.equal(item["image"], ds.images[info["image_index"]])
    assert all(ds.describe(i)["text"] == DIGIT_WORDS[lab] for i, lab in enumerate(ds.labels) if i % 97 == 0)
    assert ds.labels == [int(ds.speech.labels[k]) for _, k in ds.pairs]  # every pair, cheaply


def test_av_digits_pairings_are_distinct_and_deterministic(digits):
    ds = digits["train"]
    counts = Counter(j for j, _ in ds.pairs)
    assert set(counts.values()) == {3} and len(counts) == len(ds.images)
    per_image: dict[int, list[int]] = {}
    for j, k in ds.pairs:
        per_image.setdefault(j, []).append(k)
    assert all(len(set(ks)) == 3 for ks in per_image.values())  # 3 different voices per image
    assert len({k for _, k in ds.pairs}) > 0.9 * len(ds.speech)  # most utterances are used
    again = AVDigitsDataset("train", size=16, pairings=3, voices=POOL)
    assert again.pairs == ds.pairs and torch.equal(again[5]["audio"], ds[5]["audio"])
    other = AVDigitsDataset("train", size=16, pairings=3, voices=POOL, seed=1)
    assert other.pairs != ds.pairs
    one = AVDigitsDataset("train", size=16, pairings=1, voices=POOL)
    assert len(one) == len(ds.images)


def test_av_digits_split_holds_out_images_and_voices(digits):
    train, test = digits["train"], digits["test"]
    assert len(test) and len(train) > 5 * len(test)
    assert not set(train.images.keys) & set(test.images.keys)
    assert test.images.keys == DigitsDataset(16, "test").keys  # the image datasets' own split
    train_voices = {train.describe(i)["voice"] for i in range(len(train))}
    test_voices = {test.describe(i)["voice"] for i in range(len(test))}
    assert not train_voices & test_voices
    assert test_voices <= set(split_voices(POOL, "test")) and train_voices <= set(split_voices(POOL, "train"))
    _check_item(test[0], 16, 16000)


def test_paired_batches_collate(digits):
    batch = next(iter(DataLoader(digits["test"], batch_size=4, shuffle=False)))
    assert batch["image"].shape == (4, 3, 16, 16) and batch["audio"].shape == (4, 1, 16000)
    assert batch["label"].dtype == torch.int64 and batch["label"].shape == (4,)


# ---------------------------------------------------------------------------------------------- av-emoji


def test_emoji_spoken_name():
    assert emoji_spoken_name("1F600") == "grinning face"
    assert emoji_spoken_name("2764-FE0F") == "heavy black heart"
    assert emoji_spoken_name("0032-FE0F-20E3") == "digit two keycap"
    assert emoji_spoken_name("E000") is None  # private use: no name
    assert emoji_spoken_name("1F44B-1F3FD") is None  # a sequence ...
    assert emoji_spoken_name("1F44B-1F3FD", sequences=True) == "waving hand sign medium skin tone"
    assert emoji_spoken_name("1F1E9-1F1EA", sequences=True) == "flag d e"
    assert emoji_spoken_name("1F468-200D-1F52C", sequences=True) == "man microscope"


@pytest.fixture(scope="module")
def emoji() -> dict[str, AVEmojiDataset]:
    return {s: AVEmojiDataset(s, size=16, limit=24, pairings=2, voices=POOL) for s in ("train", "test")}


def test_av_emoji_items_names_and_audio(emoji):
    ds = emoji["train"]
    assert len(ds.names) == 24 == ds.num_classes and len(ds) == 48
    assert ds.labels == [i // 2 for i in range(48)]
    for i in (0, 7, 47):
        item = ds[i]
        _check_item(item, 16, 32000)
        info = ds.describe(i)
        name = ds.names[item["label"]]
        assert info["emoji"] == name and info["audio_label"] == item["label"]
        assert info["text"] == emoji_spoken_name(name)
        assert info["text"].startswith(unicodedata.name(emoji_text(name)[0]).lower())
        assert torch.equal(item["image"], ds.emoji[ds.emoji_index[item["label"]]])
        # the clip is this utterance of the name (espeak-ng varies slightly per call: compare lengths)
        utt = ds.utterances[ds.pairs[i][1]]
        assert (utt.text, utt.label) == (info["text"], item["label"])
        cached = render_corpus([utt], 16000)[0][0]
        assert torch.allclose(item["audio"], fit_length(torch.from_numpy(cached / 32767.0).float()[None], 32000))
        assert abs(len(render_utterance(utt, 16000)[0]) / 16000 - info["seconds"]) < 0.05 * info["seconds"] + 0.01
    voices_of = Counter((ds.describe(i)["emoji"], ds.describe(i)["voice"]) for i in range(len(ds)))
    assert max(voices_of.values()) == 1  # two different voices per emoji


def test_av_emoji_split_determinism_and_limit(emoji):
    train, test = emoji["train"], emoji["test"]
    assert len(test) and not set(train.names) & set(test.names)
    train_voices = {u.voice for u in train.utterances}
    test_voices = {u.voice for u in test.utterances}
    assert not train_voices & test_voices and test_voices <= set(split_voices(POOL, "test"))
    again = AVEmojiDataset("train", size=16, limit=24, pairings=2, voices=POOL)
    assert again.names == train.names and again.utterances == train.utterances
    assert torch.equal(again[3]["audio"], train[3]["audio"])
    bigger = AVEmojiDataset("train", size=16, limit=30, pairings=1, voices=POOL)
    assert len(bigger) == 30 and set(train.names) < set(bigger.names)  # a larger limit keeps the smaller set
    with pytest.raises(VqfuseError, match="limit"):
        AVEmojiDataset("train", size=16, limit=0, voices=POOL)


def test_av_emoji_speech_is_cached_on_disk(tmp_path, monkeypatch):
    from vqfuse.data import speech_render

    monkeypatch.setenv("VQFUSE_CACHE_DIR", str(tmp_path))
    ds = AVEmojiDataset("test", size=16, limit=5, pairings=1, voices=POOL)
    assert list(tmp_path.glob("speech-16000hz-*.npz"))
    monkeypatch.setattr(speech_render, "_MEMORY", {})
    monkeypatch.setattr(
        speech_render, "render_utterance", lambda *a, **k: pytest.fail("should come from the disk cache")
    )
    again = AVEmojiDataset("test", size=16, limit=5, pairings=1, voices=POOL)
    assert all(torch.equal(again.audio(k), ds.audio(k)) for k in range(len(ds)))


# ---------------------------------------------------------------------------------------------- pairs:CSV


def _png(path: Path, colour: tuple[int, int, int], wh: tuple[int, int] = (40, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", wh, colour).save(path)
    return path


def _wav(path: Path, freq: float, sr: int = 44100, seconds: float = 0.5, channels: int = 2) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(sr * seconds)) / sr
    x = (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    sf.write(path, np.stack([x] * channels, axis=1), sr, subtype="PCM_16")
    return path


@pytest.fixture()
def pair_dir(tmp_path: Path) -> Path:
    for i in range(12):
        _png(tmp_path / "img" / f"{i}.png", (20 * i, 255 - 20 * i, 90), wh=(40 + i, 30))
        _wav(tmp_path / "snd" / f"{i}.wav", 200 + 50 * i, sr=(44100 if i % 2 else 8000))
    return tmp_path


def test_pairs_csv_header_relative_paths_and_labels(pair_dir, tmp_path_factory, monkeypatch):
    rows = "".join(f"img/{i}.png,snd/{i}.wav,{i % 3}\n" for i in range(12))
    csv = pair_dir / "pairs.csv"
    csv.write_text("image,audio,label\n" + rows)
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))  # relative to the CSV, not the working folder
    ds = make_paired_dataset(f"pairs:{csv}", "all", size=24, segment_seconds=1.0)
    assert isinstance(ds, PairsCSVDataset) and len(ds) == 12 and not ds.skipped
    assert ds.labels == [i % 3 for i in range(12)] and ds.num_classes == 3
    for i in (0, 5):
        item = ds[i]
        _check_item(item, 24, 16000)
        assert Path(ds.describe(i)["image_file"]) == pair_dir / "img" / f"{i}.png"
        a = item["audio"][0].numpy()
        nz = np.flatnonzero(np.abs(a) > 1e-3)
        assert 0.48 * 16000 < nz[-1] - nz[0] < 0.51 * 16000 and abs(nz[0] - 4000) < 100  # 0.5 s at 16 kHz, centred
        expect = torch.tensor([20 * i, 255 - 20 * i, 90]) / 127.5 - 1
        assert torch.allclose(item["image"][:, 12, 12], expect, atol=0.02)  # the right picture
    lazy = PairsCSVDataset(csv, "all", size=24, in_memory=False)
    assert lazy._images is None and all(torch.equal(lazy[i]["image"], ds[i]["image"]) for i in (0, 11))
    assert torch.equal(lazy[3]["audio"], ds[3]["audio"])
    train = PairsCSVDataset(csv, "train", size=24)
    test = PairsCSVDataset(csv, "test", size=24)
    assert len(train) + len(test) == 12 and len(test) >= 1
    assert not set(train.image_files) & set(test.image_files)
    assert [r.line for r in PairsCSVDataset(csv, "test", size=24).rows] == [r.line for r in test.rows]  # stable


def test_pairs_csv_without_header_or_labels(pair_dir):
    csv = pair_dir / "sub" / "p.csv"
    csv.parent.mkdir()
    absolute = pair_dir / "img" / "2.png"
    csv.write_text(
        f"# my pairs\n../img/0.png,../snd/0.wav\n\n../img/1.png , ../snd/1.wav,\n{absolute},../snd/2.wav,-1\n"
    )
    rows = read_pairs_csv(csv)
    assert [r.line for r in rows] == [2, 4, 5] and rows[0].image == pair_dir / "sub" / ".." / "img" / "0.png"
    ds = PairsCSVDataset(csv, "all", size=8, segment_seconds=0.25)
    assert len(ds) == 3 and ds.labels == [-1, -1, -1] and ds.num_classes is None
    _check_item(ds[1], 8, 4000)
    named = pair_dir / "named.csv"
    named.write_text("img/0.png,snd/0.wav,cat\nimg/1.png,snd/1.wav,dog\nimg/2.png,snd/1.wav,cat\n")
    ds = PairsCSVDataset(named, "all", size=8)
    assert ds.class_names == ["cat", "dog"] and ds.labels == [0, 1, 0] and ds.num_classes == 2
    assert ds.pairs[1][1] == ds.pairs[2][1]  # one audio file shared by two pairs, loaded once


def test_pairs_csv_skips_bad_files_with_one_warning(pair_dir, caplog):
    (pair_dir / "broken.wav").write_bytes(b"RIFF not really audio")
    csv = pair_dir / "pairs.csv"
    csv.write_text(
        "img/0.png,snd/0.wav,0\nimg/missing.png,snd/1.wav,1\nimg/missing.png,snd/2.wav,1\n"
        "img/3.png,broken.wav,3\nimg/4.png,snd/4.wav,4\n"
    )
    with caplog.at_level(logging.WARNING, logger="vqfuse.data"):
        ds = PairsCSVDataset(csv, "all", size=8)
    assert len(ds) == 2 and ds.labels == [0, 4]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert sum("missing.png" in w for w in warnings) == 1 and sum("broken.wav" in w for w in warnings) == 1
    assert {p.name for p, _ in ds.skipped} == {"missing.png", "broken.wav"}
    _check_item(ds[1], 8, 16000)


@pytest.mark.parametrize(
    "content, match",
    [
        ("", "empty CSV"),
        ("\n\n# only a comment\n", "empty CSV"),
        ("image,audio,label\n", "empty CSV"),
        ("img/0.png\n", "line 1: expected image path, audio path"),
        ("img/0.png,snd/0.wav,1,extra\n", "line 1"),
        ("img/0.png,snd/0.wav,-3\n", "negative"),
        ("nope/a.png,nope/a.wav\nnope/b.png,nope/b.wav\n", "none of the 2 pairs could be read"),
    ],
)
def test_pairs_csv_errors_name_the_file(pair_dir, content, match):
    csv = pair_dir / "bad.csv"
    csv.write_text(content)
    with pytest.raises(InputFileError, match=match) as err:
        PairsCSVDataset(csv, "all", size=8)
    assert str(err.value).startswith(str(csv)) and "\n" not in str(err.value)


def test_pairs_csv_missing_binary_and_empty_split(pair_dir):
    with pytest.raises(InputFileError, match="no such file"):
        PairsCSVDataset(pair_dir / "absent.csv")
    (pair_dir / "bin.csv").write_bytes(b"\xff\xfe\x00\x81binary")
    with pytest.raises(InputFileError, match="UTF-8"):
        PairsCSVDataset(pair_dir / "bin.csv")
    (pair_dir / "one.csv").write_text("img/0.png,snd/0.wav\n")
    with pytest.raises(InputFileError, match="split is empty"):
        PairsCSVDataset(pair_dir / "one.csv", "test")
    assert len(PairsCSVDataset(pair_dir / "one.csv", "train", size=8)) == 1


# ---------------------------------------------------------------------------------------------- factory


def test_factory_specs_and_errors(pair_dir):
    assert exported_factory is make_paired_dataset
    assert paired_specs()[:3] == ["av-digits", "av-emoji", "pairs:PATH"]  # tests may register more after these
    ds = make_paired_dataset("av-digits", "test", size=8, pairings=2, voices=POOL)
    assert isinstance(ds, AVDigitsDataset) and ds[0]["image"].shape == (3, 8, 8)
    with pytest.raises(VqfuseError, match=r"unknown dataset 'mnist'; choose av-digits, av-emoji(, | or )pairs:PATH"):
        make_paired_dataset("mnist", "train")
    with pytest.raises(VqfuseError, match="needs an argument"):
        make_paired_dataset("pairs", "train")
    with pytest.raises(VqfuseError, match="no option 'limit'"):
        make_paired_dataset("av-digits", "train", limit=3)
    with pytest.raises(VqfuseError, match="unknown split"):
        make_paired_dataset("av-digits", "validation")
    with pytest.raises(VqfuseError, match="pairings"):
        make_paired_dataset("av-digits", "test", pairings=0, voices=POOL)
    csv = pair_dir / "p.csv"
    csv.write_text("img/0.png,snd/0.wav\n")
    with pytest.raises(VqfuseError, match="write pairs:"):
        make_paired_dataset(str(csv), "all")
