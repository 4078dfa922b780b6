import json

import numpy as np
import pytest

from vqfuse.errors import InputFileError
from vqfuse.report.plots import plot_code_usage, plot_lines, plot_training_curves, read_train_log

PNG = b"\x89PNG\r\n\x1a\n"


def _png_size(path) -> tuple[int, int]:
    from PIL import Image

    assert path.read_bytes()[:8] == PNG
    with Image.open(path) as im:
        return im.size


def test_training_curves_from_a_train_log(tmp_path):
    log = tmp_path / "train.jsonl"
    rows = [
        {
            "step": s,
            "kind": "train",
            "rec": 1 / s,
            "quant": 0.01,
            "gan": 0.0,
            "usage": 0.1 * s,
            "perplexity": 3.0 * s,
            "grad_norm": 1.0,
            "lr": 1e-3 / s,
            "items_per_s": 50.0,
            "skipped": 0.0,
        }
        for s in range(1, 30)
    ]
    lines = [json.dumps(r) for r in rows] + ['{"step": 30, "kind": "eval", "psnr": 20.0}', '{"torn": ']
    log.write_text("\n".join(lines))
    series = read_train_log(log)
    assert "psnr" not in series and "skipped" not in series and len(series["rec"][0]) == 29
    png = plot_training_curves(log, tmp_path / "out" / "curves.png")
    w, h = _png_size(png)
    assert w > 800 and h > 200


def test_training_curves_without_train_rows_is_an_error(tmp_path):
    log = tmp_path / "train.jsonl"
    log.write_text('{"step": 1, "kind": "eval", "psnr": 3.0}\n')
    with pytest.raises(InputFileError, match='no "kind": "train" rows'):
        plot_training_curves(log, tmp_path / "c.png")


def test_code_usage_and_lines(tmp_path):
    rng = np.random.default_rng(0)
    counts = [np.bincount(rng.integers(0, 20, 500), minlength=32), np.bincount(rng.integers(0, 32, 500), minlength=32)]
    _png_size(plot_code_usage(counts, tmp_path / "usage.png", title="test"))
    _png_size(plot_code_usage([counts[0]], tmp_path / "usage1.png"))
    _png_size(
        plot_lines(
            [0, 0.5, 1],
            {"image": [0.9, 0.7, 0.4], "fused": [0.95, 0.9, 0.8]},
            tmp_path / "l.png",
            "noise",
            "accuracy",
            "robustness",
        )
    )
    with pytest.raises(ValueError, match="3 x values"):
        plot_lines([0, 0.5, 1], {"a": [1, 2]}, tmp_path / "bad.png")
