"""`vqfuse demo --inputs DIR`: the pretrained tokenizers on the user's own files. Each file goes to the model
of its modality (by suffix); a file that cannot be read gets one line in the report and the demo goes on."""

from __future__ import annotations

from pathlib import Path

from vqfuse.demo.context import DemoContext

# Which shipped models code which modality (the first one shipped), and the output suffix browsers play.
USER_MODELS = {
    "image": (("emoji64", "emoji32"), ".png"),
    "audio": (("speech16k",), ".wav"),
    "video": (("moving-digits",), ".webm"),
}
MAX_FILES = 24


def _modality_of(path: Path) -> str | None:
    """The first modality (image, audio, video: a .gif is an image) that reads this suffix."""
    from vqfuse.modalities import get_modality

    suffix = path.suffix.lower()
    return next((name for name in USER_MODELS if suffix in get_modality(name).extensions), None)


def _model_name(modality: str) -> str:
    from vqfuse.pretrained import builtin_models

    names = USER_MODELS[modality][0]
    return next((n for n in names if n in builtin_models()), names[0])


def user_files_part(ctx: DemoContext, inputs: Path) -> None:
    from vqfuse.codec import reconstruct_file
    from vqfuse.errors import VqfuseError
    from vqfuse.report import Media
    from vqfuse.tokenizer import Tokenizer

    files = sorted(p for p in Path(inputs).rglob("*") if p.is_file() and not p.name.startswith("."))
    known = [(p, m) for p in files if (m := _modality_of(p)) is not None][:MAX_FILES]
    sec = ctx.report.add_section(
        "Your files",
        text=f"The files of {inputs} through the pretrained models: images through {_model_name('image')}, "
        f"speech through {_model_name('audio')} at 6 kbit/s, video through {_model_name('video')} (trained on "
        "Moving MNIST only: expect grey, blurred footage).",
    )
    if not known:
        sec.add_text(f"No image, audio or video files found in {inputs}.")
        return
    models: dict[str, Tokenizer] = {}
    for path, modality in known:
        name, suffix = _model_name(modality), USER_MODELS[modality][1]
        out = ctx.path("yours", f"{path.stem}{suffix}")
        try:
            if modality not in models:
                models[modality] = Tokenizer.from_pretrained(name).eval()
            model = models[modality]
            result = reconstruct_file(model, path, out, kbps=6.0 if model.quantizer.variable_rate else None)
        except (VqfuseError, OSError, ValueError, RuntimeError) as exc:  # one bad file must not end the demo
            ctx.log(f"[your files] {path}: {exc}")
            sec.add_text(f"{path.name}: could not be coded ({exc})")
            continue
        copy = ctx.path("yours", f"{path.stem}-original{path.suffix.lower()}")
        copy.write_bytes(path.read_bytes())
        kind = modality  # the report's media kinds are the modality names
        sec.add_media_row(
            path.name,
            [
                Media(kind, ctx.rel(copy), "your file"),
                Media(kind, ctx.rel(out), f"{name}: {model.modality.rate_text(result.bits, result.extent)}"),
            ],
        )


__all__ = ["user_files_part", "USER_MODELS"]
