"""Shared test setup."""

import os

import pytest


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
