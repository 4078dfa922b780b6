"""The `vqfuse report` command (registered on `vqfuse.cli.app`): a run's static HTML report."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from typing_extensions import Annotated

from vqfuse.cli import app
from vqfuse.errors import InputFileError


@app.command()
def report(
    run: Annotated[
        Path, typer.Argument(metavar="DIR", help="A run directory (tokenizer or fusion), or a folder with report.json.")
    ],
    out: Annotated[
        Optional[Path], typer.Option("--out", metavar="DIR2", help="Write the page here instead (default: DIR).")
    ] = None,
    rebuild: Annotated[
        bool, typer.Option("--rebuild", help="Build a run's report anew even if DIR holds report.json.")
    ] = False,
) -> None:
    """Write DIR/index.html (and report.json): what ran, training curves, previews and held-out metrics; prints
    the page's path. A folder holding report.json is re-rendered from it (--rebuild: a run's report is built
    anew, e.g. after `vqfuse evaluate`); a run directory gets a new report (plots under DIR2/report/). The
    page opens from disk in any browser, no server needed."""
    from vqfuse.report.html import REPORT_JSON, load_report, rebase, write_report
    from vqfuse.report.runs import write_run_report

    if not run.is_dir():
        raise InputFileError(run, "no such directory" if not run.exists() else "not a directory")
    target = out if out is not None else run
    if target.exists() and not target.is_dir():
        raise InputFileError(target, "exists and is not a directory")
    if (run / REPORT_JSON).is_file() and not rebuild:
        rep = load_report(run)
        if out is not None:
            rep = rebase(rep, run, out)  # media paths stay pointing at the files under DIR
        page = write_report(rep, target)
    else:
        page = write_run_report(run, target)
    typer.echo(str(page))
