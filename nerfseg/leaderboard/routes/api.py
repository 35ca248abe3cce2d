"""The JSON API: the team routes (bearer token; upload, list, status) and the public ones (tables, boards,
methods, health). Uploads pass the ``UploadGuard`` middleware before any of this runs."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from nerfseg.leaderboard.routes.accept import accept_upload, submission_json
from nerfseg.leaderboard.routes.context import BearerTeam, Context, SafeJSONResponse, public_method
from nerfseg.leaderboard.tables import build_per_class_table, build_table, table_to_dict
from nerfseg.spec import DEFAULT_PROTOCOL

api_router = APIRouter()


@api_router.post("/api/submissions", tags=["teams"])
async def api_upload(request: Request, team: BearerTeam, ctx: Context) -> JSONResponse:
    """Upload a submission archive (multipart: file, method, split, protocol) with a bearer team token."""
    form = await request.form(max_files=1, max_fields=10)
    try:
        sub, created = await run_in_threadpool(accept_upload, ctx, team, form.get("file"), form.get("method"),
                                               form.get("split"), form.get("protocol"))
    finally:
        await form.close()
    body = {"duplicate": not created, "submission": submission_json(ctx.store, sub)}
    return SafeJSONResponse(body, status_code=202 if created else 200)


@api_router.get("/api/submissions", tags=["teams"])
def api_list(team: BearerTeam, ctx: Context) -> dict[str, Any]:
    """The calling team's submissions, oldest first."""
    return {"team": team.name,
            "submissions": [submission_json(ctx.store, s) for s in ctx.store.list_submissions(team.id)]}


@api_router.get("/api/submissions/{key}", tags=["teams"])
def api_status(key: str, team: BearerTeam, ctx: Context) -> dict[str, Any]:
    """One of the calling team's submissions: status, reasons when rejected, summary when evaluated."""
    sub = ctx.store.get_submission(key=key)
    if sub is None or sub.team_id != team.id:
        raise HTTPException(404, "no such submission for this team")
    return submission_json(ctx.store, sub)


@api_router.get("/api/leaderboard", tags=["public"])
def api_leaderboard(ctx: Context, protocol: str = DEFAULT_PROTOCOL, split: str = "test",
                    per_class: bool = False) -> dict[str, Any]:
    """The table for one protocol and split (values x100, one decimal; 'raw' holds the fractions)."""
    bench = ctx.bench
    entries = ctx.store.leaderboard(protocol, split, per_class=per_class, benchmark=bench.fingerprint)
    out = table_to_dict(build_table(entries, protocol, split, bench.label))
    out["dataset"] = {"name": bench.name, "fingerprint": bench.fingerprint}
    if per_class:
        out["per_class"] = [table_to_dict(build_per_class_table(entries, protocol, split, m)) for m in ("iou", "pq")]
    return out


@api_router.get("/api/boards", tags=["public"])
def api_boards(ctx: Context) -> dict[str, Any]:
    return {"boards": [{"protocol": p, "split": s} for p, s in ctx.store.boards(ctx.bench.fingerprint)]}


@api_router.get("/api/methods/{method_id}", tags=["public"])
def api_method(method_id: int, ctx: Context, protocol: str = DEFAULT_PROTOCOL, split: str = "test") -> dict[str, Any]:
    detail = public_method(ctx, method_id, protocol, split)
    if detail is None:
        raise HTTPException(404, "no such method")
    d = {k: getattr(detail, k) for k in ("method_id", "name", "team", "description", "url", "uses_gt_masks",
                                          "semantic_only", "prior", "protocol", "split", "summary", "per_scene",
                                          "per_class", "history")}
    d["submission_id"] = None if detail.submission is None else detail.submission.id
    return d


@api_router.get("/api/health", tags=["public"])
def api_health(ctx: Context) -> dict[str, Any]:
    state, store = ctx.worker_state, ctx.store
    return {"ok": True, "queue": store.counts_by_status(), "schema_version": store.schema_version(),
            "worker": "thread" if state.get("worker") else "external",
            "worker_alive": bool(state.get("thread") and state["thread"].is_alive())}
