"""The public page's content (through FastAPI's TestClient): which dataset, who, when, which paper and code,
and the API docs page working with no network (Swagger UI served from the fastapi-offline package)."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Iterator

import pytest

pytest.importorskip("fastapi", reason="the server extra (fastapi) is not installed")
pytest.importorskip("httpx", reason="the server extra (httpx) is not installed")

from fastapi.testclient import TestClient  # noqa: E402

from nerfseg.leaderboard.server import ServerSettings, create_app, swagger_asset_dir  # noqa: E402
from nerfseg.leaderboard.store import ResultsStore  # noqa: E402
from nerfseg.leaderboard.tables import meta_links, safe_url  # noqa: E402
from nerfseg.identity import benchmark_identity  # noqa: E402
from tests.leaderboard.fake_eval import evaluate as fake_evaluate  # noqa: E402

PAPER = "https://arxiv.org/abs/2304.14401"
CODE = "https://github.com/example/linked-net"


def record(store: ResultsStore, lb_benchmark: Path, team: str, method: str, pq: float, meta: dict) -> None:
    """An evaluated result on the test benchmark, as `nerfseg submit` records one."""
    t = store.ensure_team(team)
    store.record_finished(team_id=t.id, method=method, content_hash=method, size_bytes=1, filename=None,
                          stored_path=None, split="test", protocol="nerfseg-v1",
                          report={"protocol": "nerfseg-v1", "summary": {"miou": 0.5, "pq_things": pq},
                                  "benchmark": benchmark_identity(lb_benchmark).to_json()},
                          meta={"method": method, "uses_gt_masks": False, "spec_version": "1", **meta})


@pytest.fixture
def client(tmp_path: Path, lb_benchmark: Path) -> Iterator[TestClient]:
    store = ResultsStore(tmp_path / "lb.db")
    record(store, lb_benchmark, "red", "LinkedNet", 0.4, {"paper": PAPER, "code": CODE, "url": PAPER})
    record(store, lb_benchmark, "blue", "Sneaky", 0.3, {"paper": "javascript:alert(1)", "code": "not a url",
                                                         "url": "https://example.org/a b"})
    app = create_app(store, ServerSettings(data_root=lb_benchmark, worker="none"), evaluate=fake_evaluate)
    with TestClient(app) as c:
        yield c
    store.close()


def test_the_page_names_the_dataset_team_date_and_links(client: TestClient, lb_benchmark: Path) -> None:
    bench = benchmark_identity(lb_benchmark)
    page = client.get("/").text
    assert f'id="dataset-name">{bench.name}<' in page
    assert 'id="dataset-fingerprint"' in page and bench.fingerprint in page  # the full fingerprint
    row = re.search(r'<tr data-method="LinkedNet">(.*?)</tr>', page, re.S).group(1)
    assert ">red<" in row and time.strftime("%Y-%m-%d", time.gmtime()) in row
    assert f'href="{PAPER}"' in row and f'href="{CODE}"' in row
    assert row.count(PAPER) == 1  # the project page equal to the paper link is not repeated
    sneaky = re.search(r'<tr data-method="Sneaky">(.*?)</tr>', page, re.S).group(1)
    assert ">blue<" in sneaky and "javascript:" not in page and "<a href" not in sneaky.split('class="links"')[1]
    assert 'class="table-scroll"' in page and 'name="viewport"' in page
    board = client.get("/api/leaderboard").json()
    assert board["dataset"] == {"name": bench.name, "fingerprint": bench.fingerprint}
    linked = next(r for r in board["rows"] if r["method"] == "LinkedNet")
    assert linked["links"] == {"paper": PAPER, "code": CODE} and linked["submitted_at"] <= time.time()


def test_the_method_page_links_paper_and_code(client: TestClient) -> None:
    mid = next(r["method_id"] for r in client.get("/api/leaderboard").json()["rows"] if r["method"] == "LinkedNet")
    page = client.get(f"/methods/{mid}").text
    assert f'href="{PAPER}"' in page and f'href="{CODE}"' in page and "Submitted " in page
    assert 'id="dataset-name"' in page


def test_meta_links_accept_only_http_urls() -> None:
    assert meta_links({"paper": PAPER, "code": CODE, "url": "https://proj.example"}) == {
        "paper": PAPER, "code": CODE, "project": "https://proj.example"}
    for bad in ("javascript:alert(1)", "data:text/html,x", "https://a b", "https://x\ny", "ftp://x", 3, None,
                "https://" + "a" * 3000):
        assert safe_url(bad) is None, bad
    assert meta_links(None) == {}


@pytest.mark.skipif(swagger_asset_dir() is None, reason="fastapi-offline (server extra) is not installed")
def test_api_docs_load_nothing_from_the_network(client: TestClient) -> None:
    docs = client.get("/docs")
    assert docs.status_code == 200 and "swagger-ui" in docs.text
    remote = re.findall(r'(?:src|href)="(https?://[^"]+)"', docs.text)
    assert not remote, f"/docs loads {remote} from the network"
    for src in re.findall(r'(?:src|href)="(/docs/assets/[^"]+)"', docs.text):
        res = client.get(src)
        assert res.status_code == 200 and len(res.content) > 500, src
    js = client.get("/docs/assets/swagger-ui-bundle.js")
    assert js.headers["content-type"].startswith("text/javascript") and b"SwaggerUIBundle" in js.content
    assert client.get("/redoc").status_code == 404  # ReDoc would load from a CDN: not offered
    assert client.get("/docs/assets/../../benchmark.json").status_code == 404
