"""`evaluate_fusion` end to end on the tiny fusion run of test_pipeline (orchestration and report shape; the
maths of each part is tested in test_judges, test_analysis and test_repair)."""

import json

import pytest

from vqfuse.fusion.evaluate import FusionEvalConfig, evaluate_fusion, headline

pytestmark = pytest.mark.usefixtures("single_thread")


def test_evaluate_fusion_writes_every_section(run_dir, tmp_path):  # noqa: F811
    config = FusionEvalConfig(
        items=6,
        judge_steps=3,
        classifier_steps=3,
        degradations=("noise",),
        levels=(0.0, 0.5, 1.0),
        repair_items=4,
        batch_size=4,
        extra={"classifier": {"batch_size": 8}},
    )
    report, written = evaluate_fusion(run_dir, config, out=tmp_path / "eval", log=lambda s: None)
    names = {p.name for p in written}
    assert {"evaluation.json", "evaluation.md", "speech-to-image.png", "joint-image.png", "robustness.png"} <= names
    assert any(n.startswith("image-to-speech-") and n.endswith("-output.wav") for n in names)
    assert report["modalities"] == ["image", "audio"] and report["classification"]["study_snr_db"] == {
        "image": None,
        "audio": -5.0,
    }
    assert json.loads((tmp_path / "eval" / "evaluation.json").read_text()) == report
    coh = report["coherence"]
    for key in ("speech_to_image", "image_to_speech", "joint"):
        assert 0.0 <= coh[key] <= 1.0
    assert set(coh["frechet"]) == {"speech_to_image", "image_to_speech", "joint_image", "joint_audio"}
    # the default samples best of 8; the same conditions are also measured with one sample each
    assert coh["sampling"]["rerank"] == 8
    assert set(coh["without_rerank"]) == {"speech_to_image", "image_to_speech", "joint", "joint_diversity"}
    assert coh["joint_diversity"]["covered"] >= 1 and 0.0 <= coh["joint_diversity"]["entropy"] <= 1.0
    h = headline(report)
    assert h["joint_without_rerank"] == coh["without_rerank"]["joint"]
    assert h["joint_class_entropy"] == coh["joint_diversity"]["entropy"]
    assert h["joint_class_entropy_without_rerank"] == coh["without_rerank"]["joint_diversity"]["entropy"]
    assert {"noise_mid_gain", "inpaint_masked_psnr_conditioned", "enhance_si_snr_improvement_conditioned"} <= set(h)
    assert h["noise_mid_gain"] == pytest.approx(h["noise_mid_best_fused"] - h["noise_mid_best_single"])
    # the augmented study: same classifiers trained on degraded images too, swept over the same degradations
    aug = report["classification"]["augmented"]
    assert aug["augment_levels"] == list(config.augment_levels)
    assert list(aug["robustness"]["degradations"]) == ["noise"]
    assert {"augmented_noise_mid_gain", "augmented_relative_robustness_noise_early"} <= set(h)
    assert "robustness-augmented.png" in names
    assert (run_dir / "judges" / "image" / "config.json").is_file()  # judges are cached with the run
    # a second evaluation reuses the judges and can run one section alone
    report2, _ = evaluate_fusion(
        run_dir,
        FusionEvalConfig(items=4, sections=("coherence",), batch_size=4),
        out=tmp_path / "eval2",
        log=lambda s: None,
    )
    assert set(report2) >= {"coherence"} and "repair" not in report2
    assert report2["coherence"]["speech_to_image"] is not None


def test_cli_evaluate_dispatches_fusion_runs(run_dir, tmp_path, capsys, monkeypatch):  # noqa: F811
    import functools

    import vqfuse.fusion.evaluate as evaluate
    from vqfuse.cli import main

    small = functools.partial(FusionEvalConfig, items=4, sections=("coherence",), judge_steps=2)
    monkeypatch.setattr(evaluate, "FusionEvalConfig", small)
    assert main(["evaluate", str(run_dir), "--out", str(tmp_path / "ev"), "--batch-size", "4"]) == 0
    out = capsys.readouterr().out
    assert "# Fusion evaluation" in out and "speech_to_image" in out and (tmp_path / "ev" / "evaluation.json").is_file()
