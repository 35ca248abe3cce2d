"""Fixtures for the leaderboard tests: a tiny benchmark, its GT submission and demo archives (per session), and
an empty database on SQLite or PostgreSQL (per test)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Iterator

import pytest
import sqlalchemy as sa

from nerfseg.evaluation.reference import write_gt_submission
from tests.evaluation.fixtures import make_tiny_benchmark
from tests.leaderboard.helpers import make_variant, scores

PG_URL = os.environ.get("NERFSEG_TEST_PG_URL")  # e.g. postgresql+psycopg://postgres@127.0.0.1:5432/postgres


@pytest.fixture(scope="session")
def lb_benchmark(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two test scenes, six views (two test views) each, 32x24 pixels; read-only."""
    return make_tiny_benchmark(tmp_path_factory.mktemp("lb_benchmark"))


@pytest.fixture(scope="session")
def lb_gt(lb_benchmark: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_gt_submission(lb_benchmark, tmp_path_factory.mktemp("lb_gt") / "gt", with_3d=False)


@pytest.fixture(scope="session")
def demo(lb_gt: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Archives: two good methods, a semantic-only one, a broken one (validator problems), a crashing one."""
    d = tmp_path_factory.mktemp("lb_demo")
    return {
        "alpha": make_variant(lb_gt, d / "alpha", "Alpha", scores(0.40, 0.50)),
        "beta": make_variant(lb_gt, d / "beta", "Beta", scores(0.55, 0.45)),
        "beta2": make_variant(lb_gt, d / "beta2", "Beta", scores(0.60, 0.47)),
        "semantic": make_variant(lb_gt, d / "semantic", "SemOnly", scores(0.0, 0.52), semantic_only=True),
        "broken": make_variant(lb_gt, d / "broken", "Broken", scores(0.1, 0.1), broken=True),
        "crash": make_variant(lb_gt, d / "crash", "Crash", scores(0.1, 0.1), crash=True),
        "alpha_tgz": make_variant(lb_gt, d / "alpha_tgz", "Alpha", scores(0.40, 0.50), archive=".tar.gz"),
    }


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database: an SQLite file, or a fresh PostgreSQL database (dropped afterwards) when
    NERFSEG_TEST_PG_URL names a server (scripts/start_postgres.sh starts a throw-away one)."""
    if request.param == "sqlite":
        yield str(tmp_path / "lb.db")
        return
    if not PG_URL:
        pytest.skip("set NERFSEG_TEST_PG_URL to a PostgreSQL server to run the store tests on PostgreSQL")
    pytest.importorskip("psycopg", reason="psycopg not installed")
    name = f"nerfseg_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield sa.engine.make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()
