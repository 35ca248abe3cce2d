"""What every route needs, handed over as FastAPI dependencies: the store, the settings, the benchmark shown, the
known protocols and the worker's state, kept in ``app.state.leaderboard`` by ``create_app``.

Why dependencies rather than closures: the routers are module-level (one per concern) and stay testable on
their own; ``create_app`` builds one :class:`LeaderboardContext` and every route asks for it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.responses import JSONResponse

from nerfseg.identity import BenchmarkIdentity
from nerfseg.leaderboard.server_settings import ServerSettings
from nerfseg.leaderboard.store import MethodDetail, ResultsStore, Team

MAX_DB_ID = (1 << 63) - 1  # ids past this cannot be bound as SQL integers (a 500 before this check)


@dataclass
class LeaderboardContext:
    """One app's collaborators: ``bench`` is the one benchmark this server shows and evaluates on."""

    store: ResultsStore
    settings: ServerSettings
    bench: BenchmarkIdentity
    protocols: tuple[str, ...]
    uploads_dir: Path
    worker_state: dict[str, Any] = field(default_factory=dict)  # worker, thread, stop: set by the app's lifespan


async def leaderboard_context(request: Request) -> LeaderboardContext:
    """The app's :class:`LeaderboardContext` (a dependency; async: it only reads app.state, no thread needed)."""
    return request.app.state.leaderboard


Context = Annotated[LeaderboardContext, Depends(leaderboard_context)]


def team_from_header(request: Request, ctx: Context) -> Team:
    """The team of the request's bearer token (a dependency of the team API); 401 without a valid one."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HTTPException(401, "missing team token: send 'Authorization: Bearer <token>'",
                            headers={"WWW-Authenticate": "Bearer"})
    team = ctx.store.team_by_token(token.strip())
    if team is None:
        raise HTTPException(401, "invalid team token", headers={"WWW-Authenticate": "Bearer"})
    return team


BearerTeam = Annotated[Team, Depends(team_from_header)]


class SafeJSONResponse(JSONResponse):
    """JSON with non-ASCII escaped: a lone surrogate in an old record becomes ``\\udcxx`` instead of making
    every response that shows it fail to encode (a 500 for the team's status routes)."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")


def public_method(ctx: LeaderboardContext, method_id: int, protocol: str, split: str) -> MethodDetail | None:
    """A method's detail, or None when there is no such PUBLIC method: a method is public once one of its
    submissions was evaluated (on any board); one that was only ever rejected or queued stays private."""
    if not 0 < method_id <= MAX_DB_ID:
        return None
    store, fingerprint = ctx.store, ctx.bench.fingerprint
    detail = store.method_detail(method_id, protocol, split, fingerprint)
    if detail is None or detail.submission is not None:
        return detail
    for other_protocol, other_split in store.boards(fingerprint):
        if (other_protocol, other_split) != (protocol, split):
            other = store.method_detail(method_id, other_protocol, other_split, fingerprint)
            if other is not None and other.submission is not None:
                return detail
    return None
