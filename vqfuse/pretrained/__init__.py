"""Pretrained models that ship inside the package, loadable by name (`Tokenizer.from_pretrained("speech16k")`,
`vqfuse reconstruct speech16k in.wav out.wav`). Each is a model directory (config.json, fp16
model.safetensors) with a README model card giving its figures and the command that reproduces it."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def builtin_models() -> dict[str, Path]:
    """{name: model directory} of the models shipped in this package."""
    root = Path(str(resources.files(__name__)))
    return {p.name: p for p in sorted(root.iterdir()) if (p / "config.json").is_file()}


def builtin_model(name: str) -> Path | None:
    """The shipped model directory called `name`, or None."""
    return builtin_models().get(str(name))


__all__ = ["builtin_models", "builtin_model"]
