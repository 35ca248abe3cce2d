"""The upload guard: ASGI middleware that checks everything an upload may cost on the raw ASGI messages, before
FastAPI's multipart parser spools anything (docs/leaderboard-security.md)."""

from __future__ import annotations

import asyncio
import html
import json
from typing import Any, Callable

from fastapi.concurrency import run_in_threadpool

UPLOAD_PATHS = ("/api/submissions", "/submit")
MULTIPART_SLACK = 64 * 1024  # form fields and multipart boundaries around the file


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
