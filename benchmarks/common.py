"""Small helpers shared by the benchmark scripts: interleaved timing, environment record, result files.

Rules these helpers implement (GUIDE.md section 4): speed comparisons are measured side by side in one
run, interleaved round-robin, and summarised by the median of at least 15 repeats after warm-up.
"""

from __future__ import annotations

import datetime as _dt
import gc
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import time
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import torch

RESULTS_DIR = Path(__file__).resolve().parent / "results"
REPO_ROOT = Path(__file__).resolve().parent.parent


# ---- timing ---------------------------------------------------------------------------------------------


def time_interleaved(
    contestants: Mapping[str, Callable[[], object]],
    repeats: int,
    warmup: int = 1,
    prepare: Mapping[str, Callable[[], object]] | None = None,
) -> dict[str, list[float]]:
    """Time each contestant `repeats` times, round-robin, after `warmup` untimed calls of each.

    Every repeat calls every contestant once; the starting contestant rotates from repeat to repeat, so
    no contestant always runs right after the same neighbour. `prepare[name]()`, when given, runs
    untimed before each call and its result is passed to the contestant (e.g. a fresh input that
    requires grad); otherwise the contestant is called with no argument.

    Returns:
        {name: [seconds per call, in repeat order]}
    """
    names = list(contestants)
    prepare = prepare or {}

    def call(name: str) -> float:
        arg = prepare[name]() if name in prepare else None
        gc.collect()
        start = time.perf_counter()
        if arg is None:
            contestants[name]()
        else:
            contestants[name](arg)
        return time.perf_counter() - start

    for _ in range(warmup):
        for name in names:
            call(name)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            samples[name].append(call(name))
    return samples


def summarize(samples: Sequence[float]) -> dict[str, float]:
    """Median, quartiles, min, max and count of a list of timings (seconds)."""
    xs = sorted(samples)
    q = statistics.quantiles(xs, n=4) if len(xs) >= 2 else [xs[0]] * 3
    return {"median": statistics.median(xs), "q1": q[0], "q3": q[2], "min": xs[0], "max": xs[-1], "n": len(xs)}


def paired_ratio_median(numerator: Sequence[float], denominator: Sequence[float]) -> float:
    """Median over repeats of numerator[i] / denominator[i] (both timed in the same round-robin repeat)."""
    return statistics.median(a / b for a, b in zip(numerator, denominator))


def mean_std(values: Iterable[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    xs = [float(v) for v in values]
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)


# ---- environment ----------------------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_revision() -> str | None:
    """Short commit of the repository (with '+dirty' when the tree has changes), or None."""
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10
        )
        if rev.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10
        )
        return rev.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def load_average() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def cpu_snapshot() -> dict[str, float] | None:
    """Machine-wide CPU counters (Linux /proc/stat) and this process's own CPU time, for `contention`."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return None
    hz = os.sysconf("SC_CLK_TCK")
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "total_s": sum(fields[:8]) / hz,  # user nice system idle iowait irq softirq steal
        "idle_s": (fields[3] + fields[4]) / hz,
        "steal_s": (fields[7] if len(fields) > 7 else 0) / hz,
        "own_s": usage.ru_utime + usage.ru_stime,
    }


def contention(start: dict[str, float] | None, end: dict[str, float] | None) -> dict[str, float] | None:
    """Share of the machine's CPU capacity, between two snapshots, used by other processes (and stolen by
    the hypervisor). Near 0 on an idle machine; timings taken when it is large are not trustworthy."""
    if not start or not end:
        return None
    total = end["total_s"] - start["total_s"]
    if total <= 0:
        return None
    busy = total - (end["idle_s"] - start["idle_s"])
    own = end["own_s"] - start["own_s"]
    return {
        "others_fraction": max(0.0, busy - own) / total,
        "steal_fraction": (end["steal_s"] - start["steal_s"]) / total,
        "own_fraction": min(1.0, own / total),
    }


def environment(extra: Mapping[str, object] | None = None) -> dict[str, object]:
    """What the numbers depend on: library versions, threads, CPU, load, date."""
    env: dict[str, object] = {
        "date_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "git": git_revision(),
        "load_average_start": load_average(),
    }
    if extra:
        env.update(extra)
    return env


def environment_line(env: Mapping[str, object]) -> str:
    parts = [
        f"torch {env.get('torch')}",
        f"{env.get('torch_threads')} threads",
        f"{env.get('cpu_model')} ({env.get('cpu_count')} logical CPUs)",
        f"python {env.get('python')}",
    ]
    for key, label in (("vector_quantize_pytorch", "vector-quantize-pytorch"),):
        if env.get(key):
            parts.append(f"{label} {env[key]}")
    if env.get("git"):
        parts.append(f"git {env['git']}")
    parts.append(str(env.get("date_utc")))
    if env.get("load_average_start") is not None:
        parts.append(f"load avg at start/end {env.get('load_average_start')} / {env.get('load_average_end')}")
    busy = env.get("contention")
    if busy:
        parts.append(
            f"other processes used {100 * busy['others_fraction']:.0f} % of the CPU capacity during the run "
            f"(hypervisor steal {100 * busy['steal_fraction']:.0f} %)"
        )
    return ", ".join(parts)


# ---- output ---------------------------------------------------------------------------------------------


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[object]], align: Sequence[str] | None = None) -> str:
    """A GitHub markdown table; `align` is a string per column among 'l', 'r', 'c' (default: right)."""
    align = align or ["r"] * len(headers)
    marks = {"l": ":---", "r": "---:", "c": ":---:"}
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(marks[a] for a in align) + " |"]
    for row in rows:
        lines.append("| " + " | ".join(str(c) for c in row) + " |")
    return "\n".join(lines)


def verdict(value: float, target: float, higher_is_better: bool) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    ok = value >= target if higher_is_better else value <= target
    return "PASS" if ok else "NOT REACHED"


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_results(
    stem: str, data: Mapping[str, object], markdown: str, results_dir: Path | str = RESULTS_DIR
) -> tuple[Path, Path]:
    """Write `<results_dir>/<stem>.json` and `<results_dir>/<stem>.md`; returns both paths."""
    results_dir = Path(results_dir)
    json_path, md_path = results_dir / f"{stem}.json", results_dir / f"{stem}.md"
    _atomic_write(json_path, json.dumps(data, indent=2, sort_keys=False, default=_json_default) + "\n")
    _atomic_write(md_path, markdown.rstrip() + "\n")
    return json_path, md_path


def _json_default(obj: object) -> object:
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
