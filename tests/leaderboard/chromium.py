"""Headless Chromium for the browser tests (Debian's chromium + chromium-driver, driven by selenium): where it
is found, and one way to start it, shared by test_leaderboard_browser.py and test_leaderboard_screenshots.py.
Import only after ``pytest.importorskip("selenium.webdriver")``."""

from __future__ import annotations

import os
import shutil
from typing import Any, Iterator

import pytest
from selenium import webdriver
from selenium.common.exceptions import WebDriverException


def _find(candidates: list[str | None]) -> str | None:
    for c in candidates:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    return None


CHROMIUM = _find([os.environ.get("CHROMIUM"), shutil.which("chromium"), shutil.which("chromium-browser"),
                  "/usr/bin/chromium", "/usr/lib/chromium/chromium"])
CHROMEDRIVER = _find([os.environ.get("CHROMEDRIVER"), shutil.which("chromedriver"), "/usr/bin/chromedriver",
                      "/usr/lib/chromium/chromedriver"])

BASE_ARGS = ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--no-first-run",
             "--disable-extensions")


def headless_chromium(extra_args: tuple[str, ...]) -> Iterator[Any]:
    """Yield a started driver (quit afterwards); skip the test where Chromium is absent or cannot start."""
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip("Chromium/chromedriver not found: run scripts/install_browser.sh "
                    "(apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in BASE_ARGS + extra_args:
        options.add_argument(arg)
    try:
        driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=CHROMEDRIVER), options=options)
    except WebDriverException as exc:
        pytest.skip(f"Chromium found at {CHROMIUM} but could not start: {exc.msg}")
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()
