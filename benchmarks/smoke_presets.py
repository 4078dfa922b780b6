"""Smoke test of every shipped preset: `vqfuse train <preset> steps=10 out=<tmp>` as a subprocess, timed.

A preset passes when the command exits 0 within 120 s. `steps=10` bounds the whole run: a fusion preset's
tokenizers train at most 10 steps, its splits are cut to `prior.max_items`, end-of-run evaluation and samples
scale with the steps (vqfuse/train/short_runs.py, vqfuse/fusion/budget.py). Each run's machine load is
recorded with it: on a shared machine the seconds are longer than on a quiet one.

    OMP_NUM_THREADS=1 python benchmarks/smoke_presets.py [--preset NAME ...] [--timeout 900]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    REPO_ROOT,
    RESULTS_DIR,
    contention,
    cpu_snapshot,
    environment,
    environment_line,
    load_average,
    markdown_table,
    write_results,
)

from vqfuse.train.config import CONFIG_DIR  # noqa: E402

LIMIT_S = 120.0  # a smoke run must end within this


def shipped_presets() -> list[str]:
    """The preset names in the package's preset folder (configs/ links to it)."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def _snapshot() -> dict[str, float] | None:
    """Machine CPU counters, with `own_s` the CPU time of finished child processes (the smoke run)."""
    snap = cpu_snapshot()
    if snap is None:
        return None
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {**snap, "own_s": usage.ru_utime + usage.ru_stime}


def _steps(run: Path) -> dict[str, Any]:
    """What the run trained: the prior's or tokenizer's steps and training-loop seconds, each fusion
    tokenizer's steps, the encoded items."""

    def read(path: Path, key: str) -> Any:
        try:
            return json.loads(path.read_text())[key]
        except (OSError, ValueError, KeyError):
            return None

    def steps(path: Path) -> int | None:
        value = read(path, "steps")
        return None if value is None else int(value)

    found: dict[str, Any] = {"steps": steps(run / "metrics.json"), "loop_s": read(run / "metrics.json", "wall_time_s")}
    for metrics in sorted((run / "tokenizers").glob("*/metrics.json")):
        found[f"{metrics.parent.name}_tokenizer_steps"] = steps(metrics)
    for split in ("train", "test"):
        if (run / "tokens" / f"{split}.safetensors").is_file():
            from vqfuse.fusion.tokens import TokenSet

            found[f"{split}_items"] = len(TokenSet.load(run / "tokens" / f"{split}.safetensors"))
    return found


def smoke(preset: str, out: Path, timeout: float) -> dict[str, Any]:
    """Run one preset for 10 steps; its seconds, exit code, load and what it trained."""
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    env.setdefault("MKL_NUM_THREADS", env["OMP_NUM_THREADS"])
    cmd = [sys.executable, "-m", "vqfuse", "train", preset, "steps=10", f"out={out}", "--no-progress"]
    load_start, snap = load_average(), _snapshot()
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        code, tail = proc.returncode, (proc.stdout + proc.stderr)[-1500:]
    except subprocess.TimeoutExpired as exc:
        code, tail = None, f"timed out after {timeout:g} s: {str(exc.stderr or '')[-1200:]}"
    seconds = time.perf_counter() - start
    end = _snapshot()
    busy = contention(snap, end)
    return {
        "preset": preset,
        "seconds": round(seconds, 1),
        "exit_code": code,
        "pass": code == 0 and seconds < LIMIT_S,
        "cpu_seconds": None if snap is None or end is None else round(end["own_s"] - snap["own_s"], 1),
        "load_average_start": load_start,
        "load_average_end": load_average(),
        "others_cpu_fraction": None if busy is None else round(busy["others_fraction"], 2),
        "own_cpu_fraction": None if busy is None else round(busy["own_fraction"], 2),
        **(_steps(out) if code == 0 else {}),
        "output_tail": "" if code == 0 else tail,
    }


def _fmt(value: Any) -> str:
    return "-" if value is None else str(value)


def markdown(results: list[dict[str, Any]], env: dict[str, Any]) -> str:
    rows = [
        (
            f"`{r['preset']}`",
            f"{r['seconds']:.1f}",
            "PASS" if r["pass"] else "FAIL",
            _fmt(r["cpu_seconds"]),
            _fmt(r["exit_code"]),
            _fmt(r.get("steps")),
            _fmt(None if r.get("loop_s") is None else round(r["loop_s"], 1)),
            ", ".join(f"{k.split('_')[0]} {v}" for k, v in r.items() if k.endswith("_tokenizer_steps")) or "-",
            " / ".join(_fmt(r.get(f"{s}_items")) for s in ("train", "test")) if "train_items" in r else "-",
            " ".join(_fmt(v) for v in (r["load_average_start"] or [])[:1] + (r["load_average_end"] or [])[:1]),
            _fmt(r["others_cpu_fraction"]),
        )
        for r in results
    ]
    passed = sum(r["pass"] for r in results)
    lines = [
        "# Smoke test of every shipped preset: `vqfuse train <preset> steps=10`",
        "",
        f"{passed} of {len(results)} presets end within {LIMIT_S:.0f} s (exit code 0). `steps=10` bounds the "
        "whole run: a fusion preset's tokenizers train at most 10 steps (`tokenizers.<name>.max_steps`), each "
        "split is cut to `prior.max_items` (10 x batch / 4), the held-out evaluation and end-of-run samples "
        "scale with the steps.",
        "",
        markdown_table(
            (
                "preset",
                "seconds",
                f"< {LIMIT_S:.0f} s",
                "CPU s",
                "exit",
                "steps",
                "loop s",
                "tokenizer steps",
                "items train / test",
                "load 1-min start end",
                "CPU used by others",
            ),
            rows,
            align=["l", "r", "c", "r", "r", "r", "r", "l", "r", "r", "r"],
        ),
        "",
        "`CPU s`: CPU time the run itself used (user + system, one thread), about its wall time on a quiet "
        "core. `loop s`: the training loop of the run's last model (the prior of a fusion run): the 10 steps "
        "themselves, which no rule after the loop shortens. `CPU used by others`: share of the machine's CPU "
        "capacity taken by other processes during the run; load averages are over 1 minute.",
        "",
        f"Environment: {environment_line(env)}.",
    ]
    slow = [r for r in results if not r["pass"] and r.get("loop_s") is not None]
    for r in slow:
        share = r["loop_s"] / r["seconds"]
        lines += [
            "",
            f"`{r['preset']}` takes {r['seconds']:.0f} s: its 10 training steps alone take {r['loop_s']:.0f} s "
            f"({100 * share:.0f}%), so no rule after the loop can bring it under {LIMIT_S:.0f} s on this CPU.",
        ]
    failed = [r for r in results if r["exit_code"] != 0]
    for r in failed:
        lines += ["", f"`{r['preset']}` output:", "", "```", r["output_tail"].strip(), "```"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", action="append", help="only this preset (repeatable; default: all shipped)")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds before a run is stopped")
    parser.add_argument("--out", type=Path, default=None, help="where the runs go (default: a temporary folder)")
    parser.add_argument("--results", type=Path, default=None, help="results folder (default: benchmarks/results)")
    parser.add_argument("--render", action="store_true", help="only rewrite the .md from the results' .json")
    args = parser.parse_args(argv)
    kwargs = {} if args.results is None else {"results_dir": args.results}
    if args.render:
        data = json.loads(((args.results or RESULTS_DIR) / "smoke-presets.json").read_text())
        write_results("smoke-presets", data, markdown(data["results"], data["environment"]), **kwargs)
        return data
    env = environment({"omp_num_threads": os.environ.get("OMP_NUM_THREADS")})
    snap = _snapshot()
    results = []
    with tempfile.TemporaryDirectory(prefix="vqfuse-smoke-") as tmp:
        root = args.out or Path(tmp)
        for preset in args.preset or shipped_presets():
            result = smoke(preset, root / preset, args.timeout)
            print(f"{preset}: {result['seconds']:.1f} s, exit {result['exit_code']}", file=sys.stderr, flush=True)
            results.append(result)
    env["load_average_end"] = load_average()
    env["contention"] = contention(snap, _snapshot())  # others: besides the smoke runs
    data = {"environment": env, "limit_s": LIMIT_S, "results": results}
    write_results("smoke-presets", data, markdown(results, env), **kwargs)
    return data


if __name__ == "__main__":
    main()
