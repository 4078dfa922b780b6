"""Tests for vqfuse.fusion.repair: masks, noise, metrics, token-level repair with a MaskGIT prior, and
inpainting / enhancement end to end through tiny tokenizers."""

from __future__ import annotations

import json
import math

import pytest
import torch

from vqfuse.fusion.damage import (
    add_noise,
    free_form_mask,
    masked_psnr,
    measured_snr_db,
    random_box_mask,
    token_mask_from_elements,
)
from vqfuse.fusion.repair import decode_items, enhance, enhance_tokens, infill, inpaint, select_unknown, token_log_probs
from vqfuse.fusion.repair_eval import evaluate_repair, repair_headline
from vqfuse.fusion.tokens import flatten_codes, unflatten_codes
from vqfuse.metrics.audio import si_snr
from vqfuse.modalities.audio_gain import spectral_gain
from vqfuse.nets.autoencoder import AutoencoderConfig
from vqfuse.prior import PriorConfig, PriorTransformer, SequenceLayout, drop_condition, maskgit_loss
from vqfuse.tokenizer import Tokenizer, TokenizerConfig

pytestmark = pytest.mark.usefixtures("single_thread")

# ---- tiny tokenizers and a random prior ----------------------------------------------------------------

IMAGE_SIZE, AUDIO_LEN, N_Q = 16, 400, 2  # image tokens 8x8 (32 codes); audio 2 x 20 (16 codes)


@pytest.fixture(scope="module")
def tokenizers() -> tuple[Tokenizer, Tokenizer]:
    torch.manual_seed(0)
    image = Tokenizer(
        TokenizerConfig(
            modality="image",
            quantizer={"kind": "vq", "codebook_size": 32},
            autoencoder=AutoencoderConfig(
                dims=2, in_channels=3, channels=8, channel_mults=(1, 2), latent_dim=8, norm_groups=4
            ),
        )
    ).eval()
    audio = Tokenizer(
        TokenizerConfig(
            modality="audio",
            quantizer={"kind": "rvq", "codebook_size": 16, "n_quantizers": N_Q},
            autoencoder=AutoencoderConfig(
                dims=1, in_channels=1, channels=4, channel_mults=(1, 2, 2), strides=(4, 5), latent_dim=8, norm_groups=4
            ),
        )
    ).eval()
    return image, audio


E2E_LAYOUT = SequenceLayout([("image", 32, 64), ("audio", 16, 20 * N_Q)])


@pytest.fixture(scope="module")
def random_prior() -> PriorTransformer:
    torch.manual_seed(0)
    return PriorTransformer(PriorConfig.for_layout(E2E_LAYOUT, dim=32, depth=1, heads=2, causal=False)).eval()


def paired_batch(b: int = 3, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(b, 3, 4, 4, generator=g) * 2 - 1
    images = torch.nn.functional.interpolate(low, size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear", align_corners=False)
    t = torch.arange(AUDIO_LEN) / 16000
    freqs = 200 + 300 * torch.rand(b, 1, 1, generator=g)
    audio = 0.5 * torch.sin(2 * math.pi * freqs * t)  # (B, 1, T)
    return images, audio


# ---- audio token order ---------------------------------------------------------------------------------


def test_flatten_audio_is_frame_major_and_inverts():
    grid = torch.tensor([[[0, 1, 2], [10, 11, 12]]])  # (1, n_q=2, F=3)
    flat = flatten_codes(grid)
    assert flat.tolist() == [[0, 10, 1, 11, 2, 12]]
    assert torch.equal(unflatten_codes(flat, 2, (3,)), grid)


# ---- masks ---------------------------------------------------------------------------------------------


def test_token_mask_covers_exactly_overlapping_cells():
    g = torch.Generator().manual_seed(0)
    pixel = torch.cat(
        [random_box_mask(4, 16, 16, generator=g), free_form_mask(4, 16, 16, generator=g)]
    )  # (8, 1, 16, 16)
    pixel[0] = False
    pixel[0, 0, 5, 9] = True  # one pixel: cell (1, 2) of a 4x4 grid
    for dilation in (0, 1, 2):
        got = token_mask_from_elements(pixel, (4, 4), dilation)  # (8, 4, 4)
        expected = torch.zeros_like(got)
        for b in range(8):
            for i in range(4):
                for j in range(4):
                    cell = pixel[
                        b,
                        0,
                        max(0, i - dilation) * 4 : (i + dilation + 1) * 4,
                        max(0, j - dilation) * 4 : (j + dilation + 1) * 4,
                    ]
                    expected[b, i, j] = bool(cell.any())
        assert torch.equal(got, expected), dilation
    one = token_mask_from_elements(pixel[:1], (4, 4), 0)[0]
    assert one.nonzero().tolist() == [[1, 2]]
    assert token_mask_from_elements(pixel[:1], (4, 4), 1)[0].sum() == 9


def test_token_mask_from_elements_in_1d_and_3d():
    mask = torch.zeros(1, 1, 40, dtype=torch.bool)
    mask[0, 0, 17] = True  # element 17 of 40 sits in cell 4 of 10 (4 elements per cell)
    assert token_mask_from_elements(mask, (10,), 0)[0].nonzero().tolist() == [[4]]
    assert token_mask_from_elements(mask, (10,), 1)[0].nonzero().flatten().tolist() == [3, 4, 5]
    clip = torch.zeros(2, 1, 8, 16, 16, dtype=torch.bool)
    clip[1, 0, 5, 3, 12] = True  # frame 5 -> cell 2 of 4 in time; pixel (3, 12) -> cell (0, 3) of 4x4
    got = token_mask_from_elements(clip, (4, 4, 4), 0)
    assert got.shape == (2, 4, 4, 4) and not got[0].any() and got[1].nonzero().tolist() == [[2, 0, 3]]
    with pytest.raises(ValueError, match="expected a mask"):
        token_mask_from_elements(clip[:, 0], (4, 4, 4), 0)
    # a video tokenizer coding its first frame alone: 21 frames -> 6 latent frames at factor 4 (0 | 1-4 | ...)
    video = torch.zeros(1, 1, 21, 8, 8, dtype=torch.bool)
    video[0, 0, 8:12] = True  # frames 9-12 (1-based) missing
    cells = token_mask_from_elements(video, (6, 1, 1), 0, factors=(4, 8, 8), lead=3)[0, :, 0, 0]
    assert cells.tolist() == [False, False, True, True, False, False]  # latent 2: frames 6-9, latent 3: 10-13


def test_random_box_mask_is_one_box_within_area_range():
    g = torch.Generator().manual_seed(1)
    for (h, w), frac in [((16, 16), (0.25, 0.5)), ((32, 24), (0.1, 0.15)), ((7, 5), (0.2, 0.3))]:
        mask = random_box_mask(50, h, w, frac, generator=g)
        assert mask.shape == (50, 1, h, w) and mask.dtype == torch.bool
        area = mask.float().mean((1, 2, 3))
        assert frac[0] <= float(area.min()) and float(area.max()) <= frac[1]
        for m in mask[:, 0]:
            rows, cols = m.any(1).nonzero()[:, 0], m.any(0).nonzero()[:, 0]
            box = (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
            assert int(box) == int(m.sum())  # a full rectangle
        assert len({tuple(m.nonzero()[0].tolist()) for m in mask[:, 0]}) > 5  # placed at random
    with pytest.raises(ValueError, match="no box"):
        random_box_mask(1, 4, 4, (0.3, 0.31))  # areas of 4x4 boxes are multiples of 1/16
    ff = free_form_mask(6, 32, 32, torch.Generator().manual_seed(0))
    assert ff.shape == (6, 1, 32, 32) and bool(ff.flatten(1).any(1).all()) and float(ff.float().mean()) < 0.9


# ---- noise and metrics ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["white", "babble"])
def test_add_noise_hits_the_snr(kind):
    _, clean = paired_batch(4)
    for target in (-5.0, 0.0, 7.5):
        noisy = add_noise(clean, target, torch.Generator().manual_seed(0), kind=kind)
        assert noisy.shape == clean.shape and noisy.dtype == clean.dtype
        measured = measured_snr_db(noisy, clean)
        assert float((measured - target).abs().max()) < 0.01, measured
    a = add_noise(clean, 0.0, torch.Generator().manual_seed(3), kind=kind)
    b = add_noise(clean, 0.0, torch.Generator().manual_seed(3), kind=kind)
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="noise kind"):
        add_noise(clean, 0.0, kind="pink")  # type: ignore[arg-type]


def test_masked_psnr_matches_hand_computation():
    g = torch.Generator().manual_seed(0)
    target = torch.rand(2, 3, 8, 8, generator=g) * 2 - 1
    output = target + 0.1 * torch.randn(2, 3, 8, 8, generator=g)
    mask = torch.zeros(2, 1, 8, 8, dtype=torch.bool)
    mask[0, 0, :4, :4] = True
    mask[1, 0, 2:7, 3] = True
    hand = []
    for b in range(2):
        m = mask[b].expand(3, 8, 8)
        mse = ((output[b] - target[b])[m] ** 2).mean()
        hand.append(10 * math.log10(4.0 / float(mse)))
    per_item = masked_psnr(output, target, mask, reduction="none")
    torch.testing.assert_close(per_item, torch.tensor(hand), atol=1e-4, rtol=0)
    assert abs(float(masked_psnr(output, target, mask)) - sum(hand) / 2) < 1e-4
    changed = output.clone()
    changed[~mask.expand_as(output)] = 5.0  # pixels outside the mask do not count
    torch.testing.assert_close(masked_psnr(changed, target, mask, reduction="none"), per_item)


# ---- token-level pieces with a random prior ------------------------------------------------------------


def test_token_log_probs_match_masking_one_group_at_a_time(random_prior):
    g = torch.Generator().manual_seed(0)
    image = torch.randint(0, 32, (2, 64), generator=g)
    audio = torch.randint(0, 16, (2, 40), generator=g)
    lo, hi = E2E_LAYOUT.vocab_range("audio")
    sl = E2E_LAYOUT.slices()["audio"]
    packed = E2E_LAYOUT.pack({"image": image, "audio": audio})
    for groups in (1, 3):
        got = token_log_probs(random_prior, E2E_LAYOUT, "audio", audio, {"image": image}, groups=groups)  # (2, 40)
        expected = torch.empty(2, 40)
        for k in range(groups):
            pos = torch.arange(40) % groups == k
            ids = packed.ids.clone()
            ids[:, sl] = ids[:, sl].masked_fill(pos, E2E_LAYOUT.mask_id)
            logp = random_prior(ids, packed.modalities, packed.positions)[:, sl, lo:hi].log_softmax(-1)
            expected[:, pos] = logp.gather(-1, audio[..., None])[..., 0][:, pos]
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    # without a condition the image segment holds NULL tokens, so any image tokens give the same scores
    a = token_log_probs(random_prior, E2E_LAYOUT, "audio", audio, None)
    assert not torch.allclose(a, token_log_probs(random_prior, E2E_LAYOUT, "audio", audio, {"image": image}))


def test_infill_in_one_greedy_step_is_the_argmax_given_the_condition_or_null(random_prior):
    g = torch.Generator().manual_seed(1)
    image = torch.randint(0, 32, (2, 64), generator=g)
    audio = torch.randint(0, 16, (2, 40), generator=g)
    known = torch.rand(2, 64, generator=g) < 0.5
    lo, hi = E2E_LAYOUT.vocab_range("image")
    sl = E2E_LAYOUT.slices()["image"]
    for cond in (audio, None):
        packed = E2E_LAYOUT.pack({"image": image, "audio": audio})
        ids = packed.ids.clone()
        if cond is None:
            ids[:, E2E_LAYOUT.slices()["audio"]] = E2E_LAYOUT.null_id
        ids[:, sl] = ids[:, sl].masked_fill(~known, E2E_LAYOUT.mask_id)
        argmax = random_prior(ids, packed.modalities, packed.positions)[:, sl, lo:hi].argmax(-1)
        expected = torch.where(known, image, argmax)
        out = infill(
            random_prior,
            E2E_LAYOUT,
            "image",
            image,
            known,
            None if cond is None else {"audio": cond},
            steps=1,
            temperature=0.0,
        )
        assert torch.equal(out, expected), cond is None


def test_infill_with_three_segments_nulls_the_absent_one(random_prior_3):
    prior, layout = random_prior_3
    g = torch.Generator().manual_seed(2)
    codes = {
        n: torch.randint(0, layout.segment(n).vocab_size, (2, layout.segment(n).n_tokens), generator=g)
        for n in layout.names
    }
    known = torch.zeros(2, layout.segment("a").n_tokens, dtype=torch.bool)
    out = infill(prior, layout, "a", codes["a"], known, {"b": codes["b"]}, steps=1)
    packed = layout.pack(codes)
    ids = packed.ids.clone()
    ids[:, layout.slices()["c"]] = layout.null_id  # absent: NULL in the conditional pass
    ids[:, layout.slices()["a"]] = layout.mask_id
    lo, hi = layout.vocab_range("a")
    expected = prior(ids, packed.modalities, packed.positions)[:, layout.slices()["a"], lo:hi].argmax(-1)
    assert torch.equal(out, expected)
    with pytest.raises(ValueError, match="conditions must name other segments"):
        infill(prior, layout, "a", codes["a"], known, {"a": codes["a"]}, steps=1)


def test_select_unknown_picks_least_likely_and_fine_stages():
    scores = torch.tensor([[[-1.0, -5.0, -0.1, -2.0], [-0.2, -0.3, -9.0, -0.4]]])  # (1, 2, 4)
    unknown = select_unknown(scores, 0.25)
    assert unknown.tolist() == [[[False, True, False, False], [False, False, True, False]]]
    assert select_unknown(scores, 0.0, remask_stages_from=1)[0, 1].all()
    assert int(select_unknown(scores, 0.0, remask_stages_from=1)[0, 0].sum()) == 0


@pytest.fixture(scope="module")
def random_prior_3() -> tuple[PriorTransformer, SequenceLayout]:
    torch.manual_seed(0)
    layout = SequenceLayout([("a", 8, 6), ("b", 5, 4), ("c", 7, 3)])
    return PriorTransformer(PriorConfig.for_layout(layout, dim=32, depth=1, heads=2, causal=False)).eval(), layout


# ---- end to end through tiny tokenizers ----------------------------------------------------------------


@pytest.mark.parametrize("conditioned", [True, False])
def test_inpaint_end_to_end_keeps_known_pixels_and_tokens(tokenizers, random_prior, conditioned):
    image_tok, audio_tok = tokenizers
    images, audio = paired_batch(3)
    mask = random_box_mask(3, IMAGE_SIZE, IMAGE_SIZE, generator=torch.Generator().manual_seed(0))
    cond = {"audio": audio_tok.encode(audio, n_q=N_Q)} if conditioned else None  # (3, 2, 20)
    out = inpaint(
        random_prior,
        E2E_LAYOUT,
        image_tok,
        "image",
        images,
        mask,
        cond,
        steps=3,
        temperature=1.0,
        cfg_scale=2.0 if conditioned else None,
        generator=torch.Generator().manual_seed(0),
    )
    assert out.items.shape == out.decoded.shape == images.shape
    assert out.tokens.shape == out.damaged_tokens.shape == out.unknown.shape == (3, 1, 8, 8)
    assert torch.equal(out.unknown[:, 0], token_mask_from_elements(mask, (8, 8), 1))
    assert torch.equal(out.tokens[~out.unknown], out.damaged_tokens[~out.unknown])  # known tokens kept
    assert not torch.equal(out.tokens[out.unknown], out.damaged_tokens[out.unknown])  # the rest re-infilled
    known = ~mask.expand_as(images)
    assert torch.equal(out.items[known], images[known])  # known pixels untouched
    assert torch.equal(out.items[~known], out.decoded[~known])
    damaged = images.masked_fill(mask.expand_as(images), 0.0)
    assert torch.equal(out.damaged_tokens[:, 0], image_tok.encode(damaged))


def test_enhance_end_to_end_keeps_confident_tokens(tokenizers, random_prior):
    image_tok, audio_tok = tokenizers
    images, audio = paired_batch(3)
    noisy = add_noise(audio, 0.0, torch.Generator().manual_seed(0))
    for cond in ({"image": image_tok.encode_codes(images)}, None):
        out = enhance(
            random_prior,
            E2E_LAYOUT,
            audio_tok,
            "audio",
            noisy,
            cond,
            n_q=N_Q,
            remask_fraction=0.25,
            steps=3,
            temperature=1.0,
            generator=torch.Generator().manual_seed(0),
        )
        assert out.items.shape == noisy.shape and bool(torch.isfinite(out.items).all())
        assert out.tokens.shape == out.damaged_tokens.shape == out.unknown.shape == out.scores.shape == (3, N_Q, 20)
        assert torch.equal(out.damaged_tokens, audio_tok.encode(noisy, n_q=N_Q))
        assert (out.unknown.sum((1, 2)) == 10).all()  # 25 % of 40
        assert torch.equal(out.tokens[~out.unknown], out.damaged_tokens[~out.unknown])
        for s, u in zip(out.scores, out.unknown):  # per item, the re-infilled ones are the least likely
            assert float(s[u].max()) <= float(s[~u].min())
        assert bool((out.scores <= 0).all())
        assert torch.equal(out.reencoded, decode_items(audio_tok, out.damaged_tokens, tuple(noisy.shape[2:])))
        assert torch.allclose(out.items, spectral_gain(noisy, out.decoded, out.reencoded))
    decoded = enhance(random_prior, E2E_LAYOUT, audio_tok, "audio", noisy, None, n_q=N_Q, steps=2, output="decoded")
    assert torch.equal(decoded.items, decoded.decoded)
    with pytest.raises(ValueError, match="output must be one of"):
        enhance(random_prior, E2E_LAYOUT, audio_tok, "audio", noisy, None, n_q=N_Q, steps=1, output="wave")
    fine = enhance(
        random_prior,
        E2E_LAYOUT,
        audio_tok,
        "audio",
        noisy,
        None,
        n_q=N_Q,
        remask_fraction=0.0,
        remask_stages_from=1,
        steps=2,
    )
    assert fine.unknown[:, 1].all() and not fine.unknown[:, 0].any()
    assert torch.equal(fine.tokens[:, 0], fine.damaged_tokens[:, 0])


def test_spectral_gain_identity_zero_and_oracle():
    g = torch.Generator().manual_seed(0)
    t = torch.arange(8000) / 16000
    clean = (0.5 * torch.sin(2 * math.pi * 440 * t) * torch.sin(2 * math.pi * 3 * t).abs())[None, None].repeat(2, 1, 1)
    noisy = add_noise(clean, 0.0, g)
    # equal estimate and reference: gain 1, the noisy input comes back
    assert torch.allclose(spectral_gain(noisy, noisy, noisy), noisy, atol=1e-4)
    # a louder estimate is clamped to gain 1; a silent one removes everything
    assert torch.allclose(spectral_gain(noisy, 3 * noisy, noisy), noisy, atol=1e-4)
    assert spectral_gain(noisy, torch.zeros_like(noisy), noisy).abs().max() < 1e-6
    # the oracle gain |clean| / |noisy| enhances: SI-SNR well above the noisy input's
    oracle = spectral_gain(noisy, clean, noisy)
    assert float(si_snr(oracle, clean) - si_snr(noisy, clean)) > 6.0
    with pytest.raises(ValueError, match="shape mismatch"):
        spectral_gain(noisy, clean[..., :100], noisy)


def test_gain_smoothing_averages_the_gain_over_neighbouring_bins_and_frames():
    from vqfuse.modalities.audio_gain import _stft

    g = torch.Generator().manual_seed(1)
    noisy = torch.randn(1, 1, 4000, generator=g) * 0.3
    # a constant gain (estimate = half the reference) is left as it is by any smoothing
    for s in (0, 1, 2):
        torch.testing.assert_close(
            spectral_gain(noisy, 0.5 * noisy, noisy, smoothing=s), 0.5 * noisy, atol=1e-4, rtol=0
        )
    # a random gain: the applied gain is the 3x3 mean of the raw one (edges average the bins that exist)
    estimate = torch.randn(1, 1, 4000, generator=g) * 0.3
    raw = (_stft(estimate, 512, 128).abs() / _stft(noisy, 512, 128).abs()).clamp(0, 1)[0]  # (F, frames)
    padded = torch.nn.functional.pad(raw, (1, 1, 1, 1))
    ones = torch.nn.functional.pad(torch.ones_like(raw), (1, 1, 1, 1))
    box = lambda x: sum(x[i : i + raw.shape[0], j : j + raw.shape[1]] for i in range(3) for j in range(3))  # noqa: E731
    want = box(padded) / box(ones)
    spec = _stft(noisy, 512, 128)[0]
    expected = torch.istft(spec * want, 512, 128, window=torch.hann_window(512), center=True, length=4000)
    torch.testing.assert_close(spectral_gain(noisy, estimate, noisy, smoothing=1)[0, 0], expected, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="smoothing"):
        spectral_gain(noisy, estimate, noisy, smoothing=-1)


def test_evaluate_repair_is_json_able(tokenizers, random_prior):
    image_tok, audio_tok = tokenizers
    images, audio = paired_batch(2)
    tokenizers = {"image": image_tok, "audio": audio_tok}
    items = {"image": images, "audio": audio}
    report = evaluate_repair(
        random_prior, E2E_LAYOUT, tokenizers, items, stages={"audio": N_Q}, steps=2, settings={"snr_db": 0.0}
    )
    json.dumps(report, allow_nan=False)
    assert report["n_items"] == 2 and report["image"]["mode"] == "inpaint" and report["audio"]["mode"] == "enhance"
    variants = {
        "conditioned",
        "unconditioned",
        "conditioned_decoded",
        "unconditioned_decoded",
        "damaged",
        "reencoded",
        "tokenizer",
    }
    psnr = report["image"]["scores"]["masked_psnr"]
    assert set(psnr) == variants and all(isinstance(v, float) for v in psnr.values())
    assert 0.25 <= report["image"]["damage"]["mask_fraction"] <= 0.5
    gain = report["audio"]["scores"]["si_snr_improvement"]
    assert set(gain) == variants and abs(gain["damaged"]) < 1e-4  # the noisy input improves on itself by 0 dB
    h = repair_headline(report)
    assert h["inpaint_condition_gain"] == pytest.approx(psnr["conditioned"] - psnr["unconditioned"])
    assert {"inpaint_masked_psnr_conditioned", "enhance_si_snr_improvement_reencoded"} <= set(h)
    babble = evaluate_repair(
        random_prior,
        E2E_LAYOUT,
        tokenizers,
        items,
        stages={"audio": N_Q},
        steps=1,
        settings={"snr_db": 5.0, "noise": "babble", "frac_range": (0.5, 0.5)},
    )
    assert babble["audio"]["damage"]["noise"] == "babble"
    assert abs(babble["image"]["damage"]["mask_fraction"] - 0.5) < 0.02


# ---- a trained case: the condition carries the information ---------------------------------------------

K = 8
TRAINED_LAYOUT = SequenceLayout([("image", K, 8), ("audio", K, 8)])  # image 2x4 tokens, audio n_q=2 x F=4
PERM = torch.tensor([5, 2, 7, 0, 3, 6, 1, 4])


def synthetic_pairs(n: int, g: torch.Generator) -> dict[str, torch.Tensor]:
    """Random audio tokens (frame-major flat); each image token is a fixed function of one audio token, so
    without the audio the missing image tokens are not predictable from the known ones (and vice versa)."""
    audio = torch.randint(0, K, (n, 8), generator=g)
    return {"image": (audio[:, PERM] * 3 + 1) % K, "audio": audio}


@pytest.fixture(scope="module")
def trained_prior() -> PriorTransformer:
    torch.manual_seed(0)
    model = PriorTransformer(PriorConfig.for_layout(TRAINED_LAYOUT, dim=64, depth=2, heads=4, causal=False))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    g = torch.Generator().manual_seed(0)
    model.train()
    for step in range(250):
        target, cond = ("image", "audio") if step % 2 == 0 else ("audio", "image")
        ids = drop_condition(TRAINED_LAYOUT.pack(synthetic_pairs(32, g)).ids, TRAINED_LAYOUT, 0.2, g, condition=[cond])
        loss = maskgit_loss(model, TRAINED_LAYOUT, ids, target, generator=g)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return model.eval()


def test_trained_prior_inpaints_better_with_the_condition(trained_prior):
    test = synthetic_pairs(64, torch.Generator().manual_seed(9))
    known = torch.zeros(64, 8, dtype=torch.bool)
    known[:, :3] = True
    wrong = (test["image"] + 1) % K  # whatever sits at unknown positions must not matter
    known_tokens = torch.where(known, test["image"], wrong)
    acc = {}
    for name, cond in (("with", test["audio"]), ("without", None)):
        out = infill(
            trained_prior,
            TRAINED_LAYOUT,
            "image",
            known_tokens,
            known,
            None if cond is None else {"audio": cond},
            steps=4,
        )
        assert torch.equal(out[known], test["image"][known])
        acc[name] = float((out == test["image"])[~known].float().mean())
    assert acc["with"] > 0.9 and acc["without"] < 0.4, acc


def test_trained_prior_enhances_better_with_the_condition(trained_prior):
    test = synthetic_pairs(64, torch.Generator().manual_seed(9))
    clean = unflatten_codes(test["audio"], 2, (4,))  # (64, 2, 4)
    g = torch.Generator().manual_seed(3)
    corrupt = torch.zeros(64, 8, dtype=torch.bool)
    for i in range(64):
        corrupt[i, torch.randperm(8, generator=g)[:2]] = True
    corrupt = unflatten_codes(corrupt, 2, (4,))
    noisy = torch.where(corrupt, (clean + torch.randint(1, K, clean.shape, generator=g)) % K, clean)
    found, acc = {}, {}
    for name, cond in (("with", test["image"]), ("without", None)):
        conds = None if cond is None else {"image": cond}
        unknown, _ = enhance_tokens(trained_prior, TRAINED_LAYOUT, "audio", noisy, conds, remask_fraction=0.25)
        flat = infill(
            trained_prior, TRAINED_LAYOUT, "audio", flatten_codes(noisy), ~flatten_codes(unknown), conds, steps=4
        )
        repaired = unflatten_codes(flat, 2, (4,))
        assert torch.equal(repaired[~unknown], noisy[~unknown])
        found[name] = float((unknown & corrupt).sum() / corrupt.sum())
        acc[name] = float((repaired == clean).float().mean())
    assert found["with"] > 0.9 and acc["with"] > 0.95, (found, acc)
    assert acc["with"] > acc["without"] + 0.2, (found, acc)
