"""Tests for vqfuse.data.paired.av_moving: moving-digits clips paired with the speech of their digits."""

from __future__ import annotations

import types

import numpy as np
import pytest
import torch

from vqfuse.data.audio import fit_length
from vqfuse.data.espeak import all_voices
from vqfuse.data.moving import MovingDigitsDataset, digit_split, mnist5k
from vqfuse.data.paired import AVMovingDigitsDataset, PairedDataset, make_paired_dataset, paired_specs
from vqfuse.data.paired.av_moving import PAUSE_SECONDS, digits_label
from vqfuse.data.speech import DIGIT_WORDS, DigitSpeech, split_voices
from vqfuse.errors import VqfuseError
from vqfuse.fusion.evaluate import _unique_items
from vqfuse.fusion.tokens import encode_set

pytestmark = pytest.mark.usefixtures("single_thread")

POOL = all_voices()[::16]  # 10 voices: a fraction of a second of speech rendering, both splits get some
SMALL = dict(size=16, length=4, clips=24, voices=POOL)  # 16 px digits would be 7 px: still drawn


@pytest.fixture(scope="module")
def sets() -> dict[str, AVMovingDigitsDataset]:
    return {s: make_paired_dataset("av-moving-digits", s, pairings=2, **SMALL) for s in ("train", "test")}


@pytest.fixture(scope="module")
def whole_speech() -> dict[str, DigitSpeech]:
    """The spoken digits as whole utterances, built independently of the dataset."""
    return {s: DigitSpeech(s, 16000, None, voices=POOL) for s in ("train", "test")}


def test_registered_and_items_have_the_documented_shapes(sets):
    assert "av-moving-digits" in paired_specs()
    assert paired_specs()[:3] == ["av-digits", "av-emoji", "pairs:PATH"]
    for split, ds in sets.items():
        assert isinstance(ds, PairedDataset) and ds.modalities == ("video", "audio")
        assert len(ds) == 2 * 24 == len(ds.labels) == len(ds.item_rows) and ds.num_clips == 24
        for i in (0, 1, len(ds) - 1, -1):
            item = ds[i]
            assert set(item) == {"video", "audio", "label"} and isinstance(item["label"], int)
            v, a = item["video"], item["audio"]
            assert v.shape == (1, 4, 16, 16) and v.dtype == torch.float32
            assert a.shape == (1, 32000) and a.dtype == torch.float32
            for x in (v, a):
                assert -1.0 <= float(x.min()) and float(x.max()) <= 1.0
            assert float(v.max()) > 0.0 and float(v.min()) == -1.0  # digits on black
            assert float(a.abs().max()) > 0.3  # speech, not silence
        with pytest.raises(IndexError):
            ds[len(ds)]
    assert repr(sets["train"]).startswith("AVMovingDigitsDataset(split='train', n=48, clips=24")


def test_the_speech_says_the_clips_digits_in_order(sets, whole_speech):
    for split, ds in sets.items():
        speech, L = whole_speech[split], ds.segment_length
        pause = round(PAUSE_SECONDS * 16000)
        for i in range(0, len(ds), 5):
            info, audio = ds.describe(i), ds[i]["audio"][0]  # (L,)
            digits = ds.digits(i)
            assert info["digits"] == digits == ds.clips.labels(info["clip_index"])  # compositing order
            assert info["text"] == " ".join(DIGIT_WORDS[d] for d in digits)
            first, second = (speech.get(d, info["voice"])[0] for d in digits)  # (T_1,), (T_2,)
            total = len(first) + pause + len(second)
            assert total < L  # two spoken digits fit the 2 s segment
            start = (L - total) // 2  # centred
            assert torch.equal(audio[start : start + len(first)], first)
            assert not audio[start + len(first) : start + len(first) + pause].any()
            assert torch.equal(audio[start + len(first) + pause : start + total], second)
            assert not audio[:start].any() and not audio[start + total :].any()
            joined = torch.cat([first, torch.zeros(pause), second])[None]
            assert torch.equal(ds[i]["audio"], fit_length(joined, L))
            if digits[0] != digits[1]:  # the other order is another utterance
                assert not torch.equal(ds.speech_of(digits[::-1], info["voice"]), ds[i]["audio"])


def test_test_items_use_only_heldout_voices_and_test_digit_images(sets):
    train, test = sets["train"], sets["test"]
    assert set(test.voice_names) == set(split_voices(POOL, "test")) and len(test.voice_names) >= 2
    assert set(train.voice_names) == set(split_voices(POOL, "train"))
    assert not set(test.voice_names) & set(train.voice_names)
    labels = mnist5k()[1]
    heldout, seen = set(digit_split(labels, "test").tolist()), set(digit_split(labels, "train").tolist())
    for ds, voices, images in ((test, test.voice_names, heldout), (train, train.voice_names, seen)):
        used_voices = {ds.describe(i)["voice"] for i in range(len(ds))}
        assert used_voices <= set(voices)
        for i in range(len(ds)):
            imgs = ds.describe(i)["digit_images"]
            assert len(imgs) == 2 and set(imgs) <= images
            assert [int(labels[j]) for j in imgs] == ds.digits(i)  # the images are of the spoken digits
    # the test clips are the fixed moving-digits test set (its first `clips`), whatever the seed
    fixed = MovingDigitsDataset("test", length=4, size=16)
    other = AVMovingDigitsDataset("test", seed=5, size=16, length=4, clips=3, voices=POOL)
    for c in (0, 7, 23):
        assert torch.equal(test.video(c), fixed[c])
    assert all(torch.equal(other.video(c), fixed[c]) for c in range(3))


def test_pairings_are_distinct_voices_per_clip(sets):
    for ds in sets.values():
        for c in range(ds.num_clips):
            rows = [ds.describe(i) for i in (2 * c, 2 * c + 1)]
            assert [r["clip_index"] for r in rows] == [c, c]
            assert rows[0]["voice"] != rows[1]["voice"]  # two voices of the split, distinct
            assert rows[0]["digits"] == rows[1]["digits"] and rows[0]["label"] == rows[1]["label"]


def test_deterministic_from_seed_and_index(sets):
    again = AVMovingDigitsDataset("train", pairings=2, **SMALL)
    ds = sets["train"]
    assert again.pairs == ds.pairs and again.labels == ds.labels and again.utterances == ds.utterances
    for i in (0, 9, 47):
        a, b = again[i], ds[i]
        assert torch.equal(a["video"], b["video"]) and torch.equal(a["audio"], b["audio"])
        assert torch.equal(ds[i]["video"], ds[i]["video"])
    # another seed: other train clips (and voices); the train clips are MovingDigitsDataset's
    seeded = AVMovingDigitsDataset("train", seed=1, pairings=2, **SMALL)
    assert seeded.labels != ds.labels or seeded.utterances != ds.utterances
    assert torch.equal(seeded.video(3), MovingDigitsDataset("train", 4, 16, seed=1, epoch_size=24)[3])
    # another epoch: new train clips, and back again; the test set does not move
    epoch0 = [ds.video(c) for c in range(3)], list(ds.labels)
    ds.set_epoch(1)
    try:
        assert ds.epoch == 1 and ds.labels == [digits_label(ds.digits(i)) for i in range(len(ds))]
        assert any(not torch.equal(ds.video(c), epoch0[0][c]) for c in range(3))
    finally:
        ds.set_epoch(0)
    assert ds.labels == epoch0[1] and all(torch.equal(ds.video(c), epoch0[0][c]) for c in range(3))
    test = sets["test"]
    before = list(test.labels)
    test.set_epoch(3)
    assert test.labels == before and test.epoch == 0


def test_labels_are_the_ordered_pair(sets):
    assert digits_label([3, 7]) == 37 and digits_label([7, 3]) == 73 and digits_label([0, 4]) == 4
    for ds in sets.values():
        assert ds.num_classes == 100
        assert ds.labels == [10 * ds.digits(i)[0] + ds.digits(i)[1] for i in range(len(ds))]
        assert all(0 <= lab < 100 for lab in ds.labels)
    one = make_paired_dataset("av-moving-digits", "test", num_digits=1, size=16, length=2, clips=12, voices=POOL)
    assert one.num_classes == 10 and one.labels == [one.digits(i)[0] for i in range(len(one))]
    assert one[0]["audio"].shape == (1, 32000)


class _StandIn(torch.nn.Module):
    """A tokenizer stand-in for encode_set: one code per item, a function of its content; counts items."""

    def __init__(self, modality: str) -> None:
        super().__init__()
        self.config = types.SimpleNamespace(modality=modality)
        self.quantizer = types.SimpleNamespace(variable_rate=False)
        self.n_stages, self.codebook_size, self.model_id, self.device = 1, 997, f"stand-in-{modality}", "cpu"
        self.seen = 0

    def encode_codes(self, x: torch.Tensor, n_q: int | None = None) -> torch.Tensor:
        self.seen += len(x)
        return code_of(x)


def code_of(x: torch.Tensor) -> torch.Tensor:
    """(B, C, ...) -> (B, 1, 1) codes in [0, 997)."""
    w = torch.arange(1, x[0].numel() + 1, dtype=torch.float64).remainder(13) + 1
    return (x.flatten(1).double() * 4096).round().mul(w).sum(1).long().remainder(997)[:, None, None]


def test_encode_set_encodes_each_distinct_clip_and_utterance_once():
    # one digit per clip and two voices: (digit, voice) repeats, so utterances are shared between rows
    ds = AVMovingDigitsDataset("test", num_digits=1, size=16, length=2, clips=30, pairings=2, voices=POOL)
    assert len(ds.utterances) < len(ds) and len(set(ds.utterances)) == len(ds.utterances)
    assert all(ds.utterances[k] == (tuple(ds.digits(i)), ds.describe(i)["voice"]) for i, (_, k) in enumerate(ds.pairs))
    toks = {"video": _StandIn("video"), "audio": _StandIn("audio")}
    tokens = encode_set(ds, toks, batch_size=8, progress=False)
    assert toks["video"].seen == ds.num_clips == 30 and toks["audio"].seen == len(ds.utterances)
    assert tokens.names == ("video", "audio") and len(tokens) == len(ds) == 60
    assert tokens.labels.tolist() == ds.labels
    for i in range(0, len(ds), 7):
        item = ds[i]
        assert torch.equal(tokens.codes["video"][i], code_of(item["video"][None])[0])
        assert torch.equal(tokens.codes["audio"][i], code_of(item["audio"][None])[0])
    # the reverse order of modalities reads the rows through `modalities` too
    back = encode_set(ds, {"audio": _StandIn("audio"), "video": _StandIn("video")}, progress=False)
    assert torch.equal(back.codes["audio"], tokens.codes["audio"])
    # the judged evaluation's one item per distinct clip / utterance
    clips = _unique_items(ds, "video")
    assert len(clips) == 30 and [ds.pairs[i][0] for i in clips] == list(range(30))
    assert sorted({ds.pairs[i][1] for i in _unique_items(ds, "audio")}) == list(range(len(ds.utterances)))
    with pytest.raises(VqfuseError, match="has no image"):
        encode_set(ds, {"image": _StandIn("image")}, progress=False)


def test_whole_speech_without_a_segment():
    ds = AVMovingDigitsDataset("test", size=16, length=2, clips=2, segment_seconds=None, voices=POOL)
    assert ds.segment_length is None
    speech = DigitSpeech("test", 16000, None, voices=POOL)
    info = ds.describe(0)
    first, second = (speech.get(d, info["voice"]) for d in info["digits"])
    assert ds[0]["audio"].shape == (1, first.shape[1] + round(PAUSE_SECONDS * 16000) + second.shape[1])


@pytest.mark.parametrize(
    "options, message",
    [
        ({"colour": True}, "has no option 'colour'"),
        ({"image_fraction": 0.2, "frames": 3}, "has no option 'frames', 'image_fraction'"),
        ({"clips": 2001}, "clips must be an integer >= 1 and <= 2000"),
        ({"clips": 0}, "clips must be an integer >= 1"),
        ({"num_digits": 0}, "num_digits must be an integer >= 1"),
        ({"pairings": 0}, "pairings must be an integer >= 1"),
        ({"segment_seconds": -1.0}, "segment"),
    ],
)
def test_bad_options_give_one_clear_error(options, message):
    with pytest.raises(VqfuseError, match=message) as info:
        make_paired_dataset("av-moving-digits", "test", voices=POOL, **options)
    assert "\n" not in str(info.value)
    if "option" in message:
        assert "options: split, size, length, num_digits, clips, pairings" in str(info.value)


def test_default_sizes_and_the_test_limit_only_on_test():
    train, test = (AVMovingDigitsDataset(s, size=16, length=1, voices=POOL) for s in ("train", "test"))
    assert (len(train), len(test)) == (4000, 2000)
    assert np.isin(train.labels, range(100)).all() and np.isin(test.labels, range(100)).all()
    assert len(AVMovingDigitsDataset("train", size=16, length=1, clips=2500, voices=POOL)) == 2500
