"""How much of the early-vs-late fusion robustness comparison is the classifiers' own training seed.

`benchmarks/fusion.py` trains each token classifier once per prior seed. Relative robustness under image
noise measures how a classifier trained on clean tokens extrapolates to noisy ones, which can depend on the
classifier's initialisation and batch order as much as on its architecture. This script keeps everything
else fixed (a run's tokenizers, train / test tokens, the noise draws) and retrains the classifiers of the
classification study (image, audio, early fusion with a codebook per modality and with one shared codebook,
late fusion) under several classifier seeds, then reports each one's relative robustness under image noise,
the spread, and the paired early-minus-late differences.

    python benchmarks/fusion_classifier_seeds.py --runs runs/bench-fusion-gpucodec-10k --seeds 0 1 2 \
        --classifier-seeds 0 1 2 --jobs 2 --name fusion-classifier-seeds

Classifier seed c gives the classifiers `fit_classifiers(seed=c)`; c equal to the run's seed reproduces the
classifiers of `benchmarks/fusion.py`.
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import environment, environment_line, markdown_table, write_results  # noqa: E402
from fusion import classifier_options  # noqa: E402

KINDS = ("image", "audio", "early", "early_shared", "late")
FUSED = ("early", "early_shared")


def measure_run(
    run: str, seed: int, classifier_seeds: list[int], options: dict, threads: int, audio_snr_db: float, steps: int
) -> dict:
    """Relative robustness under image noise of every classifier, per classifier seed, for one run."""
    from vqfuse.fusion.classifier_training import fit_classifiers
    from vqfuse.fusion.evaluate import FusionEvalConfig, classification_inputs, load_run_data
    from vqfuse.fusion.robustness import robustness_sweep

    torch.set_num_threads(threads)
    start = time.perf_counter()
    model, _, train_set, test_set = load_run_data(run)
    config = FusionEvalConfig(seed=seed, study_snr_db={"audio": audio_snr_db}, classifier_steps=steps)
    inputs = classification_inputs(model, train_set, test_set, config)
    (train_tokens, tr_y), (test_tokens, te_y) = inputs["train"], inputs["test"]
    models = {}
    for c in classifier_seeds:
        trained = fit_classifiers(train_tokens, tr_y, inputs["vocabs"], kinds=KINDS, steps=steps, seed=c, **options)
        models.update({f"{name}@{c}": m for name, m in trained.items()})
    # one sweep for all: every classifier sees the same noisy test images (the run's seed draws them)
    sweep = robustness_sweep(
        models,
        inputs["test_images"],
        test_tokens,
        te_y,
        inputs["tokenize"],
        inputs["degraded"],
        degradations=("noise",),
        levels=config.levels,
        reference=None,
        seed=seed,
    )
    noise = sweep["degradations"]["noise"]
    per_seed = {c: {name: noise["relative_robustness"][f"{name}@{c}"] for name in KINDS} for c in classifier_seeds}
    curves = {c: {name: noise["accuracy"][f"{name}@{c}"] for name in KINDS} for c in classifier_seeds}
    return {
        "run": run,
        "seed": seed,
        "relative_robustness": per_seed,
        "accuracy": curves,
        "levels": sweep["levels"],
        "seconds": time.perf_counter() - start,
    }


def _stats(values: list[float]) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} +- {spread:.3f} (min {min(values):.3f}, max {max(values):.3f})"


def report(results: list[dict]) -> tuple[list[list[str]], list[list[str]]]:
    """Rows per (run seed, classifier seed) and summary rows of the paired fused-minus-late differences."""
    rows: list[list[str]] = []
    by_run: dict[str, dict[int, list[float]]] = {name: {} for name in FUSED}  # fused -> run seed -> differences
    for res in results:
        for c, rr in res["relative_robustness"].items():
            rows.append(
                [res["seed"], c] + [f"{rr[k]:.3f}" for k in KINDS] + [f"{rr[f] - rr['late']:+.3f}" for f in FUSED]
            )
            for f in FUSED:
                by_run[f].setdefault(res["seed"], []).append(rr[f] - rr["late"])
    summary = []
    for f in FUSED:
        diffs = [d for run in by_run[f].values() for d in run]
        per_run = ", ".join(f"{s}: {statistics.mean(v):+.3f}" for s, v in sorted(by_run[f].items()))
        summary.append([f, _stats(diffs), f"{sum(d > 0 for d in diffs)} / {len(diffs)}", per_run])
    return rows, summary


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="runs/bench-fusion", help="where the seed runs live (RUNS/seedS)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="run seeds")
    parser.add_argument("--classifier-seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--classifier",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="token classifier option (a TokenClassifierConfig field; repeatable)",
    )
    parser.add_argument("--steps", type=int, default=2000, help="classifier training steps")
    parser.add_argument("--audio-snr-db", type=float, default=-5.0)
    parser.add_argument("--jobs", type=int, default=1, help="runs measured in parallel processes")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--name", default="fusion-classifier-seeds", help="results file stem")
    parser.add_argument("--note", default="")
    args = parser.parse_args(argv)
    options = classifier_options(args.classifier, parser)
    for seed in args.seeds:
        if not (Path(args.runs) / f"seed{seed}" / "fusion.json").is_file():
            parser.error(f"{Path(args.runs) / f'seed{seed}'}: not a fusion run (no fusion.json)")
    env = environment()
    jobs = [
        (
            str(Path(args.runs) / f"seed{s}"),
            s,
            args.classifier_seeds,
            options,
            args.threads,
            args.audio_snr_db,
            args.steps,
        )
        for s in sorted(args.seeds)
    ]
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        results = list(pool.map(measure_run, *zip(*jobs)))
    env["load_average_end"] = environment()["load_average_start"]
    env["torch_threads"] = args.threads
    rows, summary = report(results)
    md = "\n\n".join(
        part
        for part in [
            "# Early vs late fusion robustness over classifier seeds (av-digits, image noise)",
            "Command: `"
            + shlex.join(
                ["python", "benchmarks/fusion_classifier_seeds.py", *(argv if argv is not None else sys.argv[1:])]
            )
            + "`",
            environment_line(env) + f", {args.jobs} processes",
            args.note,
            f"Relative robustness (area under accuracy vs image noise std 0-1) of token classifiers trained for "
            f"{args.steps} steps on clean tokens of each run, speech at {args.audio_snr_db:g} dB SNR, classifier "
            f"options {options or 'default'}. Per run seed and classifier seed:",
            markdown_table(
                ["run seed", "classifier seed", *KINDS, "early - late", "early_shared - late"],
                rows,
                ["r"] * (len(KINDS) + 4),
            ),
            "Paired differences from late fusion (same run, same classifier seed, same noise draws):",
            markdown_table(
                ["fused classifier", "RR minus late fusion: mean +- std", "above late", "mean per run seed"],
                summary,
                ["l", "r", "r", "l"],
            ),
        ]
        if part
    )
    summary_json = [dict(zip(("classifier", "difference", "wins", "per_run"), row)) for row in summary]
    write_results(args.name, {"environment": env, "options": options, "results": results, "summary": summary_json}, md)
    print(md)
    return {"results": results, "summary": summary}


if __name__ == "__main__":
    main()
