"""Tests for vqfuse.data.speech: espeak-ng synthesis, the speech corpus, its voice split, DigitSpeech."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from vqfuse.data import espeak, speech, speech_render
from vqfuse.data.espeak import ACCENTS, all_voices, synthesize
from vqfuse.data.registry import make_dataset
from vqfuse.data.speech import DigitSpeech, SpeechDataset, number_words, speech_catalogue, split_voices
from vqfuse.errors import VqfuseError

# A handful of voices keeps rendering well under a second; the full corpus is built once below.
FEW = ["en-us", "en-us+f3", "en+m3", "en-gb-x-rp+f1", "en-029+m5", "en-gb-scotland+f2", "en-us-nyc+m2", "en+Alex"]


def _dominant_hz(x: np.ndarray, sr: int = 22050) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / sr)[np.argmax(spec)])


# ---------------------------------------------------------------------------------------------- synthesis


def test_synthesize_is_speech_like():
    x = synthesize("seven", "en-us")
    assert x.dtype == np.float32 and x.ndim == 1
    assert 0.2 < len(x) / espeak.ESPEAK_SAMPLE_RATE < 2.0
    assert float(np.abs(x).max()) > 0.1 and float(np.abs(x).max()) <= 1.0
    assert float(np.sqrt(np.mean(x**2))) > 0.01  # not silent
    assert espeak.get_engine().sample_rate == espeak.ESPEAK_SAMPLE_RATE


def test_voices_rates_and_pitches_differ():
    a = synthesize("the cat sat on the mat", "en-us")
    b = synthesize("the cat sat on the mat", "en-us+f3")
    n = min(len(a), len(b))
    assert not np.allclose(a[:n], b[:n], atol=1e-2)
    slow = synthesize("the cat sat on the mat", "en-us", rate_wpm=120)
    fast = synthesize("the cat sat on the mat", "en-us", rate_wpm=260)
    assert len(slow) > 1.5 * len(fast)

    # a female variant speaks higher: compare spectral centroids of the two voices
    def centroid(x):
        s = np.abs(np.fft.rfft(x))
        f = np.fft.rfftfreq(len(x), 1 / 22050)
        return float((s * f).sum() / s.sum())

    assert centroid(b) > centroid(a)


def test_unknown_voice_and_variant_raise():
    with pytest.raises(VqfuseError, match="voice"):
        synthesize("one", "xx-nonexistent")
    with pytest.raises(VqfuseError, match="variant"):
        synthesize("one", "en+nosuchvariant")
    assert len(synthesize("one", "en-us")) > 0  # the engine still works afterwards


def test_synthesize_is_thread_safe():
    results: dict[int, int] = {}

    def run(i):
        results[i] = len(synthesize(number_words(10 + i), FEW[i % len(FEW)]))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 8 and all(n > 2000 for n in results.values())


def test_number_words():
    assert number_words(7) == "seven"
    assert number_words(42) == "forty two"
    assert number_words(13) == "thirteen"
    assert number_words(305) == "three hundred five"
    assert number_words(990) == "nine hundred ninety"
    with pytest.raises(ValueError):
        number_words(1000)


# ---------------------------------------------------------------------------------------------- corpus


def test_catalogue_is_deterministic_and_covers_kinds():
    cat = speech_catalogue()
    assert cat == speech_catalogue()
    voices = all_voices()
    assert len(voices) == len(set(voices)) >= 100
    assert len(cat) == len(voices) * 15 >= 1000
    assert {u.kind for u in cat} == {"digits", "numbers", "sentences"}
    digits = [u for u in cat if u.kind == "digits"]
    assert all(u.text == speech.DIGIT_WORDS[u.label] for u in digits)
    assert all(u.label == -1 for u in cat if u.kind != "digits")
    assert len({u.rate_wpm for u in cat}) > 20 and len({u.pitch for u in cat}) > 20
    assert {v.split("+")[0] for v in voices} == set(ACCENTS)


def test_split_is_by_voice_and_disjoint():
    voices = all_voices()
    train, test = split_voices(voices, "train"), split_voices(voices, "test")
    assert not set(train) & set(test)
    assert set(train) | set(test) == set(voices)
    assert 0.08 < len(test) / len(voices) < 0.25
    assert split_voices(voices, "test") == test  # stable
    # adding voices never moves an existing one
    assert set(split_voices(voices[:50], "test")) == set(test) & set(voices[:50])


def test_dataset_items_shapes_and_range():
    ds = SpeechDataset("all", sample_rate=16000, segment_seconds=1.0, voices=FEW)
    assert len(ds) == len(FEW) * 15
    assert len(ds.texts) == len(ds.voices) == len(ds.labels) == len(ds)
    for i in (0, 5, len(ds) - 1):
        x = ds[i]
        assert x.shape == (1, 16000) and x.dtype == torch.float32
        assert float(x.abs().max()) <= 1.0
    assert torch.equal(ds[3], ds[3])  # crops are seeded per index
    ds.set_epoch(1)
    long = [i for i, k in enumerate(ds.kinds) if k == "sentences"][0]
    a = ds[long]
    ds.set_epoch(0)
    assert not torch.equal(a, ds[long])  # a new epoch draws a new crop
    whole = SpeechDataset("all", sample_rate=16000, segment_seconds=None, voices=FEW)
    lengths = {whole[i].shape[-1] for i in range(len(whole))}
    assert len(lengths) > 10  # variable length
    peaks = [float(whole[i].abs().max()) for i in range(len(whole))]
    assert all(abs(p - speech_render.PEAK) < 1e-3 for p in peaks)
    assert (whole.labels >= 0).sum() == 10 * len(FEW)
    assert all(whole.texts[i] == speech.DIGIT_WORDS[int(l)] for i, l in enumerate(whole.labels) if l >= 0)


def test_resampled_rate_and_pitch_preserved():
    ds22 = SpeechDataset("all", sample_rate=22050, segment_seconds=None, voices=["en-us"], kinds=("digits",))
    ds16 = SpeechDataset("all", sample_rate=16000, segment_seconds=None, voices=["en-us"], kinds=("digits",))
    a, b = ds22.utterance(3)[0].numpy(), ds16.utterance(3)[0].numpy()
    assert abs(len(a) / 22050 - len(b) / 16000) < 0.01
    assert abs(_dominant_hz(a, 22050) - _dominant_hz(b, 16000)) < 15.0


def test_train_and_test_voices_disjoint_in_datasets():
    pool = all_voices()[:40]
    train = SpeechDataset("train", voices=pool, kinds=("digits",))
    test = SpeechDataset("test", voices=pool, kinds=("digits",))
    assert len(train) and len(test)
    assert not set(train.voices) & set(test.voices)
    assert set(train.voice_names) | set(test.voice_names) == set(pool)


def test_disk_cache_round_trip(tmp_path, monkeypatch):
    monkeypatch.setenv("VQFUSE_CACHE_DIR", str(tmp_path))
    ds = SpeechDataset("all", voices=FEW[:2], kinds=("numbers",))
    assert list(tmp_path.glob("speech-16000hz-*.npz"))
    expected = [ds.utterance(i) for i in range(len(ds))]
    speech_render._MEMORY.clear()
    monkeypatch.setattr(
        speech_render, "render_utterance", lambda *a, **k: pytest.fail("should come from the disk cache")
    )
    again = SpeechDataset("all", voices=FEW[:2], kinds=("numbers",))
    assert all(torch.equal(a, again.utterance(i)) for i, a in enumerate(expected))


def test_registry_builds_speech():
    ds = make_dataset("audio", "speech", sample_rate=8000, segment_seconds=0.5, split="all", voices=FEW[:2])
    assert isinstance(ds, SpeechDataset) and ds[0].shape == (1, 4000)
    with pytest.raises(VqfuseError):
        make_dataset("audio", "speech", sample_rate=16000, segment_seconds=0.0, split="train")
    with pytest.raises(VqfuseError):
        make_dataset("audio", "speech", sample_rate=16000, segment_seconds=1.0, split="validation")


def test_digit_speech():
    ds = DigitSpeech("all", voices=FEW)
    assert len(ds) == 10 * len(FEW)
    x, label = ds[0]
    assert x.shape == (1, 16000) and 0 <= label <= 9
    clip = ds.get(7, "en-us+f3")
    assert clip.shape == (1, 16000) and float(clip.abs().max()) > 0.5
    assert not torch.equal(ds.get(7, "en-us+f3"), ds.get(7, "en+m3"))
    assert torch.equal(ds.sample(4, 0), ds.sample(4, 0))
    assert len(ds.indices(4)) == len(FEW)
    with pytest.raises(KeyError):
        ds.get(1, "en-gb-x-gbclan+f4")


@pytest.mark.slow
def test_full_corpus_size_and_speed():
    """The full default corpus (both splits) renders in seconds and holds many minutes of speech."""
    import time

    t0 = time.perf_counter()
    train = SpeechDataset("train", disk_cache=False)
    test = SpeechDataset("test", disk_cache=False)
    elapsed = time.perf_counter() - t0
    assert len(train) >= 1000 and train.seconds > 10 * 60
    assert len(test) >= 100
    assert not set(train.voice_names) & set(test.voice_names)
    assert elapsed < 60  # ~5 s on 2 cores; a generous bound for loaded CI machines
