"""Submissions coming in: queued uploads (the server) and already evaluated or rejected ones (``nerfseg submit``),
each recorded once (a duplicate returns the earlier record) and within the team's daily limit."""

from __future__ import annotations

import json
import secrets
from typing import Any, Callable

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from nerfseg.leaderboard.store.base import StoreBase
from nerfseg.leaderboard.store.records import DAY_SECONDS, DailyLimitExceeded, StoreError, Submission
from nerfseg.leaderboard.store.report_rows import (
    check_report,
    clip,
    insert_results,
    opt_str,
    report_benchmark,
    update_method_meta,
)
from nerfseg.leaderboard.store.schema import methods_t, submissions_t, teams_t
from nerfseg.spec import DEFAULT_PROTOCOL


class SubmissionIntake(StoreBase):
    """The part of :class:`~nerfseg.leaderboard.store.ResultsStore` that records new submissions."""

    def _ensure_method(self, conn: Connection, team_id: int, name: str, now: float) -> int:
        mid = conn.execute(
            sa.select(methods_t.c.id).where(methods_t.c.team_id == team_id, methods_t.c.name == name)
        ).scalar()
        if mid is not None:
            return int(mid)
        return int(
            conn.execute(
                sa.insert(methods_t)
                .values(team_id=team_id, name=name, uses_gt_masks=False, semantic_only=False, created_at=now,
                        updated_at=now)
                .returning(methods_t.c.id)
            ).scalar_one()
        )

    def _find_duplicate(self, conn: Connection, team_id: int, split: str, protocol: str, content_hash: str,
                        benchmark: str | None) -> int | None:
        """The team's live (queued, running or evaluated) submission of this content for this benchmark, split
        and protocol. Rejected ones do not count: a submission rejected, or failed for an internal reason, can
        be sent again; the same files against another benchmark are another result."""
        bench = submissions_t.c.benchmark.is_(None) if benchmark is None else submissions_t.c.benchmark == benchmark
        sid = conn.execute(
            sa.select(submissions_t.c.id).where(
                submissions_t.c.team_id == team_id,
                bench,
                submissions_t.c.split == split,
                submissions_t.c.protocol == protocol,
                submissions_t.c.content_hash == content_hash,
                submissions_t.c.status != "rejected",
            ).order_by(submissions_t.c.id)
        ).scalar()
        return None if sid is None else int(sid)

    def find_duplicate(self, team_id: int, split: str, protocol: str, content_hash: str,
                       benchmark: str | None = None) -> Submission | None:
        with self._tx(write=False) as conn:
            sid = self._find_duplicate(conn, team_id, split, protocol, content_hash, benchmark)
            return None if sid is None else self._get(conn, sid)

    def _check_daily_limit(self, conn: Connection, team_row: Any, default_limit: int | None, now: float) -> None:
        limit = team_row["daily_limit"] if team_row["daily_limit"] is not None else default_limit
        if limit is None:
            return
        times = conn.execute(
            sa.select(submissions_t.c.created_at)
            .where(submissions_t.c.team_id == team_row["id"], submissions_t.c.created_at > now - DAY_SECONDS)
            .order_by(submissions_t.c.created_at)
        ).scalars().all()
        if len(times) >= limit:
            # the window frees a slot when the (len - limit)-th oldest submission leaves it
            oldest_blocking = times[len(times) - limit] if limit > 0 else now
            raise DailyLimitExceeded(int(limit), oldest_blocking + DAY_SECONDS - now)

    def _insert_submission(self, conn: Connection, values: dict[str, Any]) -> int:
        values = dict(values)
        values.setdefault("key", secrets.token_urlsafe(16)[:22])
        return int(conn.execute(sa.insert(submissions_t).values(**values).returning(submissions_t.c.id)).scalar_one())

    def _record_once(self, team_id: int, split: str, protocol: str, content_hash: str, benchmark: str | None,
                     insert: Callable[[Connection, Any, float], int]) -> tuple[Submission, bool]:
        """One transaction: lock the team, return a live duplicate as ``(earlier, False)``, else
        ``insert(conn, team_row, now)`` the new submission and return ``(it, True)``. A transaction that lost a
        unique-constraint race (PostgreSQL) runs again and then finds the winner's row; SQLite never gets there:
        BEGIN IMMEDIATE already serialises writers."""
        for attempt in range(3):
            try:
                now = self.clock()
                with self._tx() as conn:
                    team, existing = self._lock_team(conn, team_id, split, protocol, content_hash, benchmark)
                    if existing is not None:
                        return existing, False
                    return self._get(conn, insert(conn, team, now)), True
            except IntegrityError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _lock_team(self, conn: Connection, team_id: int, split: str, protocol: str, content_hash: str,
                   benchmark: str | None) -> tuple[Any, Submission | None]:
        """Lock the team's row (PostgreSQL: concurrent uploads of one team queue here; SQLite's BEGIN IMMEDIATE
        already serialises) and find a live duplicate: (team row, the earlier submission or None)."""
        team = conn.execute(sa.select(teams_t).where(teams_t.c.id == team_id).with_for_update()).mappings().first()
        if team is None:
            raise StoreError(f"unknown team id {team_id}")
        existing = self._find_duplicate(conn, team_id, split, protocol, content_hash, benchmark)
        return team, None if existing is None else self._get(conn, existing)

    @staticmethod
    def _method_name(method: str) -> str:
        method = method.strip()
        if not method:
            raise StoreError("a submission needs a method name")
        return method

    def create_submission(
        self,
        *,
        team_id: int,
        method: str,
        content_hash: str,
        size_bytes: int,
        filename: str | None,
        stored_path: str | None,
        split: str = "test",
        protocol: str = DEFAULT_PROTOCOL,
        daily_limit: int | None = None,
        benchmark: str | None = None,
        benchmark_name: str | None = None,
    ) -> tuple[Submission, bool]:
        """Queue a submission for ``benchmark`` (the GT fingerprint of :mod:`nerfseg.identity`). Returns
        ``(submission, created)``; ``created`` is False for a duplicate (same content, benchmark, split and
        protocol, not rejected), which is returned as recorded before. Raises ``DailyLimitExceeded`` when the
        team's 24-hour window is full (duplicates do not count: they cost no evaluation)."""
        method = self._method_name(method)

        def insert(conn: Connection, team: Any, now: float) -> int:
            self._check_daily_limit(conn, team, daily_limit, now)
            method_id = self._ensure_method(conn, team_id, method, now)
            return self._insert_submission(
                conn,
                dict(team_id=team_id, method_id=method_id, content_hash=content_hash, size_bytes=int(size_bytes),
                     filename=filename, stored_path=stored_path, split=split, protocol=protocol,
                     status="queued", attempts=0, created_at=now, updated_at=now, benchmark=benchmark,
                     benchmark_name=clip(benchmark_name, 300)),
            )

        return self._record_once(team_id, split, protocol, content_hash, benchmark, insert)

    def record_finished(
        self,
        *,
        team_id: int,
        method: str,
        content_hash: str,
        size_bytes: int,
        filename: str | None,
        stored_path: str | None,
        split: str,
        protocol: str,
        report: dict[str, Any] | None = None,
        reasons: list[str] | None = None,
        meta: dict[str, Any] | None = None,
        started_at: float | None = None,
        benchmark: str | None = None,
        benchmark_name: str | None = None,
    ) -> tuple[Submission, bool]:
        """Record an already evaluated (``report``) or rejected (``reasons``) submission in ONE transaction:
        what ``nerfseg submit`` does, so a crash never leaves a half-recorded submission. The benchmark is the
        one the report names (``report["benchmark"]``); a ``benchmark`` given as well must agree with it."""
        if (report is None) == (reasons is None):
            raise ValueError("give exactly one of report (evaluated) or reasons (rejected)")
        if report is not None:
            benchmark, benchmark_name = report_benchmark(report, benchmark, benchmark_name)
        method = self._method_name(method)

        def insert(conn: Connection, _team: Any, now: float) -> int:
            method_id = self._ensure_method(conn, team_id, method, now)
            values = dict(
                team_id=team_id, method_id=method_id, content_hash=content_hash, size_bytes=int(size_bytes),
                filename=filename, stored_path=stored_path, split=split, protocol=protocol, attempts=1,
                created_at=started_at or now, started_at=started_at or now, finished_at=now, updated_at=now,
                meta_json=None if meta is None else json.dumps(meta), benchmark=benchmark,
                benchmark_name=clip(benchmark_name, 300),
            )
            if report is None:
                values.update(status="rejected", reasons_json=json.dumps([str(r) for r in reasons or []]))
                return self._insert_submission(conn, values)
            check_report(report, protocol)
            values.update(status="evaluated", protocol_version=opt_str(report.get("protocol_version")),
                          spec_version=opt_str(report.get("spec_version")))
            sid = self._insert_submission(conn, values)
            insert_results(conn, sid, report, now)
            update_method_meta(conn, method_id, meta, now)
            return sid

        return self._record_once(team_id, split, protocol, content_hash, benchmark, insert)
