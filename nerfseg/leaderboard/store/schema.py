"""The SQL tables: schema version 1 as frozen, the columns later migrations add, and the current tables that
queries use. Why apart from the migrations: queries need only the tables, the migrations need both.

Migration steps are frozen once released: a later change is a new step, never an edit of an old one, so the
v1 builders below must keep producing exactly the DDL they produced when version 1 shipped.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from nerfseg.leaderboard.store.records import UNRECORDED

#: the CHECK every version of ``submissions`` carries (the v3 SQLite rebuild repeats it)
STATUS_CHECK = "status IN ('queued', 'running', 'evaluated', 'rejected')"


def _metric_values_table(md: sa.MetaData, name: str, owner: sa.Column, *keys: sa.Column) -> sa.Table:
    """A table of ``(owner, *keys, metric) -> value`` rows: one shape for summary, per-scene, per-class and
    reported metrics, so every metric table stores values the same way."""
    return sa.Table(name, md, owner, *keys,
                    sa.Column("metric", sa.String(64), primary_key=True),
                    sa.Column("value", sa.Float, nullable=True))


def _account_tables_v1(md: sa.MetaData) -> list[sa.Table]:
    """``teams`` and their ``methods`` (schema version 1)."""
    teams = sa.Table(
        "teams",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(100), nullable=False, unique=True),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("daily_limit", sa.Integer, nullable=True),  # None: the server's default
        sa.Column("created_at", sa.Float, nullable=False),
    )
    methods = sa.Table(
        "methods",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("team_id", sa.Integer, sa.ForeignKey("teams.id"), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("description", sa.Text, nullable=True),
        sa.Column("url", sa.Text, nullable=True),
        sa.Column("uses_gt_masks", sa.Boolean, nullable=False, default=False),
        sa.Column("semantic_only", sa.Boolean, nullable=False, default=False),
        sa.Column("prior", sa.String(100), nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.UniqueConstraint("team_id", "name", name="uq_methods_team_name"),
    )
    return [teams, methods]


def _submissions_table_v1(md: sa.MetaData) -> sa.Table:
    """``submissions`` (schema version 1): one uploaded archive, its queue state and lease."""
    return sa.Table(
        "submissions",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(32), nullable=False, unique=True),  # unguessable id for status URLs
        sa.Column("team_id", sa.Integer, sa.ForeignKey("teams.id"), nullable=False),
        sa.Column("method_id", sa.Integer, sa.ForeignKey("methods.id"), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
        sa.Column("filename", sa.String(255), nullable=True),
        sa.Column("stored_path", sa.Text, nullable=True),  # relative to the submissions folder, or absolute
        sa.Column("meta_json", sa.Text, nullable=True),
        sa.Column("split", sa.String(16), nullable=False),
        sa.Column("protocol", sa.String(64), nullable=False),
        sa.Column("protocol_version", sa.String(16), nullable=True),
        sa.Column("spec_version", sa.String(16), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reasons_json", sa.Text, nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False, default=0),
        sa.Column("worker_id", sa.String(100), nullable=True),
        sa.Column("lease_until", sa.Float, nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("started_at", sa.Float, nullable=True),
        sa.Column("finished_at", sa.Float, nullable=True),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.UniqueConstraint("team_id", "split", "protocol", "content_hash", name="uq_submissions_content"),
        sa.CheckConstraint(STATUS_CHECK, name="ck_submissions_status"),
    )


def _result_tables_v1(md: sa.MetaData) -> list[sa.Table]:
    """``results`` (the full report) and its summary, per-scene and per-class metric rows (schema version 1)."""
    results = sa.Table(
        "results",
        md,
        sa.Column("submission_id", sa.Integer, sa.ForeignKey("submissions.id"), primary_key=True),
        sa.Column("protocol", sa.String(64), nullable=False),
        sa.Column("protocol_version", sa.String(16), nullable=True),
        sa.Column("spec_version", sa.String(16), nullable=True),
        sa.Column("num_scenes", sa.Integer, nullable=True),
        sa.Column("num_frames", sa.Integer, nullable=True),
        sa.Column("report_json", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )

    def owner() -> sa.Column:
        return sa.Column("submission_id", sa.Integer, sa.ForeignKey("results.submission_id"), primary_key=True)

    return [
        results,
        _metric_values_table(md, "result_summary", owner()),
        _metric_values_table(md, "result_scenes", owner(), sa.Column("scene_id", sa.String(200), primary_key=True)),
        _metric_values_table(md, "result_classes", owner(),
                             sa.Column("class_name", sa.String(100), primary_key=True)),
    ]


def _reported_tables_v1(md: sa.MetaData) -> list[sa.Table]:
    """Numbers reported in papers and their metric rows (schema version 1)."""
    reported = sa.Table(
        "reported_results",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("method", sa.String(200), nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("protocol", sa.String(64), nullable=False),
        sa.Column("split", sa.String(16), nullable=False),
        sa.Column("semantic_only", sa.Boolean, nullable=False, default=False),
        sa.Column("uses_gt_masks", sa.Boolean, nullable=False, default=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.UniqueConstraint("method", "protocol", "split", "source", name="uq_reported"),
    )
    metrics = _metric_values_table(
        md, "reported_metrics",
        sa.Column("reported_id", sa.Integer, sa.ForeignKey("reported_results.id"), primary_key=True))
    return [reported, metrics]


def tables_v1(md: sa.MetaData) -> dict[str, sa.Table]:
    """The tables of schema version 1 (frozen), by name, defined in ``md``."""
    tables = [*_account_tables_v1(md), _submissions_table_v1(md), *_result_tables_v1(md), *_reported_tables_v1(md)]
    return {t.name: t for t in tables}


VERSION_TABLE = sa.Table(
    "schema_version",
    sa.MetaData(),
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("description", sa.String(200), nullable=False),
    sa.Column("applied_at", sa.Float, nullable=False),
)


def submissions_v3_columns() -> list[sa.Column]:
    """Columns migration 3 adds to ``submissions``: which benchmark (GT fingerprint and name) it is for."""
    return [sa.Column("benchmark", sa.String(64), nullable=True),  # None: recorded before benchmarks had identities
            sa.Column("benchmark_name", sa.String(300), nullable=True)]


def reported_v3_columns() -> list[sa.Column]:
    """Columns migration 3 adds to ``reported_results``: the dataset the paper measured on."""
    return [sa.Column("dataset", sa.String(200), nullable=True)]


def _current_tables() -> dict[str, sa.Table]:
    """The current schema, for queries (not DDL). When a migration adds a column, add it here too."""
    tables = tables_v1(sa.MetaData())
    for col in submissions_v3_columns():
        tables["submissions"].append_column(col)
    for col in reported_v3_columns():
        tables["reported_results"].append_column(col)
    return tables


_CURRENT = _current_tables()
teams_t = _CURRENT["teams"]
methods_t = _CURRENT["methods"]
submissions_t = _CURRENT["submissions"]
results_t = _CURRENT["results"]
summary_t = _CURRENT["result_summary"]
scenes_t = _CURRENT["result_scenes"]
classes_t = _CURRENT["result_classes"]
reported_t = _CURRENT["reported_results"]
reported_metrics_t = _CURRENT["reported_metrics"]


def benchmark_is(benchmark: str) -> Any:
    """SQL condition: the submission is for ``benchmark`` (a fingerprint; ``UNRECORDED``: for none)."""
    return submissions_t.c.benchmark.is_(None) if benchmark == UNRECORDED else submissions_t.c.benchmark == benchmark
