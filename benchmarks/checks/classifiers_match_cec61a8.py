"""Check that the classifiers over named modalities give bit-identical results to the image + audio ones of
commit cec61a8 (same seeds, same draws): fit, log-probabilities with and without a modality, evaluation and
robustness sweeps, with views, early / shared / late fusion and the per-modality loss on and off.

    git worktree add /tmp/oldmain cec61a8
    python benchmarks/checks/classifiers_match_cec61a8.py /tmp/oldmain
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import torch

from vqfuse.fusion.classifier_training import evaluate_classifiers, fit_classifiers
from vqfuse.fusion.robustness import degraded_views, robustness_sweep

K_IMG, K_AUD = 16, 14
KINDS = ("image", "audio", "early", "early_shared", "late")


def load_old(checkout: Path):
    spec = importlib.util.spec_from_file_location("old_analysis", checkout / "vqfuse/fusion/analysis.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["old_analysis"] = module
    spec.loader.exec_module(module)
    return module


def tokenize_old(x: torch.Tensor) -> torch.Tensor:
    """images (B, 3, 8, 8) -> (B, 4, 4) codes."""
    return ((x[:, 0, ::2, ::2] + 1) * 7.5).long().clamp(0, K_IMG - 1)


def tokenize_new(x: torch.Tensor) -> torch.Tensor:
    return tokenize_old(x)[:, None]  # (B, 1, 4, 4)


def main(checkout: Path) -> None:
    old = load_old(checkout)
    g = torch.Generator().manual_seed(0)
    n = 60
    y = torch.randint(0, 3, (n,), generator=g)
    img = (torch.randint(0, K_IMG, (n, 4, 4), generator=g) + y[:, None, None]) % K_IMG
    aud = (torch.randint(0, K_AUD, (n, 2, 6), generator=g) + y[:, None, None]) % K_AUD
    images = torch.rand(n, 3, 8, 8, generator=g) * 2 - 1
    tokens, vocabs = {"image": img[:, None], "audio": aud}, {"image": K_IMG, "audio": K_AUD}
    views_old = old.degraded_views(images, tokenize_old, ("noise",), (0.5,), seed=1)
    views_new = degraded_views(images, tokenize_new, ("noise",), (0.5,), seed=1)
    assert torch.equal(views_old, views_new[:, :, 0])
    for unimodal in (1.0, 0.0):
        a = old.fit_classifiers(
            img,
            aud,
            y,
            K_IMG,
            K_AUD,
            kinds=KINDS,
            steps=25,
            seed=3,
            image_views=views_old,
            unimodal_loss_weight=unimodal,
            layers=1,
        )
        b = fit_classifiers(
            tokens,
            y,
            vocabs,
            kinds=KINDS,
            steps=25,
            seed=3,
            views={"image": views_new},
            unimodal_loss_weight=unimodal,
            layers=1,
        )
        for k in KINDS:
            assert torch.equal(a[k].log_probs(img, aud), b[k].log_probs(tokens)), k
            assert torch.equal(a[k].log_probs(None, aud), b[k].log_probs({"audio": aud})), (k, "image missing")
        ea, eb = old.evaluate_classifiers(a, img, aud, y), evaluate_classifiers(b, tokens, y)
        assert all(ea[k]["both"] == eb[k]["all"] and ea[k]["image_missing"] == eb[k]["image_missing"] for k in KINDS)
        levels, kinds = (0.0, 0.5, 1.0), ("noise", "occlusion")
        sa = old.robustness_sweep(a, images, aud, y, tokenize_old, degradations=kinds, levels=levels, seed=2)
        sb = robustness_sweep(
            b, images, {"audio": aud}, y, tokenize_new, "image", degradations=kinds, levels=levels, seed=2
        )
        assert sa == sb, "sweeps differ"
    print("old and new classifiers are bit-identical")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/oldmain"))
