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
  are routed by fixed name (``routes.docs``), so the API page works on an offline server.
- Layout: this module builds the app (middleware, lifespan, routers); the routes live in
  ``nerfseg.leaderboard.routes`` (one router per concern), the upload guard in ``upload_guard``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, AsyncIterator

from fastapi import FastAPI

from nerfseg.leaderboard.evaluate import Evaluator, load_evaluator
from nerfseg.leaderboard.routes.api import api_router
from nerfseg.leaderboard.routes.context import LeaderboardContext, SafeJSONResponse
from nerfseg.leaderboard.routes.docs import docs_router, swagger_asset_dir
from nerfseg.leaderboard.routes.html_parts import method_plot_svg
from nerfseg.leaderboard.routes.pages import pages_router
from nerfseg.leaderboard.routes.submit import submit_router
from nerfseg.leaderboard.server_settings import FALLBACK_PROTOCOLS, ServerSettings, known_protocols
from nerfseg.leaderboard.store import ResultsStore, StoreError
from nerfseg.leaderboard.upload_guard import MULTIPART_SLACK, UPLOAD_PATHS, BodySizeLimit, UploadGuard
from nerfseg.leaderboard.worker import Worker

logger = logging.getLogger(__name__)

# names callers and tests import from here
__all__ = ["FALLBACK_PROTOCOLS", "MULTIPART_SLACK", "UPLOAD_PATHS", "BodySizeLimit", "SafeJSONResponse",
           "ServerSettings", "UploadGuard", "create_app", "header_timeout_protocol", "known_protocols",
           "method_plot_svg", "serve", "swagger_asset_dir", "uvicorn_config"]


def _worker_lifespan(ctx: LeaderboardContext, evaluate: Evaluator | None) -> Any:
    """The app's lifespan: with ``settings.worker == "thread"`` a worker thread runs for the app's lifetime."""
    settings, state = ctx.settings, ctx.worker_state

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.worker == "thread":
            fn = evaluate or load_evaluator(settings.evaluator)
            worker = Worker(ctx.store, settings.data_root, fn, lease_seconds=settings.lease_seconds,
                            poll_seconds=settings.poll_seconds, eval_workers=settings.eval_workers)
            thread, stop = worker.start_thread()
            state.update(worker=worker, thread=thread, stop=stop)
            logger.info("worker thread %s started", worker.worker_id)
        try:
            yield
        finally:
            if "stop" in state:
                state["stop"].set()
                state["thread"].join(timeout=30)

    return lifespan


def create_app(store: ResultsStore, settings: ServerSettings, evaluate: Evaluator | None = None) -> FastAPI:
    """The leaderboard app. With ``settings.worker == "thread"`` a worker thread runs for the app's lifetime."""
    if store.submissions_dir is None:
        raise StoreError("the server needs a submissions folder (give --submissions-dir with a database URL)")
    from nerfseg.identity import benchmark_identity

    ctx = LeaderboardContext(store=store, settings=settings, protocols=known_protocols(),
                             bench=benchmark_identity(settings.data_root),  # the one benchmark shown and evaluated
                             uploads_dir=store.submissions_dir)
    app = FastAPI(title=settings.title, lifespan=_worker_lifespan(ctx, evaluate),
                  default_response_class=SafeJSONResponse,
                  description="Submit predictions with a team token; results appear when the worker evaluated them.",
                  docs_url=None, redoc_url=None)  # /docs is served from local assets (routes.docs), never a CDN
    app.add_middleware(UploadGuard, max_bytes=settings.max_upload_bytes,
                       authenticate=lambda token: store.team_by_token(token) is not None,
                       max_total=settings.max_concurrent_uploads, max_per_client=settings.max_uploads_per_client,
                       idle_timeout=settings.upload_idle_timeout_s, deadline=settings.upload_deadline_s)
    app.state.leaderboard = ctx
    app.state.store = store
    app.state.settings = settings
    app.state.worker_state = ctx.worker_state
    app.state.swagger_dir = swagger_asset_dir()
    app.state.swagger_cache = {}
    for router in (docs_router, api_router, pages_router, submit_router):  # the order of the original routes
        app.include_router(router)
    return app


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
                logger.info("closing a connection that sent no complete request head in %.0f s", seconds)
                self.transport.close()

    return HeaderTimeoutH11Protocol


def uvicorn_config(app: Any, settings: ServerSettings, host: str, port: int) -> Any:
    """The uvicorn configuration: request-head timeout, short keep-alive, bounded connections and head size."""
    import uvicorn

    try:
        http: Any = header_timeout_protocol(settings.header_timeout_s)
    except ImportError:  # another uvicorn layout: run without the head timeout rather than not at all
        logger.warning("uvicorn's h11 protocol not found: running without a request-head timeout")
        http = "auto"
    return uvicorn.Config(app, host=host, port=port, log_level="info", http=http, timeout_keep_alive=5,
                          limit_concurrency=max(256, 8 * settings.max_concurrent_uploads),
                          h11_max_incomplete_event_size=16 * 1024)


def serve(store: ResultsStore, settings: ServerSettings, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run the app with uvicorn (blocking)."""
    import uvicorn

    uvicorn.Server(uvicorn_config(create_app(store, settings), settings, host, port)).run()

