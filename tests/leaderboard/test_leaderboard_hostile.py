"""The leaderboard against hostile uploads and requests (issue 13, cases 4, 9, 10, 11 and the server items).

Upload limits are tested on the ASGI middleware itself (exact: we count how many body messages it read);
pages through FastAPI's TestClient; the request-head timeout on a real uvicorn on 127.0.0.1 (bounded waits).
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

pytest.importorskip("fastapi", reason="the server extra (fastapi) is not installed")
pytest.importorskip("httpx", reason="the server extra (httpx) is not installed")

from click.testing import CliRunner  # noqa: E402

from nerfseg.evaluation import archive  # noqa: E402
from nerfseg.evaluation.submission import SubmissionError, require_valid  # noqa: E402
from nerfseg.leaderboard.evaluate import safe_reasons, validated_meta  # noqa: E402
from nerfseg.leaderboard.server import UploadGuard  # noqa: E402
from nerfseg.leaderboard.store import ResultsStore  # noqa: E402
from nerfseg.cli import cli  # noqa: E402
from tests import hostile  # noqa: E402
from tests.leaderboard.helpers import FAKE_EVALUATOR, free_port, make_variant, scores  # noqa: E402
from tests.leaderboard.test_leaderboard_server import Env  # noqa: E402

BOUNDARY = b"b0undary"


@pytest.fixture
def env(tmp_path: Path, lb_benchmark: Path) -> Iterator[Env]:
    e = Env(tmp_path, lb_benchmark, max_upload_bytes=2_000_000)
    yield e
    e.client.close()
    e.store.close()


# ---------------------------------------------------------------------------------------------
# case 4: the meta on the board is the meta validation read


def test_the_board_shows_the_meta_that_was_validated(env: Env, lb_gt: Path, tmp_path: Path) -> None:
    folder = make_variant(lb_gt, tmp_path / "gtmasks", "Oracle", scores(0.9, 0.9), uses_gt_masks=True, archive=None)
    fake = {"method": "Oracle", "uses_gt_masks": False, "spec_version": "1", "description": "an honest method"}
    path = hostile.zip_with_hidden_meta(tmp_path / "hidden.zip", folder, fake)
    sub = env.upload(path, method="Oracle").json()["submission"]
    assert env.drain() == 1
    assert env.client.get(sub["api_url"], headers=env.auth()).json()["status"] == "evaluated"
    row = env.client.get("/api/leaderboard").json()["rows"][0]
    detail = env.client.get(f"/api/methods/{sub['method_id']}").json()
    assert detail["uses_gt_masks"] is True and detail["description"] == "test method Oracle"
    assert "honest" not in json.dumps(row) + json.dumps(detail)
    assert env.store.get_submission(sub["id"]).meta["uses_gt_masks"] is True


def test_nerfseg_submit_records_the_validated_meta(tmp_path: Path, lb_benchmark: Path, lb_gt: Path) -> None:
    folder = make_variant(lb_gt, tmp_path / "gtmasks", "Oracle", scores(0.9, 0.9), uses_gt_masks=True, archive=None)
    path = hostile.zip_with_hidden_meta(tmp_path / "hidden.zip", folder, {"method": "x", "uses_gt_masks": False})
    db = tmp_path / "lb.db"
    res = CliRunner().invoke(cli, ["submit", str(path), "--method", "Oracle", "--data", str(lb_benchmark),
                                   "--db", str(db), "--evaluator", FAKE_EVALUATOR], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    with ResultsStore(db) as store:
        assert store.list_submissions()[0].meta["uses_gt_masks"] is True


def test_a_rejection_keeps_the_meta_validation_read(lb_gt: Path, lb_benchmark: Path, tmp_path: Path) -> None:
    folder = make_variant(lb_gt, tmp_path / "broken", "Broken", broken=True, uses_gt_masks=True, archive=None)
    with pytest.raises(SubmissionError) as err:
        require_valid(folder, lb_benchmark)
    assert validated_meta(exc=err.value)["uses_gt_masks"] is True
    assert validated_meta({"summary": {}, "meta": {"method": "m"}}) == {"method": "m"}
    assert validated_meta({"summary": {}}) is None and validated_meta(exc=RuntimeError("x")) is None


# ---------------------------------------------------------------------------------------------
# case 9: the upload guard (ASGI level, exact)


def _part(name: str, value: bytes, filename: str | None = None) -> bytes:
    disp = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
    return b"--" + BOUNDARY + f"\r\nContent-Disposition: {disp}\r\n\r\n".encode() + value + b"\r\n"


def _scope(path: str, client: str = "10.0.0.1", headers: dict[str, str] | None = None,
           ctype: str = f"multipart/form-data; boundary={BOUNDARY.decode()}") -> dict[str, Any]:
    hdrs = [(b"content-type", ctype.encode())] + [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    return {"type": "http", "method": "POST", "path": path, "headers": hdrs, "client": (client, 1234)}


class _Call:
    """Runs the guard once with a scripted body; records how many body messages it pulled."""

    def __init__(self, chunks: list[bytes], stall_after: int | None = None):
        self.chunks, self.stall_after = chunks, stall_after
        self.reads = 0
        self.sent: list[dict[str, Any]] = []

    async def receive(self) -> dict[str, Any]:
        if self.stall_after is not None and self.reads >= self.stall_after:
            await asyncio.sleep(3600)
        i = self.reads
        self.reads += 1
        if i >= len(self.chunks):
            return {"type": "http.disconnect"}
        return {"type": "http.request", "body": self.chunks[i], "more_body": i < len(self.chunks) - 1}

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    @property
    def status(self) -> int:
        return next(m["status"] for m in self.sent if m["type"] == "http.response.start")

    @property
    def body(self) -> str:
        return b"".join(m.get("body", b"") for m in self.sent if m["type"] == "http.response.body").decode()


async def _echo_app(scope: Any, receive: Any, send: Any) -> None:
    """Reads the whole body and answers 200 with its length."""
    body = b""
    while True:
        msg = await receive()
        body += msg.get("body", b"")
        if not msg.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": str(len(body)).encode()})


def _guard(app: Any = _echo_app, **kw: Any) -> UploadGuard:
    opts: dict[str, Any] = dict(max_bytes=10_000_000, authenticate=lambda token: token == "good")
    opts.update(kw)
    return UploadGuard(app, **opts)


def test_unauthenticated_uploads_are_refused_before_the_body_is_read() -> None:
    guard = _guard()
    big = [bytes(1 << 20)] * 5
    call = _Call(big)
    asyncio.run(guard(_scope("/api/submissions"), call.receive, call.send))
    assert call.status == 401 and call.reads == 0 and "missing team token" in call.body
    call = _Call(big)
    asyncio.run(guard(_scope("/api/submissions", headers={"Authorization": "Bearer bad"}), call.receive, call.send))
    assert call.status == 401 and call.reads == 0 and "invalid team token" in call.body
    # the form: the token field is read from the first body message, the file never is
    call = _Call([_part("token", b"bad") + _part("method", b"M")] + big)
    asyncio.run(guard(_scope("/submit"), call.receive, call.send))
    assert call.status == 401 and call.reads == 1 and "invalid team token" in call.body
    call = _Call([_part("file", b"x" * 1000, "a.zip")] + big)  # the file before the token
    asyncio.run(guard(_scope("/submit"), call.receive, call.send))
    assert call.status == 401 and call.reads == 1 and "must come before the file" in call.body
    call = _Call(big)
    asyncio.run(guard(_scope("/submit", ctype="application/x-www-form-urlencoded"), call.receive, call.send))
    assert call.status == 415 and call.reads == 0


def test_an_authenticated_form_upload_reaches_the_app_whole() -> None:
    body = _part("token", b"good") + _part("file", b"y" * 300_000, "a.zip") + b"--" + BOUNDARY + b"--\r\n"
    chunks = [body[i:i + 65536] for i in range(0, len(body), 65536)]
    call = _Call(chunks)
    asyncio.run(_guard()(_scope("/submit"), call.receive, call.send))
    assert call.status == 200 and call.body == str(len(body))  # the peeked start is replayed to the app


def test_concurrent_uploads_are_limited_per_client_and_in_total() -> None:
    release = asyncio.Event

    async def scenario() -> list[int]:
        gate = release()

        async def slow_app(scope: Any, receive: Any, send: Any) -> None:
            await gate.wait()
            await _echo_app(scope, receive, send)

        guard = _guard(slow_app, max_total=3, max_per_client=2)
        auth = {"Authorization": "Bearer good"}
        calls = [(_Call([b"x"]), client) for client in ("A", "A", "A", "B", "C")]
        tasks = []
        for call, client in calls:
            tasks.append(asyncio.create_task(guard(_scope("/api/submissions", client, auth), call.receive, call.send)))
            await asyncio.sleep(0.01)
        assert guard.in_flight == 3
        gate.set()
        await asyncio.gather(*tasks)
        assert guard.in_flight == 0 and guard.active == {}
        return [c.status for c, _ in calls]

    assert asyncio.run(scenario()) == [200, 200, 429, 200, 503]


def test_a_stalled_upload_times_out() -> None:
    call = _Call([b"--" + BOUNDARY + b"\r\n", b"more"], stall_after=1)
    t0 = time.monotonic()
    asyncio.run(_guard(idle_timeout=0.2)(_scope("/api/submissions", headers={"Authorization": "Bearer good"}),
                                         call.receive, call.send))
    assert call.status == 408 and time.monotonic() - t0 < 5
    trickle = _Call([b"x"] * 1000)

    async def slow_receive() -> dict[str, Any]:  # steady but slow: each message in time, the whole too late
        await asyncio.sleep(0.01)
        return await trickle.receive()

    asyncio.run(_guard(deadline=0.1)(_scope("/api/submissions", headers={"Authorization": "Bearer good"}),
                                     slow_receive, trickle.send))
    assert trickle.status == 408 and trickle.reads < 100


def test_the_form_with_a_wrong_token_through_the_app(env: Env, demo: dict[str, Path]) -> None:
    with open(demo["alpha"], "rb") as f:
        res = env.client.post("/submit", data={"token": "nope", "method": "A"}, files={"file": ("a.zip", f.read())})
    assert res.status_code == 401 and "invalid team token" in res.text
    assert not env.store.submissions_dir.exists() or not any(env.store.submissions_dir.rglob("*.zip"))


def _serve(settings_env: Env) -> tuple[Any, threading.Thread, int]:
    import uvicorn

    from nerfseg.leaderboard.server import uvicorn_config

    port = free_port()
    server = uvicorn.Server(uvicorn_config(settings_env.app, settings_env.settings, "127.0.0.1", port))
    server.config.log_level = "warning"
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    return server, thread, port


def test_slow_request_heads_are_cut_off(tmp_path: Path, lb_benchmark: Path) -> None:
    e = Env(tmp_path, lb_benchmark, header_timeout_s=0.5)
    server, thread, port = _serve(e)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"GET /api/health HTTP/1.1\r\nHost: x\r\n")  # the head never ends
            t0 = time.monotonic()
            assert s.recv(100) == b""  # closed by the server
            assert time.monotonic() - t0 < 4
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:  # a complete request is served
            s.sendall(b"GET /api/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert s.recv(100).startswith(b"HTTP/1.1 200")
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        e.client.close()
        e.store.close()


# ---------------------------------------------------------------------------------------------
# cases 10 and 11: reasons capped, names not UTF-8, temp folders


def test_many_problems_make_a_small_status_page(env: Env, lb_gt: Path, tmp_path: Path) -> None:
    folder = make_variant(lb_gt, tmp_path / "many", "Many", archive=None)
    hostile.panoptic_json_with_problems(folder / "tiny_000" / "panoptic.json", 100_000)
    path = hostile.tar_gz_of(folder, tmp_path / "many.tar.gz")
    sub = env.upload(path, method="Many").json()["submission"]
    assert env.drain() == 1
    status = env.client.get(sub["api_url"], headers=env.auth()).json()
    assert status["status"] == "rejected" and 100 <= len(status["reasons"]) <= 102
    page = env.client.get(sub["status_url"])
    assert page.status_code == 200 and len(page.text) < 100_000 and "more problem(s) not listed" in page.text
    assert len(safe_reasons(["x" * 10_000] * 500)) == 102 and len(safe_reasons(["x" * 10_000])[0]) <= 1000


def test_names_not_utf8_never_break_pages(env: Env, lb_gt: Path, tmp_path: Path) -> None:
    path = hostile.tar_with_bad_utf8_name(tmp_path / "bad.tar.gz", lb_gt)
    sub = env.upload(path, method="BadName").json()["submission"]
    assert env.drain() == 1
    status = env.client.get(sub["api_url"], headers=env.auth())
    assert status.status_code == 200 and status.json()["status"] == "rejected"
    assert "not valid UTF-8" in " ".join(status.json()["reasons"])
    assert env.client.get(sub["status_url"]).status_code == 200
    assert env.client.get("/api/submissions", headers=env.auth()).status_code == 200
    # a record written before names were checked (a lone surrogate in its reasons) is shown, escaped
    old = env.upload(hostile.tar_gz_of(lb_gt, tmp_path / "old.tar.gz"), method="Old").json()["submission"]
    claimed = env.store.claim_next("w1", 60)
    assert claimed is not None and claimed.id == old["id"]
    assert env.store.reject(old["id"], "w1", ["member 'caf\udce9.bin' was odd"])
    for url, headers in ((old["status_url"], {}), (old["api_url"], env.auth()), ("/api/submissions", env.auth())):
        res = env.client.get(url, headers=headers)
        assert res.status_code == 200, url
        assert "caf\\udce9" in res.text or "caf\\\\udce9" in res.text


def test_method_names_must_be_printable(env: Env, demo: dict[str, Path]) -> None:
    res = env.upload(demo["alpha"], method="two\nlines")
    assert res.status_code == 400 and "printable" in res.json()["detail"]


def test_the_worker_sweeps_stale_extraction_folders(env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tmp = tmp_path / "systmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp / f"{archive.TEMP_PREFIX}{dead.pid}-killed"
    (stale / "tiny_000").mkdir(parents=True)
    live = tmp / f"{archive.TEMP_PREFIX}1-busy"
    live.mkdir()
    env.drain()  # an empty queue: the sweep at start-up still runs
    assert not stale.exists() and live.exists()


# ---------------------------------------------------------------------------------------------
# method pages: huge ids, methods never evaluated


def test_method_ids_out_of_range_are_not_found(env: Env) -> None:
    for mid in ("99999999999999999999999", str(1 << 63), "0", "-5"):
        assert env.client.get(f"/methods/{mid}").status_code == 404, mid
        assert env.client.get(f"/api/methods/{mid}").status_code == 404, mid


def test_methods_never_evaluated_are_private(env: Env, demo: dict[str, Path]) -> None:
    broken = env.upload(demo["broken"], method="Secret plan").json()["submission"]
    queued_only = env.upload(demo["beta"], method="Not yet").json()["submission"]
    for sub in (broken, queued_only):
        assert env.client.get(f"/methods/{sub['method_id']}").status_code == 404
        assert env.client.get(f"/api/methods/{sub['method_id']}").status_code == 404
    other = env.upload(demo["alpha"], method="Other board", protocol="instance-nerf").json()["submission"]
    env.drain()
    assert "Secret plan" not in env.client.get(f"/methods/{broken['method_id']}").text
    assert env.client.get(f"/methods/{queued_only['method_id']}").status_code == 200  # evaluated now
    # evaluated on another board: the page exists for every board, saying there is nothing on this one
    page = env.client.get(f"/methods/{other['method_id']}")
    assert page.status_code == 200 and "No evaluated submission" in page.text
