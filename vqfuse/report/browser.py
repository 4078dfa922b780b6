"""Checking a report page in a real browser: headless Debian Chromium driven by selenium.

`check_report(index_html, screenshot)` opens the page from file:// (as a user would, with no server),
waits for the media to load their metadata, and lists what is broken: images that did not load, audio or
video without a finite positive duration (a file the browser cannot play), no table at all, console errors.
It saves a full-page screenshot. Needs /usr/bin/chromium and /usr/bin/chromedriver (Debian packages
`chromium` and `chromium-driver`) and `selenium>=4.10` (the `dev` extra); selenium is given the driver's
path, so it never tries to download one.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from vqfuse.errors import PathLike

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WIDTH = 1280
MAX_HEIGHT = 40000  # a screenshot taller than this is cut (very long pages)

_MEDIA_STATE = """
return [...document.querySelectorAll('audio, video')].map(e => ({
  tag: e.tagName.toLowerCase(), src: e.currentSrc || e.getAttribute('src') || '',
  duration: Number.isFinite(e.duration) ? e.duration : String(e.duration),
  ready: e.readyState, error: e.error ? (e.error.code + ' ' + (e.error.message || '')) : null}));
"""
_IMAGE_STATE = """
return [...document.images].map(i => ({src: i.currentSrc || i.getAttribute('src') || '', complete: i.complete,
  width: i.naturalWidth}));
"""
_PAGE_HEIGHT = """
return Math.max(document.body.scrollHeight, document.documentElement.scrollHeight,
                document.body.offsetHeight, document.documentElement.offsetHeight);
"""


def _driver(profile: str):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    for path in (CHROMIUM, CHROMEDRIVER):
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: apt-get install -y chromium chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new",
        "--no-sandbox",  # root in a container
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--mute-audio",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",  # a fresh profile: concurrent checks do not share one
        f"--window-size={WIDTH},900",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)


def _wait_for_media(driver, timeout: float) -> None:
    """Until the document is loaded and every audio / video has metadata or an error (or `timeout`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = driver.execute_script("return document.readyState")
        media = driver.execute_script(_MEDIA_STATE)
        if state == "complete" and all(m["ready"] >= 1 or m["error"] for m in media):
            return
        time.sleep(0.1)


def check_report(index_html: PathLike, screenshot: PathLike, timeout: float = 20.0) -> list[str]:
    """Open `index_html` in headless Chromium; returns the problems found (empty: the page is good) and
    writes a full-page PNG screenshot to `screenshot`.

    Checks: every <img> loaded (complete, naturalWidth > 0); every <audio> / <video> has a finite positive
    duration (the browser read and can play it); at least one <table>; no console message of level SEVERE
    (failed loads, script errors). Raises FileNotFoundError when the page, Chromium or chromedriver is
    missing."""
    page = Path(index_html).resolve()
    if not page.is_file():
        raise FileNotFoundError(f"{page}: no such page")
    shot = Path(screenshot)
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="vqfuse-chromium-") as profile:
        driver = _driver(profile)
        try:
            driver.get(page.as_uri())
            _wait_for_media(driver, timeout)
            for img in driver.execute_script(_IMAGE_STATE):
                if not img["complete"] or not img["width"]:
                    problems.append(f"image did not load: {img['src']}")
            for m in driver.execute_script(_MEDIA_STATE):
                d = m["duration"]
                if not isinstance(d, (int, float)) or not d > 0:
                    why = f"error {m['error']}" if m["error"] else f"readyState {m['ready']}"
                    problems.append(f"{m['tag']} has no finite positive duration ({d}; {why}): {m['src']}")
            if not driver.execute_script("return document.querySelectorAll('table').length"):
                problems.append("no <table> on the page")
            for entry in driver.get_log("browser"):
                if entry.get("level") == "SEVERE":
                    problems.append(f"console error: {entry.get('message', '').strip()}")
            height = min(int(driver.execute_script(_PAGE_HEIGHT)), MAX_HEIGHT)
            driver.set_window_size(WIDTH, max(height, 200))
            inner = int(driver.execute_script("return window.innerHeight"))
            if inner < height:  # the window's frame takes some of its height
                driver.set_window_size(WIDTH, height + (height - inner))
            shot.parent.mkdir(parents=True, exist_ok=True)
            if not driver.save_screenshot(str(shot)):
                problems.append(f"the screenshot could not be saved to {shot}")
        finally:
            driver.quit()
    return problems


__all__ = ["check_report", "CHROMIUM", "CHROMEDRIVER"]
