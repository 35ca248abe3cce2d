"""A real browser against the live server: headless Chromium (Debian's chromium + chromium-driver, driven by
selenium) uploads a demo submission with a team token, waits for the evaluation, and finds the new row in the
sortable table. Skipped only where Chromium cannot be found (run scripts/install_browser.sh)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Iterator

import pytest

pytest.importorskip("uvicorn", reason="the server extra (uvicorn) is not installed")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium not installed: run scripts/install_browser.sh")

from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from nerfseg.leaderboard.store import ResultsStore  # noqa: E402
from nerfseg.identity import benchmark_identity  # noqa: E402
from tests.leaderboard.chromium import headless_chromium  # noqa: E402
from tests.leaderboard.livesite import LiveServer  # noqa: E402


@pytest.fixture
def browser() -> Iterator[Any]:
    yield from headless_chromium(("--window-size=1280,1000",))


@pytest.mark.slow
def test_upload_in_the_browser_and_see_the_new_row(browser, tmp_path: Path, lb_benchmark: Path,
                                                    demo: dict[str, Path]) -> None:
    db = tmp_path / "lb.db"
    with ResultsStore(db) as store:
        _team, token = store.add_team("browser-team")
        store.add_reported("Instance-NeRF", "Instance-NeRF paper, Table 1", {"miou": 0.43, "pq_things": 0.324},
                           dataset="3D-FRONT")
        # a second result measured on this benchmark, to sort against (the paper's row is in its own table)
        bench = benchmark_identity(lb_benchmark)
        store.record_finished(team_id=_team.id, method="Measured", content_hash="m", size_bytes=1, filename=None,
                              stored_path=None, split="test", protocol="nerfseg-v1",
                              report={"protocol": "nerfseg-v1", "summary": {"miou": 0.43, "pq_things": 0.324},
                                      "benchmark": bench.to_json()})
    # the standard evaluator (nerfseg.evaluation.api) in the server's worker thread: a true end-to-end run
    server = LiveServer(db, lb_benchmark, tmp_path / "server.log", worker="thread", extra=("--poll", "0.1"),
                        evaluator=None)
    try:
        server.wait_ready()
        browser.get(server.url + "/submit")
        browser.find_element(By.ID, "token").send_keys(token)
        browser.find_element(By.ID, "method").send_keys("BrowserNet")
        browser.find_element(By.ID, "file").send_keys(str(demo["beta"]))
        browser.find_element(By.ID, "submit-button").click()
        # the status page reloads itself: an element can go stale between find and read, so retry on that
        WebDriverWait(browser, 30, poll_frequency=0.2, ignored_exceptions=(StaleElementReferenceException, NoSuchElementException)).until(
            lambda d: "/submissions/" in d.current_url
            and d.find_element(By.ID, "status").text in ("evaluated", "rejected"))
        assert browser.find_element(By.ID, "status").text == "evaluated", browser.page_source[-2000:]

        browser.get(server.url + "/")
        row = browser.find_element(By.CSS_SELECTOR, 'table#leaderboard tr[data-method="BrowserNet"]')
        cells = [c.text for c in row.find_elements(By.TAG_NAME, "td")]
        # method, team, submitted (date), links, then the 7 metrics: the demo archive holds the GT
        assert cells[0] == "BrowserNet" and cells[1] == "browser-team" and cells[4:] == ["100.0"] * 7
        assert row.find_element(By.CSS_SELECTOR, "td:nth-child(6) strong").text == "100.0"  # the best PQ is bold

        def order() -> list[str]:
            return [r.get_attribute("data-method")
                    for r in browser.find_elements(By.CSS_SELECTOR, "table#leaderboard tbody tr")]

        assert order() == ["BrowserNet", "Measured"]  # sorted by PQ
        assert bench.short in browser.find_element(By.CSS_SELECTOR, "table#leaderboard caption").text
        reported = browser.find_elements(By.CSS_SELECTOR, "table#leaderboard-reported tbody tr")
        assert [r.get_attribute("data-method") for r in reported] == ["Instance-NeRF"]  # never ranked
        miou = browser.find_elements(By.CSS_SELECTOR, "table#leaderboard thead th")[4]
        assert miou.text == "mIoU"
        miou.click()  # numbers sort descending first: mIoU 100.0 (BrowserNet) vs 43.0
        assert order() == ["BrowserNet", "Measured"]
        miou.click()
        deadline = time.monotonic() + 5
        while order() != ["Measured", "BrowserNet"]:
            assert time.monotonic() < deadline, "clicking the header did not sort the table"
            time.sleep(0.05)
        assert miou.get_attribute("aria-sort") == "ascending"

        browser.find_element(By.LINK_TEXT, "BrowserNet").click()
        WebDriverWait(browser, 10).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".plot svg"))
        assert "tiny_000" in browser.find_element(By.ID, "per-scene").text
    finally:
        server.stop()
