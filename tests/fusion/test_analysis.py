"""Fused token classifiers, missing modalities, pixel degradations and robustness measures."""

from __future__ import annotations

import json
import math

import pytest
import torch

from vqfuse.fusion.classifier_training import LateFusion, accuracy, evaluate_classifiers, fit_classifiers
from vqfuse.fusion.classifiers import LEVELS, TokenClassifier, TokenClassifierConfig
from vqfuse.fusion.robustness import (
    analyze,
    degrade,
    degraded_views,
    effective_robustness,
    plot_robustness,
    relative_robustness,
    robustness_sweep,
)

pytestmark = pytest.mark.usefixtures("single_thread")

K_IMG, K_AUD = 16, 14
IMG_SHAPE, AUD_SHAPE = (1, 4, 4), (2, 6)  # (S, h, w), (n_q, F)
VOCABS = {"image": K_IMG, "audio": K_AUD}
SHAPES = {"image": IMG_SHAPE, "audio": AUD_SHAPE}


def T(image, audio) -> dict:
    """The classifiers' token dict (None: that modality is missing)."""
    return {"image": image, "audio": audio}


SIGNAL = 10  # token values below this carry label information, noise tokens are >= SIGNAL
STEPS = 150
SMALL = {"dim": 32}  # classifier size for the tests


def _tokens(
    n: int, vocab: int, shape: tuple[int, ...], values: torch.Tensor | None, gen: torch.Generator, copies: int = 3
) -> torch.Tensor:
    """Noise tokens in [SIGNAL, vocab), with ``values[i]`` (nothing where it is -1) written at ``copies``
    random positions of item i: (N, *shape)."""
    x = torch.randint(SIGNAL, vocab, (n, math.prod(shape)), generator=gen)
    if values is not None:
        for i, v in enumerate(values.tolist()):
            if v >= 0:
                x[i, torch.randperm(x.shape[1], generator=gen)[:copies]] = v
    return x.reshape(n, *shape)


def _data(mode: str, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Synthetic (image tokens (N, 1, 4, 4), audio tokens (N, 2, 6), labels (N,)) with 10 classes.

    - "image": only the image tokens carry the label.
    - "split": the image tells label // 2 (5 values), the audio label % 2: alone each is capped at 50% / 20%.
    - "redundant": each modality carries the label but loses it (pure noise) with probability 0.35,
      independently: alone ~0.69, together ~0.89.
    """
    gen = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 10, (n,), generator=gen)
    if mode == "image":
        img, aud = _tokens(n, K_IMG, IMG_SHAPE, y, gen), _tokens(n, K_AUD, AUD_SHAPE, None, gen)
    elif mode == "split":
        img, aud = _tokens(n, K_IMG, IMG_SHAPE, y // 2, gen), _tokens(n, K_AUD, AUD_SHAPE, y % 2, gen)
    elif mode == "redundant":
        lost_i, lost_a = torch.rand(n, generator=gen) < 0.35, torch.rand(n, generator=gen) < 0.35
        img = _tokens(n, K_IMG, IMG_SHAPE, torch.where(lost_i, -1, y), gen)
        aud = _tokens(n, K_AUD, AUD_SHAPE, torch.where(lost_a, -1, y), gen)
    else:
        raise ValueError(mode)
    return img, aud, y


def _fit(mode: str, kinds=("image", "audio", "early", "late"), **config):
    img, aud, y = _data(mode, 800, seed=1)
    models = fit_classifiers(
        T(img, aud), y, VOCABS, num_classes=10, kinds=kinds, steps=STEPS, seed=0, **{**SMALL, **config}
    )
    return models, _data(mode, 400, seed=2)


def test_label_in_one_modality_only():
    models, (img, aud, y) = _fit("image")
    acc = {name: accuracy(m, T(img, aud), y) for name, m in models.items()}
    assert acc["image"] > 0.9, acc
    assert acc["audio"] < 0.25, acc  # noise: chance is 0.1
    assert acc["early"] > 0.9, acc
    assert acc["late"] > 0.85, acc


def test_fusion_beats_each_modality_when_the_label_is_split():
    models, (img, aud, y) = _fit("split", kinds=("image", "audio", "early", "early_shared", "late"))
    acc = {name: accuracy(m, T(img, aud), y) for name, m in models.items()}
    assert acc["image"] < 0.6 and acc["audio"] < 0.3, acc  # capped at 0.5 and 0.2
    best_single = max(acc["image"], acc["audio"])
    for fused in ("early", "early_shared", "late"):
        assert acc[fused] > best_single + 0.3, (fused, acc)
    assert isinstance(models["late"], LateFusion) and models["late"].members["image"] is models["image"]


def test_missing_modality_inference():
    models, (img, aud, y) = _fit("redundant", kinds=("image", "audio", "early", "late"), modality_dropout=0.4)
    table = evaluate_classifiers(models, T(img, aud), y)
    single = {m: table[m]["all"] for m in ("image", "audio")}
    assert 0.55 < single["image"] < 0.8 and 0.55 < single["audio"] < 0.8, table
    for fused in ("early", "late"):
        assert table[fused]["all"] > max(single.values()) + 0.1, table
        # without one modality the fused model falls back to about the other one's accuracy, far above chance
        # (early fusion trained without modality dropout falls to ~0.35-0.4 here)
        assert table[fused]["image_missing"] > max(0.5, single["audio"] - 0.12), table
        assert table[fused]["audio_missing"] > max(0.5, single["image"] - 0.12), table
    # late fusion with a head dropped is exactly the remaining unimodal classifier
    assert table["late"]["image_missing"] == table["audio"]["all"]
    # a unimodal classifier without its modality is uniform
    lp = models["image"].log_probs(T(None, aud))
    assert torch.allclose(lp, torch.full_like(lp, -math.log(10)))


@pytest.mark.parametrize("pool_per_modality", [True, False])
def test_early_fusion_missing_token_replaces_per_item(pool_per_modality):
    cfg = TokenClassifierConfig(
        kind="early",
        num_classes=3,
        vocabs=VOCABS,
        shapes=SHAPES,
        layers=1,
        pool="attention",
        dropout=0.0,
        pool_per_modality=pool_per_modality,
        unimodal_loss_weight=1.0 if pool_per_modality else 0.0,
    )
    model = TokenClassifier(cfg).eval()
    img, aud, _ = _data("split", 4, seed=3)
    other = img.flip(0)
    present = torch.tensor([True, False, True, False])
    with torch.no_grad():
        a = model(T(img, aud), {"image": present})
        b = model(T(other, aud), {"image": present})  # absent images: their tokens do not matter
        c = model(T(None, aud))  # all images absent
    assert torch.allclose(a[~present], b[~present]) and not torch.allclose(a[present], b[present])
    assert torch.allclose(a[~present], c[~present], atol=1e-6)
    with pytest.raises(ValueError):
        model(T(img[:, :, :2], aud))


@pytest.mark.parametrize("kind", ["image", "audio", "early"])
def test_token_dropout_hides_tokens_only_while_training(kind):
    cfg = TokenClassifierConfig(kind=kind, num_classes=3, vocabs=VOCABS, shapes=SHAPES, dropout=0.0, token_dropout=0.5)
    model = TokenClassifier(cfg)
    present = torch.tensor([True] * 3000 + [False] * 1000)
    torch.manual_seed(0)
    keep = model.train()._keep(present, 16)  # (4000, 16)
    assert abs(keep[:3000].float().mean().item() - 0.5) < 0.02 and not keep[3000:].any()
    assert model.eval()._keep(present, 16).equal(present[:, None].expand(-1, 16))
    img, aud, _ = _data("split", 8, seed=3)
    with torch.no_grad():
        train_a, train_b = model.train()(T(img, aud)), model(T(img, aud))
        eval_a, eval_b = model.eval()(T(img, aud)), model(T(img, aud))
    assert not torch.allclose(train_a, train_b) and torch.equal(eval_a, eval_b)
    with pytest.raises(ValueError, match="token_dropout"):
        TokenClassifierConfig(kind=kind, num_classes=3, vocabs=VOCABS, shapes=SHAPES, token_dropout=1.0)


@pytest.mark.parametrize("level", [0.1, 0.3, 0.7])
def test_dropout_zeroes_the_requested_fraction(level):
    x = torch.rand(8, 3, 32, 32) * 0.5 + 0.25  # no pixel is -1
    y = degrade(x, "dropout", level, torch.Generator().manual_seed(0))
    dropped = (y == -1).all(dim=1)  # (N, H, W): all channels of a pixel together
    assert abs(dropped.float().mean().item() - level) < 0.02
    assert torch.equal(y.eq(-1).any(1), dropped) and torch.equal(y[:, :, ~dropped.any(0)], x[:, :, ~dropped.any(0)])


@pytest.mark.parametrize("level", [0.0, 0.1, 0.25, 0.5, 0.9, 1.0])
def test_occlusion_covers_the_requested_area(level):
    x = torch.ones(6, 3, 32, 32)
    y = degrade(x, "occlusion", level, torch.Generator().manual_seed(1))
    covered = (y == -1).all(dim=1).float().mean(dim=(1, 2))  # (N,)
    assert torch.all((covered - level).abs() < 0.035), covered
    if 0 < level < 1:  # one square, not always at the same place
        rows = (y[:, 0] == -1).any(dim=2).float().argmax(dim=1)
        assert len(set(rows.tolist())) > 1


@pytest.mark.parametrize("level", [0.0, 0.1, 0.5])
def test_noise_has_the_requested_std(level):
    x = torch.zeros(16, 3, 32, 32)
    y = degrade(x, "noise", level, torch.Generator().manual_seed(2), clamp=False)
    assert abs(y.std().item() - level) < 0.01 + 0.02 * level
    assert degrade(x, "noise", 2.0).abs().max() <= 1.0  # clipped to the image range by default


def test_degrade_rejects_bad_input():
    with pytest.raises(ValueError):
        degrade(torch.zeros(2, 3, 8, 8), "blur", 0.5)
    with pytest.raises(ValueError):
        degrade(torch.zeros(2, 3, 8, 8), "dropout", 1.5)


def test_relative_and_effective_robustness():
    assert relative_robustness(LEVELS, [0.73] * len(LEVELS)) == pytest.approx(0.73)
    assert relative_robustness([0.0, 1.0], [1.0, 0.0]) == pytest.approx(0.5)
    assert relative_robustness(LEVELS, [1 - v for v in LEVELS]) == pytest.approx(0.5)
    assert relative_robustness([0.0, 0.5], [0.4, 0.4]) == pytest.approx(0.4)  # normalised by the level range
    er = effective_robustness([0.0, 0.5, 1.0], [0.9, 0.8, 0.5], [0.9, 0.6, 0.1])
    assert er["per_level"] == pytest.approx([0.0, 0.2, 0.4]) and er["area"] == pytest.approx(0.2)
    with pytest.raises(ValueError):
        relative_robustness([0.0, 1.0, 0.5], [1, 1, 1])


def _images(y: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """16x16 images: class c % 4 lights up quadrant c % 4, class // 4 sets its brightness; (N, 3, 16, 16)."""
    x = torch.full((len(y), 3, 16, 16), -1.0) + 0.1 * torch.randn(len(y), 3, 16, 16, generator=gen)
    for i, c in enumerate(y.tolist()):
        q = c % 4
        x[i, :, 8 * (q // 2) : 8 * (q // 2) + 8, 8 * (q % 2) : 8 * (q % 2) + 8] = 1.0 if c < 4 else 0.2
    return x.clamp(-1, 1)


def _pool_tokenizer(images: torch.Tensor) -> torch.Tensor:
    """Stand-in tokenizer: 4x4 average pool of the grey level, quantised to 4 levels -> (N, 1, 4, 4) in [0, 4)."""
    g = torch.nn.functional.avg_pool2d(images.mean(dim=1, keepdim=True), 4)  # (N, 1, 4, 4) in [-1, 1]
    return ((g + 1) / 2 * 4).floor().clamp(0, 3).long()


def test_robustness_sweep_end_to_end(tmp_path):
    gen = torch.Generator().manual_seed(5)
    y = torch.randint(0, 8, (600,), generator=gen)
    images = _images(y, gen)
    aud = _tokens(len(y), K_AUD, AUD_SHAPE, torch.where(torch.rand(len(y), generator=gen) < 0.5, y, -1), gen)
    tr, te = slice(0, 400), slice(400, 600)
    models = fit_classifiers(
        T(_pool_tokenizer(images[tr]), aud[tr]),
        y[tr],
        {"image": 4, "audio": K_AUD},
        num_classes=8,
        kinds=("image", "audio", "early", "late"),
        steps=150,
        seed=0,
        **SMALL,
    )
    levels = [0.0, 0.5, 1.0]
    res = robustness_sweep(
        models, images[te], {"audio": aud[te]}, y[te], _pool_tokenizer, "image", levels=levels, seed=0
    )
    json.dumps(res)  # plain JSON
    assert res["levels"] == levels and set(res["degradations"]) == {"noise", "dropout", "occlusion"}
    occl = res["degradations"]["occlusion"]
    assert occl["accuracy"]["image"][0] > 0.9  # clean
    assert occl["accuracy"]["image"][-1] < 0.3  # fully occluded: one token everywhere
    assert len(set(occl["accuracy"]["audio"])) == 1  # audio is never degraded
    assert occl["accuracy"]["early"][0] > 0.9
    assert set(occl["effective_robustness"]) == {"image", "audio", "early"}
    er = occl["effective_robustness"]["early"]
    assert er["per_level"] == pytest.approx(
        [a - b for a, b in zip(occl["accuracy"]["early"], occl["accuracy"]["late"])]
    )
    assert occl["relative_robustness"]["audio"] == pytest.approx(occl["accuracy"]["audio"][0])
    png = plot_robustness(res, tmp_path / "robustness.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_image_views_teach_the_classifier():
    """Clean image tokens without label information plus views that carry it: only training on the views
    lets the image classifier read label-bearing tokens."""
    informative, aud, y = _data("image", 800, seed=1)
    gen = torch.Generator().manual_seed(3)
    blank = _tokens(len(y), K_IMG, IMG_SHAPE, None, gen)
    test_img, test_aud, test_y = _data("image", 400, seed=2)
    acc = {}
    for name, views in (("with", {"image": informative[None]}), ("without", None)):
        models = fit_classifiers(
            T(blank, aud), y, VOCABS, num_classes=10, kinds=("image",), steps=STEPS, seed=0, views=views, **SMALL
        )
        acc[name] = accuracy(models["image"], T(test_img, test_aud), test_y)
    assert acc["with"] > 0.6 and acc["without"] < 0.25, acc
    with pytest.raises(ValueError, match="image views must be"):
        fit_classifiers(T(blank, aud), y, VOCABS, kinds=("image",), steps=1, views={"image": informative})


def test_degraded_views_shapes_and_draws():
    gen = torch.Generator().manual_seed(8)
    images = _images(torch.randint(0, 8, (40,), generator=gen), gen)
    views = degraded_views(images, _pool_tokenizer, ("noise", "occlusion"), levels=(0.0, 0.8), seed=0)
    assert views.shape == (4, 40, 1, 4, 4) and views.dtype == torch.long
    assert torch.equal(views[0], _pool_tokenizer(images))  # noise of std 0 changes nothing
    assert torch.equal(views, degraded_views(images, _pool_tokenizer, ("noise", "occlusion"), levels=(0.0, 0.8)))
    other = degraded_views(images, _pool_tokenizer, ("noise", "occlusion"), levels=(0.0, 0.8), seed=1)
    assert not torch.equal(views[1], other[1])  # the seed sets the draws
    assert not torch.equal(views[3], _pool_tokenizer(images))  # 80 % occluded


def test_analyze_report_is_json(tmp_path):
    img, aud, y = _data("split", 200, seed=6)
    report = analyze(
        T(img[:150], aud[:150]),
        y[:150],
        T(img[150:], aud[150:]),
        y[150:],
        VOCABS,
        kinds=("image", "early", "late"),
        steps=5,
        dim=16,
    )
    json.dumps(report)
    assert set(report["accuracy"]) == {"image", "early", "late"} and report["robustness"] is None
    assert set(report["accuracy"]["early"]) == {"all", "image_missing", "audio_missing"}


def test_token_validation():
    img, aud, y = _data("split", 20, seed=7)
    with pytest.raises(ValueError):
        fit_classifiers(T(img.float(), aud), y, VOCABS, steps=1)
    with pytest.raises(ValueError):
        fit_classifiers(T(img, aud), y, {"image": 4, "audio": K_AUD}, steps=1)  # tokens beyond the vocabulary
    with pytest.raises(ValueError):
        fit_classifiers(T(img, aud[:10]), y, VOCABS, steps=1)
    models = fit_classifiers(T(img, aud[:, :1]), y, VOCABS, num_classes=10, kinds=("audio",), steps=1)  # one stage
    assert models["audio"].config.shapes["audio"] == (1, AUD_SHAPE[1])
    with pytest.raises(ValueError, match="audio codes must be integer"):
        fit_classifiers(T(img, aud[:, 0]), y, VOCABS, steps=1)  # no stage axis


def test_unimodal_loss_trains_a_head_per_modality():
    # "redundant": each modality alone carries the label ~65% of the time; the per-modality heads only learn
    # that through the auxiliary loss (untrained, they sit near chance, 0.1)
    models, (img, aud, y) = _fit("redundant", kinds=("early", "image"), unimodal_loss_weight=1.0)
    early = models["early"].eval()
    assert models["image"].unimodal is None  # unimodal classifiers ignore the option
    with torch.no_grad():
        logits, heads = early(T(img, aud), unimodal=True)
        plain = early(T(img, aud))
    assert torch.equal(logits, plain)  # the heads never change the fused prediction
    for name in ("image", "audio"):
        head_acc = float((heads[name].argmax(-1) == y).float().mean())
        assert head_acc > 0.5, (name, head_acc)
    train_img, train_aud, train_y = _data("redundant", 800, seed=1)
    untrained = fit_classifiers(
        T(train_img, train_aud),
        train_y,
        VOCABS,
        num_classes=10,
        kinds=("early",),
        steps=0,
        seed=0,
        unimodal_loss_weight=1.0,
        **SMALL,
    )["early"].eval()
    with torch.no_grad():
        _, cold = untrained(T(img, aud), unimodal=True)
    assert float((cold["audio"].argmax(-1) == y).float().mean()) < 0.3


def test_unimodal_loss_validation():
    base = dict(num_classes=3, vocabs=VOCABS, shapes=SHAPES)
    with pytest.raises(ValueError, match="pool_per_modality"):
        TokenClassifierConfig(kind="early", unimodal_loss_weight=1.0, pool_per_modality=False, **base)
    with pytest.raises(ValueError, match=">= 0"):
        TokenClassifierConfig(kind="early", unimodal_loss_weight=-1.0, **base)
    plain = TokenClassifier(TokenClassifierConfig(kind="early", unimodal_loss_weight=0.0, **base))
    img, aud, _ = _data("split", 4, seed=3)
    with pytest.raises(ValueError, match="no unimodal heads"):
        plain(T(img, aud), unimodal=True)


def test_any_number_of_modalities():
    """Three modalities (a sensor-like 1-D one among them), the label split across two of them: early and late
    fusion read every modality, and a missing one is reported per modality."""
    gen = torch.Generator().manual_seed(11)
    n = 600
    y = torch.randint(0, 4, (n,), generator=gen)
    tokens = {
        "image": _tokens(n, K_IMG, IMG_SHAPE, y // 2, gen),
        "audio": _tokens(n, K_AUD, AUD_SHAPE, None, gen),
        "sensor": _tokens(n, 12, (1, 8), y % 2, gen),
    }
    vocabs = {"image": K_IMG, "audio": K_AUD, "sensor": 12}
    train = {m: t[:400] for m, t in tokens.items()}
    test = {m: t[400:] for m, t in tokens.items()}
    models = fit_classifiers(train, y[:400], vocabs, num_classes=4, steps=STEPS, seed=0, **SMALL)
    assert list(models) == ["image", "audio", "sensor", "early", "late"]
    assert list(models["late"].members) == ["image", "audio", "sensor"] and models["early"].missing.shape[0] == 3
    table = evaluate_classifiers(models, test, y[400:])
    assert set(table["early"]) == {"all", "image_missing", "audio_missing", "sensor_missing"}
    best_single = max(table[m]["all"] for m in vocabs)
    assert table["early"]["all"] > best_single + 0.2 and table["late"]["all"] > best_single + 0.2, table
    assert table["late"]["audio_missing"] > best_single + 0.2  # the audio carries nothing here
