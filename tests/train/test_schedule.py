import json
import math

import pytest
import torch

from vqfuse.train.schedule import build_scheduler, warmup_cosine


def test_warmup_is_linear_then_cosine_to_min_ratio():
    # warm-up: (step + 1) / warmup
    assert [warmup_cosine(s, 4, 14, 0.1) for s in range(4)] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    # cosine from 1 at the end of warm-up to min_lr_ratio at total_steps
    assert warmup_cosine(4, 4, 14, 0.1) == pytest.approx(1.0)
    assert warmup_cosine(9, 4, 14, 0.1) == pytest.approx(0.1 + 0.9 * 0.5)  # half way
    assert warmup_cosine(14, 4, 14, 0.1) == pytest.approx(0.1)
    assert warmup_cosine(100, 4, 14, 0.1) == pytest.approx(0.1)  # stays at the floor
    t = (7 - 4) / 10
    assert warmup_cosine(7, 4, 14, 0.2) == pytest.approx(0.2 + 0.8 * 0.5 * (1 + math.cos(math.pi * t)))


def test_no_warmup_and_degenerate_lengths():
    assert warmup_cosine(0, 0, 10, 0.0) == pytest.approx(1.0)
    assert warmup_cosine(10, 0, 10, 0.0) == pytest.approx(0.0)
    assert warmup_cosine(3, 5, 5, 0.1) == pytest.approx(0.8)  # all warm-up
    assert warmup_cosine(7, 5, 5, 0.1) == 1.0  # nothing left to decay


def test_scheduler_sets_optimizer_lr_and_state_is_json():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([p], lr=1.0)
    sched = build_scheduler(opt, warmup_steps=2, total_steps=6, min_lr_ratio=0.0)
    lrs = []
    for _ in range(7):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    expected = [warmup_cosine(s, 2, 6, 0.0) for s in range(7)]
    assert lrs == pytest.approx(expected)
    json.dumps(sched.state_dict())  # checkpoints store it as JSON


def test_min_lr_ratio_is_validated():
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    with pytest.raises(ValueError):
        build_scheduler(opt, 1, 10, min_lr_ratio=1.5)
