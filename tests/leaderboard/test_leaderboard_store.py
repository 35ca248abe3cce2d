"""The results store: schema migrations, teams and tokens, duplicates, daily limits, leases, results, consistency."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from nerfseg.leaderboard.store import (
    LATEST_SCHEMA_VERSION,
    MIGRATIONS,
    VERSION_TABLE,
    DailyLimitExceeded,
    ResultsStore,
    SchemaTooNewError,
    StoreError,
    hash_token,
    make_engine,
    migrate,
)
from nerfseg.leaderboard.worker import Worker
from tests.leaderboard.fake_eval import evaluate as fake_evaluate


class Clock:
    def __init__(self, t: float = 1_700_000_000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def _report(pq: float = 0.5, miou: float = 0.6, protocol: str = "nerfseg-v1") -> dict:
    return {
        "protocol": protocol, "protocol_version": "1", "spec_version": "1",
        "summary": {"miou": miou, "pq_things": pq, "sq_things": 0.8, "rq_things": 0.7, "pq_scene_things": None,
                    "binary_acc": 0.9, "binary_miou": 0.85, "ap50": float("nan")},
        "per_class": {"chair": {"iou": 0.5, "pq": 0.4, "tp": 3, "fp": 1, "fn": 0, "iou_sum": 2.4}},
        "per_scene": {"s0": {"miou": 0.6, "pq_things": 0.5, "num_frames": 2}},
        "counts": {"num_scenes": 1, "num_frames": 2},
    }


def _submit(store: ResultsStore, team_id: int, digest: str, method: str = "M", **kw) -> tuple:
    args = dict(team_id=team_id, method=method, content_hash=digest, size_bytes=10, filename="x.zip",
                stored_path=None, split="test", protocol="nerfseg-v1")
    args.update(kw)
    return store.create_submission(**args)


@pytest.fixture
def store(database: str, tmp_path: Path):
    """The same store tests on SQLite (always) and on PostgreSQL (when NERFSEG_TEST_PG_URL names a server)."""
    clock = Clock()
    if "://" in database:
        s = ResultsStore(database, tmp_path / "submissions", clock=clock)
    else:
        s = ResultsStore(database, clock=clock)
    s.test_clock = clock  # type: ignore[attr-defined]
    try:
        yield s
    finally:
        s.close()


def test_schema_is_created_and_migrations_are_recorded_once(tmp_path: Path) -> None:
    db = tmp_path / "lb.db"
    with ResultsStore(db) as s:
        assert s.schema_version() == LATEST_SCHEMA_VERSION
        assert s.submissions_dir == (tmp_path / "submissions").resolve()
    with ResultsStore(db) as s:  # reopening applies nothing again
        with s.engine.connect() as conn:
            versions = conn.execute(sa.select(VERSION_TABLE.c.version)).scalars().all()
        assert versions == [m.version for m in MIGRATIONS]


def test_old_schema_is_migrated_in_order(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    engine = make_engine(f"sqlite:///{db}")
    with engine.begin() as conn:  # a database written by a version that knew only step 1
        VERSION_TABLE.create(conn)
        MIGRATIONS[0].apply(conn)
        conn.execute(sa.insert(VERSION_TABLE).values(version=1, description="old", applied_at=0.0))
    engine.dispose()
    with ResultsStore(db) as s:
        assert s.schema_version() == LATEST_SCHEMA_VERSION
        indexes = {ix["name"] for ix in sa.inspect(s.engine).get_indexes("submissions")}
        assert "ix_submissions_status_created" in indexes


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "new.db"
    ResultsStore(db).close()
    engine = make_engine(f"sqlite:///{db}")
    with engine.begin() as conn:
        conn.execute(sa.insert(VERSION_TABLE).values(version=LATEST_SCHEMA_VERSION + 1, description="future",
                                                     applied_at=0.0))
    with pytest.raises(SchemaTooNewError, match="newer"):
        migrate(engine)
    engine.dispose()


def test_team_tokens_are_stored_only_as_hashes(store: ResultsStore, tmp_path: Path) -> None:
    team, token = store.add_team("red", daily_limit=3)
    assert len(token) >= 40 and store.team_by_token(token) == team
    assert store.team_by_token(token + "x") is None and store.team_by_token("") is None
    with store.engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT token_hash FROM teams")).scalar()
    assert stored == hash_token(token) and token not in stored
    if store.engine.dialect.name == "sqlite":
        store.close()
        assert token.encode() not in (tmp_path / "lb.db").read_bytes()
    with pytest.raises(StoreError, match="exists"):
        store.add_team("red")
    new = store.rotate_token("red")
    assert store.team_by_token(token) is None and store.team_by_token(new).name == "red"


def test_duplicates_are_recognised_not_recorded_twice(store: ResultsStore) -> None:
    team, _ = store.add_team("red")
    other, _ = store.add_team("blue")
    first, created = _submit(store, team.id, "h1")
    assert created and first.status == "queued" and first.method == "M"
    again, created = _submit(store, team.id, "h1", method="Renamed")
    assert not created and again.id == first.id
    assert _submit(store, team.id, "h1", split="val")[1]  # another split is another submission
    assert _submit(store, team.id, "h1", protocol="instance-nerf")[1]
    assert _submit(store, other.id, "h1")[1]  # another team too
    assert len(store.list_submissions()) == 4


def test_daily_limit_is_a_rolling_24_hours(store: ResultsStore) -> None:
    clock = store.test_clock  # type: ignore[attr-defined]
    team, _ = store.add_team("red")
    _submit(store, team.id, "a", daily_limit=2)
    clock.t += 3600
    _submit(store, team.id, "b", daily_limit=2)
    assert not _submit(store, team.id, "a", daily_limit=2)[1]  # a duplicate costs nothing
    with pytest.raises(DailyLimitExceeded) as exc:
        _submit(store, team.id, "c", daily_limit=2)
    assert exc.value.retry_after_s == pytest.approx(86400 - 3600)
    clock.t += 86400 - 3600 + 1  # the first one left the window
    assert _submit(store, team.id, "c", daily_limit=2)[1]
    store.set_daily_limit("red", 0)  # a team's own limit overrides the server's
    with pytest.raises(DailyLimitExceeded):
        _submit(store, team.id, "d", daily_limit=100)


def test_concurrent_identical_uploads_make_one_submission(store: ResultsStore) -> None:
    team, _ = store.add_team("red")
    results: list = []
    errors: list = []

    def go() -> None:
        try:
            results.append(_submit(store, team.id, "same", daily_limit=50))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=go) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors
    assert sum(created for _, created in results) == 1
    assert len({s.id for s, _ in results}) == 1 and len(store.list_submissions()) == 1


def test_lease_expiry_requeues_and_a_stale_worker_cannot_record(store: ResultsStore) -> None:
    clock = store.test_clock  # type: ignore[attr-defined]
    team, _ = store.add_team("red")
    sub, _ = _submit(store, team.id, "h")
    claimed = store.claim_next("w1", lease_seconds=10)
    assert claimed.id == sub.id and claimed.status == "running" and claimed.attempts == 1
    assert store.claim_next("w2", lease_seconds=10) is None  # nothing else queued
    clock.t += 5
    assert store.heartbeat(sub.id, "w1", 10)
    clock.t += 12  # w1 died: no heartbeat for longer than the lease
    again = store.claim_next("w2", lease_seconds=10)
    assert again.id == sub.id and again.attempts == 2 and again.worker_id == "w2"
    assert not store.heartbeat(sub.id, "w1", 10)
    assert not store.complete(sub.id, "w1", _report())  # the stale worker's result is dropped
    assert store.complete(sub.id, "w2", _report(pq=0.7))
    assert not store.complete(sub.id, "w2", _report())  # and nothing is counted twice
    assert store.get_submission(sub.id).status == "evaluated"
    assert store.report(sub.id)["summary"]["pq_things"] == 0.7
    assert store.check_consistency() == []


def test_a_submission_that_keeps_killing_workers_is_rejected(store: ResultsStore) -> None:
    clock = store.test_clock  # type: ignore[attr-defined]
    team, _ = store.add_team("red")
    sub, _ = _submit(store, team.id, "h")
    for i in range(3):
        assert store.claim_next(f"w{i}", lease_seconds=1, max_attempts=3).id == sub.id
        clock.t += 2
    assert store.claim_next("w9", lease_seconds=1, max_attempts=3) is None
    final = store.get_submission(sub.id)
    assert final.status == "rejected" and "did not finish after 3 attempts" in final.reasons[0]


def test_a_bad_report_writes_nothing(store: ResultsStore) -> None:
    team, _ = store.add_team("red")
    sub, _ = _submit(store, team.id, "h")
    store.claim_next("w1")
    with pytest.raises(StoreError, match="summary"):
        store.complete(sub.id, "w1", {"protocol": "nerfseg-v1"})
    with pytest.raises(StoreError, match="protocol"):
        store.complete(sub.id, "w1", _report(protocol="instance-nerf"))
    assert store.get_submission(sub.id).status == "running" and store.report(sub.id) is None


def test_leaderboard_keeps_protocols_apart_and_shows_the_latest_per_method(store: ResultsStore) -> None:
    clock = store.test_clock  # type: ignore[attr-defined]
    team, _ = store.add_team("red")
    for digest, pq, protocol in (("a", 0.3, "nerfseg-v1"), ("b", 0.6, "nerfseg-v1"), ("c", 0.9, "instance-nerf")):
        clock.t += 10
        sub, _ = store.record_finished(team_id=team.id, method="M", content_hash=digest, size_bytes=1,
                                       filename=None, stored_path=None, split="test", protocol=protocol,
                                       report=_report(pq=pq, protocol=protocol), meta={"uses_gt_masks": True})
    store.record_finished(team_id=team.id, method="Bad", content_hash="d", size_bytes=1, filename=None,
                          stored_path=None, split="test", protocol="nerfseg-v1", reasons=["scene s, frame 0: bad"])
    store.add_reported("Paper", "paper, Table 1", {"miou": 0.43, "pq_things": 0.324})
    rows = store.leaderboard("nerfseg-v1", "test", per_class=True)
    evaluated = [r for r in rows if not r.reported]
    assert [(r.method, r.values["pq_things"]) for r in evaluated] == [("M", 0.6)]
    assert evaluated[0].uses_gt_masks and evaluated[0].values["ap50"] is None  # NaN is stored as null
    assert evaluated[0].per_class["chair"]["iou"] == 0.5
    reported = [r for r in rows if r.reported]
    assert reported[0].source == "paper, Table 1" and reported[0].values["miou"] == 0.43
    assert [r.values["pq_things"] for r in store.leaderboard("instance-nerf", "test")] == [0.9]
    assert store.boards()[0] == ("nerfseg-v1", "test")
    detail = store.method_detail(evaluated[0].method_id)
    assert detail.per_scene["s0"]["num_frames"] == 2 and len(detail.history) == 2
    assert store.counts_by_status() == {"queued": 0, "running": 0, "evaluated": 3, "rejected": 1}
    assert store.check_consistency() == []
    with pytest.raises(StoreError, match="fraction"):
        store.add_reported("Paper", "x", {"miou": 43.0})


def test_worker_records_evaluated_rejected_and_internal_errors(store: ResultsStore, lb_benchmark: Path,
                                                               demo: dict[str, Path]) -> None:
    team, _ = store.add_team("red")
    for name in ("alpha", "broken", "crash"):
        _submit(store, team.id, name, method=name, stored_path=str(demo[name]))
    _submit(store, team.id, "gone", method="gone", stored_path=str(demo["alpha"].with_name("missing.zip")))
    worker = Worker(store, lb_benchmark, fake_evaluate, lease_seconds=5, poll_seconds=0.01)
    assert worker.run(exit_when_idle=0.0) == 4
    subs = {s.method: s for s in store.list_submissions()}
    assert subs["alpha"].status == "evaluated" and subs["alpha"].meta["method"] == "Alpha"
    broken = subs["broken"]
    assert broken.status == "rejected"
    assert any("tiny_000" in r and "0000" in r and "missing frame" in r for r in broken.reasons)
    assert any("not a PNG" in r for r in broken.reasons)
    crash = subs["crash"]
    assert crash.status == "rejected" and "internal evaluation error" in crash.reasons[0]
    assert str(lb_benchmark) not in crash.reasons[0]  # no server paths leak to the submitter
    assert subs["gone"].status == "rejected" and "missing on the server" in subs["gone"].reasons[0]
    assert store.check_consistency() == []
    with pytest.raises(Exception, match="benchmark"):
        Worker(store, lb_benchmark / "scenes", fake_evaluate)
