"""The web service through FastAPI's TestClient: uploads, auth, limits, duplicates, bad archives, pages."""

from __future__ import annotations

import io
import time
import zipfile
from pathlib import Path
from typing import Iterator

import pytest

pytest.importorskip("fastapi", reason="the server extra (fastapi) is not installed")
pytest.importorskip("httpx", reason="the server extra (httpx) is not installed")

from fastapi.routing import APIRoute  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from starlette.routing import Mount  # noqa: E402

from nerfseg.leaderboard.server import ServerSettings, create_app  # noqa: E402
from nerfseg.leaderboard.store import ResultsStore  # noqa: E402
from nerfseg.leaderboard.worker import Worker  # noqa: E402
from tests.leaderboard.fake_eval import evaluate as fake_evaluate  # noqa: E402


class Env:
    def __init__(self, tmp: Path, data: Path, **settings: object):
        self.store = ResultsStore(tmp / "lb.db")
        opts = dict(data_root=data, worker="none", max_upload_bytes=200_000, daily_limit=20)
        opts.update(settings)
        self.settings = ServerSettings(**opts)  # type: ignore[arg-type]
        self.app = create_app(self.store, self.settings, evaluate=fake_evaluate)
        self.client = TestClient(self.app)
        self.worker = Worker(self.store, data, fake_evaluate, lease_seconds=10, poll_seconds=0.01)
        self.tokens = {name: self.store.add_team(name)[1] for name in ("red", "blue")}

    def auth(self, team: str = "red") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[team]}"}

    def upload(self, path: Path, method: str = "Alpha", team: str = "red", **fields: str):
        data = {"method": method, **fields}
        with open(path, "rb") as f:
            return self.client.post("/api/submissions", headers=self.auth(team), data=data,
                                    files={"file": (path.name, f, "application/octet-stream")})

    def drain(self) -> int:
        return self.worker.run(exit_when_idle=0.0)


@pytest.fixture
def env(tmp_path: Path, lb_benchmark: Path) -> Iterator[Env]:
    e = Env(tmp_path, lb_benchmark)
    yield e
    e.client.close()
    e.store.close()


def test_upload_evaluate_and_show(env: Env, demo: dict[str, Path]) -> None:
    res = env.upload(demo["alpha"])
    assert res.status_code == 202, res.text
    sub = res.json()["submission"]
    assert sub["status"] == "queued" and not res.json()["duplicate"] and "stored_path" not in sub
    assert env.client.get(sub["api_url"], headers=env.auth()).json()["status"] == "queued"
    assert "refresh" in env.client.get(sub["status_url"]).text  # the status page refreshes while queued
    assert env.drain() == 1
    done = env.client.get(sub["api_url"], headers=env.auth()).json()
    assert done["status"] == "evaluated" and done["summary"]["pq_things"] == pytest.approx(0.40)
    page = env.client.get("/").text
    assert "Alpha" in page and "<strong>40.0</strong>" in page and "nerfseg-v1" in page
    board = env.client.get("/api/leaderboard").json()
    assert [r["method"] for r in board["rows"]] == ["Alpha"] and board["rows"][0]["values"]["pq_things"] == 40.0
    method_page = env.client.get(f"/methods/{sub['method_id']}")
    assert method_page.status_code == 200
    assert "<svg" in method_page.text and "tiny_000" in method_page.text and "chair" in method_page.text
    assert env.client.get(f"/api/methods/{sub['method_id']}").json()["per_scene"]["tiny_001"]["num_frames"] == 2
    mine = env.client.get("/api/submissions", headers=env.auth()).json()
    assert [s["id"] for s in mine["submissions"]] == [sub["id"]]
    assert env.client.get("/api/submissions", headers=env.auth("blue")).json()["submissions"] == []


def test_auth_failures(env: Env, demo: dict[str, Path]) -> None:
    with open(demo["alpha"], "rb") as f:
        files = {"file": ("a.zip", f.read())}
    res = env.client.post("/api/submissions", data={"method": "A"}, files=files)
    assert res.status_code == 401 and res.headers["www-authenticate"] == "Bearer"
    res = env.client.post("/api/submissions", data={"method": "A"}, files=files,
                          headers={"Authorization": "Bearer not-a-token"})
    assert res.status_code == 401 and "invalid" in res.json()["detail"]
    res = env.client.post("/api/submissions", data={"method": "A"}, files=files,
                          headers={"Authorization": f"Basic {env.tokens['red']}"})
    assert res.status_code == 401
    assert env.client.get("/api/submissions").status_code == 401
    res = env.client.post("/submit", data={"method": "A", "token": "wrong"}, files=files)
    assert res.status_code == 401 and "invalid team token" in res.text
    assert env.store.list_submissions() == []  # nothing recorded, nothing stored
    assert not any(env.store.submissions_dir.rglob("*.zip")) if env.store.submissions_dir.exists() else True
    sub = env.upload(demo["alpha"]).json()["submission"]
    assert env.client.get(sub["api_url"], headers=env.auth("blue")).status_code == 404  # not blue's


def test_size_limit(tmp_path: Path, lb_benchmark: Path, demo: dict[str, Path]) -> None:
    size = demo["alpha"].stat().st_size
    e = Env(tmp_path / "a", lb_benchmark, max_upload_bytes=size - 1)
    (tmp_path / "a").mkdir(exist_ok=True)
    try:
        res = e.upload(demo["alpha"])  # within the multipart slack: refused while the file is copied
        assert res.status_code == 413 and str(size - 1) in res.json()["detail"]
        small = Env(tmp_path / "b", lb_benchmark, max_upload_bytes=100)
        res = small.upload(demo["alpha"])
        assert res.status_code == 413  # refused from Content-Length, before reading the body
        with open(demo["alpha"], "rb") as f:
            res = small.client.post("/submit", data={"token": small.tokens["red"], "method": "A"},
                                    files={"file": ("a.zip", f.read())})
        assert res.status_code == 413 and "too large" in res.text and res.headers["content-type"].startswith("text/html")

        def chunks() -> Iterator[bytes]:  # a chunked upload without Content-Length
            yield b"--xyz\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.zip\"\r\n\r\n"
            for _ in range(100):
                yield b"0" * 10_000

        res = small.client.post("/api/submissions", content=chunks(), headers={
            **small.auth(), "Content-Type": "multipart/form-data; boundary=xyz"})
        assert res.status_code == 413
        for env_ in (e, small):
            assert env_.store.list_submissions() == []
            assert not [p for p in env_.store.submissions_dir.rglob("*") if p.is_file()]
        small.client.close()
        small.store.close()
    finally:
        e.client.close()
        e.store.close()


def test_daily_limit_and_duplicates(tmp_path: Path, lb_benchmark: Path, demo: dict[str, Path]) -> None:
    e = Env(tmp_path, lb_benchmark, daily_limit=2)
    try:
        first = e.upload(demo["alpha"])
        assert first.status_code == 202
        dup = e.upload(demo["alpha"], method="Other name")
        assert dup.status_code == 200 and dup.json()["duplicate"]
        assert dup.json()["submission"]["id"] == first.json()["submission"]["id"]
        assert e.upload(demo["beta"]).status_code == 202
        over = e.upload(demo["semantic"])
        assert over.status_code == 429 and int(over.headers["retry-after"]) > 0 and "limit" in over.json()["detail"]
        assert e.upload(demo["alpha"]).status_code == 200  # a duplicate is still recognised at the limit
        assert e.upload(demo["semantic"], team="blue").status_code == 202  # limits are per team
        assert len(e.store.list_submissions()) == 3
        stored = [p for p in e.store.submissions_dir.rglob("*") if p.is_file()]
        assert len(stored) == 3  # refused and duplicate uploads leave no files
        assert e.drain() == 3 and e.store.check_consistency() == []
    finally:
        e.client.close()
        e.store.close()


def _zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def test_bad_archives_are_rejected_with_the_validators_messages(env: Env, demo: dict[str, Path]) -> None:
    broken = env.upload(demo["broken"]).json()["submission"]
    res = env.client.post("/api/submissions", headers=env.auth(), data={"method": "Garbage"},
                          files={"file": ("garbage.zip", b"this is not a zip file" * 10)})
    garbage = res.json()["submission"]
    slip = env.client.post("/api/submissions", headers=env.auth(), data={"method": "Slip"},
                           files={"file": ("slip.zip", _zip_bytes({"meta.json": b"{}", "../evil.txt": b"x"}))})
    slip_sub = slip.json()["submission"]
    crash = env.upload(demo["crash"]).json()["submission"]
    assert env.drain() == 4
    status = env.client.get(broken["api_url"], headers=env.auth()).json()
    assert status["status"] == "rejected"
    assert any("scene tiny_000, frame 0000: missing frame" in r for r in status["reasons"])
    page = env.client.get(broken["status_url"]).text
    assert 'id="reasons"' in page and "missing frame" in page and "not a PNG" in page and "refresh" not in page
    garbage_reasons = env.client.get(garbage["api_url"], headers=env.auth()).json()["reasons"]
    assert garbage_reasons and all(isinstance(r, str) and r for r in garbage_reasons)
    slip_reasons = " ".join(env.client.get(slip_sub["api_url"], headers=env.auth()).json()["reasons"])
    assert "evil" in slip_reasons
    crash_status = env.client.get(crash["api_url"], headers=env.auth()).json()
    assert crash_status["status"] == "rejected" and "internal evaluation error" in crash_status["reasons"][0]
    assert env.client.get("/api/leaderboard").json()["rows"] == []
    # wrong file type and missing fields are refused at once, nothing is recorded
    res = env.client.post("/api/submissions", headers=env.auth(), data={"method": "X"},
                          files={"file": ("notes.txt", b"hello")})
    assert res.status_code == 400 and ".zip" in res.json()["detail"]
    with open(demo["alpha"], "rb") as f:
        res = env.client.post("/api/submissions", headers=env.auth(), files={"file": ("a.zip", f.read())})
    assert res.status_code == 400 and "method" in res.json()["detail"]
    res = env.upload(demo["alpha"], protocol="made-up")
    assert res.status_code == 400
    assert len(env.store.list_submissions()) == 4


def test_form_upload_redirects_to_the_status_page(env: Env, demo: dict[str, Path]) -> None:
    assert 'enctype="multipart/form-data"' in env.client.get("/submit").text
    with open(demo["beta"], "rb") as f:
        res = env.client.post("/submit", data={"token": env.tokens["red"], "method": "Beta", "split": "test",
                                               "protocol": "nerfseg-v1"},
                              files={"file": ("beta.zip", f.read())}, follow_redirects=False)
    assert res.status_code == 303 and res.headers["location"].startswith("/submissions/")
    env.drain()
    page = env.client.get(res.headers["location"]).text
    assert 'id="status">evaluated' in page and "/methods/" in page


def _all_routes(routes: list) -> Iterator:
    """Every route, also those of included routers (newer FastAPI keeps an included router as one entry)."""
    for r in routes:
        inner = getattr(r, "original_router", None)
        if inner is not None:
            yield from _all_routes(inner.routes)
        else:
            yield r


def test_ground_truth_is_never_served(env: Env, lb_benchmark: Path) -> None:
    routes = list(_all_routes(env.app.routes))
    assert {"/", "/api/leaderboard", "/submit", "/methods/{method_id}"} <= {getattr(r, "path", "") for r in routes}
    assert not [r for r in routes if isinstance(r, Mount)]  # no static mount of anything
    assert all(isinstance(r, APIRoute) or r.path in ("/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc")
               for r in routes)
    for path in ("/scenes/tiny_000/panoptic/0000.png", "/benchmark.json", "/data/benchmark.json",
                 "/static/../benchmark.json", f"/{lb_benchmark}/benchmark.json"):
        assert env.client.get(path).status_code == 404
    for path in ("/", "/api/leaderboard", "/submit", "/api/health"):
        assert str(lb_benchmark) not in env.client.get(path).text


def test_worker_thread_evaluates_in_the_background(tmp_path: Path, lb_benchmark: Path, demo: dict[str, Path]) -> None:
    e = Env(tmp_path, lb_benchmark, worker="thread", poll_seconds=0.05)
    try:
        with TestClient(e.app) as client:  # runs the lifespan: starts and stops the worker thread
            assert client.get("/api/health").json()["worker_alive"]
            with open(demo["alpha"], "rb") as f:
                res = client.post("/api/submissions", headers=e.auth(), data={"method": "Alpha"},
                                  files={"file": ("alpha.zip", f.read())})
            assert res.status_code == 202  # the request returns before the evaluation
            url = res.json()["submission"]["api_url"]
            deadline = time.monotonic() + 20
            while client.get(url, headers=e.auth()).json()["status"] in ("queued", "running"):
                assert time.monotonic() < deadline, "the worker thread did not evaluate within 20 s"
                time.sleep(0.05)
            assert client.get(url, headers=e.auth()).json()["status"] == "evaluated"
    finally:
        e.store.close()


def test_the_standard_evaluator_end_to_end(tmp_path: Path, lb_benchmark: Path, demo: dict[str, Path]) -> None:
    """Through the API with nerfseg.evaluation.api.evaluate_submission: the GT scores 100, a broken archive is rejected
    with the validator's messages, and the per-scene/per-class numbers reach the method page."""
    pytest.importorskip("nerfseg.evaluation.api", reason="nerfseg/evaluation/api.py not available")
    from nerfseg.leaderboard.evaluate import load_evaluator

    e = Env(tmp_path, lb_benchmark)
    try:
        e.worker = Worker(e.store, lb_benchmark, load_evaluator(None), lease_seconds=10, poll_seconds=0.01)
        good = e.upload(demo["beta"], method="GT as a method").json()["submission"]
        bad = e.upload(demo["broken"], method="Broken").json()["submission"]
        sem = e.upload(demo["semantic"], method="SemOnly").json()["submission"]
        assert e.drain() == 3
        done = e.client.get(good["api_url"], headers=e.auth()).json()
        assert done["status"] == "evaluated"
        assert all(done["summary"][k] == pytest.approx(1.0) for k in ("miou", "pq_things", "pq_scene_things"))
        rejected = e.client.get(bad["api_url"], headers=e.auth()).json()
        assert rejected["status"] == "rejected"
        assert any(r.startswith("scene tiny_000, frame 0000: missing frame") for r in rejected["reasons"])
        detail = e.client.get(f"/api/methods/{done['method_id']}").json()
        assert set(detail["per_scene"]) == {"tiny_000", "tiny_001"} and detail["per_class"]
        rows = e.client.get("/api/leaderboard").json()["rows"]
        assert rows[0]["values"]["pq_things"] == 100.0 and rows[1]["method"] == "SemOnly"
        assert rows[1]["values"]["pq_things"] is None and rows[1]["values"]["miou"] == 100.0
        page = e.client.get(f"/methods/{sem['method_id']}").text  # instance metrics of a semantic method: "-"
        scene_row = page.split("<td data-value='tiny_000'>tiny_000</td>")[1].split("</tr>")[0]
        assert scene_row.count(">-</td>") == 3 and scene_row.count(">100.0</td>") == 2
        assert e.store.check_consistency() == []
    finally:
        e.client.close()
        e.store.close()
