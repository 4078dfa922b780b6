"""Where rendered data is cached on disk, and the one stable hash behind seeds, splits and caches.

``hashlib`` is used rather than ``hash()``, which is salted per process: the same parts give the same
number in every run, process and DataLoader worker.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def cache_dir() -> Path:
    """Where rendered data is cached: ``$VQFUSE_CACHE_DIR``, else ``$XDG_CACHE_HOME/vqfuse``, else ``~/.cache/vqfuse``."""
    if os.environ.get("VQFUSE_CACHE_DIR"):
        return Path(os.environ["VQFUSE_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "vqfuse"


def stable_hash(*parts: object) -> int:
    """A 64-bit integer fixed by ``parts``: the first 8 bytes of sha256 over their ``str`` joined by NUL."""
    return int.from_bytes(hashlib.sha256("\x00".join(map(str, parts)).encode("utf-8")).digest()[:8], "big")


__all__ = ["cache_dir", "stable_hash"]
