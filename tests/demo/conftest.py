"""A demo context of the smallest size, writing into a tmp folder."""

from __future__ import annotations

import dataclasses

import pytest

from vqfuse.demo.context import QUICK, DemoContext
from vqfuse.report import Report

TINY = dataclasses.replace(QUICK, images=3, clips=1, videos=1, pairs=4)


@pytest.fixture
def ctx(tmp_path) -> DemoContext:
    return DemoContext(
        tmp_path / "demo", TINY, Report(title="t", subtitle="", credits=[]), progress=False, log=lambda s: None
    )
