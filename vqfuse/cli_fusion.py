"""The fusion commands of the `vqfuse` command line: `generate` and `repair` (registered on `vqfuse.cli.app`)."""

from __future__ import annotations

import sys
from typing import List, Optional

import typer
from typing_extensions import Annotated

from vqfuse.cli import _err, _on_file_error, app
from vqfuse.errors import VqfuseError

# --------------------------------------------------------------------------------------------- generate


@app.command()
def generate(
    model: Annotated[str, typer.Argument(metavar="MODEL", help="A fusion run directory (holding fusion.json).")],
    out: Annotated[
        str, typer.Argument(metavar="OUT", help="Output file or folder (--from), or output folder (--joint).")
    ],
    src: Annotated[
        Optional[str], typer.Option("--from", metavar="IN", help="Input image or audio file, or a folder of them.")
    ] = None,
    to: Annotated[
        Optional[str],
        typer.Option("--to", metavar="MODALITY", help="What to generate from IN (one of the model's modalities)."),
    ] = None,
    frames: Annotated[
        Optional[int],
        typer.Option("--frames", metavar="N", min=1, help="Continue IN by N steps of its own modality (frames)."),
    ] = None,
    joint: Annotated[
        Optional[int], typer.Option("--joint", metavar="N", min=1, help="Sample N image + audio pairs instead.")
    ] = None,
    steps: Annotated[
        Optional[int], typer.Option("--steps", min=1, help="MaskGIT decoding steps (default: the model's).")
    ] = None,
    temperature: Annotated[
        Optional[float], typer.Option("--temperature", min=0.0, help="Sampling temperature; 0 is greedy.")
    ] = None,
    cfg_scale: Annotated[
        Optional[float], typer.Option("--cfg-scale", help="Classifier-free guidance scale (1: none).")
    ] = None,
    top_k: Annotated[
        Optional[int], typer.Option("--top-k", min=1, help="Sample among the k most likely codes.")
    ] = None,
    top_p: Annotated[Optional[float], typer.Option("--top-p", min=0.0, max=1.0, help="Nucleus sampling mass.")] = None,
    rerank: Annotated[
        Optional[int],
        typer.Option(
            "--rerank",
            min=1,
            help="Candidates per output; the one the prior finds most coherent with the other modality is kept (1: none; default: the model's).",
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Random seed (the same seed gives the same outputs).")] = 0,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Items per prior call.")] = 32,
) -> None:
    """Generate across modalities with a fusion model: images -> audio, audio -> images, or joint pairs.

    vqfuse generate RUN --from digit.png --to audio digit.wav; vqfuse generate RUN --from clips/ --to image
    out/ (the tree is mirrored, a/one.wav -> out/a/one.png); vqfuse generate RUN --joint 8 samples/
    (sample-000.png + sample-000.wav, ...). Images are fitted to the model's size (centre crop), audio
    centred and cut or padded to its clip length.
    """
    from vqfuse.fusion.files import continue_path, generate_path, sample_joint_path, source_of
    from vqfuse.fusion.model import FusionModel

    if (src is None) == (joint is None):
        raise VqfuseError("give either --from IN --to MODALITY, or --joint N")
    if joint is None and to is None:
        raise VqfuseError("--from needs --to MODALITY (one of the model's, see `vqfuse info`)")
    if joint is not None and to is not None:
        raise VqfuseError("--to goes with --from; --joint samples both modalities")
    sampling = {
        k: v
        for k, v in {
            "steps": steps,
            "temperature": temperature,
            "cfg_scale": cfg_scale,
            "top_k": top_k,
            "top_p": top_p,
            "rerank": rerank,
        }.items()
        if v is not None
    }
    if cfg_scale is not None and cfg_scale == 1.0:
        sampling["cfg_scale"] = None  # the conditional model alone: skip the unconditional pass
    device = "cuda" if _cuda() else "cpu"
    fm = FusionModel.from_run(model, device=device)
    if joint is not None:
        sampling.pop("cfg_scale", None)
        written = sample_joint_path(fm, joint, out, batch_size=batch_size, seed=seed, **sampling)
        kind = " + ".join(fm.names) + (" pair" if len(fm.names) == 2 else " set")
        typer.echo(f"sampled {len(written)} {kind}{'s' if len(written) != 1 else ''} -> {out}")
        return
    if frames is not None:
        sampling = {k: v for k, v in sampling.items() if k in ("steps", "temperature")}
        done = continue_path(fm, src, out, frames, to=to, seed=seed, **sampling)
        typer.echo(f"continued {src} by {frames} steps -> {out}" + (f"\nnote: {done.note}" if done.note else ""))
        return
    if to not in fm.names:
        raise VqfuseError(f"--to must be one of this model's modalities: {', '.join(fm.names)}")
    result = generate_path(
        fm,
        src,
        out,
        to,
        batch_size=batch_size,
        on_error=_on_file_error,
        progress=sys.stderr.isatty(),
        seed=seed,
        **sampling,
    )
    n = len(result.done)
    typer.echo(
        f"generated {n} {to} file{'s' if n != 1 else ''} from {source_of(fm, src, to)} "
        f"in {result.seconds:.2f} s -> {out}" + (f"; {len(result.failed)} failed" if result.failed else "")
    )
    if result.failed:
        _err(f"error: {len(result.failed)} of {len(result.failed) + n} files failed")
        raise typer.Exit(1)


@app.command()
def repair(
    model: Annotated[
        str, typer.Argument(metavar="MODEL", help="A fusion run directory with a masked (maskgit) prior.")
    ],
    src: Annotated[str, typer.Argument(metavar="IN", help="A damaged image (with --mask) or noisy speech file.")],
    out: Annotated[str, typer.Argument(metavar="OUT", help="The repaired file (same modality as IN).")],
    mask: Annotated[
        Optional[str],
        typer.Option("--mask", metavar="MASK", help="Image of the missing region: white = missing, black = kept."),
    ] = None,
    missing: Annotated[
        Optional[str],
        typer.Option("--missing", metavar="A-B", help="Missing frames (1-based, inclusive), e.g. 9-12 or 9-12,15."),
    ] = None,
    condition: Annotated[
        Optional[List[str]],
        typer.Option(
            "--condition",
            metavar="FILE",
            help="A file of another modality to condition on (e.g. the spoken digit for an image); repeat for several.",
        ),
    ] = None,
    target: Annotated[
        Optional[str],
        typer.Option("--target", metavar="NAME", help="The segment IN belongs to, where several share its file type."),
    ] = None,
    steps: Annotated[int, typer.Option("--steps", min=1, help="MaskGIT decoding steps.")] = 8,
    cfg_scale: Annotated[
        Optional[float],
        typer.Option("--cfg-scale", help="Classifier-free guidance scale with a condition (default: none)."),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 0,
) -> None:
    """Repair a damaged input through a fusion model's tokens, optionally helped by the other modalities.

    vqfuse repair RUN damaged.png fixed.png --mask hole.png [--condition digit.wav] inpaints the white region
    of the mask; vqfuse repair RUN noisy.wav clean.wav [--condition digit.png] denoises speech of any length;
    vqfuse repair RUN clip.mp4 fixed.mp4 --missing 9-12 [--mask hole.png] fills missing frames (and a hole).
    """
    from vqfuse.fusion.model import FusionModel
    from vqfuse.fusion.repair_files import repair_file

    fm = FusionModel.from_run(model, device="cuda" if _cuda() else "cpu")
    result = repair_file(
        fm,
        src,
        out,
        mask=mask,
        missing=missing,
        condition=condition or None,
        target=target,
        steps=steps,
        cfg_scale=None if cfg_scale == 1.0 else cfg_scale,
        seed=seed,
    )
    typer.echo(result.summary())


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()
