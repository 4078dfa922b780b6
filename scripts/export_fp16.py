"""Write a trained tokenizer's model directory with fp16 weights (half the size), for shipping:

    python scripts/export_fp16.py RUN_OR_MODEL_DIR OUT_DIR

Floating-point tensors are stored as fp16 and load back into the fp32 model; the model id is the content hash
of the weights as they load (fp16 rounded), so token files name the weights that made them.
"""

from __future__ import annotations

import sys
from pathlib import Path

from vqfuse.io.model_dir import CONFIG_FILE, WEIGHTS_FILE, weights_fingerprint
from vqfuse.io.weights import load_json, save_json, save_weights
from vqfuse.tokenizer import FORMAT, Tokenizer, resolve_model_dir


def export(src: Path, out: Path) -> str:
    model = Tokenizer.from_pretrained(src)
    half = {k: (v.half() if v.is_floating_point() else v) for k, v in model.state_dict().items()}
    config = load_json(resolve_model_dir(src) / CONFIG_FILE)
    config["model_id"] = weights_fingerprint({k: v.float() if v.is_floating_point() else v for k, v in half.items()})
    out.mkdir(parents=True, exist_ok=True)
    save_weights(half, out / WEIGHTS_FILE, metadata={"format": FORMAT, "dtype": "float16"})
    save_json(config, out / CONFIG_FILE)
    return config["model_id"]


if __name__ == "__main__":
    print(export(Path(sys.argv[1]), Path(sys.argv[2])))
