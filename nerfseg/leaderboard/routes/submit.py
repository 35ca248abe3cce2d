"""The HTML upload form (``/submit``) and a submission's status page (``/submissions/{key}``).

The form sends the team token in a field, which must come before the file (the ``UploadGuard`` checks it before
the body is spooled); the status page is reachable by the submission's unguessable key only.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from nerfseg.leaderboard.evaluate import safe_reasons
from nerfseg.leaderboard.files import ARCHIVE_SUFFIXES
from nerfseg.leaderboard.routes.accept import accept_upload
from nerfseg.leaderboard.routes.context import Context, LeaderboardContext
from nerfseg.leaderboard.routes.html_parts import esc, html_page, when_utc
from nerfseg.leaderboard.store import Submission
from nerfseg.leaderboard.tables import format_value

submit_router = APIRouter()


def submit_form(ctx: LeaderboardContext, message: str = "", status_code: int = 200) -> HTMLResponse:
    """The upload form, with ``message`` shown as the error of a refused upload."""
    options = "".join(f'<option value="{esc(p)}">{esc(p)}</option>' for p in ctx.protocols)
    err = f'<p class="error" id="error">{esc(message)}</p>' if message else ""
    body = f"""{err}
<form method="post" action="/submit" enctype="multipart/form-data" id="upload-form">
<label>Team token <input type="password" name="token" id="token" required autocomplete="off"></label>
<label>Method name <input type="text" name="method" id="method" required maxlength="200"></label>
<label>Split <select name="split" id="split"><option value="test">test</option><option value="val">val</option></select></label>
<label>Protocol <select name="protocol" id="protocol">{options}</select></label>
<label>Submission archive ({', '.join(ARCHIVE_SUFFIXES)}, at most {ctx.settings.max_upload_bytes // (1024 * 1024)} MiB)
<input type="file" name="file" id="file" required accept=".zip,.gz,.tgz,.tar"></label>
<button type="submit" id="submit-button">Upload</button>
</form>
<p>Teams can also upload with the JSON API: <code>curl -H "Authorization: Bearer TOKEN" -F method=NAME
-F file=@submission.zip {{this server}}/api/submissions</code>.</p>"""
    return html_page("Submit", body, status_code=status_code)


@submit_router.get("/submit", response_class=HTMLResponse, include_in_schema=False)
def submit_page(ctx: Context) -> HTMLResponse:
    return submit_form(ctx)


@submit_router.post("/submit", include_in_schema=False)
async def submit_post(request: Request, ctx: Context) -> Response:
    form = await request.form(max_files=1, max_fields=10)
    try:
        token = str(form.get("token") or "").strip()
        team = await run_in_threadpool(ctx.store.team_by_token, token)
        if team is None:
            return submit_form(ctx, "missing team token" if not token else "invalid team token", 401)
        try:
            sub, _created = await run_in_threadpool(accept_upload, ctx, team, form.get("file"), form.get("method"),
                                                    form.get("split"), form.get("protocol"))
        except HTTPException as exc:
            return submit_form(ctx, str(exc.detail), exc.status_code)
    finally:
        await form.close()
    return RedirectResponse(f"/submissions/{sub.key}", status_code=303)


def _outcome_html(ctx: LeaderboardContext, sub: Submission) -> str:
    """Why a submission was rejected, or its headline numbers and links once evaluated."""
    if sub.status == "rejected":  # capped when stored; capped again here for records older than that
        reasons = safe_reasons(list(sub.reasons))
        return "<h2>Why it was rejected</h2><ul id=\"reasons\">" + "".join(
            f"<li>{esc(r)}</li>" for r in reasons) + "</ul>"
    if sub.status == "evaluated":
        summary = (ctx.store.report(sub.id) or {}).get("summary", {})
        shown = ", ".join(f"{k} {format_value(summary.get(k))}" for k in ("miou", "pq_things", "pq_scene_things"))
        return (f"<p id=\"summary\">{esc(shown)} (x100).</p><p><a href=\"/methods/{sub.method_id}?protocol="
                f"{esc(sub.protocol)}&amp;split={esc(sub.split)}\">Method page</a> - <a href=\"/?protocol="
                f"{esc(sub.protocol)}&amp;split={esc(sub.split)}\">leaderboard</a></p>")
    return ""


@submit_router.get("/submissions/{key}", response_class=HTMLResponse, include_in_schema=False)
def status_page(key: str, ctx: Context) -> HTMLResponse:
    """Reachable by its unguessable key (the upload redirects here); shows the validator's reasons."""
    sub = ctx.store.get_submission(key=key)
    if sub is None:
        return html_page("Not found", "<p>No such submission.</p>", status_code=404)
    rows = [("Method", esc(sub.method)), ("Team", esc(sub.team)), ("File", esc(sub.filename)),
            ("Protocol / split", f"{esc(sub.protocol)} / {esc(sub.split)}"),
            ("Uploaded", when_utc(sub.created_at)), ("Finished", when_utc(sub.finished_at)),
            ("Attempts", str(sub.attempts))]
    table = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    body = f'<p>Status: <span class="status {sub.status}" id="status">{sub.status}</span></p>'
    body += f'<table class="leaderboard">{table}</table>'
    body += _outcome_html(ctx, sub)
    refresh = 2 if sub.status in ("queued", "running") else None
    if refresh:
        body += "<p>This page refreshes until the evaluation is done.</p>"
    return html_page(f"Submission {sub.key}", body, refresh=refresh)
