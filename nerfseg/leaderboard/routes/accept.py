"""Accepting an upload (the JSON API and the HTML form share it): check the fields, store the file atomically
and queue it. Requests never evaluate: a worker does, so a slow evaluation cannot time out a request."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import HTTPException

from nerfseg.leaderboard.files import ARCHIVE_SUFFIXES, UploadTooLarge, archive_suffix, store_upload
from nerfseg.leaderboard.routes.context import LeaderboardContext
from nerfseg.leaderboard.routes.html_parts import encodable
from nerfseg.leaderboard.store import DailyLimitExceeded, ResultsStore, Submission, Team
from nerfseg.spec import DEFAULT_PROTOCOL, SPLITS
from nerfseg.text import has_control, printable


def _checked_fields(ctx: LeaderboardContext, upload: Any, method: Any, split: Any,
                    protocol: Any) -> tuple[str, str, str, str]:
    """(method, split, protocol, archive suffix) of an upload's form, or HTTPException 400 saying what to fix."""
    if upload is None or not hasattr(upload, "file"):
        raise HTTPException(400, "no file: send the submission archive in the form field 'file'")
    method = (str(method or "")).strip()
    if not method or len(method) > 200:
        raise HTTPException(400, "give the method name (1-200 characters) in the form field 'method'")
    if has_control(method) or encodable(method) != method:
        raise HTTPException(400, "the method name must be printable UTF-8 text (no newlines or control characters)")
    split = str(split or "test")
    if split not in SPLITS or split == "train":
        raise HTTPException(400, f"split must be 'test' or 'val', not {split!r}")
    protocol = str(protocol or DEFAULT_PROTOCOL)
    if protocol not in ctx.protocols:
        raise HTTPException(400, f"unknown protocol {protocol!r}; one of {', '.join(ctx.protocols)}")
    suffix = archive_suffix(upload.filename)
    if suffix is None:
        raise HTTPException(400, f"upload a submission archive ({', '.join(ARCHIVE_SUFFIXES)}), "
                                 f"not {upload.filename!r}")
    return method, split, protocol, suffix


def accept_upload(ctx: LeaderboardContext, team: Team, upload: Any, method: Any, split: Any,
                  protocol: Any) -> tuple[Submission, bool]:
    """Store the file and queue it (sync: runs in the thread pool). Raises HTTPException for the user."""
    method, split, protocol, suffix = _checked_fields(ctx, upload, method, split, protocol)
    settings, uploads_dir = ctx.settings, ctx.uploads_dir
    try:
        path, digest, size = store_upload(upload.file, uploads_dir / f"team-{team.id}", suffix,
                                          settings.max_upload_bytes)
    except UploadTooLarge as exc:
        raise HTTPException(413, f"upload too large: the limit is {exc.limit} bytes") from exc
    try:
        sub, created = ctx.store.create_submission(
            team_id=team.id, method=method, content_hash=digest, size_bytes=size,
            filename=printable(Path(upload.filename).name, 255), stored_path=path.relative_to(uploads_dir).as_posix(),
            split=split, protocol=protocol, daily_limit=settings.daily_limit,
            benchmark=ctx.bench.fingerprint, benchmark_name=ctx.bench.name,
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


def submission_json(store: ResultsStore, sub: Submission) -> dict[str, Any]:
    """A submission as the team API shows it: public fields, its status URLs and, once evaluated, its summary."""
    d = sub.to_dict()
    d["status_url"] = f"/submissions/{sub.key}"
    d["api_url"] = f"/api/submissions/{sub.key}"
    if sub.status == "evaluated":
        report = store.report(sub.id) or {}
        d["summary"] = report.get("summary")
    return d
