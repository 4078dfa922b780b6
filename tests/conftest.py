"""Shared test setup."""

import os
import subprocess

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


def _apt_get(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run(["apt-get", *args], capture_output=True, text=True, timeout=900, env=env)


@pytest.fixture(scope="session")
def chromium() -> None:
    """Debian's Chromium and chromedriver for the browser tests, installed with apt-get when missing (after
    `apt-get update` if the first try fails); skipped, with the reason, only if that install fails."""
    pytest.importorskip("selenium", reason="selenium is not installed (pip install -e '.[dev]')")
    from vqfuse.report.browser import CHROMEDRIVER, CHROMIUM

    if CHROMIUM.is_file() and CHROMEDRIVER.is_file():
        return
    install = ("install", "-y", "--no-install-recommends", "chromium", "chromium-driver")
    try:
        done = _apt_get(*install)
        if done.returncode != 0:
            _apt_get("update")
            done = _apt_get(*install)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"chromium is missing and `apt-get {' '.join(install)}` could not run: {exc}")
    if done.returncode != 0 or not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
        tail = " ".join((done.stderr or done.stdout).strip().splitlines()[-2:])
        pytest.skip(f"chromium is missing and `apt-get {' '.join(install)}` failed (exit {done.returncode}): {tail}")
