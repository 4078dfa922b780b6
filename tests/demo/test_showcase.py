"""The demo's pretrained parts: each writes playable files, a metrics table against its classic anchor
measured in the same run, and a codebook-usage plot, all linked from the report."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tests.helpers.models import make_model
from vqfuse.demo.showcase import audio_part, code_counts, image_part, video_part
from vqfuse.report import write_report
from vqfuse.report.model import Image, MediaRow, Table


def _blocks(ctx, kind):
    return [b for s in ctx.report.sections for b in s.blocks if isinstance(b, kind)]


def _written(ctx):
    """Every media file the report links exists (write_report raises otherwise)."""
    return write_report(ctx.report, ctx.out)


def test_code_counts_per_stage():
    class Tok:
        n_stages, codebook_size = 3, 8

        def stage_sizes(self, n):
            return [8] * n

    codes = torch.tensor([[[0, 1, 1], [2, 2, 2]], [[0, 0, 7], [3, 3, 3]]])  # (B=2, stages kept=2, T=3)
    counts = code_counts(Tok(), codes)
    assert [c.tolist() for c in counts] == [[3, 2, 0, 0, 0, 0, 0, 1], [0, 0, 3, 3, 0, 0, 0, 0]]


def test_audio_part_scores_the_codec_and_opus_at_each_bitrate(ctx):
    audio_part(ctx, "speech16k")
    (table,) = _blocks(ctx, Table)
    codecs = [row[0] for row in table.rows]
    assert codecs == ["vqfuse", "Opus"] * 3
    rates = [float(row[1]) for row in table.rows]
    assert rates[0] == pytest.approx(1.5) and rates[4] == pytest.approx(6.0)
    assert 1.0 < rates[5] < 7.0  # Opus at its bit rate (VBR: less on silence), measured on the packets
    stoi = [float(row[2]) for row in table.rows]
    assert all(0 < s <= 1 for s in stoi) and stoi[4] > stoi[0]  # more bits, more intelligible
    (row,) = _blocks(ctx, MediaRow)
    assert [m.caption for m in row.items][:2] == ["original", "vqfuse 1.5 kbit/s"] and len(row.items) == 7
    _written(ctx)


def test_video_part_against_h264_at_the_same_rate(ctx):
    video_part(ctx, "moving-digits")
    (table,) = _blocks(ctx, Table)
    (ours, h264) = table.rows
    assert float(ours[1]) == pytest.approx(6 * 8 * 8 * math.log2(16384) / (21 * 64 * 64), rel=1e-3)
    assert float(h264[1]) <= float(ours[1]) * 1.05  # the anchor stays at (or just under) the same rate
    assert 5 < float(ours[2]) < 60 and 5 < float(h264[2]) < 60
    (row,) = _blocks(ctx, MediaRow)
    assert [m.kind for m in row.items] == ["video"] * 3 and all(m.path.endswith(".webm") for m in row.items)
    _written(ctx)


def test_image_part_with_webp_and_jpeg(ctx, tmp_path, monkeypatch):
    make_model(tmp_path / "tiny", dataset="digits")  # 16 px digits, K = 32
    image_part(ctx, str(tmp_path / "tiny"))
    (table,) = _blocks(ctx, Table)
    assert [r[0] for r in table.rows] == [f"vqfuse {tmp_path / 'tiny'}", "WebP", "JPEG"]
    assert float(table.rows[0][1]) == pytest.approx(8 * 8 * 5 / 16**2)  # 8x8 codes of 5 bits over 16x16
    images = _blocks(ctx, Image)
    assert len(images) == 2  # the grid and the usage plot
    from PIL import Image as PILImage

    grid = np.asarray(PILImage.open(ctx.out / images[0].path))
    assert grid.shape[0] > 4 * 16  # four rows: input, vqfuse, WebP, JPEG
    _written(ctx)


def test_heldout_items_are_what_the_model_was_trained_on():
    from vqfuse.demo.showcase import heldout_items
    from vqfuse.tokenizer import Tokenizer

    assert tuple(heldout_items(Tokenizer.from_pretrained("emoji64"), 2).shape) == (2, 3, 64, 64)
    assert tuple(heldout_items(Tokenizer.from_pretrained("emoji32"), 2).shape) == (2, 3, 32, 32)
