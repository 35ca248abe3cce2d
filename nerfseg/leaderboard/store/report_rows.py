"""Rows an evaluation report becomes (results, summary, per-scene and per-class metrics) and the method's
meta-data: shared by the queue (a worker completes a submission) and by ``nerfseg submit`` (records one)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from nerfseg.io import dumps_json
from nerfseg.leaderboard.store.records import StoreError
from nerfseg.leaderboard.store.schema import classes_t, methods_t, results_t, scenes_t, summary_t
from nerfseg.leaderboard.tables import finite_or_none


def update_method_meta(conn: Connection, method_id: int, meta: dict[str, Any] | None, now: float) -> None:
    """The method's description, link and flags follow its latest evaluated submission's meta.json."""
    if not meta:
        return
    url = meta.get("url") or meta.get("paper")
    values = {
        "description": None if meta.get("description") is None else str(meta.get("description"))[:4000],
        "url": None if url is None else str(url)[:2000],
        "uses_gt_masks": bool(meta.get("uses_gt_masks", False)),
        "semantic_only": bool(meta.get("semantic_only", False)),
        "prior": None if meta.get("prior") is None else str(meta.get("prior"))[:100],
        "updated_at": now,
    }
    conn.execute(sa.update(methods_t).where(methods_t.c.id == method_id).values(**values))


def check_report(report: dict[str, Any], protocol: str) -> None:
    """A report must have a summary and be for the submission's protocol before any of it is stored."""
    if not isinstance(report, dict) or not isinstance(report.get("summary"), dict):
        raise StoreError("an evaluation report needs a 'summary' dict")
    if report.get("protocol", protocol) != protocol:
        raise StoreError(f"report protocol {report.get('protocol')!r} differs from the submission's {protocol!r}")


def _nested_metric_rows(submission_id: int, key_name: str, nested: Any) -> list[dict[str, Any]]:
    """``{key: {metric: value}}`` (per scene or per class) as table rows; non-scalar values stay in the JSON."""
    return [{"submission_id": submission_id, key_name: str(key), "metric": str(k), "value": finite_or_none(v)}
            for key, metrics in _dict(nested).items() for k, v in _dict(metrics).items() if _scalar(v)]


def insert_results(conn: Connection, submission_id: int, report: dict[str, Any], now: float) -> None:
    """The full report (as JSON) and its scalar metrics as rows the leaderboard queries read."""
    counts = report.get("counts") or {}
    conn.execute(sa.insert(results_t).values(
        submission_id=submission_id, protocol=str(report.get("protocol", "")),
        protocol_version=opt_str(report.get("protocol_version")),
        spec_version=opt_str(report.get("spec_version")),
        num_scenes=counts.get("num_scenes"), num_frames=counts.get("num_frames"),
        report_json=dumps_json(report, indent=None), created_at=now,
    ))
    summary = [{"submission_id": submission_id, "metric": str(k), "value": finite_or_none(v)}
               for k, v in report["summary"].items() if _scalar(v)]
    for table, rows in ((summary_t, summary),
                        (scenes_t, _nested_metric_rows(submission_id, "scene_id", report.get("per_scene"))),
                        (classes_t, _nested_metric_rows(submission_id, "class_name", report.get("per_class")))):
        if rows:
            conn.execute(sa.insert(table), rows)


def _scalar(value: Any) -> bool:
    """Metric values the tables hold: numbers and nulls (nested details stay in the report JSON only)."""
    if value is None:
        return True
    if isinstance(value, bool):
        return False
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return not isinstance(value, str)


def _dict(value: Any) -> dict:
    """``value`` when it is a dict, else empty: a malformed report section stores nothing instead of failing."""
    return value if isinstance(value, dict) else {}


def opt_str(value: Any) -> str | None:
    """``str(value)``, keeping None as None (a missing version stays NULL, not the text 'None')."""
    return None if value is None else str(value)


def clip(value: Any, length: int) -> str | None:
    """``value`` as text cut to a column's ``length`` (None stays None)."""
    return None if value is None else str(value)[:length]


def report_benchmark(report: dict[str, Any], benchmark: str | None,
                     benchmark_name: str | None) -> tuple[str | None, str | None]:
    """The benchmark an evaluation report was computed on (its ``benchmark`` entry, written by the evaluator);
    ``benchmark`` is what the submission was queued for, and the two must agree: a worker pointed at another
    benchmark than the server must not file its numbers under the server's."""
    rb = report.get("benchmark")
    if not isinstance(rb, dict) or not isinstance(rb.get("fingerprint"), str):
        return benchmark, benchmark_name
    fp = rb["fingerprint"]
    if benchmark is not None and benchmark != fp:
        raise StoreError(f"the evaluation ran on benchmark {fp[:12]} ({rb.get('name')}) but the submission is for "
                         f"{benchmark[:12]} ({benchmark_name}); the evaluating worker serves another benchmark")
    return fp, opt_str(rb.get("name")) or benchmark_name
