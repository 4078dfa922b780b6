"""Check that the redesign (issue 16) leaves the fusion pipeline's figures where commit cec61a8 put them: the
same preset trained by both versions for a few steps gives the same tokenizer and prior weights, and the old
run evaluated by both versions' `evaluate_fusion` gives the same headline figures.

    git worktree add /tmp/oldmain cec61a8
    python benchmarks/checks/same_figures_as_cec61a8.py /tmp/oldmain --out runs/check-cec61a8

Each version runs in its own process (PYTHONPATH points at its checkout) on one thread. Writes
benchmarks/results/checks/same-figures-as-cec61a8.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[2]
RESULTS = HERE / "benchmarks" / "results" / "checks"
OVERRIDES = [
    "steps=40",
    "tokenizers.image.steps=40",
    "tokenizers.audio.steps=30",
    "data.pairings=1",
    "train.checkpoint_every=40",
]
EVAL = dict(
    items=48,
    judge_steps=60,
    classifier_steps=60,
    levels=(0.0, 0.5, 1.0),
    augment_levels=(0.5,),
    repair_items=16,
    batch_size=16,
)

EVALUATE = """
import json, sys
from vqfuse.fusion.evaluate import FusionEvalConfig, evaluate_fusion, headline
config = FusionEvalConfig(**json.loads(sys.argv[2]))
report, _ = evaluate_fusion(sys.argv[1], config, out=sys.argv[3], log=lambda s: None)
print(json.dumps(headline(report)))
"""


def run(checkout: Path, args: list[str], capture: bool = False) -> str:
    env = {**os.environ, "PYTHONPATH": str(checkout), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, *args],
        cwd=checkout,
        env=env,
        check=True,
        text=True,
        stdout=subprocess.PIPE if capture else None,
    )
    return done.stdout or ""


def train(checkout: Path, out: Path) -> float:
    if (out / "fusion.json").is_file():
        return 0.0
    start = time.perf_counter()
    run(checkout, ["-m", "vqfuse", "train", "configs/fusion-av-digits.yaml", f"out={out}", *OVERRIDES])
    return time.perf_counter() - start


def weights_equal(a: Path, b: Path) -> dict[str, bool]:
    """{model file relative to the run: bit-identical} for every .safetensors under run a. Token sets are
    compared by their codes: cec61a8 stored `image` (N, h, w) and `audio` (N, S, F), the redesign stores
    `codes/<name>` with a stage axis always."""
    from safetensors.torch import load_file

    out = {}
    for path in sorted(a.rglob("*.safetensors")):
        rel = path.relative_to(a)
        if "checkpoints" in rel.parts or not (b / rel).is_file():
            continue
        x, y = load_file(path), load_file(b / rel)
        if rel.parts[0] == "tokens" and any(k.startswith("codes/") for k in y):
            y = {k.removeprefix("codes/"): v for k, v in y.items()}
            y = {k: v[:, 0] if k in x and v.dim() == x[k].dim() + 1 else v for k, v in y.items()}
            rel = Path(f"{rel} (codes and labels)")
        out[str(rel)] = x.keys() == y.keys() and all(bool((x[k] == y[k]).all()) for k in x)
    return out


def evaluate(checkout: Path, run_dir: Path, out: Path, config: dict) -> dict:
    old_keys = (
        {"audio_snr_db": -5.0} if "study_snr_db" not in (checkout / "vqfuse/fusion/evaluate.py").read_text() else {}
    )
    text = run(checkout, ["-c", EVALUATE, str(run_dir), json.dumps({**config, **old_keys}), str(out)], capture=True)
    return json.loads(text.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", type=Path, help="a checkout of cec61a8")
    parser.add_argument("--out", type=Path, default=Path("runs/check-cec61a8"))
    parser.add_argument("--reuse-figures", action="store_true", help="take the evaluations from the last results")
    args = parser.parse_args()
    out = args.out.resolve()
    seconds = {"train_old": train(args.old.resolve(), out / "old"), "train_new": train(HERE, out / "new")}
    same = weights_equal(out / "old", out / "new")
    start = time.perf_counter()
    if args.reuse_figures:
        last = json.loads((RESULTS / "same-figures-as-cec61a8.json").read_text())
        figures, seconds = last["figures"], {**last["seconds"], **{k: v for k, v in seconds.items() if v}}
    else:
        figures = {
            "old_code": evaluate(args.old.resolve(), out / "old", out / "eval-old", EVAL),
            "new_code": evaluate(HERE, out / "old", out / "eval-new", EVAL),
        }
        seconds["evaluate_both"] = time.perf_counter() - start
    keys = sorted(set(figures["old_code"]) | set(figures["new_code"]))
    rows, differ = [], 0
    for k in keys:
        a, b = figures["old_code"].get(k), figures["new_code"].get(k)
        diff = None if a is None or b is None else abs(a - b)
        differ += diff is None or diff > 1e-6
        rows.append(
            f"| {k} | {a if a is None else f'{a:.6g}'} | {b if b is None else f'{b:.6g}'} | "
            f"{'n/a' if diff is None else f'{diff:.2g}'} |"
        )
    report = {
        "command": " ".join(sys.argv),
        "overrides": OVERRIDES,
        "evaluation": {k: list(v) if isinstance(v, tuple) else v for k, v in EVAL.items()},
        "weights_identical": same,
        "figures": figures,
        "seconds": seconds,
        "figures_differing": differ,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "same-figures-as-cec61a8.json").write_text(json.dumps(report, indent=2) + "\n")
    md = [
        "# Same figures as cec61a8 (issue 16)",
        "",
        f"Command: `{report['command']}`",
        "",
        f"Both versions trained `configs/fusion-av-digits.yaml` with `{' '.join(OVERRIDES)}` on one thread.",
        "",
        "| model file | bit-identical |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in same.items()],
        "",
        f"The run trained by cec61a8, evaluated by each version's `evaluate_fusion` ({EVAL}):",
        "",
        "| figure | cec61a8 | now | abs. difference |",
        "|---|---:|---:|---:|",
        *rows,
        "",
        f"Figures differing by more than 1e-6 (or present in one version only): {differ} of {len(keys)}.",
    ]
    (RESULTS / "same-figures-as-cec61a8.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
