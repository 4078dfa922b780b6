"""The `vqfuse` command line: a thin layer over `vqfuse.codec`, `vqfuse.train` and `vqfuse.demo`.

User errors (`VqfuseError`) print one line `error: <message>` on stderr and exit 1; usage errors exit 2;
Ctrl-C exits 130. `vqfuse --debug ...` shows the traceback too. Heavy imports (torch) happen inside the
commands so that `vqfuse --help` is instant.
"""

from __future__ import annotations

import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, List, Optional

import typer
from typing_extensions import Annotated

from vqfuse.errors import VqfuseError

# Typer >= 0.2x vendors its own click; take the exception classes from typer's public ones.
_ClickException = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")
_UsageError = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")

if TYPE_CHECKING:
    from vqfuse.io.paths import BatchResult

app = typer.Typer(
    name="vqfuse",
    help="VQ-VAE / VQ-GAN tokenizers: train, encode to .vqf token files, decode, reconstruct, evaluate; "
    "fusion models: train a token prior on paired images + audio and generate across modalities.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

_state = {"debug": False}


def _err(text: str) -> None:
    """One line on stderr that does not break a progress bar."""
    from tqdm import tqdm

    tqdm.write(text, file=sys.stderr)


def _version(value: bool) -> None:
    if value:
        from vqfuse import __version__

        typer.echo(f"vqfuse {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    _state["debug"] = debug


# ------------------------------------------------------------------------------------------------ train


@app.command()
def train(
    config: Annotated[str, typer.Argument(metavar="CONFIG", help="Preset name (e.g. image-emoji32) or YAML file.")],
    overrides: Annotated[
        Optional[List[str]],
        typer.Argument(metavar="KEY=VALUE", help="Overrides: steps=500 out=runs/x train.lr=1e-4 data=folder:PATH"),
    ] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the run's last checkpoint.")] = False,
    no_progress: Annotated[bool, typer.Option("--no-progress", help="No progress bar.")] = False,
) -> None:
    """Train a tokenizer, or a fusion model (task: fusion), from a config preset; prints the run directory.

    A fusion config (e.g. configs/fusion-av-digits.yaml) trains or reuses the two tokenizers it names (under
    OUT/tokenizers/), encodes the paired data, then trains the token prior; there steps=N, batch_size=N and
    seed=N set the prior's training, tokenizers.image.steps=N and tokenizers.audio.steps=N the tokenizers'.
    steps=N also caps every tokenizer it trains at N steps (an explicit tokenizers.<name>.steps wins) and the
    items it encodes (prior.max_items), so steps=10 is a smoke run; train.max_minutes=M bounds the whole run.
    """
    from vqfuse.errors import ConfigError
    from vqfuse.train.config import load_config

    cfg = load_config(config, list(overrides or []))
    if cfg.task == "fusion":
        from vqfuse.fusion.pipeline import train_fusion

        run_dir = train_fusion(cfg, resume=resume, progress=not no_progress)
    elif cfg.task == "tokenizer":
        from vqfuse.train.trainer import train as run_training

        run_dir = run_training(cfg, resume=resume, progress=not no_progress)
    else:
        raise ConfigError(f"{cfg.source}: unknown task {cfg.task!r}; use tokenizer or fusion")
    typer.echo(str(run_dir))


# ------------------------------------------------------------------------------------------- file codecs

ModelArg = Annotated[str, typer.Argument(metavar="MODEL", help="Model directory, or a run directory holding model/.")]
NqOpt = Annotated[
    Optional[int], typer.Option("--n-q", min=1, help="Quantizer stages to use (residual quantizers only).")
]
KbpsOpt = Annotated[
    Optional[float],
    typer.Option("--kbps", help="Audio bitrate in kbit/s: the most residual stages within it (see `vqfuse info`)."),
]


def _on_file_error(path: Path, exc: VqfuseError) -> None:
    _err(f"error: {exc}")


def _finish(verb: str, result: "BatchResult", model) -> None:
    from vqfuse.codec import summary_line

    typer.echo(summary_line(verb, result, model.modality))
    for done in result.done:
        if done.note:
            typer.echo(f"note: {done.src}: {done.note}")
    if result.failed:
        total = len(result.failed) + len(result.done)
        _err(f"error: {len(result.failed)} of {total} files failed")
        raise typer.Exit(1)


@app.command()
def encode(
    model: ModelArg,
    src: Annotated[str, typer.Argument(metavar="IN", help="Input file or folder (searched recursively).")],
    dst: Annotated[str, typer.Argument(metavar="OUT", help="OUT.vqf, or a folder for a folder input.")],
    n_q: NqOpt = None,
    kbps: KbpsOpt = None,
) -> None:
    """Encode files to .vqf token files (a folder mirrors its tree: a/cat.png -> OUT/a/cat.png.vqf).

    Any size works: inputs are padded (edge replicated) to a multiple of the model's downsampling factor and
    the original size is stored, so decoding crops back to it. Audio of any length is encoded in
    overlapping windows; --n-q or --kbps choose the bitrate of residual models.
    """
    from vqfuse.codec import encode_path, load_model

    m = load_model(model)
    result = encode_path(m, src, dst, n_q=n_q, kbps=kbps, on_error=_on_file_error, progress=sys.stderr.isatty())
    _finish("encoded", result, m)


@app.command()
def decode(
    model: ModelArg,
    src: Annotated[str, typer.Argument(metavar="IN", help="A .vqf file or a folder of them.")],
    dst: Annotated[str, typer.Argument(metavar="OUT", help="Output file (format from its suffix), or a folder.")],
) -> None:
    """Decode .vqf token files (a folder mirrors its tree: a/cat.png.vqf -> OUT/a/cat.png)."""
    from vqfuse.codec import decode_path, load_model

    m = load_model(model)
    result = decode_path(m, src, dst, on_error=_on_file_error, progress=sys.stderr.isatty())
    _finish("decoded", result, m)


@app.command()
def reconstruct(
    model: ModelArg,
    src: Annotated[str, typer.Argument(metavar="IN", help="Input file or folder (searched recursively).")],
    dst: Annotated[str, typer.Argument(metavar="OUT", help="Output file, or a folder for a folder input.")],
    n_q: NqOpt = None,
    kbps: KbpsOpt = None,
) -> None:
    """Encode and decode in memory: what decode(encode(IN)) would give, without token files."""
    from vqfuse.codec import load_model, reconstruct_path

    m = load_model(model)
    result = reconstruct_path(m, src, dst, n_q=n_q, kbps=kbps, on_error=_on_file_error, progress=sys.stderr.isatty())
    _finish("reconstructed", result, m)


# ------------------------------------------------------------------------------------ evaluate / info


@app.command()
def evaluate(
    model: ModelArg,
    data: Annotated[
        Optional[str],
        typer.Option("--data", help="Dataset spec (emoji, digits, photos, folder:PATH); default: the training data."),
    ] = None,
    split: Annotated[str, typer.Option("--split", help="train, test or all.")] = "test",
    out: Annotated[
        Optional[Path],
        typer.Option(
            "--out",
            help="Where evaluation.json/.md go; default: the run directory (./evaluation-NAME for a shipped model).",
        ),
    ] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 64,
    sections: Annotated[
        Optional[str],
        typer.Option("--sections", help="Fusion runs: comma-separated coherence,classification,repair (default: all)."),
    ] = None,
    items: Annotated[
        Optional[int], typer.Option("--items", min=1, help="Fusion runs: held-out pairs generated (default 200).")
    ] = None,
) -> None:
    """Evaluate a tokenizer (reconstruction quality, codebook use) or a fusion run (cross-modal coherence, fused
    classification and robustness, repair) on held-out data; writes evaluation.json and evaluation.md."""
    from vqfuse.evaluate import evaluate_model, evaluation_markdown
    from vqfuse.fusion.model import is_fusion_run
    from vqfuse.pretrained import builtin_model

    if out is None and not Path(model).exists() and builtin_model(str(model)) is not None:
        out = Path(f"evaluation-{model}")  # a shipped model: never write into the installed package
    if is_fusion_run(model):
        from vqfuse.fusion.evaluate import FusionEvalConfig, evaluate_fusion

        config = FusionEvalConfig(batch_size=batch_size)
        if sections:
            chosen = tuple(x.strip() for x in sections.split(",") if x.strip())
            unknown = sorted(set(chosen) - set(config.sections))
            if unknown:
                raise VqfuseError(f"--sections: unknown {', '.join(unknown)}; choose from {', '.join(config.sections)}")
            config.sections = chosen
        if items is not None:
            config.items = items
        report, paths = evaluate_fusion(model, config, out=out, log=typer.echo)
        typer.echo(paths[1].read_text().rstrip())
        typer.echo(f"wrote {paths[0]} and {paths[1]}")
        return

    report, paths = evaluate_model(model, data=data, split=split, out=out, batch_size=batch_size)
    typer.echo(evaluation_markdown(report).rstrip())
    typer.echo(f"wrote {paths[0]} and {paths[1]}")


@app.command()
def info(model: ModelArg) -> None:
    """Print a model's id, codebook, tokens and bits per item, and its config (or a fusion run's prior,
    token sequence, tokenizers and sampling defaults)."""
    import json

    from vqfuse.evaluate import model_info
    from vqfuse.fusion.model import FusionModel, is_fusion_run
    from vqfuse.tokenizer import resolve_model_dir

    if is_fusion_run(model):
        fusion_rows = [("fusion run", str(model)), *FusionModel.from_run(model).summary_rows()]
        width = max(len(k) for k, _ in fusion_rows) + 1
        for k, v in fusion_rows:
            typer.echo(f"{k + ':':<{width}} {v}")
        return

    d = model_info(model)
    rows = [
        ("model", str(resolve_model_dir(model))),
        ("model id", d["model_id"]),
        ("modality", d["modality"]),
        (
            "quantizer",
            f"{d['quantizer']}, codebook size {d['codebook_size']}"
            + (f" x {d['stages']} stages" if d["stages"] > 1 else ""),
        ),
        ("downsampling", "x".join(str(f) for f in d["downsample_factors"])),
        ("parameters", f"{d['parameters']:,}"),
    ]
    if d["frames_per_second"] is not None:
        rows.append(("frames per second", f"{d['frames_per_second']:.6g}"))
    if d["frames_per_second"] is not None or len(d["rates"]) > 1:
        rows.append(
            (
                f"bitrates ({d['rate_unit']})",
                ", ".join(f"{r:g}" for r in d["rates"])
                + (f" (--n-q 1..{len(d['rates'])})" if len(d["rates"]) > 1 else ""),
            )
        )
    if "item_shape" in d:
        rows += [
            ("item", "x".join(str(n) for n in d["item_shape"])),
            ("tokens per item", str(d["tokens_per_item"])),
            ("bits per item", f"{d['bits_per_item']:.6g} ({d['rate']})"),
        ]
    width = max(len(k) for k, _ in rows) + 1
    for k, v in rows:
        typer.echo(f"{k + ':':<{width}} {v}")
    typer.echo("config:")
    typer.echo(json.dumps(d["config"], indent=2))


# register their commands on `app`: generate, repair (fusion); report; demo, models
from vqfuse import cli_demo, cli_fusion, cli_report  # noqa: E402, F401

# ------------------------------------------------------------------------------------------------- main


def main(argv: Optional[List[str]] = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 1 error, 2 usage error, 130 interrupted)."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args  # known before parsing, so that parse-time errors honour it too
    _state["debug"] = False
    command = typer.main.get_command(app)
    try:
        code = command.main(args=args, prog_name="vqfuse", standalone_mode=False)
        return code if isinstance(code, int) else 0
    except typer.Exit as exc:
        return exc.exit_code
    except _UsageError as exc:
        exc.show()
        return 2
    except _ClickException as exc:
        exc.show()
        return exc.exit_code
    except (KeyboardInterrupt, typer.Abort):
        if debug or _state["debug"]:
            traceback.print_exc()
        _err("error: interrupted")
        return 130
    except VqfuseError as exc:
        if debug or _state["debug"]:
            traceback.print_exc()
        _err(f"error: {exc}")
        return 1
    except BrokenPipeError:  # `vqfuse info m | head`
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
