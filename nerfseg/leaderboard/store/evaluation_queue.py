"""The evaluation queue: workers claim queued submissions under a lease, renew it while they work, and only the
lease holder may complete or reject; a lease that expires puts the submission back (or rejects it after
``max_attempts``), so a dead worker loses nothing and nothing is counted twice."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from nerfseg.leaderboard.store.base import StoreBase
from nerfseg.leaderboard.store.records import DEFAULT_LEASE_SECONDS, DEFAULT_MAX_ATTEMPTS, Submission
from nerfseg.leaderboard.store import report_rows
from nerfseg.leaderboard.store.schema import submissions_t


class EvaluationQueue(StoreBase):
    """The worker-facing part of :class:`~nerfseg.leaderboard.store.ResultsStore`."""

    def _expire_leases(self, conn: Connection, now: float, max_attempts: int) -> None:
        """Running submissions whose worker stopped renewing go back to the queue, or are rejected after
        ``max_attempts`` (a submission that kills every worker must not loop forever)."""
        stale = conn.execute(
            sa.select(submissions_t.c.id, submissions_t.c.attempts, submissions_t.c.lease_until).where(
                submissions_t.c.status == "running", submissions_t.c.lease_until < now
            )
        ).all()
        for sid, attempts, lease in stale:
            cond = sa.and_(submissions_t.c.id == sid, submissions_t.c.status == "running",
                           submissions_t.c.lease_until == lease)
            if attempts >= max_attempts:
                reason = (f"evaluation did not finish after {attempts} attempts (the evaluating worker stopped); "
                          "contact the organisers")
                conn.execute(sa.update(submissions_t).where(cond).values(
                    status="rejected", reasons_json=json.dumps([reason]), worker_id=None, lease_until=None,
                    finished_at=now, updated_at=now))
            else:
                conn.execute(sa.update(submissions_t).where(cond).values(
                    status="queued", worker_id=None, lease_until=None, updated_at=now))

    def requeue_expired(self, max_attempts: int = DEFAULT_MAX_ATTEMPTS) -> None:
        with self._tx() as conn:
            self._expire_leases(conn, self.clock(), max_attempts)

    def claim_next(
        self,
        worker_id: str,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        benchmark: str | None = None,
    ) -> Submission | None:
        """Take the oldest queued submission for ``worker_id`` (status running, lease set), or None.

        ``benchmark``: the GT fingerprint of the worker's ``--data``; it takes only submissions queued for that
        benchmark (or for none), so workers of several benchmarks can share one database."""
        now = self.clock()
        mine = sa.true() if benchmark is None else sa.or_(submissions_t.c.benchmark == benchmark,
                                                           submissions_t.c.benchmark.is_(None))
        with self._tx() as conn:
            self._expire_leases(conn, now, max_attempts)
            for _ in range(20):
                sid = conn.execute(
                    sa.select(submissions_t.c.id)
                    .where(submissions_t.c.status == "queued", mine)
                    .order_by(submissions_t.c.created_at, submissions_t.c.id)
                    .limit(1)
                ).scalar()
                if sid is None:
                    return None
                # conditional update: on PostgreSQL another worker may have taken it since the select
                res = conn.execute(
                    sa.update(submissions_t)
                    .where(submissions_t.c.id == sid, submissions_t.c.status == "queued")
                    .values(status="running", worker_id=worker_id, lease_until=now + lease_seconds,
                            attempts=submissions_t.c.attempts + 1, started_at=now, updated_at=now)
                )
                if res.rowcount == 1:
                    return self._get(conn, int(sid))
        return None

    def heartbeat(self, submission_id: int, worker_id: str, lease_seconds: float = DEFAULT_LEASE_SECONDS) -> bool:
        """Renew a lease; False when this worker no longer holds it (it expired and was given to another)."""
        now = self.clock()
        with self._tx() as conn:
            res = conn.execute(
                sa.update(submissions_t)
                .where(submissions_t.c.id == submission_id, submissions_t.c.status == "running",
                       submissions_t.c.worker_id == worker_id)
                .values(lease_until=now + lease_seconds, updated_at=now)
            )
            return res.rowcount == 1

    def _owned(self, submission_id: int, worker_id: str) -> Any:
        return sa.and_(submissions_t.c.id == submission_id, submissions_t.c.status == "running",
                       submissions_t.c.worker_id == worker_id)

    def complete(self, submission_id: int, worker_id: str, report: dict[str, Any],
                 meta: dict[str, Any] | None = None) -> bool:
        """Store a report and mark the submission evaluated, only if ``worker_id`` still holds the lease
        (otherwise another worker owns it now and this result is dropped: never counted twice)."""
        now = self.clock()
        with self._tx() as conn:
            row = conn.execute(sa.select(submissions_t.c.protocol, submissions_t.c.method_id,
                                         submissions_t.c.benchmark, submissions_t.c.benchmark_name)
                               .where(self._owned(submission_id, worker_id))).first()
            if row is None:
                return False
            report_rows.check_report(report, row.protocol)
            benchmark, benchmark_name = report_rows.report_benchmark(report, row.benchmark, row.benchmark_name)
            conn.execute(
                sa.update(submissions_t).where(self._owned(submission_id, worker_id)).values(
                    status="evaluated", finished_at=now, updated_at=now, lease_until=None,
                    protocol_version=report_rows.opt_str(report.get("protocol_version")),
                    spec_version=report_rows.opt_str(report.get("spec_version")),
                    meta_json=None if meta is None else json.dumps(meta),
                    benchmark=benchmark, benchmark_name=report_rows.clip(benchmark_name, 300),
                )
            )
            report_rows.insert_results(conn, submission_id, report, now)
            report_rows.update_method_meta(conn, int(row.method_id), meta, now)
        return True

    def reject(self, submission_id: int, worker_id: str, reasons: list[str],
               meta: dict[str, Any] | None = None) -> bool:
        """Mark a submission rejected with its reasons (the validator's messages), if the lease is still ours."""
        now = self.clock()
        with self._tx() as conn:
            res = conn.execute(
                sa.update(submissions_t).where(self._owned(submission_id, worker_id)).values(
                    status="rejected", reasons_json=json.dumps([str(r) for r in reasons]), finished_at=now,
                    updated_at=now, lease_until=None, meta_json=None if meta is None else json.dumps(meta),
                )
            )
            return res.rowcount == 1
