"""Shared test setup."""

import os

import pytest
import torch


@pytest.fixture(scope="session", autouse=True)
def _private_cache_dir(tmp_path_factory):
    """Keep the rendered-emoji / synthesised-speech disk caches out of the user's home during tests."""
    old = os.environ.get("VQFUSE_CACHE_DIR")
    os.environ["VQFUSE_CACHE_DIR"] = str(tmp_path_factory.mktemp("vqfuse-cache"))
    yield
    if old is None:
        os.environ.pop("VQFUSE_CACHE_DIR", None)
    else:
        os.environ["VQFUSE_CACHE_DIR"] = old


@pytest.fixture(scope="module")
def single_thread():
    """Tiny models gain nothing from intra-op threads, and on a shared 2-core machine OpenMP's spinning
    threads make every small op 10-50x slower under contention. A module opts in with
    `pytestmark = pytest.mark.usefixtures("single_thread")`."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
