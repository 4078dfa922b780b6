"""`vqfuse demo` and `vqfuse models` (registered on `vqfuse.cli.app`)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from typing_extensions import Annotated

from vqfuse.cli import app


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", help="The demo's folder (report: OUT/index.html).")] = Path("runs/demo"),
    quick: Annotated[bool, typer.Option("--quick", help="A 3-minute version (default: about 15 on 2 cores).")] = False,
    inputs: Annotated[
        Optional[Path], typer.Option("--inputs", help="A folder of your own images, audio or video to code too.")
    ] = None,
    only: Annotated[
        Optional[List[str]], typer.Option("--only", help="Run only stages starting with this (repeatable).")
    ] = None,
    no_progress: Annotated[bool, typer.Option("--no-progress", help="No progress bars.")] = False,
) -> None:
    """Run the pretrained models on held-out data next to WebP/JPEG, Opus and H.264, train a small model of
    each kind from scratch, and write an HTML report (OUT/index.html).

    Runs on built-in data on a CPU. A from-scratch run finished earlier in OUT is reused.
    """
    from vqfuse.demo import run_demo

    run_demo(out, quick=quick, inputs=inputs, progress=not no_progress, log=typer.echo, only=tuple(only or ()))


@app.command()
def models() -> None:
    """List the pretrained models that ship with vqfuse: name, kind, size on disk and headline figures.
    Use a name wherever a model path is accepted (`vqfuse reconstruct emoji64 in.png out.png`)."""
    from vqfuse.pretrained import builtin_models, model_card

    rows = []
    for name, directory in builtin_models().items():
        card = model_card(directory)
        size = sum(p.stat().st_size for p in directory.rglob("*") if p.is_file()) / 1e6
        rows.append((name, card.get("kind", "?"), f"{size:.1f} MB", card.get("summary", "")))
    if not rows:
        typer.echo("no pretrained models in this install")
        return
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        typer.echo("  ".join(v.ljust(w) for v, w in zip(r[:3], widths)) + "  " + r[3])
    typer.echo("model cards (data, licence, command, metrics): <name>/README.md in " + str(directory.parent))
