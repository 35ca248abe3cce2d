"""Reading boards: benchmarks, (protocol, split) boards, leaderboard rows, a method's page, stored reports, the
rows reported in papers, and the store's consistency check."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from nerfseg.leaderboard.store.base import StoreBase
from nerfseg.leaderboard.store.records import UNRECORDED, BenchmarkSummary, MethodDetail, StoreError
from nerfseg.leaderboard.store.report_rows import clip
from nerfseg.leaderboard.store.schema import (
    benchmark_is,
    classes_t,
    methods_t,
    reported_metrics_t,
    reported_t,
    results_t,
    scenes_t,
    submissions_t,
    summary_t,
    teams_t,
)
from nerfseg.leaderboard.tables import LeaderboardEntry, meta_links
from nerfseg.spec import DEFAULT_PROTOCOL


class BoardQueries(StoreBase):
    """The reading part of :class:`~nerfseg.leaderboard.store.ResultsStore` (and the reported rows it shows)."""

    def report(self, submission_id: int) -> dict[str, Any] | None:
        """The full evaluation report of a submission, as the evaluator returned it."""
        with self._tx(write=False) as conn:
            text = conn.execute(sa.select(results_t.c.report_json)
                                .where(results_t.c.submission_id == submission_id)).scalar()
        return None if text is None else json.loads(text)

    def add_reported(
        self,
        method: str,
        source: str,
        values: dict[str, float | None],
        *,
        protocol: str = DEFAULT_PROTOCOL,
        split: str = "test",
        semantic_only: bool = False,
        uses_gt_masks: bool = False,
        dataset: str | None = None,
    ) -> int:
        """Add (or replace) a row of numbers reported in a paper; ``values`` are fractions keyed by summary
        metric names. Such rows are always shown as reported, with their source and the ``dataset`` they were
        measured on, in their own section of the table: never ranked with results measured here."""
        if not method.strip() or not source.strip():
            raise StoreError("a reported row needs a method name and a source")
        for k, v in values.items():
            if v is not None and not (0.0 <= v <= 1.0):
                raise StoreError(f"reported {k} = {v} is not a fraction in [0, 1]")
        now = self.clock()
        with self._tx() as conn:
            old = conn.execute(sa.select(reported_t.c.id).where(
                reported_t.c.method == method, reported_t.c.protocol == protocol, reported_t.c.split == split,
                reported_t.c.source == source)).scalar()
            if old is not None:
                conn.execute(sa.delete(reported_metrics_t).where(reported_metrics_t.c.reported_id == old))
                conn.execute(sa.delete(reported_t).where(reported_t.c.id == old))
            rid = conn.execute(sa.insert(reported_t).values(
                method=method, source=source, protocol=protocol, split=split, semantic_only=semantic_only,
                uses_gt_masks=uses_gt_masks, dataset=clip(dataset, 200), created_at=now)
                .returning(reported_t.c.id)).scalar_one()
            rows = [{"reported_id": rid, "metric": k, "value": v} for k, v in values.items()]
            if rows:
                conn.execute(sa.insert(reported_metrics_t), rows)
        return int(rid)

    def benchmarks(self, protocol: str | None = None, split: str | None = None) -> list[BenchmarkSummary]:
        """The benchmarks with evaluated submissions (optionally of one protocol/split), most recently used first.

        Submissions recorded before benchmarks had identities form one entry with ``fingerprint`` None."""
        q = (sa.select(submissions_t.c.benchmark, sa.func.max(submissions_t.c.benchmark_name),
                       sa.func.count(), sa.func.max(submissions_t.c.finished_at))
             .where(submissions_t.c.status == "evaluated").group_by(submissions_t.c.benchmark))
        if protocol is not None:
            q = q.where(submissions_t.c.protocol == protocol)
        if split is not None:
            q = q.where(submissions_t.c.split == split)
        with self._tx(write=False) as conn:
            rows = conn.execute(q).all()
        out = [BenchmarkSummary(fp, name, int(n), last) for fp, name, n, last in rows]
        return sorted(out, key=lambda b: (-(b.last_finished or 0.0), b.fingerprint or ""))

    def resolve_benchmark(self, wanted: str | None, protocol: str | None = None,
                          split: str | None = None) -> str | None:
        """A board's benchmark: ``wanted`` (a GT fingerprint, a unique prefix of one, a stored name, or
        ``UNRECORDED``), or by default the most recently used one. Returns the fingerprint (``UNRECORDED`` for the
        submissions without one; None when nothing was evaluated yet)."""
        known = self.benchmarks(protocol, split) or self.benchmarks()
        if wanted is None:
            return (known[0].fingerprint or UNRECORDED) if known else None
        if wanted == UNRECORDED:
            return UNRECORDED
        hits = [b for b in known if b.fingerprint and (b.fingerprint.startswith(wanted) or b.name == wanted)]
        if len({b.fingerprint for b in hits}) == 1:
            return hits[0].fingerprint
        if len(wanted) == 64:
            return wanted  # a full fingerprint with nothing recorded yet: an empty board, not an error
        names = ", ".join(f"{b.label}" for b in known) or "none"
        raise StoreError(f"benchmark {wanted!r} is {'ambiguous' if hits else 'unknown'}; recorded: {names}")

    def boards(self, benchmark: str | None = None) -> list[tuple[str, str]]:
        """The (protocol, split) pairs that have something to show (for ``benchmark`` when given), default first."""
        q = sa.select(submissions_t.c.protocol, submissions_t.c.split).where(submissions_t.c.status == "evaluated")
        if benchmark is not None:
            q = q.where(benchmark_is(benchmark))
        with self._tx(write=False) as conn:
            pairs = set(conn.execute(q.distinct()).all())
            pairs |= set(conn.execute(sa.select(reported_t.c.protocol, reported_t.c.split).distinct()).all())
        return sorted(pairs, key=lambda p: (p != (DEFAULT_PROTOCOL, "test"), p))

    def _latest_evaluated(self, conn: Connection, protocol: str, split: str,
                          method_id: int | None = None, benchmark: str | None = None) -> list[Any]:
        """The latest evaluated submission per method (a method's newest result replaces its older ones), on one
        benchmark when ``benchmark`` is given (a fingerprint, or ``UNRECORDED``)."""
        q = (self._select_submissions()
             .add_columns(methods_t.c.semantic_only.label("method_semantic_only"),
                          methods_t.c.uses_gt_masks.label("method_uses_gt_masks"))
             .where(submissions_t.c.status == "evaluated", submissions_t.c.protocol == protocol,
                    submissions_t.c.split == split)
             .order_by(submissions_t.c.finished_at, submissions_t.c.id))
        if method_id is not None:
            q = q.where(submissions_t.c.method_id == method_id)
        if benchmark is not None:
            q = q.where(benchmark_is(benchmark))
        latest: dict[int, Any] = {}
        for row in conn.execute(q).mappings().all():
            latest[int(row["method_id"])] = row
        return list(latest.values())

    @staticmethod
    def _metrics(conn: Connection, table: sa.Table, key_col: str | None, ids: list[int]) -> dict[int, Any]:
        out: dict[int, Any] = {i: {} for i in ids}
        if not ids:
            return out
        cols = [table.c.submission_id, table.c.metric, table.c.value]
        if key_col:
            cols.insert(1, table.c[key_col])
        for r in conn.execute(sa.select(*cols).where(table.c.submission_id.in_(ids))).all():
            if key_col:
                out[int(r[0])].setdefault(r[1], {})[r[2]] = r[3]
            else:
                out[int(r[0])][r[1]] = r[2]
        return out

    def leaderboard(self, protocol: str = DEFAULT_PROTOCOL, split: str = "test",
                    per_class: bool = False, benchmark: str | None = None) -> list[LeaderboardEntry]:
        """Rows for one benchmark, protocol and split (none of them is ever mixed): each method's latest
        evaluated submission on that benchmark, plus the reported rows (entries with ``reported`` True, which
        the tables keep in their own section). ``benchmark``: a fingerprint, ``UNRECORDED``, or None for the
        most recently used benchmark (:meth:`resolve_benchmark`)."""
        bench = benchmark if benchmark is not None else self.resolve_benchmark(None, protocol, split)
        with self._tx(write=False) as conn:
            rows = self._latest_evaluated(conn, protocol, split, benchmark=bench) if bench is not None else []
            ids = [int(r["id"]) for r in rows]
            summaries = self._metrics(conn, summary_t, None, ids)
            classes = self._metrics(conn, classes_t, "class_name", ids) if per_class else {}
            reported = conn.execute(sa.select(reported_t).where(reported_t.c.protocol == protocol,
                                                                 reported_t.c.split == split)).mappings().all()
            rvalues: dict[int, dict[str, float | None]] = {int(r["id"]): {} for r in reported}
            if rvalues:
                for rid, metric, value in conn.execute(
                        sa.select(reported_metrics_t.c.reported_id, reported_metrics_t.c.metric,
                                  reported_metrics_t.c.value)
                        .where(reported_metrics_t.c.reported_id.in_(list(rvalues)))).all():
                    rvalues[int(rid)][metric] = value
        entries = []
        for r in rows:
            meta = json.loads(r["meta_json"]) if r["meta_json"] else {}
            entries.append(LeaderboardEntry(
                method=r["method_name"], values=summaries[int(r["id"])], team=r["team_name"],
                semantic_only=bool(meta.get("semantic_only", False)),
                uses_gt_masks=bool(meta.get("uses_gt_masks", False)),
                method_id=int(r["method_id"]), submission_id=int(r["id"]), submission_key=r["key"],
                finished_at=r["finished_at"], per_class=classes.get(int(r["id"]), {}),
                benchmark=r["benchmark"], benchmark_name=r["benchmark_name"],
                submitted_at=r["created_at"], links=meta_links(meta),
            ))
        for r in reported:
            entries.append(LeaderboardEntry(
                method=r["method"], values=rvalues[int(r["id"])], reported=True, source=r["source"],
                semantic_only=bool(r["semantic_only"]), uses_gt_masks=bool(r["uses_gt_masks"]),
                dataset=r["dataset"],
            ))
        return entries

    def method_detail(self, method_id: int, protocol: str = DEFAULT_PROTOCOL, split: str = "test",
                      benchmark: str | None = None) -> MethodDetail | None:
        """A method's page: its latest evaluated submission on ``benchmark`` (default: the benchmark of its latest
        evaluated submission for protocol/split) and its history on that same benchmark."""
        with self._tx(write=False) as conn:
            m = conn.execute(
                sa.select(methods_t, teams_t.c.name.label("team_name"))
                .join(teams_t, teams_t.c.id == methods_t.c.team_id).where(methods_t.c.id == method_id)
            ).mappings().first()
            if m is None:
                return None
            if benchmark is None:
                newest = self._latest_evaluated(conn, protocol, split, method_id)
                benchmark = (newest[0]["benchmark"] or UNRECORDED) if newest else None
            latest = self._latest_evaluated(conn, protocol, split, method_id, benchmark) if benchmark is not None else []
            detail = MethodDetail(
                method_id=int(m["id"]), name=m["name"], team=m["team_name"], description=m["description"],
                url=m["url"], uses_gt_masks=bool(m["uses_gt_masks"]), semantic_only=bool(m["semantic_only"]),
                prior=m["prior"], protocol=protocol, split=split, submission=None,
            )
            if latest:
                sid = int(latest[0]["id"])
                detail.submission = self._get(conn, sid)
                detail.benchmark, detail.benchmark_name = detail.submission.benchmark, detail.submission.benchmark_name
                meta = detail.submission.meta or {}  # the flags of the submission shown, not of a later one
                detail.semantic_only = bool(meta.get("semantic_only", detail.semantic_only))
                detail.uses_gt_masks = bool(meta.get("uses_gt_masks", detail.uses_gt_masks))
                detail.summary = self._metrics(conn, summary_t, None, [sid])[sid]
                detail.per_scene = self._metrics(conn, scenes_t, "scene_id", [sid])[sid]
                detail.per_class = self._metrics(conn, classes_t, "class_name", [sid])[sid]
            hist = conn.execute(
                sa.select(submissions_t.c.id, submissions_t.c.finished_at, summary_t.c.metric, summary_t.c.value)
                .join(summary_t, summary_t.c.submission_id == submissions_t.c.id)
                .where(submissions_t.c.method_id == method_id, submissions_t.c.status == "evaluated",
                       submissions_t.c.protocol == protocol, submissions_t.c.split == split,
                       benchmark_is(benchmark) if benchmark is not None else sa.true(),
                       summary_t.c.metric.in_(["miou", "pq_things"]))
                .order_by(submissions_t.c.finished_at, submissions_t.c.id)
            ).all()
        by_id: dict[int, dict[str, Any]] = {}
        for sid, finished, metric, value in hist:
            by_id.setdefault(int(sid), {"submission_id": int(sid), "finished_at": finished})[metric] = value
        detail.history = list(by_id.values())
        return detail

    def check_consistency(self) -> list[str]:
        """Invariants a healthy store keeps (the load test asserts none is broken): every evaluated submission
        has exactly one result, no other submission has one, and nothing rejected lacks a reason."""
        problems = []
        with self._tx(write=False) as conn:
            subs = {int(i): s for i, s in conn.execute(sa.select(submissions_t.c.id, submissions_t.c.status)).all()}
            with_results = [int(i) for (i,) in conn.execute(sa.select(results_t.c.submission_id)).all()]
            rejected_no_reason = conn.execute(sa.select(submissions_t.c.id).where(
                submissions_t.c.status == "rejected",
                sa.or_(submissions_t.c.reasons_json.is_(None), submissions_t.c.reasons_json == "[]"))).scalars().all()
        for sid, status in subs.items():
            if status == "evaluated" and sid not in with_results:
                problems.append(f"submission {sid} is evaluated but has no result")
        for sid in with_results:
            if subs.get(sid) != "evaluated":
                problems.append(f"submission {sid} has a result but status {subs.get(sid)!r}")
        problems += [f"submission {sid} is rejected without a reason" for sid in rejected_no_reason]
        return problems
