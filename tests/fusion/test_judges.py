"""Judges (real-data classifiers for generated samples) and their metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch

from vqfuse.errors import InputFileError
from vqfuse.fusion.judge_kinds import AudioJudge, ImageJudge, log_mel_features
from vqfuse.fusion.judges import Judge, load_judge
from vqfuse.metrics.generation import (
    coherence,
    frechet_distance,
    gaussian_frechet_distance,
    joint_coherence,
    judge_frechet_distance,
)

pytestmark = pytest.mark.usefixtures("single_thread")

SR = 16000
TONES = (300.0, 900.0, 2500.0)  # Hz, one per class


# ----------------------------------------------------------------------------------------------
# Frechet distance


def _random_cov(d: int, rng: np.random.Generator) -> np.ndarray:
    a = rng.normal(size=(d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


def test_frechet_closed_form_1d():
    # N(m1, s1^2) vs N(m2, s2^2): (m1 - m2)^2 + (s1 - s2)^2
    assert gaussian_frechet_distance([1.0], [[4.0]], [-2.0], [[0.25]]) == pytest.approx(9 + 1.5**2)


def test_frechet_closed_form_scaled_covariance():
    # N(mu1, S) vs N(mu2, c^2 S), S full: |mu1 - mu2|^2 + tr(S) (1 - c)^2
    rng = np.random.default_rng(0)
    s, mu1, mu2, c = _random_cov(6, rng), rng.normal(size=6), rng.normal(size=6), 1.7
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s) * (1 - c) ** 2
    assert gaussian_frechet_distance(mu1, s, mu2, c**2 * s) == pytest.approx(expected, rel=1e-9)
    assert gaussian_frechet_distance(mu1, s, mu1, s) == pytest.approx(0.0, abs=1e-9)


def test_frechet_matches_sqrtm_for_non_commuting_covariances():
    rng = np.random.default_rng(1)
    a, b = _random_cov(5, rng), _random_cov(5, rng)
    assert not np.allclose(a @ b, b @ a)
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    covmean = scipy.linalg.sqrtm(a @ b).real
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(a + b - 2 * covmean)
    value = gaussian_frechet_distance(mu1, a, mu2, b)
    assert value == pytest.approx(expected, rel=1e-8)
    assert value == pytest.approx(gaussian_frechet_distance(mu2, b, mu1, a), rel=1e-8)  # symmetric
    # diagonal covariances: sum of (sqrt(a_i) - sqrt(b_i))^2
    da, db = np.diag([1.0, 4.0, 9.0]), np.diag([4.0, 1.0, 9.0])
    assert gaussian_frechet_distance(np.zeros(3), da, np.zeros(3), db) == pytest.approx(2.0)


def test_frechet_distance_of_samples():
    gen = torch.Generator().manual_seed(0)
    n, d = 20000, 4
    x = torch.randn(n, d, generator=gen)  # N(0, I)
    y = 2.0 * torch.randn(n, d, generator=gen) + 0.5  # N(0.5, 4 I): 4 * 0.25 + 4 * (2 - 1)^2 = 5
    assert frechet_distance(x, y) == pytest.approx(5.0, rel=0.05)
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-6)
    assert frechet_distance(x.numpy(), y) == pytest.approx(frechet_distance(y, x))
    with pytest.raises(ValueError):
        frechet_distance(x, y[:, :3])


# ----------------------------------------------------------------------------------------------
# Judges on tiny synthetic sets


def _images(y: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Class c lights up horizontal band c of a dark 32x32 image, plus noise: (N, 3, 32, 32)."""
    x = -1 + 0.3 * torch.rand(len(y), 3, 32, 32, generator=gen)
    for i, c in enumerate(y.tolist()):
        x[i, :, 4 + 9 * c : 10 + 9 * c, 4:28] = 0.8
    return x


def _tones(y: torch.Tensor, gen: torch.Generator, seconds: float = 0.5) -> torch.Tensor:
    """Class c: a tone at TONES[c] with a random onset, gain and phase, plus noise: (N, 1, T)."""
    t = torch.arange(int(seconds * SR)) / SR
    out = 0.01 * torch.randn(len(y), 1, len(t), generator=gen)
    for i, c in enumerate(y.tolist()):
        start = int(torch.randint(0, len(t) // 2, (1,), generator=gen))
        gain = 0.1 + 0.8 * float(torch.rand(1, generator=gen))
        phase = 2 * math.pi * float(torch.rand(1, generator=gen))
        out[i, 0, start:] += gain * torch.sin(2 * math.pi * TONES[c] * t[: len(t) - start] + phase)
    return out.clamp(-1, 1)


@pytest.fixture(scope="module")
def image_judge_and_data():
    gen = torch.Generator().manual_seed(0)
    y = torch.randint(0, 3, (240,), generator=gen)
    x = _images(y, gen)
    judge = ImageJudge(num_classes=3).fit(x[:160], y[:160], steps=40, seed=0)
    return judge, x[160:], y[160:]


@pytest.fixture(scope="module")
def audio_judge_and_data():
    gen = torch.Generator().manual_seed(1)
    y = torch.randint(0, 3, (160,), generator=gen)
    x = _tones(y, gen)
    judge = AudioJudge(num_classes=3).fit(x[:100], y[:100], steps=40, seed=0)
    return judge, x[100:], y[100:]


def test_image_judge_learns_and_reports(image_judge_and_data):
    judge, x, y = image_judge_and_data
    assert coherence(judge, x, y) > 0.95
    assert coherence(judge, x, (y + 1) % 3) < 0.05  # wrong intended labels
    p = judge.probs(x)
    assert p.shape == (len(x), 3) and torch.allclose(p.sum(1), torch.ones(len(x)), atol=1e-5)
    assert torch.equal(judge.predict(x), p.argmax(1))
    f = judge.features(x)
    assert f.shape == (len(x), judge.config["feature_dim"])
    assert judge.fit_info["train_accuracy"] > 0.95
    # other image sizes are resized
    assert coherence(judge, torch.nn.functional.interpolate(x, size=64), y) > 0.9


def test_audio_judge_learns(audio_judge_and_data):
    judge, x, y = audio_judge_and_data
    assert coherence(judge, x, y) > 0.95
    assert judge.features(x[:, 0]).shape == (len(x), 128)  # (N, T) works too
    assert coherence(judge, 0.2 * x, y) > 0.95  # gain-invariant features


def test_judge_fit_is_reproducible():
    gen = torch.Generator().manual_seed(2)
    y = torch.randint(0, 3, (48,), generator=gen)
    x = _images(y, gen)
    a = ImageJudge(num_classes=3).fit(x, y, steps=3, seed=7).logits(x)
    b = ImageJudge(num_classes=3).fit(x, y, steps=3, seed=7).logits(x)
    c = ImageJudge(num_classes=3).fit(x, y, steps=3, seed=8).logits(x)
    assert torch.equal(a, b) and not torch.allclose(a, c)


def test_save_and_load(tmp_path, image_judge_and_data, audio_judge_and_data):
    for (judge, x, _), cls in ((image_judge_and_data, ImageJudge), (audio_judge_and_data, AudioJudge)):
        path = judge.save(tmp_path / judge.kind)
        assert (path / "model.safetensors").is_file() and (path / "config.json").is_file()
        loaded = load_judge(path)
        assert type(loaded) is cls and loaded.config == judge.config and loaded.fit_info == judge.fit_info
        assert torch.allclose(loaded.logits(x), judge.logits(x), atol=1e-6)
        assert type(cls.load(path)) is cls and type(Judge.load(path)) is cls
    with pytest.raises(InputFileError):
        AudioJudge.load(tmp_path / "image")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text('{"format": "something else"}')
    with pytest.raises(InputFileError):
        load_judge(tmp_path / "bad")


def test_joint_coherence_and_judge_fid(image_judge_and_data, audio_judge_and_data):
    ij, xi, yi = image_judge_and_data
    aj, xa, ya = audio_judge_and_data
    n = min(len(xi), len(xa))
    # pair each image with a clip of the same class where one exists
    order = [int(torch.nonzero(ya == c)[k % int((ya == c).sum())]) for k, c in enumerate(yi[:n].tolist())]
    xa_matched = xa[order]
    assert joint_coherence([ij, aj], [xi[:n], xa_matched]) > 0.9
    assert joint_coherence([ij, aj], [xi[:n], xa_matched], labels=yi[:n]) > 0.9
    assert (
        joint_coherence([ij, aj], [xi[:n], xa[[int(torch.nonzero(ya == (c + 1) % 3)[0]) for c in yi[:n].tolist()]]])
        < 0.1
    )
    # feature-space Frechet distance: same distribution is closer than another class
    same = judge_frechet_distance(ij, xi[yi == 0][:20], xi[yi == 0][20:])
    other = judge_frechet_distance(ij, xi[yi == 0][:20], xi[yi == 1])
    assert same < other


def test_log_mel_features_shape_and_range():
    x = _tones(torch.tensor([0, 2]), torch.Generator().manual_seed(3), seconds=1.0)
    f = log_mel_features(x)
    assert f.shape == (2, 1, 32, 51) and f.min() >= -2.0 - 1e-6 and f.max() <= 2.0 + 1e-6
    with pytest.raises(ValueError):
        log_mel_features(torch.zeros(2, 2, 100))


def test_bad_arguments():
    with pytest.raises(ValueError):
        ImageJudge(colour=True)
    with pytest.raises(ValueError):
        ImageJudge(num_classes=3).fit(torch.zeros(4, 3, 16, 16), torch.tensor([0, 1, 2, 3]), steps=1)
    with pytest.raises(ValueError):
        ImageJudge().predict(torch.zeros(4, 1, 16, 16))


def test_class_diversity_tells_a_one_class_sampler_from_an_even_one():
    from types import SimpleNamespace

    from vqfuse.metrics.generation import class_diversity

    def judge(pred: list[int]) -> SimpleNamespace:  # a judge that predicts `pred`, whatever it is shown
        return SimpleNamespace(num_classes=4, predict=lambda x: torch.tensor(pred))

    one = class_diversity(judge([2] * 8), torch.zeros(8))
    assert one == {"entropy": 0.0, "covered": 1, "top_share": 1.0}
    even = class_diversity(judge([0, 1, 2, 3] * 2), torch.zeros(8))
    assert even["entropy"] == pytest.approx(1.0) and even["covered"] == 4 and even["top_share"] == 0.25
    half = class_diversity(judge([0] * 4 + [1] * 4), torch.zeros(8))
    assert half["entropy"] == pytest.approx(0.5) and half["covered"] == 2  # log 2 / log 4
