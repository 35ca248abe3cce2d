"""The results store: teams, methods, submissions and their results in SQL (SQLite by default).

One package, a module per concern: ``records`` (values and errors), ``schema`` (tables), ``migrations``,
``engines`` (SQLite / PostgreSQL connections), ``base`` (transactions, submission reads), ``teams``, ``intake``
(new submissions), ``evaluation_queue`` (leases), ``report_rows`` and ``boards`` (reading). Callers import from
here: ``from nerfseg.leaderboard.store import ResultsStore``.

Why SQLAlchemy Core: the database is a setting (a file path for SQLite, or any SQLAlchemy URL such as
``postgresql+psycopg://user@host/db`` for a public server) and the same queries run on both.

Guarantees the rest of the leaderboard relies on:
- The schema is created and upgraded by the code: ``schema_version`` records applied steps of ``MIGRATIONS``,
  applied in order inside one transaction (SQLite and PostgreSQL both have transactional DDL).
- Every write is one transaction. On SQLite transactions start with ``BEGIN IMMEDIATE`` so concurrent writers
  (web requests and a worker process) queue up instead of failing half-way; on PostgreSQL the team row is locked.
- A submission is recorded once: the same content hash for the same team, split and protocol is recognised
  (a unique constraint backs the check) and the existing submission is returned.
- Evaluation is leased: a worker claims a queued submission for ``lease_seconds`` and renews the lease while it
  works. A worker that dies leaves a lease that expires; the next claim puts the submission back in the queue
  (or rejects it after ``max_attempts``). Results are written only by the lease holder, so nothing is counted twice.
"""

from __future__ import annotations

from nerfseg.leaderboard.store.boards import BoardQueries
from nerfseg.leaderboard.store.engines import db_url, is_db_url, make_engine
from nerfseg.leaderboard.store.evaluation_queue import EvaluationQueue
from nerfseg.leaderboard.store.intake import SubmissionIntake
from nerfseg.leaderboard.store.migrations import (
    LATEST_SCHEMA_VERSION,
    MIGRATIONS,
    Migration,
    migrate,
    read_schema_version,
)
from nerfseg.leaderboard.store.records import (
    DAY_SECONDS,
    DEFAULT_LEASE_SECONDS,
    DEFAULT_MAX_ATTEMPTS,
    STATUSES,
    SUBMISSIONS_DIRNAME,
    UNRECORDED,
    BenchmarkSummary,
    DailyLimitExceeded,
    MethodDetail,
    SchemaTooNewError,
    StoreError,
    Submission,
    Team,
    hash_token,
)
from nerfseg.leaderboard.store.schema import VERSION_TABLE, tables_v1
from nerfseg.leaderboard.store.teams import TeamAccounts


class ResultsStore(TeamAccounts, SubmissionIntake, EvaluationQueue, BoardQueries):
    """Teams, methods, submissions and results; every public method is one transaction.

    ``db``: an SQLite file path (default use) or an SQLAlchemy URL. ``submissions_dir``: where uploaded files
    live; by default a ``submissions`` folder next to an SQLite file. ``clock`` is injectable for tests.
    The parts (one module each) share the engine and transactions of
    :class:`~nerfseg.leaderboard.store.base.StoreBase`.
    """


__all__ = [
    "DAY_SECONDS", "DEFAULT_LEASE_SECONDS", "DEFAULT_MAX_ATTEMPTS", "LATEST_SCHEMA_VERSION", "MIGRATIONS", "STATUSES",
    "SUBMISSIONS_DIRNAME", "UNRECORDED", "VERSION_TABLE", "BenchmarkSummary", "DailyLimitExceeded", "MethodDetail",
    "Migration", "ResultsStore", "SchemaTooNewError", "StoreError", "Submission", "Team", "db_url", "hash_token",
    "is_db_url", "make_engine", "migrate", "read_schema_version", "tables_v1",
]
