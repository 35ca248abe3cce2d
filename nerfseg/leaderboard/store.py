"""The results store: teams, methods, submissions and their results in SQL (SQLite by default).

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

import contextlib
import hashlib
import json
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from nerfseg.leaderboard.tables import LeaderboardEntry, meta_links
from nerfseg.leaderboard.tables import finite_or_none as _num
from nerfseg.errors import NerfsegError
from nerfseg.spec import DEFAULT_PROTOCOL

STATUSES = ("queued", "running", "evaluated", "rejected")
DAY_SECONDS = 86400.0
DEFAULT_LEASE_SECONDS = 60.0
DEFAULT_MAX_ATTEMPTS = 3
SUBMISSIONS_DIRNAME = "submissions"


class StoreError(NerfsegError):
    """The store cannot do what was asked (unknown team, name taken, database newer than this code...)."""


class SchemaTooNewError(StoreError):
    """The database was migrated by a newer nerfseg: refuse to touch it rather than corrupt it."""


class DailyLimitExceeded(StoreError):
    """A team reached its submissions-per-24-hours limit."""

    def __init__(self, limit: int, retry_after_s: float):
        self.limit = limit
        self.retry_after_s = max(0.0, retry_after_s)
        hours = self.retry_after_s / 3600.0
        super().__init__(f"daily submission limit reached ({limit} per 24 h); try again in {hours:.1f} h")


# ---------------------------------------------------------------------------------------------
# Schema. Migration steps are frozen once released: a later change is a new step, never an edit of an old one.


def _tables_v1(md: sa.MetaData) -> dict[str, sa.Table]:
    """The tables of schema version 1 (frozen)."""
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
    submissions = sa.Table(
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
        sa.CheckConstraint("status IN ('queued', 'running', 'evaluated', 'rejected')", name="ck_submissions_status"),
    )
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
    result_summary = sa.Table(
        "result_summary",
        md,
        sa.Column("submission_id", sa.Integer, sa.ForeignKey("results.submission_id"), primary_key=True),
        sa.Column("metric", sa.String(64), primary_key=True),
        sa.Column("value", sa.Float, nullable=True),
    )
    result_scenes = sa.Table(
        "result_scenes",
        md,
        sa.Column("submission_id", sa.Integer, sa.ForeignKey("results.submission_id"), primary_key=True),
        sa.Column("scene_id", sa.String(200), primary_key=True),
        sa.Column("metric", sa.String(64), primary_key=True),
        sa.Column("value", sa.Float, nullable=True),
    )
    result_classes = sa.Table(
        "result_classes",
        md,
        sa.Column("submission_id", sa.Integer, sa.ForeignKey("results.submission_id"), primary_key=True),
        sa.Column("class_name", sa.String(100), primary_key=True),
        sa.Column("metric", sa.String(64), primary_key=True),
        sa.Column("value", sa.Float, nullable=True),
    )
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
    reported_metrics = sa.Table(
        "reported_metrics",
        md,
        sa.Column("reported_id", sa.Integer, sa.ForeignKey("reported_results.id"), primary_key=True),
        sa.Column("metric", sa.String(64), primary_key=True),
        sa.Column("value", sa.Float, nullable=True),
    )
    return {
        t.name: t
        for t in (teams, methods, submissions, results, result_summary, result_scenes, result_classes,
                  reported, reported_metrics)
    }


VERSION_TABLE = sa.Table(
    "schema_version",
    sa.MetaData(),
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("description", sa.String(200), nullable=False),
    sa.Column("applied_at", sa.Float, nullable=False),
)

def _submissions_v3_columns() -> list[sa.Column]:
    """Columns migration 3 adds to ``submissions``: which benchmark (GT fingerprint and name) it is for."""
    return [sa.Column("benchmark", sa.String(64), nullable=True),  # None: recorded before benchmarks had identities
            sa.Column("benchmark_name", sa.String(300), nullable=True)]


def _reported_v3_columns() -> list[sa.Column]:
    """Columns migration 3 adds to ``reported_results``: the dataset the paper measured on."""
    return [sa.Column("dataset", sa.String(200), nullable=True)]


# The current schema, for queries (not DDL). When a migration adds a column, add it here too.
_T = _tables_v1(sa.MetaData())
for _col in _submissions_v3_columns():
    _T["submissions"].append_column(_col)
for _col in _reported_v3_columns():
    _T["reported_results"].append_column(_col)
teams_t = _T["teams"]
methods_t = _T["methods"]
submissions_t = _T["submissions"]
results_t = _T["results"]
summary_t = _T["result_summary"]
scenes_t = _T["result_scenes"]
classes_t = _T["result_classes"]
reported_t = _T["reported_results"]
reported_metrics_t = _T["reported_metrics"]


def _m1_core_tables(conn: Connection) -> None:
    md = sa.MetaData()
    _tables_v1(md)
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
    for col in _reported_v3_columns():
        conn.execute(sa.text(f"ALTER TABLE reported_results ADD COLUMN {col.name} VARCHAR({col.type.length})"))
    if conn.dialect.name == "sqlite":
        md = sa.MetaData()
        old = _tables_v1(sa.MetaData())["submissions"]
        new = sa.Table("submissions_v3", md, *[c._copy() for c in old.columns], *_submissions_v3_columns(),
                       sa.CheckConstraint("status IN ('queued', 'running', 'evaluated', 'rejected')",
                                          name="ck_submissions_status"))
        new.create(conn)
        cols = ", ".join(c.name for c in old.columns)
        conn.exec_driver_sql(f"INSERT INTO submissions_v3 ({cols}) SELECT {cols} FROM submissions")
        conn.exec_driver_sql("DROP TABLE submissions")
        conn.exec_driver_sql("ALTER TABLE submissions_v3 RENAME TO submissions")
        _m2_indexes(conn)  # dropped with the old table
    else:
        conn.execute(sa.text("ALTER TABLE submissions DROP CONSTRAINT uq_submissions_content"))
        for col in _submissions_v3_columns():
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


# ---------------------------------------------------------------------------------------------
# Records


@dataclass(frozen=True)
class Team:
    id: int
    name: str
    daily_limit: int | None
    created_at: float


@dataclass(frozen=True)
class Submission:
    id: int
    key: str
    team_id: int
    team: str
    method_id: int
    method: str
    content_hash: str
    size_bytes: int
    filename: str | None
    stored_path: str | None
    split: str
    protocol: str
    protocol_version: str | None
    spec_version: str | None
    status: str
    reasons: list[str]
    attempts: int
    worker_id: str | None
    lease_until: float | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    meta: dict[str, Any] | None = None
    benchmark: str | None = None  # GT fingerprint of the benchmark it is for (None: recorded before identities)
    benchmark_name: str | None = None

    def to_dict(self, public: bool = True) -> dict[str, Any]:
        """JSON-able view; ``public`` leaves out server paths and worker ids."""
        d = {
            "id": self.id,
            "key": self.key,
            "team": self.team,
            "method": self.method,
            "method_id": self.method_id,
            "content_hash": self.content_hash,
            "size_bytes": self.size_bytes,
            "filename": self.filename,
            "split": self.split,
            "protocol": self.protocol,
            "protocol_version": self.protocol_version,
            "spec_version": self.spec_version,
            "status": self.status,
            "reasons": list(self.reasons),
            "attempts": self.attempts,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "meta": self.meta,
            "benchmark": None if self.benchmark is None else {"name": self.benchmark_name, "fingerprint": self.benchmark},
        }
        if not public:
            d.update(stored_path=self.stored_path, worker_id=self.worker_id, lease_until=self.lease_until)
        return d


@dataclass
class MethodDetail:
    """Everything the per-method page shows."""

    method_id: int
    name: str
    team: str
    description: str | None
    url: str | None
    uses_gt_masks: bool
    semantic_only: bool
    prior: str | None
    protocol: str
    split: str
    submission: Submission | None  # the latest evaluated submission for protocol/split (and benchmark)
    benchmark: str | None = None  # the benchmark shown (GT fingerprint)
    benchmark_name: str | None = None
    summary: dict[str, float | None] = field(default_factory=dict)
    per_scene: dict[str, dict[str, float | None]] = field(default_factory=dict)
    per_class: dict[str, dict[str, float | None]] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)


#: the board of submissions recorded before benchmarks had identities (their benchmark is unknown)
UNRECORDED = "unrecorded"


@dataclass(frozen=True)
class BenchmarkSummary:
    """A benchmark as the store knows it: from the submissions evaluated on it."""

    fingerprint: str | None  # None: submissions recorded before benchmark identities
    name: str | None
    evaluated: int
    last_finished: float | None

    @property
    def label(self) -> str:
        if self.fingerprint is None:
            return f"{UNRECORDED} (benchmark not recorded)"
        return f"{self.name or 'unnamed'} [GT {self.fingerprint[:12]}]"


def _benchmark_is(benchmark: str) -> Any:
    """SQL condition: the submission is for ``benchmark`` (a fingerprint; ``UNRECORDED``: for none)."""
    return submissions_t.c.benchmark.is_(None) if benchmark == UNRECORDED else submissions_t.c.benchmark == benchmark


def hash_token(token: str) -> str:
    """Tokens are stored only as their sha256: a leaked database does not leak working tokens."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()




def _is_url(db: str) -> bool:
    return "://" in db


def db_url(db: str | Path) -> str:
    """A file path becomes an SQLite URL; anything with ``://`` is taken as an SQLAlchemy URL."""
    text = str(db)
    if _is_url(text):
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


# ---------------------------------------------------------------------------------------------
# The store


class ResultsStore:
    """Teams, methods, submissions and results; every public method is one transaction.

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
        if submissions_dir is None and not _is_url(str(db)):
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

    def __enter__(self) -> "ResultsStore":
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

    # -- teams ---------------------------------------------------------------------------------

    def add_team(self, name: str, daily_limit: int | None = None) -> tuple[Team, str]:
        """Create a team; returns it and its token. The token is shown once: only its hash is stored."""
        name = name.strip()
        if not name:
            raise StoreError("a team needs a name")
        token = secrets.token_urlsafe(32)
        now = self.clock()
        with self._tx() as conn:
            if conn.execute(sa.select(teams_t.c.id).where(teams_t.c.name == name)).first() is not None:
                raise StoreError(f"team {name!r} exists already (use --rotate to issue a new token)")
            tid = conn.execute(
                sa.insert(teams_t)
                .values(name=name, token_hash=hash_token(token), daily_limit=daily_limit, created_at=now)
                .returning(teams_t.c.id)
            ).scalar_one()
        return Team(int(tid), name, daily_limit, now), token

    def rotate_token(self, name: str) -> str:
        """Issue a new token for a team (the old one stops working)."""
        token = secrets.token_urlsafe(32)
        with self._tx() as conn:
            res = conn.execute(sa.update(teams_t).where(teams_t.c.name == name).values(token_hash=hash_token(token)))
            if res.rowcount != 1:
                raise StoreError(f"no team named {name!r}")
        return token

    def set_daily_limit(self, name: str, daily_limit: int | None) -> None:
        with self._tx() as conn:
            res = conn.execute(sa.update(teams_t).where(teams_t.c.name == name).values(daily_limit=daily_limit))
            if res.rowcount != 1:
                raise StoreError(f"no team named {name!r}")

    def team_by_token(self, token: str | None) -> Team | None:
        if not token:
            return None
        with self._tx(write=False) as conn:
            row = conn.execute(sa.select(teams_t).where(teams_t.c.token_hash == hash_token(token))).mappings().first()
        return None if row is None else self._team(row)

    def team_by_name(self, name: str) -> Team | None:
        with self._tx(write=False) as conn:
            row = conn.execute(sa.select(teams_t).where(teams_t.c.name == name)).mappings().first()
        return None if row is None else self._team(row)

    def ensure_team(self, name: str) -> Team:
        """The team of local ``nerfseg submit`` runs: created on first use with a token nobody knows."""
        team = self.team_by_name(name)
        if team is not None:
            return team
        try:
            return self.add_team(name)[0]
        except StoreError:  # created meanwhile by another process
            team = self.team_by_name(name)
            if team is None:
                raise
            return team

    def list_teams(self) -> list[Team]:
        with self._tx(write=False) as conn:
            rows = conn.execute(sa.select(teams_t).order_by(teams_t.c.id)).mappings().all()
        return [self._team(r) for r in rows]

    @staticmethod
    def _team(row: Any) -> Team:
        return Team(int(row["id"]), row["name"], row["daily_limit"], float(row["created_at"]))

    # -- submissions ---------------------------------------------------------------------------

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

    def _update_method_meta(self, conn: Connection, method_id: int, meta: dict[str, Any] | None, now: float) -> None:
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

    def _with_retry(self, fn: Callable[[], tuple[Submission, bool]]) -> tuple[Submission, bool]:
        """Run a create transaction again when a concurrent one won a unique constraint (PostgreSQL); the second
        run then finds the other's row. SQLite never gets here: BEGIN IMMEDIATE already serialises writers."""
        for attempt in range(3):
            try:
                return fn()
            except IntegrityError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

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
        method = method.strip()
        if not method:
            raise StoreError("a submission needs a method name")

        def run() -> tuple[Submission, bool]:
            now = self.clock()
            with self._tx() as conn:
                team = conn.execute(
                    sa.select(teams_t).where(teams_t.c.id == team_id).with_for_update()
                ).mappings().first()
                if team is None:
                    raise StoreError(f"unknown team id {team_id}")
                existing = self._find_duplicate(conn, team_id, split, protocol, content_hash, benchmark)
                if existing is not None:
                    return self._get(conn, existing), False
                self._check_daily_limit(conn, team, daily_limit, now)
                method_id = self._ensure_method(conn, team_id, method, now)
                sid = self._insert_submission(
                    conn,
                    dict(team_id=team_id, method_id=method_id, content_hash=content_hash, size_bytes=int(size_bytes),
                         filename=filename, stored_path=stored_path, split=split, protocol=protocol,
                         status="queued", attempts=0, created_at=now, updated_at=now, benchmark=benchmark,
                         benchmark_name=_clip(benchmark_name, 300)),
                )
                return self._get(conn, sid), True

        return self._with_retry(run)

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
            benchmark, benchmark_name = _report_benchmark(report, benchmark, benchmark_name)
        method = method.strip()
        if not method:
            raise StoreError("a submission needs a method name")

        def run() -> tuple[Submission, bool]:
            now = self.clock()
            with self._tx() as conn:
                if conn.execute(sa.select(teams_t.c.id).where(teams_t.c.id == team_id).with_for_update()).first() is None:
                    raise StoreError(f"unknown team id {team_id}")
                existing = self._find_duplicate(conn, team_id, split, protocol, content_hash, benchmark)
                if existing is not None:
                    return self._get(conn, existing), False
                method_id = self._ensure_method(conn, team_id, method, now)
                values = dict(
                    team_id=team_id, method_id=method_id, content_hash=content_hash, size_bytes=int(size_bytes),
                    filename=filename, stored_path=stored_path, split=split, protocol=protocol, attempts=1,
                    created_at=started_at or now, started_at=started_at or now, finished_at=now, updated_at=now,
                    meta_json=None if meta is None else json.dumps(meta), benchmark=benchmark,
                    benchmark_name=_clip(benchmark_name, 300),
                )
                if report is not None:
                    self._check_report(report, protocol)
                    values.update(status="evaluated", protocol_version=_opt_str(report.get("protocol_version")),
                                  spec_version=_opt_str(report.get("spec_version")))
                    sid = self._insert_submission(conn, values)
                    self._insert_results(conn, sid, report, now)
                    self._update_method_meta(conn, method_id, meta, now)
                else:
                    values.update(status="rejected", reasons_json=json.dumps([str(r) for r in reasons or []]))
                    sid = self._insert_submission(conn, values)
                return self._get(conn, sid), True

        return self._with_retry(run)

    # -- the evaluation queue ------------------------------------------------------------------

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
            self._check_report(report, row.protocol)
            benchmark, benchmark_name = _report_benchmark(report, row.benchmark, row.benchmark_name)
            conn.execute(
                sa.update(submissions_t).where(self._owned(submission_id, worker_id)).values(
                    status="evaluated", finished_at=now, updated_at=now, lease_until=None,
                    protocol_version=_opt_str(report.get("protocol_version")),
                    spec_version=_opt_str(report.get("spec_version")),
                    meta_json=None if meta is None else json.dumps(meta),
                    benchmark=benchmark, benchmark_name=_clip(benchmark_name, 300),
                )
            )
            self._insert_results(conn, submission_id, report, now)
            self._update_method_meta(conn, int(row.method_id), meta, now)
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

    # -- results -------------------------------------------------------------------------------

    @staticmethod
    def _check_report(report: dict[str, Any], protocol: str) -> None:
        if not isinstance(report, dict) or not isinstance(report.get("summary"), dict):
            raise StoreError("an evaluation report needs a 'summary' dict")
        if report.get("protocol", protocol) != protocol:
            raise StoreError(f"report protocol {report.get('protocol')!r} differs from the submission's {protocol!r}")

    def _insert_results(self, conn: Connection, submission_id: int, report: dict[str, Any], now: float) -> None:
        counts = report.get("counts") or {}
        conn.execute(sa.insert(results_t).values(
            submission_id=submission_id, protocol=str(report.get("protocol", "")),
            protocol_version=_opt_str(report.get("protocol_version")),
            spec_version=_opt_str(report.get("spec_version")),
            num_scenes=counts.get("num_scenes"), num_frames=counts.get("num_frames"),
            report_json=json.dumps(report, default=_json_default), created_at=now,
        ))
        summary = [{"submission_id": submission_id, "metric": str(k), "value": _num(v)}
                   for k, v in report["summary"].items() if _scalar(v)]
        if summary:
            conn.execute(sa.insert(summary_t), summary)
        scenes = [{"submission_id": submission_id, "scene_id": str(s), "metric": str(k), "value": _num(v)}
                  for s, metrics in _dict(report.get("per_scene")).items() for k, v in _dict(metrics).items()
                  if _scalar(v)]
        if scenes:
            conn.execute(sa.insert(scenes_t), scenes)
        classes = [{"submission_id": submission_id, "class_name": str(c), "metric": str(k), "value": _num(v)}
                   for c, metrics in _dict(report.get("per_class")).items() for k, v in _dict(metrics).items()
                   if _scalar(v)]
        if classes:
            conn.execute(sa.insert(classes_t), classes)

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
                uses_gt_masks=uses_gt_masks, dataset=_clip(dataset, 200), created_at=now)
                .returning(reported_t.c.id)).scalar_one()
            rows = [{"reported_id": rid, "metric": k, "value": v} for k, v in values.items()]
            if rows:
                conn.execute(sa.insert(reported_metrics_t), rows)
        return int(rid)

    # -- reading -------------------------------------------------------------------------------

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
            q = q.where(_benchmark_is(benchmark))
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
            q = q.where(_benchmark_is(benchmark))
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
                       _benchmark_is(benchmark) if benchmark is not None else sa.true(),
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

    # -- files ---------------------------------------------------------------------------------

    def resolve_stored_path(self, submission: Submission) -> Path | None:
        if submission.stored_path is None:
            return None
        p = Path(submission.stored_path)
        if p.is_absolute() or self.submissions_dir is None:
            return p
        return self.submissions_dir / p


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
    return value if isinstance(value, dict) else {}


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _clip(value: Any, length: int) -> str | None:
    return None if value is None else str(value)[:length]


def _report_benchmark(report: dict[str, Any], benchmark: str | None,
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
    return fp, _opt_str(rb.get("name")) or benchmark_name


def _json_default(obj: Any) -> Any:
    try:
        import numpy as np

        if isinstance(obj, np.integer):
            return int(obj)
        if isinstance(obj, np.floating):
            return float(obj)
        if isinstance(obj, np.ndarray):
            return obj.tolist()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
