"""The store's base: engine, transactions, schema check and the submission reads the other parts share."""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from nerfseg.leaderboard.store.engines import db_url, is_db_url, make_engine
from nerfseg.leaderboard.store.migrations import LATEST_SCHEMA_VERSION, migrate, read_schema_version
from nerfseg.leaderboard.store.records import (
    STATUSES,
    SUBMISSIONS_DIRNAME,
    SchemaTooNewError,
    StoreError,
    Submission,
)
from nerfseg.leaderboard.store.schema import VERSION_TABLE, methods_t, submissions_t, teams_t

_Store = TypeVar("_Store", bound="StoreBase")


class StoreBase:
    """The connection, transactions and submission reads every part of :class:`ResultsStore` builds on.

    ``db``: an SQLite file path (default use) or an SQLAlchemy URL. ``submissions_dir``: where uploaded files
    live; by default a ``submissions`` folder next to an SQLite file. ``clock`` is injectable for tests.
    """

    def __init__(
        self,
        db: str | Path,
        submissions_dir: str | Path | None = None,
        *,
        clock: Callable[[], float] = time.time,
        migrate_schema: bool = True,
        read_only: bool = False,
    ):
        self.url = db_url(db)
        self.read_only = read_only
        self.engine = make_engine(self.url, read_only=read_only)
        self.clock = clock
        if submissions_dir is None and not is_db_url(str(db)):
            submissions_dir = Path(str(db)).expanduser().resolve().parent / SUBMISSIONS_DIRNAME
        self.submissions_dir = None if submissions_dir is None else Path(submissions_dir).resolve()
        if read_only:
            self._check_readable_schema()
        elif migrate_schema:
            migrate(self.engine)

    def _check_readable_schema(self) -> None:
        """A read-only store never migrates: an old schema is a clear error naming the command that upgrades it."""
        try:
            version = read_schema_version(self.engine)
        except sa.exc.DBAPIError as exc:
            self.close()
            raise StoreError(f"cannot read the leaderboard database {self.url}: {exc.orig}") from exc
        if version is None:
            self.close()
            raise StoreError(f"{self.url} is not a nerfseg leaderboard database (no schema_version table)")
        if version > LATEST_SCHEMA_VERSION:
            self.close()
            raise SchemaTooNewError(f"database schema version {version} is newer than this nerfseg "
                                    f"({LATEST_SCHEMA_VERSION}); upgrade nerfseg")
        if version < LATEST_SCHEMA_VERSION:
            self.close()
            raise StoreError(f"the leaderboard database needs migrating (schema version {version}, this nerfseg "
                             f"reads {LATEST_SCHEMA_VERSION}); run `nerfseg leaderboard migrate --db ...` once "
                             "(it needs write access)")

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self: _Store) -> _Store:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @contextlib.contextmanager
    def _tx(self, write: bool = True) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            conn.execution_options(nerfseg_write=write)
            with conn.begin():
                yield conn

    def schema_version(self) -> int:
        with self._tx(write=False) as conn:
            return int(conn.execute(sa.select(sa.func.max(VERSION_TABLE.c.version))).scalar() or 0)

    def _select_submissions(self) -> sa.Select:
        return (
            sa.select(submissions_t, teams_t.c.name.label("team_name"), methods_t.c.name.label("method_name"))
            .join(teams_t, teams_t.c.id == submissions_t.c.team_id)
            .join(methods_t, methods_t.c.id == submissions_t.c.method_id)
        )

    def _get(self, conn: Connection, submission_id: int) -> Submission:
        row = conn.execute(self._select_submissions().where(submissions_t.c.id == submission_id)).mappings().first()
        if row is None:
            raise StoreError(f"no submission {submission_id}")
        return self._submission(row)

    @staticmethod
    def _submission(row: Any) -> Submission:
        return Submission(
            id=int(row["id"]), key=row["key"], team_id=int(row["team_id"]), team=row["team_name"],
            method_id=int(row["method_id"]), method=row["method_name"], content_hash=row["content_hash"],
            size_bytes=int(row["size_bytes"]), filename=row["filename"], stored_path=row["stored_path"],
            split=row["split"], protocol=row["protocol"], protocol_version=row["protocol_version"],
            spec_version=row["spec_version"], status=row["status"],
            reasons=json.loads(row["reasons_json"]) if row["reasons_json"] else [],
            attempts=int(row["attempts"] or 0), worker_id=row["worker_id"], lease_until=row["lease_until"],
            created_at=float(row["created_at"]), started_at=row["started_at"], finished_at=row["finished_at"],
            meta=json.loads(row["meta_json"]) if row["meta_json"] else None,
            benchmark=row["benchmark"], benchmark_name=row["benchmark_name"],
        )

    def get_submission(self, submission_id: int | None = None, key: str | None = None) -> Submission | None:
        with self._tx(write=False) as conn:
            q = self._select_submissions()
            q = q.where(submissions_t.c.id == submission_id) if key is None else q.where(submissions_t.c.key == key)
            row = conn.execute(q).mappings().first()
        return None if row is None else self._submission(row)

    def list_submissions(self, team_id: int | None = None, status: str | None = None) -> list[Submission]:
        q = self._select_submissions().order_by(submissions_t.c.id)
        if team_id is not None:
            q = q.where(submissions_t.c.team_id == team_id)
        if status is not None:
            q = q.where(submissions_t.c.status == status)
        with self._tx(write=False) as conn:
            return [self._submission(r) for r in conn.execute(q).mappings().all()]

    def counts_by_status(self) -> dict[str, int]:
        with self._tx(write=False) as conn:
            rows = conn.execute(sa.select(submissions_t.c.status, sa.func.count()).group_by(submissions_t.c.status)).all()
        out = {s: 0 for s in STATUSES}
        out.update({s: int(n) for s, n in rows})
        return out

    def resolve_stored_path(self, submission: Submission) -> Path | None:
        if submission.stored_path is None:
            return None
        p = Path(submission.stored_path)
        if p.is_absolute() or self.submissions_dir is None:
            return p
        return self.submissions_dir / p
