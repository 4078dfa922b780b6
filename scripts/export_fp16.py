"""Write a trained model with fp16 weights (half the size), for shipping:

    python scripts/export_fp16.py RUN_OR_MODEL_DIR OUT_DIR

A tokenizer: its model directory. A fusion run (fusion.json): the prior, its judges and its tokenizers, each
with fp16 weights; a tokenizer that is itself a shipped model (same weights) is named instead of copied.
Floating-point tensors are stored as fp16 and load back into the fp32 model; the model id is the content hash
of the weights as they load (fp16 rounded), so token files name the weights that made them, and a fusion
run's fusion.json is rewritten with the ids of its exported tokenizers.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from vqfuse.io.model_dir import CONFIG_FILE, WEIGHTS_FILE, weights_fingerprint
from vqfuse.io.weights import load_json, load_weights, load_weights_metadata, save_json, save_weights
from vqfuse.pretrained import builtin_models
from vqfuse.tokenizer import FORMAT, Tokenizer, resolve_model_dir


def _half(state: dict) -> dict:
    return {k: (v.half() if v.is_floating_point() else v) for k, v in state.items()}


def _loaded_id(half: dict) -> str:
    return weights_fingerprint({k: v.float() if v.is_floating_point() else v for k, v in half.items()})


def export(src: Path, out: Path) -> str:
    """A tokenizer's model directory with fp16 weights; returns its model id."""
    model = Tokenizer.from_pretrained(src)
    half = _half(model.state_dict())
    config = load_json(resolve_model_dir(src) / CONFIG_FILE)
    config["model_id"] = _loaded_id(half)
    out.mkdir(parents=True, exist_ok=True)
    save_weights(half, out / WEIGHTS_FILE, metadata={"format": FORMAT, "dtype": "float16"})
    save_json(config, out / CONFIG_FILE)
    return config["model_id"]


def _export_dir(src: Path, out: Path) -> None:
    """Any model directory (config.json + model.safetensors: a prior, a judge) with fp16 weights, same config."""
    out.mkdir(parents=True, exist_ok=True)
    weights = load_weights(src / WEIGHTS_FILE)
    metadata = {**load_weights_metadata(src / WEIGHTS_FILE), "dtype": "float16"}
    save_weights(_half(weights), out / WEIGHTS_FILE, metadata=metadata)
    config = load_json(src / CONFIG_FILE)
    if "model_id" in config:
        config["model_id"] = _loaded_id(_half(weights))
    save_json(config, out / CONFIG_FILE)


def export_fusion(run: Path, out: Path) -> dict:
    """A fusion run's model: fusion.json, prior/, judges/ and tokenizers/, fp16; returns fusion.json."""
    desc = load_json(run / "fusion.json")
    shipped = {
        Tokenizer.from_pretrained(d).model_id: name
        for name, d in builtin_models().items()
        if (d / CONFIG_FILE).is_file()
    }
    for name, entry in desc["tokenizers"].items():
        tok = Tokenizer.from_pretrained(run / entry["path"])
        if tok.model_id in shipped:  # the shipped codec itself: name it
            entry["path"] = shipped[tok.model_id]
            continue
        entry["path"] = f"tokenizers/{name}"
        entry["model_id"] = export(run / "tokenizers" / name / "model", out / entry["path"])
    _export_dir(run / desc.get("prior", "prior"), out / "prior")
    desc["prior"] = "prior"
    for judge in sorted((run / "judges").glob("*/")):
        _export_dir(judge, out / "judges" / judge.name)
    for extra in ("metrics.json", "metrics.md", "config.yaml"):
        if (run / extra).is_file():
            shutil.copy(run / extra, out / extra)
    save_json(desc, out / "fusion.json")
    return desc


if __name__ == "__main__":
    src, dst = Path(sys.argv[1]), Path(sys.argv[2])
    print(export_fusion(src, dst) if (src / "fusion.json").is_file() else export(src, dst))
