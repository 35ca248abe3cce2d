"""Database engines: SQLite files (WAL, busy timeout, ``BEGIN IMMEDIATE`` so concurrent writers queue up instead
of failing half-way; or read-only) and any other SQLAlchemy URL (PostgreSQL for a public server)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from nerfseg.leaderboard.store.records import StoreError


def is_db_url(db: str) -> bool:
    """A database given as an SQLAlchemy URL (``scheme://...``), not as an SQLite file path."""
    return "://" in db


def db_url(db: str | Path) -> str:
    """A file path becomes an SQLite URL; anything with ``://`` is taken as an SQLAlchemy URL."""
    text = str(db)
    if is_db_url(text):
        return text
    return "sqlite:///" + str(Path(text).expanduser().resolve())


def make_engine(url: str, read_only: bool = False) -> Engine:
    """An engine configured for concurrent use: WAL + busy timeout + BEGIN IMMEDIATE on SQLite.

    ``read_only``: every transaction is read-only (PostgreSQL ``default_transaction_read_only``; SQLite opened
    with ``mode=ro``, never a write lock, and usable on a file the user cannot write).
    """
    u = sa.engine.make_url(url)
    if u.get_backend_name() != "sqlite":
        if read_only and u.get_backend_name() == "postgresql":
            return sa.create_engine(u, pool_pre_ping=True, future=True,
                                    connect_args={"options": "-c default_transaction_read_only=on"})
        return sa.create_engine(u, pool_pre_ping=True, future=True)
    if not u.database or u.database == ":memory:":
        raise StoreError("an in-memory SQLite database cannot be shared by the server and its worker; give a file")
    if read_only:
        return _read_only_sqlite_engine(Path(u.database))
    Path(u.database).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(u, connect_args={"timeout": 60, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # take transaction control from the sqlite3 module, so that BEGIN is ours (see _on_begin)
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
        cur.execute("PRAGMA busy_timeout=60000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # A deferred transaction that reads and then writes can fail with SQLITE_BUSY at the upgrade, which
        # busy_timeout cannot cure; IMMEDIATE takes the write lock first, so writers simply wait their turn.
        write = conn.get_execution_options().get("nerfseg_write", True)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def _read_only_sqlite_engine(path: Path) -> Engine:
    """SQLite opened read-only (``mode=ro``): no journal-mode change, plain ``BEGIN``, no write lock.

    A database in WAL mode needs its ``-shm`` index even to read; where that cannot be created (a read-only
    folder and no writer running), the file is opened ``immutable``: nobody can be writing it then.
    """
    if not path.is_file():
        raise StoreError(f"no leaderboard database at {path}")
    import sqlite3
    from urllib.parse import quote

    uri = "file:" + quote(str(path))

    def connect() -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(uri + "?mode=ro", uri=True, timeout=60, check_same_thread=False)
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.OperationalError:
            conn = sqlite3.connect(uri + "?mode=ro&immutable=1", uri=True, timeout=60, check_same_thread=False)
        conn.isolation_level = None
        conn.execute("PRAGMA busy_timeout=60000")
        return conn

    engine = sa.create_engine("sqlite://", creator=connect)

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN")

    return engine


