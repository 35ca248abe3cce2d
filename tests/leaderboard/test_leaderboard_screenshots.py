"""Screenshots of the live leaderboard page in headless Chromium at desktop and phone width.

What it checks, beyond taking the pictures: at 390 px (a phone) the page itself never scrolls sideways (the
table scrolls inside its own container, method column pinned), the dataset's name and fingerprint are on
screen, and /docs draws the API with Swagger UI served by the app itself.

The PNGs go to ``$NERFSEG_SCREENSHOTS`` when set (e.g. ``NERFSEG_SCREENSHOTS=shots pytest
tests/leaderboard/test_leaderboard_screenshots.py``), else to the test's tmp folder. Skipped where Chromium
is absent (scripts/install_browser.sh installs it), like test_leaderboard_browser.py.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator

import pytest

pytest.importorskip("uvicorn", reason="the server extra (uvicorn) is not installed")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium not installed: run scripts/install_browser.sh")

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from nerfseg.leaderboard.server import swagger_asset_dir  # noqa: E402
from nerfseg.leaderboard.store import ResultsStore  # noqa: E402
from nerfseg.identity import benchmark_identity  # noqa: E402
from tests.leaderboard.livesite import LiveServer  # noqa: E402
from tests.leaderboard.chromium import headless_chromium  # noqa: E402

PHONE = (390, 844)
DESKTOP = (1280, 900)


@pytest.fixture
def chromium() -> Iterator[Any]:
    yield from headless_chromium(("--hide-scrollbars", f"--window-size={DESKTOP[0]},{DESKTOP[1]}"))


def _viewport(driver: Any, width: int, height: int, mobile: bool) -> None:
    """Emulate a screen exactly (a headless window's size includes no toolbar, but emulation is exact and
    makes the page's viewport meta tag count, as on a phone)."""
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile})


def _shots_dir(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("NERFSEG_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _seed(db: Path, lb_benchmark: Path) -> None:
    """Three measured methods (long names, links, two teams) and a paper's row, as a real board has."""
    bench = benchmark_identity(lb_benchmark).to_json()
    with ResultsStore(db) as store:
        for team, method, pq, meta in (
            ("instance-nerf-authors", "Instance-NeRF (NeRF-RCNN + mask refinement)", 0.352,
             {"paper": "https://arxiv.org/abs/2304.14401", "code": "https://github.com/lyclyc52/Instance_NeRF"}),
            ("panoptic-lifting-repro", "Panoptic Lifting", 0.301, {"paper": "https://arxiv.org/abs/2212.09802"}),
            ("instance-nerf-authors", "Semantic-NeRF", 0.0, {"semantic_only": True}),
        ):
            t = store.ensure_team(team)
            store.record_finished(
                team_id=t.id, method=method, content_hash=method, size_bytes=1, filename=None, stored_path=None,
                split="test", protocol="nerfseg-v1",
                report={"protocol": "nerfseg-v1", "benchmark": bench,
                        "summary": {"miou": 0.41 + pq / 10, "pq_things": pq, "sq_things": 0.7, "rq_things": pq * 1.3,
                                    "pq_scene_things": pq * 0.8, "binary_acc": 0.93, "binary_miou": 0.81}},
                meta={"method": method, "uses_gt_masks": False, "spec_version": "1", **meta})
        store.add_reported("Instance-NeRF", "Instance-NeRF paper, Table 1", {"miou": 0.43, "pq_things": 0.324},
                           dataset="3D-FRONT")


@pytest.mark.slow
def test_leaderboard_page_on_desktop_and_phone(chromium: Any, tmp_path: Path, lb_benchmark: Path) -> None:
    db = tmp_path / "lb.db"
    _seed(db, lb_benchmark)
    shots = _shots_dir(tmp_path)
    name = benchmark_identity(lb_benchmark).name
    server = LiveServer(db, lb_benchmark, tmp_path / "server.log", worker="none")
    try:
        server.wait_ready()
        d = chromium

        _viewport(d, *DESKTOP, mobile=False)
        d.get(server.url + "/")
        assert d.find_element(By.ID, "dataset-name").text == name
        assert d.find_element(By.ID, "dataset-name").is_displayed()
        first = d.find_element(By.CSS_SELECTOR, "table#leaderboard tbody tr")
        assert "instance-nerf-authors" in first.text and first.find_element(By.LINK_TEXT, "code")
        d.save_screenshot(str(shots / "board_desktop.png"))

        _viewport(d, *PHONE, mobile=True)
        d.get(server.url + "/")
        widths = d.execute_script(
            "return [window.innerWidth, document.documentElement.scrollWidth, document.body.scrollWidth];")
        assert widths[0] == PHONE[0]
        assert max(widths[1:]) <= widths[0], f"the page scrolls sideways at {PHONE[0]} px: {widths}"
        label = d.find_element(By.ID, "dataset-name")
        box = d.execute_script("var r = arguments[0].getBoundingClientRect(); return [r.left, r.right];", label)
        assert label.is_displayed() and label.text == name and 0 <= box[0] and box[1] <= PHONE[0], box
        fingerprint = d.find_element(By.ID, "dataset-fingerprint")
        right = d.execute_script("return arguments[0].getBoundingClientRect().right;", fingerprint)
        assert right <= PHONE[0], "the fingerprint runs off the screen"
        # the table is wider than a phone: it scrolls in its container, and the method column stays put
        scroller = d.find_element(By.CSS_SELECTOR, "div.table-scroll")
        inner, outer = d.execute_script("return [arguments[0].scrollWidth, arguments[0].clientWidth];", scroller)
        assert inner > outer
        cell = d.find_element(By.CSS_SELECTOR, "table#leaderboard tbody tr td:first-child")
        before = d.execute_script("return arguments[0].getBoundingClientRect().left;", cell)
        d.execute_script("arguments[0].scrollLeft = 200;", scroller)
        after = d.execute_script("return arguments[0].getBoundingClientRect().left;", cell)
        assert abs(after - before) < 1, "the method column scrolled away (it should be sticky)"
        d.execute_script("arguments[0].scrollLeft = 0;", scroller)
        d.save_screenshot(str(shots / "board_phone.png"))

        if swagger_asset_dir() is not None:
            _viewport(d, *DESKTOP, mobile=False)
            d.get(server.url + "/docs")
            WebDriverWait(d, 20).until(lambda drv: drv.find_elements(By.CSS_SELECTOR, ".swagger-ui .opblock"))
            paths = [e.text for e in d.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")]
            assert "/api/leaderboard" in paths, paths
            d.save_screenshot(str(shots / "board_api_docs.png"))
    finally:
        server.stop()
    for png in ("board_desktop.png", "board_phone.png"):
        data = (shots / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
