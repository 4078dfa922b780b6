"""Pretrained models that ship inside the package, loadable by name (`Tokenizer.from_pretrained("speech16k")`,
`vqfuse reconstruct speech16k in.wav out.wav`). Each is a model directory (config.json, fp16
model.safetensors) with a README model card giving its figures and the command that reproduces it."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def builtin_models() -> dict[str, Path]:
    """{name: model directory} of the models shipped in this package."""
    root = Path(str(resources.files(__name__)))
    return {p.name: p for p in sorted(root.iterdir()) if (p / "config.json").is_file() or (p / "fusion.json").is_file()}


def builtin_model(name: str) -> Path | None:
    """The shipped model directory called `name`, or None."""
    return builtin_models().get(str(name))


def model_card(directory: Path) -> dict:
    """A shipped model's `card.json` ({kind, summary, metrics, command}); {} where it has none."""
    from vqfuse.io.weights import load_json

    path = Path(directory) / "card.json"
    card = load_json(path) if path.is_file() else {}
    return card if isinstance(card, dict) else {}


def resolve_run_dir(path: str | Path) -> Path:
    """`path` itself, or the shipped model of that name where no such path exists (fusion runs: "av-digits")."""
    path = Path(path)
    if not path.exists() and builtin_model(str(path)) is not None:
        return builtin_model(str(path))  # type: ignore[return-value]
    return path


__all__ = ["builtin_models", "builtin_model", "resolve_run_dir", "model_card"]
