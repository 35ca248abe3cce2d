"""The leaderboard web service (FastAPI): public table, per-method pages, an upload form and a JSON API.

Design choices, and why:
- Requests never evaluate. An upload is checked (team token, size, daily limit), written atomically under the
  submissions folder next to the database and queued; a worker (a thread of this app, or a separate
  ``nerfseg leaderboard worker`` process) evaluates it. A slow evaluation cannot time out a request, and a
  crash cannot lose an accepted upload.
- Teams authenticate with a bearer token (the upload form takes the same token in a field). Only the token's
  sha256 is stored.
- The ground truth is never served: the app has no static mount at all, and no route reads the data folder.
- Uploads pass the ``UploadGuard`` before the multipart parser spools anything: the team token is checked
  before the body is read, concurrent uploads are limited per client and in total, the body is limited in size
  and time while it is received, and the file is limited again while it is copied. uvicorn runs with a
  request-head timeout (docs/leaderboard-security.md).
- Pages are plain server-side HTML with one small vanilla script (table sorting); plots are inline SVG drawn by
  matplotlib on the server. The index names the benchmark (name and GT fingerprint) and each row's team,
  upload date and paper/code links; tables scroll inside the page on a phone.
- ``/docs`` loads nothing from the network: its Swagger UI files come from the fastapi-offline package and
  are routed by fixed name (``add_offline_docs``), so the API page works on an offline server.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import io
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator, Callable

from fastapi import FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from nerfseg.leaderboard.evaluate import Evaluator, load_evaluator, safe_reasons
from nerfseg.leaderboard.files import ARCHIVE_SUFFIXES, UploadTooLarge, archive_suffix, store_upload
from nerfseg.leaderboard.store import DailyLimitExceeded, MethodDetail, ResultsStore, StoreError, Submission, Team
from nerfseg.leaderboard.tables import (
    SORT_SCRIPT,
    TABLE_CSS,
    HtmlColumn,
    build_per_class_table,
    build_table,
    format_value,
    meta_links,
    render_html_table,
    safe_url,
    table_to_dict,
)
from nerfseg.leaderboard.worker import Worker
from nerfseg.spec import CLASS_NAMES, DEFAULT_PROTOCOL, SPLITS
from nerfseg.text import has_control, printable

log = logging.getLogger("nerfseg.leaderboard.server")

FALLBACK_PROTOCOLS = ("nerfseg-v1", "instance-nerf", "panoptic-lifting")


def known_protocols() -> tuple[str, ...]:
    """The evaluator's protocols (nerfseg.evaluation.protocols), so an upload cannot name one that does not exist."""
    try:
        from nerfseg.evaluation.protocols import list_protocols
    except ImportError:
        return FALLBACK_PROTOCOLS
    return tuple(sorted(list_protocols(), key=lambda p: (p != DEFAULT_PROTOCOL, p)))  # the default first
UPLOAD_PATHS = ("/api/submissions", "/submit")
MULTIPART_SLACK = 64 * 1024  # form fields and multipart boundaries around the file


@dataclass
class ServerSettings:
    """What ``nerfseg leaderboard serve`` configures."""

    data_root: Path
    max_upload_bytes: int = 512 * 1024 * 1024
    daily_limit: int | None = 5  # per team and rolling 24 hours; a team's own limit overrides it
    worker: str = "thread"  # "thread": evaluate in this process; "none": a separate worker process does it
    evaluator: str | None = None  # import path of the evaluator; default nerfseg.evaluation.api:evaluate_submission
    lease_seconds: float = 60.0
    poll_seconds: float = 1.0
    eval_workers: int = 1
    title: str = "nerfseg leaderboard"
    max_concurrent_uploads: int = 8  # uploads being received at once, all clients together
    max_uploads_per_client: int = 2  # ... and from one client address
    upload_idle_timeout_s: float = 30.0  # an upload that sends nothing for this long is dropped (408)
    upload_deadline_s: float = 900.0  # and one that takes longer than this in all
    header_timeout_s: float = 10.0  # a connection must send a request's headers within this (uvicorn)


# ---------------------------------------------------------------------------------------------
# The upload guard: everything an upload may cost is checked on the raw ASGI messages, before any parser runs


class _BodyTooLarge(Exception):
    pass


class _BodyTimeout(Exception):
    pass


_MISSING_TOKEN = "missing team token"
_INVALID_TOKEN = "invalid team token"
_TOKEN_PEEK_BYTES = 64 * 1024  # the form's token field must arrive within the body's first 64 KiB


def _header(scope: Any, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value
    return None


def _form_token(buffer: bytes, boundary: bytes) -> tuple[str | None, bool]:
    """(token, decided) from the start of a multipart body: the ``token`` field's value once its part is
    complete; ``(None, True)`` when a file part comes first or the body ends without a token."""
    delimiter = b"--" + boundary
    parts = buffer.split(delimiter)
    # parts[0] is the preamble; a part is complete when another delimiter follows it
    for i, part in enumerate(parts[1:], start=1):
        complete = i < len(parts) - 1
        head, sep, body = part.partition(b"\r\n\r\n")
        if not sep:
            return None, False  # headers not all here yet
        disposition = next((line for line in head.split(b"\r\n") if line.lower().startswith(b"content-disposition:")), b"")
        if b"filename=" in disposition:
            return None, True  # the file before the token: refuse rather than spool it
        if b'name="token"' in disposition:
            if not complete:
                return None, False
            try:
                return body[:-2].decode("utf-8").strip() if body.endswith(b"\r\n") else body.decode("utf-8").strip(), True
            except UnicodeDecodeError:
                return None, True
    return None, False


class UploadGuard:
    """ASGI middleware in front of the upload routes (``POST /api/submissions`` and ``POST /submit``).

    Why at this level: FastAPI's form parsing spools the whole body to disk before a handler runs, so every
    limit must hold before that. In order:

    - the body must be ``multipart/form-data`` (an urlencoded body would be parsed in memory);
    - at most ``max_per_client`` uploads at a time from one client address and ``max_total`` in all
      (429 / 503 with Retry-After), so a few slow clients cannot hold every worker thread and disk;
    - the team token is checked BEFORE the body is read: the bearer header for the API, and for the HTML
      form the ``token`` field, which must come before the file (browsers send fields in form order);
    - the body is refused past ``max_bytes`` (from Content-Length, or counted while it arrives), when no
      data arrives for ``idle_timeout`` seconds, or when it takes longer than ``deadline`` seconds in all.
    """

    def __init__(self, app: Any, max_bytes: int, paths: tuple[str, ...] = UPLOAD_PATHS, *,
                 authenticate: Callable[[str], bool] | None = None, max_total: int = 8, max_per_client: int = 2,
                 idle_timeout: float = 30.0, deadline: float = 900.0):
        self.app, self.max_bytes, self.paths = app, max_bytes, paths
        self.authenticate = authenticate
        self.max_total, self.max_per_client = max_total, max_per_client
        self.idle_timeout, self.deadline = idle_timeout, deadline
        self.active: dict[str, int] = {}

    @property
    def in_flight(self) -> int:
        return sum(self.active.values())

    async def _refuse(self, send: Any, path: str, status: int, message: str,
                      headers: list[tuple[bytes, bytes]] | None = None) -> None:
        if path.startswith("/api/"):
            body, ctype = json.dumps({"detail": message}).encode(), b"application/json"
        else:  # the HTML form
            body = (f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>Submit</title></head><body>'
                    f'<p class="error" id="error">{html.escape(message)}</p>'
                    '<p><a href="/submit">Back to the form</a></p></body></html>').encode()
            ctype = b"text/html; charset=utf-8"
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", ctype), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close"), *(headers or [])]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST" or scope.get("path") not in self.paths:
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        limit = self.max_bytes + MULTIPART_SLACK
        length = _header(scope, b"content-length")
        if length is not None:
            try:
                if int(length) > limit:
                    await self._refuse(send, path, 413, f"upload too large: the limit is {self.max_bytes} bytes")
                    return
            except ValueError:
                pass
        ctype = (_header(scope, b"content-type") or b"").decode("latin-1")
        boundary = ""
        for item in ctype.split(";")[1:]:
            key, _, value = item.strip().partition("=")
            if key.lower() == "boundary":
                boundary = value.strip().strip('"')
        if not ctype.lower().startswith("multipart/form-data") or not boundary or len(boundary) > 200:
            await self._refuse(send, path, 415, "send the upload as multipart/form-data (a form with a 'file' field)")
            return
        client = (scope.get("client") or ("?", 0))[0]
        if self.in_flight >= self.max_total:
            await self._refuse(send, path, 503, "the server is receiving too many uploads; try again in a minute",
                               [(b"retry-after", b"60")])
            return
        if self.active.get(client, 0) >= self.max_per_client:
            await self._refuse(send, path, 429, f"at most {self.max_per_client} uploads at a time from one client; "
                                                "wait for the others to finish", [(b"retry-after", b"30")])
            return
        self.active[client] = self.active.get(client, 0) + 1
        try:
            await self._guarded(scope, receive, send, path, limit, boundary.encode("latin-1"))
        finally:
            self.active[client] -= 1
            if not self.active[client]:
                del self.active[client]

    async def _guarded(self, scope: Any, receive: Any, send: Any, path: str, limit: int, boundary: bytes) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.deadline
        received = 0
        started = False

        async def timed_receive() -> Any:
            nonlocal received
            timeout = min(self.idle_timeout, deadline - loop.time())
            if timeout <= 0:
                raise _BodyTimeout()
            try:
                message = await asyncio.wait_for(receive(), timeout)
            except asyncio.TimeoutError:
                raise _BodyTimeout() from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _BodyTooLarge()
            return message

        async def tracking_send(message: Any) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            app_receive = timed_receive
            if self.authenticate is not None:
                if path.startswith("/api/"):
                    scheme, _, token = (_header(scope, b"authorization") or b"").decode("latin-1").partition(" ")
                    token = token.strip()
                    if scheme.lower() != "bearer" or not token:
                        await self._refuse(send, path, 401, f"{_MISSING_TOKEN}: send 'Authorization: Bearer <token>'",
                                           [(b"www-authenticate", b"Bearer")])
                        return
                else:
                    token, app_receive = await self._peek_form_token(timed_receive, boundary)
                    if not token:
                        await self._refuse(send, path, 401, f"{_MISSING_TOKEN}: the form's token field must come "
                                                            "before the file")
                        return
                if not await run_in_threadpool(self.authenticate, token):
                    await self._refuse(send, path, 401, _INVALID_TOKEN, [(b"www-authenticate", b"Bearer")]
                                       if path.startswith("/api/") else None)
                    return
            await self.app(scope, app_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await self._refuse(send, path, 413, f"upload too large: the limit is {self.max_bytes} bytes")
        except _BodyTimeout:
            if not started:
                await self._refuse(send, path, 408, "the upload was too slow (no data for "
                                                    f"{self.idle_timeout:g} s, or over {self.deadline:g} s in all)")

    @staticmethod
    async def _peek_form_token(receive: Any, boundary: bytes) -> tuple[str | None, Any]:
        """Read the start of a form body up to its token field; returns (token, a receive that replays it)."""
        buffer = b""
        more = True
        token: str | None = None
        while more and len(buffer) < _TOKEN_PEEK_BYTES:
            message = await receive()
            if message["type"] != "http.request":
                return None, receive
            buffer += message.get("body", b"")
            more = bool(message.get("more_body", False))
            token, decided = _form_token(buffer, boundary)
            if decided:
                break
        replayed = False

        async def replay() -> Any:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": buffer, "more_body": more}
            return await receive()

        return token, replay


BodySizeLimit = UploadGuard  # the name this middleware had when it only limited the size


# ---------------------------------------------------------------------------------------------
# HTML helpers

PAGE_CSS = TABLE_CSS + """
body { font-family: system-ui, sans-serif; max-width: 84em; margin: 1.5em auto; padding: 0 1em; color: #222; }
nav a { margin-right: 1em; }
.dataset { background: #f6f8fa; border-left: 4px solid #4C72B0; padding: .5em .8em; }
code.fingerprint { word-break: break-all; }
td.links a { margin-right: .5em; }
.plot svg { max-width: 100%; height: auto; }
@media (max-width: 640px) {
  body { margin: .5em auto; padding: 0 .6em; }
  h1 { font-size: 1.4em; } h2 { font-size: 1.15em; }
}
.status { font-weight: bold; }
.status.rejected { color: #a00; } .status.evaluated { color: #070; }
.error { color: #a00; font-weight: bold; }
form label { display: block; margin: .5em 0; }
code { background: #f4f4f4; padding: 0 .2em; }
"""


def _encodable(text: str) -> str:
    """``text`` with lone surrogates (undecodable bytes of an old record) escaped, so it encodes as UTF-8."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _esc(value: Any) -> str:
    return html.escape(_encodable("" if value is None else str(value)))


class SafeJSONResponse(JSONResponse):
    """JSON with non-ASCII escaped: a lone surrogate in an old record becomes ``\\udcxx`` instead of making
    every response that shows it fail to encode (a 500 for the team's status routes)."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")


_MAX_DB_ID = (1 << 63) - 1  # ids past this cannot be bound as SQL integers (a 500 before this check)


def _when(t: float | None) -> str:
    return "-" if t is None else time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t))


def _page(title: str, body: str, refresh: int | None = None, status_code: int = 200) -> HTMLResponse:
    meta = f'<meta http-equiv="refresh" content="{refresh}">' if refresh else ""
    doc = (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">{meta}<title>{_esc(title)}</title>'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{PAGE_CSS}</style></head>\n'
        f'<body><nav><a href="/">Leaderboard</a><a href="/submit">Submit</a><a href="/docs">API</a></nav>\n'
        f"<h1>{_esc(title)}</h1>\n{body}\n<script>{SORT_SCRIPT}</script></body></html>\n"
    )
    return HTMLResponse(doc, status_code=status_code)


def _safe_url(url: str | None) -> str | None:
    """Only http(s) links from a submitter's meta.json become links (no javascript: URLs)."""
    return safe_url(url)


def _day(t: float | None) -> str:
    """A table cell's date: the day only (the method page has the time)."""
    return "-" if t is None else time.strftime("%Y-%m-%d", time.gmtime(t))


def _links_html(links: dict[str, str]) -> str:
    """``paper`` / ``code`` / ``project`` anchors; the URLs were checked by :func:`safe_url`."""
    return " ".join(f'<a href="{_esc(url)}" rel="nofollow noopener" class="link-{_esc(label)}">{_esc(label)}</a>'
                    for label, url in links.items())


def _scroll(table_html: str) -> str:
    """A table that scrolls sideways on a narrow screen instead of widening the page."""
    return f'<div class="table-scroll">{table_html}</div>'


#: the ranked table's extra columns on the web page: who submitted it, when, and where to read about it
BOARD_COLUMNS: tuple[HtmlColumn, ...] = (
    HtmlColumn("Team", lambda row: (_esc(row.entry.team), row.entry.team or ""), "team"),
    HtmlColumn("Submitted", lambda row: (_day(row.entry.submitted_at),
                                         "" if row.entry.submitted_at is None else f"{row.entry.submitted_at:.0f}"),
               "date"),
    HtmlColumn("Links", lambda row: (_links_html(row.entry.links), " ".join(row.entry.links)), "links"),
)


def _dataset_html(name: str, fingerprint: str, stored: bool) -> str:
    """The benchmark every number on the page was measured on: its name and full GT fingerprint."""
    note = "" if stored else " (computed from the files: run <code>nerfseg benchmark-id --write</code> to store it)"
    return (f'<p class="dataset" id="dataset">Dataset: <strong id="dataset-name">{_esc(name)}</strong><br>'
            f'GT fingerprint: <code class="fingerprint" id="dataset-fingerprint" title="sha256 of the val and test '
            f'ground truth (nerfseg benchmark-id)">{_esc(fingerprint)}</code>{note}</p>')


def method_plot_svg(detail: MethodDetail) -> str:
    """Per-class IoU/PQ bars and per-scene PQ bars as inline SVG (matplotlib's object API: thread-safe, no pyplot)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9.0, 3.4), dpi=100)
    ax1, ax2 = fig.subplots(1, 2, gridspec_kw={"width_ratios": [2.2, 1.0]})
    names = [n for n in CLASS_NAMES if n in detail.per_class] or list(CLASS_NAMES)

    def vals(src: dict[str, dict[str, float | None]], keys: list[str], metric: str) -> list[float]:
        out = []
        for k in keys:
            v = src.get(k, {}).get(metric)
            out.append(0.0 if v is None else 100.0 * float(v))
        return out

    xs = list(range(len(names)))
    ax1.bar([x - 0.2 for x in xs], vals(detail.per_class, names, "iou"), width=0.4, label="IoU", color="#4C72B0")
    if not detail.semantic_only:
        ax1.bar([x + 0.2 for x in xs], vals(detail.per_class, names, "pq"), width=0.4, label="PQ", color="#DD8452")
    ax1.set_xticks(xs, names, rotation=45, ha="right", fontsize=8)
    ax1.set_ylim(0, 100)
    ax1.set_ylabel("x100")
    ax1.set_title("per class", fontsize=10)
    ax1.legend(fontsize=8)
    scenes = sorted(detail.per_scene)
    metric = "miou" if detail.semantic_only else "pq_things"
    ax2.bar(range(len(scenes)), vals(detail.per_scene, scenes, metric), color="#55A868")
    ax2.set_xticks(range(len(scenes)), scenes, rotation=45, ha="right", fontsize=8)
    ax2.set_ylim(0, 100)
    ax2.set_title(f"per scene ({'mIoU' if detail.semantic_only else 'PQ things'})", fontsize=10)
    fig.tight_layout()
    buf = io.StringIO()
    fig.savefig(buf, format="svg")
    svg = buf.getvalue()
    start = svg.find("<svg")
    return svg[start:] if start >= 0 else svg


# ---------------------------------------------------------------------------------------------
# The app


def create_app(store: ResultsStore, settings: ServerSettings, evaluate: Evaluator | None = None) -> FastAPI:
    """The leaderboard app. With ``settings.worker == "thread"`` a worker thread runs for the app's lifetime."""
    if store.submissions_dir is None:
        raise StoreError("the server needs a submissions folder (give --submissions-dir with a database URL)")
    uploads_dir = store.submissions_dir
    protocols = known_protocols()
    state: dict[str, Any] = {}
    from nerfseg.identity import benchmark_identity

    bench = benchmark_identity(settings.data_root)  # the one benchmark this server shows and evaluates on

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.worker == "thread":
            fn = evaluate or load_evaluator(settings.evaluator)
            worker = Worker(store, settings.data_root, fn, lease_seconds=settings.lease_seconds,
                            poll_seconds=settings.poll_seconds, eval_workers=settings.eval_workers)
            thread, stop = worker.start_thread()
            state.update(worker=worker, thread=thread, stop=stop)
            log.info("worker thread %s started", worker.worker_id)
        try:
            yield
        finally:
            if "stop" in state:
                state["stop"].set()
                state["thread"].join(timeout=30)

    app = FastAPI(title=settings.title, lifespan=lifespan, default_response_class=SafeJSONResponse,
                  description="Submit predictions with a team token; results appear when the worker evaluated them.",
                  docs_url=None, redoc_url=None)  # /docs is served below from local assets, never a CDN
    add_offline_docs(app, settings.title)
    app.add_middleware(UploadGuard, max_bytes=settings.max_upload_bytes,
                       authenticate=lambda token: store.team_by_token(token) is not None,
                       max_total=settings.max_concurrent_uploads, max_per_client=settings.max_uploads_per_client,
                       idle_timeout=settings.upload_idle_timeout_s, deadline=settings.upload_deadline_s)
    app.state.store = store
    app.state.settings = settings
    app.state.worker_state = state

    # -- authentication and uploads -----------------------------------------------------------

    def team_from_header(request: Request) -> Team:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise HTTPException(401, "missing team token: send 'Authorization: Bearer <token>'",
                                headers={"WWW-Authenticate": "Bearer"})
        team = store.team_by_token(token.strip())
        if team is None:
            raise HTTPException(401, "invalid team token", headers={"WWW-Authenticate": "Bearer"})
        return team

    def accept_upload(team: Team, upload: Any, method: Any, split: Any, protocol: Any) -> tuple[Submission, bool]:
        """Store the file and queue it (sync: runs in the thread pool). Raises HTTPException for the user."""
        if upload is None or not hasattr(upload, "file"):
            raise HTTPException(400, "no file: send the submission archive in the form field 'file'")
        method = (str(method or "")).strip()
        if not method or len(method) > 200:
            raise HTTPException(400, "give the method name (1-200 characters) in the form field 'method'")
        if has_control(method) or _encodable(method) != method:
            raise HTTPException(400, "the method name must be printable UTF-8 text (no newlines or control characters)")
        split = str(split or "test")
        if split not in SPLITS or split == "train":
            raise HTTPException(400, f"split must be 'test' or 'val', not {split!r}")
        protocol = str(protocol or DEFAULT_PROTOCOL)
        if protocol not in protocols:
            raise HTTPException(400, f"unknown protocol {protocol!r}; one of {', '.join(protocols)}")
        suffix = archive_suffix(upload.filename)
        if suffix is None:
            raise HTTPException(400, f"upload a submission archive ({', '.join(ARCHIVE_SUFFIXES)}), "
                                     f"not {upload.filename!r}")
        try:
            path, digest, size = store_upload(upload.file, uploads_dir / f"team-{team.id}", suffix,
                                              settings.max_upload_bytes)
        except UploadTooLarge as exc:
            raise HTTPException(413, f"upload too large: the limit is {exc.limit} bytes") from exc
        try:
            sub, created = store.create_submission(
                team_id=team.id, method=method, content_hash=digest, size_bytes=size,
                filename=printable(Path(upload.filename).name, 255), stored_path=path.relative_to(uploads_dir).as_posix(),
                split=split, protocol=protocol, daily_limit=settings.daily_limit,
                benchmark=bench.fingerprint, benchmark_name=bench.name,
            )
        except DailyLimitExceeded as exc:
            path.unlink(missing_ok=True)
            raise HTTPException(429, str(exc), headers={"Retry-After": str(int(exc.retry_after_s) + 1)}) from exc
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        if not created:
            path.unlink(missing_ok=True)  # the first upload's file is the one on record
        return sub, created

    def submission_json(sub: Submission) -> dict[str, Any]:
        d = sub.to_dict()
        d["status_url"] = f"/submissions/{sub.key}"
        d["api_url"] = f"/api/submissions/{sub.key}"
        if sub.status == "evaluated":
            report = store.report(sub.id) or {}
            d["summary"] = report.get("summary")
        return d

    @app.post("/api/submissions", tags=["teams"])
    async def api_upload(request: Request) -> JSONResponse:
        """Upload a submission archive (multipart: file, method, split, protocol) with a bearer team token."""
        team = await run_in_threadpool(team_from_header, request)
        form = await request.form(max_files=1, max_fields=10)
        try:
            sub, created = await run_in_threadpool(accept_upload, team, form.get("file"), form.get("method"),
                                                   form.get("split"), form.get("protocol"))
        finally:
            await form.close()
        body = {"duplicate": not created, "submission": submission_json(sub)}
        return SafeJSONResponse(body, status_code=202 if created else 200)

    @app.get("/api/submissions", tags=["teams"])
    def api_list(request: Request) -> dict[str, Any]:
        """The calling team's submissions, oldest first."""
        team = team_from_header(request)
        return {"team": team.name, "submissions": [submission_json(s) for s in store.list_submissions(team.id)]}

    @app.get("/api/submissions/{key}", tags=["teams"])
    def api_status(key: str, request: Request) -> dict[str, Any]:
        """One of the calling team's submissions: status, reasons when rejected, summary when evaluated."""
        team = team_from_header(request)
        sub = store.get_submission(key=key)
        if sub is None or sub.team_id != team.id:
            raise HTTPException(404, "no such submission for this team")
        return submission_json(sub)

    # -- public JSON ----------------------------------------------------------------------------

    @app.get("/api/leaderboard", tags=["public"])
    def api_leaderboard(protocol: str = DEFAULT_PROTOCOL, split: str = "test", per_class: bool = False) -> dict[str, Any]:
        """The table for one protocol and split (values x100, one decimal; 'raw' holds the fractions)."""
        entries = store.leaderboard(protocol, split, per_class=per_class, benchmark=bench.fingerprint)
        out = table_to_dict(build_table(entries, protocol, split, bench.label))
        out["dataset"] = {"name": bench.name, "fingerprint": bench.fingerprint}
        if per_class:
            out["per_class"] = [table_to_dict(build_per_class_table(entries, protocol, split, m)) for m in ("iou", "pq")]
        return out

    @app.get("/api/boards", tags=["public"])
    def api_boards() -> dict[str, Any]:
        return {"boards": [{"protocol": p, "split": s} for p, s in store.boards(bench.fingerprint)]}

    def public_method(method_id: int, protocol: str, split: str) -> MethodDetail | None:
        """A method's detail, or None when there is no such PUBLIC method: a method is public once one of its
        submissions was evaluated (on any board); one that was only ever rejected or queued stays private."""
        if not 0 < method_id <= _MAX_DB_ID:
            return None
        detail = store.method_detail(method_id, protocol, split, bench.fingerprint)
        if detail is None or detail.submission is not None:
            return detail
        for other_protocol, other_split in store.boards(bench.fingerprint):
            if (other_protocol, other_split) != (protocol, split):
                other = store.method_detail(method_id, other_protocol, other_split, bench.fingerprint)
                if other is not None and other.submission is not None:
                    return detail
        return None

    @app.get("/api/methods/{method_id}", tags=["public"])
    def api_method(method_id: int, protocol: str = DEFAULT_PROTOCOL, split: str = "test") -> dict[str, Any]:
        detail = public_method(method_id, protocol, split)
        if detail is None:
            raise HTTPException(404, "no such method")
        d = {k: getattr(detail, k) for k in ("method_id", "name", "team", "description", "url", "uses_gt_masks",
                                              "semantic_only", "prior", "protocol", "split", "summary", "per_scene",
                                              "per_class", "history")}
        d["submission_id"] = None if detail.submission is None else detail.submission.id
        return d

    @app.get("/api/health", tags=["public"])
    def api_health() -> dict[str, Any]:
        worker = state.get("worker")
        return {"ok": True, "queue": store.counts_by_status(), "schema_version": store.schema_version(),
                "worker": "thread" if worker else "external", "worker_alive": bool(state.get("thread")
                                                                                   and state["thread"].is_alive())}

    # -- pages ----------------------------------------------------------------------------------

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index(protocol: str = DEFAULT_PROTOCOL, split: str = "test") -> HTMLResponse:
        entries = store.leaderboard(protocol, split, benchmark=bench.fingerprint)
        model = build_table(entries, protocol, split, bench.label)
        table = render_html_table(model, lambda row: None if row.entry.method_id is None else
                                  f"/methods/{row.entry.method_id}?protocol={protocol}&split={split}", BOARD_COLUMNS)
        boards = store.boards(bench.fingerprint)
        if (protocol, split) not in boards:
            boards.insert(0, (protocol, split))
        links = " ".join(
            f'<a href="/?protocol={_esc(p)}&amp;split={_esc(s)}">{"<b>" if (p, s) == (protocol, split) else ""}'
            f'{_esc(p)} / {_esc(s)}{"</b>" if (p, s) == (protocol, split) else ""}</a>' for p, s in boards)
        body = (f"{_dataset_html(bench.name, bench.fingerprint, bench.stored)}\n"
                f"<p>Protocol / split: {links}</p>\n{table}\n"
                '<p>Click a column header to sort. <a href="/submit">Submit a result</a>.</p>')
        return _page(settings.title, body)

    @app.get("/methods/{method_id}", response_class=HTMLResponse, include_in_schema=False)
    def method_page(method_id: int, protocol: str = DEFAULT_PROTOCOL, split: str = "test") -> HTMLResponse:
        detail = public_method(method_id, protocol, split)
        if detail is None:
            return _page("Not found", "<p>No such method.</p>", status_code=404)
        links = meta_links(detail.submission.meta if detail.submission is not None else None)
        if not links and _safe_url(detail.url):
            links = {"project": str(_safe_url(detail.url))}
        info = [_dataset_html(bench.name, bench.fingerprint, bench.stored),
                f"<p>Team: {_esc(detail.team)}. Protocol {_esc(protocol)}, {_esc(split)} split.</p>"]
        if detail.description:
            info.append(f"<p>{_esc(detail.description)}</p>")
        if links:
            info.append('<p class="links">' + " - ".join(
                f'{_esc(label.capitalize())}: <a href="{_esc(url)}" rel="nofollow noopener">{_esc(url)}</a>'
                for label, url in links.items()) + "</p>")
        flags = [f"prior: {_esc(detail.prior)}" if detail.prior else "",
                 "uses ground-truth masks" if detail.uses_gt_masks else "",
                 "semantic only (no instances)" if detail.semantic_only else ""]
        if any(flags):
            info.append("<p>" + "; ".join(f for f in flags if f) + "</p>")
        if detail.submission is None:
            return _page(detail.name, "\n".join(info) + "<p>No evaluated submission for this protocol yet.</p>")
        s = detail.summary
        summary_rows = "".join(f"<tr><td>{_esc(k)}</td><td class='num'>{format_value(v)}</td></tr>"
                               for k, v in sorted(s.items()))
        instance_keys = {"pq_things", "pq_scene", "pq_scene_things", "pq", "sq", "rq"}
        if detail.semantic_only:  # a method without instances shows "-" for every instance metric
            hide = lambda table: {k: {m: (None if m in instance_keys else v) for m, v in row.items()}  # noqa: E731
                                  for k, row in table.items()}
            detail.per_scene, detail.per_class = hide(detail.per_scene), hide(detail.per_class)
        scene_metrics = ["miou", "pq_things", "pq_scene", "pq_scene_things", "binary_acc"]
        scene_rows = "".join(
            f"<tr><td data-value='{_esc(sc)}'>{_esc(sc)}</td>" + "".join(
                f"<td class='num' data-value='{'' if m.get(k) is None else m.get(k)}'>{format_value(m.get(k))}</td>"
                for k in scene_metrics) + f"<td class='num' data-value='{m.get('num_frames') or ''}'>"
                f"{'' if m.get('num_frames') is None else int(m['num_frames'])}</td></tr>"
            for sc, m in sorted(detail.per_scene.items()))
        class_metrics = ["iou", "pq", "sq", "rq"]
        class_rows = "".join(
            f"<tr><td data-value='{_esc(c)}'>{_esc(c)}</td>" + "".join(
                f"<td class='num' data-value='{'' if detail.per_class[c].get(k) is None else detail.per_class[c][k]}'>"
                f"{format_value(detail.per_class[c].get(k))}</td>" for k in class_metrics) + "</tr>"
            for c in CLASS_NAMES if c in detail.per_class)
        head = lambda cols: "".join(f'<th class="num" data-sort="num">{_esc(c)}</th>' for c in cols)  # noqa: E731
        history = "".join(f"<li>#{h['submission_id']} {_when(h.get('finished_at'))}: mIoU {format_value(h.get('miou'))}, "
                          f"PQ {format_value(h.get('pq_things'))}</li>" for h in detail.history)
        summary_table = _scroll(f'<table class="leaderboard" id="summary"><tbody>{summary_rows}</tbody></table>')
        scene_table = _scroll(f'<table class="leaderboard sortable" id="per-scene"><thead><tr><th data-sort="text">'
                              f'scene</th>{head(scene_metrics)}<th class="num" data-sort="num">frames</th></tr></thead>'
                              f'<tbody>{scene_rows}</tbody></table>')
        class_table = _scroll(f'<table class="leaderboard sortable" id="per-class"><thead><tr><th data-sort="text">'
                              f'class</th>{head(class_metrics)}</tr></thead><tbody>{class_rows}</tbody></table>')
        body = "\n".join(info) + f"""
<h2>Summary (x100), submission #{detail.submission.id}</h2>
<p>Submitted {_when(detail.submission.created_at)}, evaluated {_when(detail.submission.finished_at)}.</p>
{summary_table}
<h2>Plots</h2><div class="plot">{method_plot_svg(detail)}</div>
<h2>Per scene</h2>
{scene_table}
<h2>Per class</h2>
{class_table}
<h2>History</h2><ul>{history}</ul>"""
        return _page(detail.name, body)

    def submit_form(message: str = "", status_code: int = 200) -> HTMLResponse:
        options = "".join(f'<option value="{_esc(p)}">{_esc(p)}</option>' for p in protocols)
        err = f'<p class="error" id="error">{_esc(message)}</p>' if message else ""
        body = f"""{err}
<form method="post" action="/submit" enctype="multipart/form-data" id="upload-form">
<label>Team token <input type="password" name="token" id="token" required autocomplete="off"></label>
<label>Method name <input type="text" name="method" id="method" required maxlength="200"></label>
<label>Split <select name="split" id="split"><option value="test">test</option><option value="val">val</option></select></label>
<label>Protocol <select name="protocol" id="protocol">{options}</select></label>
<label>Submission archive ({', '.join(ARCHIVE_SUFFIXES)}, at most {settings.max_upload_bytes // (1024 * 1024)} MiB)
<input type="file" name="file" id="file" required accept=".zip,.gz,.tgz,.tar"></label>
<button type="submit" id="submit-button">Upload</button>
</form>
<p>Teams can also upload with the JSON API: <code>curl -H "Authorization: Bearer TOKEN" -F method=NAME
-F file=@submission.zip {{this server}}/api/submissions</code>.</p>"""
        return _page("Submit", body, status_code=status_code)

    @app.get("/submit", response_class=HTMLResponse, include_in_schema=False)
    def submit_page() -> HTMLResponse:
        return submit_form()

    @app.post("/submit", include_in_schema=False)
    async def submit_post(request: Request) -> Response:
        form = await request.form(max_files=1, max_fields=10)
        try:
            token = str(form.get("token") or "").strip()
            team = await run_in_threadpool(store.team_by_token, token)
            if team is None:
                return submit_form("missing team token" if not token else "invalid team token", 401)
            try:
                sub, _created = await run_in_threadpool(accept_upload, team, form.get("file"), form.get("method"),
                                                        form.get("split"), form.get("protocol"))
            except HTTPException as exc:
                return submit_form(str(exc.detail), exc.status_code)
        finally:
            await form.close()
        return RedirectResponse(f"/submissions/{sub.key}", status_code=303)

    @app.get("/submissions/{key}", response_class=HTMLResponse, include_in_schema=False)
    def status_page(key: str) -> HTMLResponse:
        """Reachable by its unguessable key (the upload redirects here); shows the validator's reasons."""
        sub = store.get_submission(key=key)
        if sub is None:
            return _page("Not found", "<p>No such submission.</p>", status_code=404)
        rows = [("Method", _esc(sub.method)), ("Team", _esc(sub.team)), ("File", _esc(sub.filename)),
                ("Protocol / split", f"{_esc(sub.protocol)} / {_esc(sub.split)}"),
                ("Uploaded", _when(sub.created_at)), ("Finished", _when(sub.finished_at)),
                ("Attempts", str(sub.attempts))]
        table = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
        body = f'<p>Status: <span class="status {sub.status}" id="status">{sub.status}</span></p>'
        body += f'<table class="leaderboard">{table}</table>'
        if sub.status == "rejected":  # capped when stored; capped again here for records older than that
            reasons = safe_reasons(list(sub.reasons))
            body += "<h2>Why it was rejected</h2><ul id=\"reasons\">" + "".join(
                f"<li>{_esc(r)}</li>" for r in reasons) + "</ul>"
        if sub.status == "evaluated":
            summary = (store.report(sub.id) or {}).get("summary", {})
            shown = ", ".join(f"{k} {format_value(summary.get(k))}" for k in ("miou", "pq_things", "pq_scene_things"))
            body += (f"<p id=\"summary\">{_esc(shown)} (x100).</p><p><a href=\"/methods/{sub.method_id}?protocol="
                     f"{_esc(sub.protocol)}&amp;split={_esc(sub.split)}\">Method page</a> - <a href=\"/?protocol="
                     f"{_esc(sub.protocol)}&amp;split={_esc(sub.split)}\">leaderboard</a></p>")
        refresh = 2 if sub.status in ("queued", "running") else None
        if refresh:
            body += "<p>This page refreshes until the evaluation is done.</p>"
        return _page(f"Submission {sub.key}", body, refresh=refresh)

    return app


#: the Swagger UI files /docs needs, served from the fastapi-offline package (the ``server`` extra), which
#: ships a Swagger UI 5 build: FastAPI writes OpenAPI 3.1, which Swagger UI 4 cannot draw
SWAGGER_ASSETS: dict[str, str] = {"swagger-ui-bundle.js": "text/javascript; charset=utf-8",
                                  "swagger-ui.css": "text/css; charset=utf-8", "favicon.png": "image/png"}
SWAGGER_ASSET_PREFIX = "/docs/assets/"


def swagger_asset_dir() -> Path | None:
    """The folder of the Swagger UI files that fastapi-offline installs, or None without it."""
    import importlib.util

    found = importlib.util.find_spec("fastapi_offline")
    if found is None or not found.submodule_search_locations:
        return None
    folder = Path(next(iter(found.submodule_search_locations))) / "static"
    return folder if all((folder / name).is_file() for name in SWAGGER_ASSETS) else None


def add_offline_docs(app: FastAPI, title: str) -> None:
    """``/docs`` (Swagger UI) with its JavaScript and CSS served by this app.

    Why: FastAPI's default page loads Swagger UI from a CDN, so on a server without internet access (or a
    reader behind a strict proxy) the API page is blank. The assets come from the fastapi-offline package;
    only the three files the page loads are routed, by fixed name (there is still no static mount). Without
    the package, /docs says how to get it and points at /openapi.json instead of loading anything remote.
    """
    from fastapi.openapi.docs import get_swagger_ui_html

    folder = swagger_asset_dir()
    cache: dict[str, bytes] = {}

    def asset_route(name: str, media_type: str) -> None:
        def asset() -> Response:
            if folder is None:
                raise HTTPException(404, "Swagger UI assets are not installed (pip install fastapi-offline)")
            if name not in cache:
                cache[name] = (folder / name).read_bytes()
            return Response(cache[name], media_type=media_type, headers={"Cache-Control": "public, max-age=86400"})

        app.add_api_route(SWAGGER_ASSET_PREFIX + name, asset, methods=["GET"], include_in_schema=False)

    for name, media_type in SWAGGER_ASSETS.items():
        asset_route(name, media_type)

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        if folder is None:
            return _page("API", '<p>The interactive API page needs the <code>fastapi-offline</code> package '
                                '(<code>pip install "nerfseg[server]"</code>). The API schema is at '
                                '<a href="/openapi.json">/openapi.json</a>.</p>')
        return get_swagger_ui_html(openapi_url=app.openapi_url or "/openapi.json", title=f"{title} - API",
                                   swagger_js_url=SWAGGER_ASSET_PREFIX + "swagger-ui-bundle.js",
                                   swagger_css_url=SWAGGER_ASSET_PREFIX + "swagger-ui.css",
                                   swagger_favicon_url=SWAGGER_ASSET_PREFIX + "favicon.png")


def header_timeout_protocol(seconds: float) -> type:
    """uvicorn's h11 protocol, closing a connection that does not send a complete request head in ``seconds``.

    Why: uvicorn times out idle keep-alive connections but not a client that sends its headers one byte at a
    time (slowloris), and each such client holds a connection for as long as it likes. The timer runs from
    the first byte of each request (or the connection's opening) until the head is parsed.
    """
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class HeaderTimeoutH11Protocol(H11Protocol):  # type: ignore[misc]
        _head_timer: asyncio.TimerHandle | None = None

        def _awaiting_head(self) -> bool:
            return self.cycle is None or self.cycle.response_complete

        def _arm(self) -> None:
            if self._head_timer is None:
                self._head_timer = self.loop.call_later(seconds, self._head_timeout)

        def _disarm(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def connection_made(self, transport: Any) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self._awaiting_head():
                self._arm()
            else:
                self._disarm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _head_timeout(self) -> None:
            self._head_timer = None
            if self._awaiting_head() and not self.transport.is_closing():
                log.info("closing a connection that sent no complete request head in %.0f s", seconds)
                self.transport.close()

    return HeaderTimeoutH11Protocol


def uvicorn_config(app: Any, settings: ServerSettings, host: str, port: int) -> Any:
    """The uvicorn configuration: request-head timeout, short keep-alive, bounded connections and head size."""
    import uvicorn

    try:
        http: Any = header_timeout_protocol(settings.header_timeout_s)
    except ImportError:  # another uvicorn layout: run without the head timeout rather than not at all
        log.warning("uvicorn's h11 protocol not found: running without a request-head timeout")
        http = "auto"
    return uvicorn.Config(app, host=host, port=port, log_level="info", http=http, timeout_keep_alive=5,
                          limit_concurrency=max(256, 8 * settings.max_concurrent_uploads),
                          h11_max_incomplete_event_size=16 * 1024)


def serve(store: ResultsStore, settings: ServerSettings, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run the app with uvicorn (blocking)."""
    import uvicorn

    uvicorn.Server(uvicorn_config(create_app(store, settings), settings, host, port)).run()

