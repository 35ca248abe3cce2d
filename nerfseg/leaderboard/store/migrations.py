"""Schema migrations: the steps from an empty database to ``LATEST_SCHEMA_VERSION``, applied in order inside one
transaction (SQLite and PostgreSQL both have transactional DDL) and recorded in ``schema_version``."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from nerfseg.leaderboard.store.records import SchemaTooNewError, StoreError
from nerfseg.leaderboard.store.schema import (
    STATUS_CHECK,
    VERSION_TABLE,
    reported_v3_columns,
    submissions_t,
    submissions_v3_columns,
    tables_v1,
)


def _m1_core_tables(conn: Connection) -> None:
    md = sa.MetaData()
    tables_v1(md)
    md.create_all(conn)


def _m2_indexes(conn: Connection) -> None:
    # the worker's queue scan, the daily limit count and the leaderboard query
    sa.Index("ix_submissions_status_created", submissions_t.c.status, submissions_t.c.created_at).create(conn)
    sa.Index("ix_submissions_team_created", submissions_t.c.team_id, submissions_t.c.created_at).create(conn)
    sa.Index("ix_submissions_board", submissions_t.c.protocol, submissions_t.c.split, submissions_t.c.status).create(conn)


def _live_content_index() -> sa.Index:
    """De-duplication key: a team's content for one benchmark, split and protocol is evaluated once. Rejected
    submissions are outside the index, so a submission rejected (or failed internally) can be sent again."""
    live = submissions_t.c.status != "rejected"
    return sa.Index("uq_submissions_live_content", submissions_t.c.team_id, submissions_t.c.benchmark,
                    submissions_t.c.split, submissions_t.c.protocol, submissions_t.c.content_hash, unique=True,
                    sqlite_where=live, postgresql_where=live)


def _m3_benchmark_identity(conn: Connection) -> None:
    """Submissions name their benchmark; the content de-duplication covers the benchmark and skips rejected
    submissions; reported rows name their dataset.

    SQLite cannot drop the old UNIQUE constraint of the CREATE TABLE, so the table is rebuilt (the 12-step
    recipe of the SQLite manual; ``migrate`` turns foreign keys off around it and checks them before commit).
    """
    for col in reported_v3_columns():
        conn.execute(sa.text(f"ALTER TABLE reported_results ADD COLUMN {col.name} VARCHAR({col.type.length})"))
    if conn.dialect.name == "sqlite":
        md = sa.MetaData()
        old = tables_v1(sa.MetaData())["submissions"]
        new = sa.Table("submissions_v3", md, *[c._copy() for c in old.columns], *submissions_v3_columns(),
                       sa.CheckConstraint(STATUS_CHECK, name="ck_submissions_status"))
        new.create(conn)
        cols = ", ".join(c.name for c in old.columns)
        conn.exec_driver_sql(f"INSERT INTO submissions_v3 ({cols}) SELECT {cols} FROM submissions")
        conn.exec_driver_sql("DROP TABLE submissions")
        conn.exec_driver_sql("ALTER TABLE submissions_v3 RENAME TO submissions")
        _m2_indexes(conn)  # dropped with the old table
    else:
        conn.execute(sa.text("ALTER TABLE submissions DROP CONSTRAINT uq_submissions_content"))
        for col in submissions_v3_columns():
            conn.execute(sa.text(f"ALTER TABLE submissions ADD COLUMN {col.name} VARCHAR({col.type.length})"))
    _live_content_index().create(conn)
    sa.Index("ix_submissions_benchmark_board", submissions_t.c.benchmark, submissions_t.c.protocol,
             submissions_t.c.split, submissions_t.c.status).create(conn)


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    apply: Callable[[Connection], None]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "teams, methods, submissions, results, reported results", _m1_core_tables),
    Migration(2, "indexes for the queue, the daily limit and the leaderboard", _m2_indexes),
    Migration(3, "benchmark identity of submissions, de-duplication per benchmark over live submissions, "
                 "dataset of reported rows", _m3_benchmark_identity),
)
LATEST_SCHEMA_VERSION = MIGRATIONS[-1].version


def read_schema_version(engine: Engine) -> int | None:
    """The applied schema version, read without any write lock; None when the database has no nerfseg schema."""
    with engine.connect() as conn:
        conn.execution_options(nerfseg_write=False)
        with conn.begin():
            if not sa.inspect(conn).has_table(VERSION_TABLE.name):
                return None
            return int(conn.execute(sa.select(sa.func.max(VERSION_TABLE.c.version))).scalar() or 0)


def migrate(engine: Engine) -> int:
    """Bring the schema to ``LATEST_SCHEMA_VERSION`` in one transaction; returns the version found before.

    An up-to-date database is recognised with a plain read (no write lock, so opening a busy store does not
    queue behind its writers); only a database that needs a step takes the lock.
    """
    found = read_schema_version(engine)
    if found is not None and found > LATEST_SCHEMA_VERSION:
        raise SchemaTooNewError(
            f"database schema version {found} is newer than this nerfseg ({LATEST_SCHEMA_VERSION}); upgrade nerfseg")
    if found == LATEST_SCHEMA_VERSION:
        return found
    sqlite = engine.dialect.name == "sqlite"
    with engine.connect() as conn:
        if sqlite:
            # a table rebuild must not trip (or cascade) foreign keys half-way; the pragma only works outside a
            # transaction, so it is set on the raw connection (autocommit) and checked before commit
            conn.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")
        try:
            conn.execution_options(nerfseg_write=True)
            with conn.begin():
                if engine.dialect.name == "postgresql":
                    # serialise concurrent first starts (server + worker) on a fresh database
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock(7315001)"))
                VERSION_TABLE.create(conn, checkfirst=True)
                current = conn.execute(sa.select(sa.func.max(VERSION_TABLE.c.version))).scalar() or 0
                if current > LATEST_SCHEMA_VERSION:
                    raise SchemaTooNewError(
                        f"database schema version {current} is newer than this nerfseg ({LATEST_SCHEMA_VERSION}); "
                        "upgrade nerfseg"
                    )
                for step in MIGRATIONS:
                    if step.version <= current:
                        continue
                    step.apply(conn)
                    conn.execute(
                        sa.insert(VERSION_TABLE).values(
                            version=step.version, description=step.description, applied_at=time.time()
                        )
                    )
                if sqlite:
                    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").all()
                    if broken:
                        raise StoreError(f"migration left {len(broken)} broken foreign key(s), e.g. {broken[0]}; "
                                         "nothing was changed")
        finally:
            if sqlite:
                conn.connection.driver_connection.execute("PRAGMA foreign_keys=ON")
    return int(current)
