"""What every demo part shares: the output folder, the report being built, the size of the run (quick or
full) and the clock that times each stage."""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

Log = Callable[[str], None]


@dataclass(frozen=True)
class DemoSize:
    """How much each part does. `full` is sized for about 15 minutes on 2 CPU cores, `quick` for 3."""

    images: int  # held-out images reconstructed per pretrained image model
    clips: int  # held-out speech clips (each at every bitrate shown)
    videos: int  # held-out video clips
    pairs: int  # held-out image/speech pairs generated across and repaired
    train_minutes: float  # wall-clock budget of each from-scratch training
    train_steps: dict[str, int]  # steps of each from-scratch training (the budget stops it earlier if needed)
    fusion_items: int  # training pairs encoded for the from-scratch prior


FULL = DemoSize(
    images=64,
    clips=6,
    videos=6,
    pairs=32,
    train_minutes=1.5,
    train_steps={"image": 400, "audio": 300, "video": 120, "fusion": 600},
    fusion_items=4000,
)
QUICK = DemoSize(
    images=16,
    clips=2,
    videos=2,
    pairs=8,
    train_minutes=0.3,
    train_steps={"image": 40, "audio": 20, "video": 8, "fusion": 60},
    fusion_items=600,
)


@dataclass
class DemoContext:
    """One demo run: `out` holds everything; `report` is the page being built; `timings` the seconds of
    each stage, in order."""

    out: Path
    size: DemoSize
    report: Any  # vqfuse.report.Report
    progress: bool = True
    log: Log = print
    seed: int = 0
    inputs: Path | None = None
    timings: list[tuple[str, float]] = field(default_factory=list)

    def path(self, *parts: str) -> Path:
        """A path under the demo folder, its parent created."""
        p = self.out.joinpath(*parts)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def rel(self, path: Path) -> str:
        """`path` relative to the demo folder (how the report links it)."""
        return Path(path).resolve().relative_to(self.out.resolve()).as_posix()

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time one stage into `timings` (and the report), logging its start and its wall time."""
        self.log(f"[{name}] ...")
        start = time.perf_counter()
        try:
            yield
        finally:
            seconds = time.perf_counter() - start
            self.timings.append((name, seconds))
            self.report.timings.append((name, round(seconds, 1)))
            self.log(f"[{name}] done in {seconds:.0f} s")


__all__ = ["DemoSize", "DemoContext", "FULL", "QUICK", "Log"]
