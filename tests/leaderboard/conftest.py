"""Session fixtures for the leaderboard tests: a tiny benchmark, its GT submission and demo archives."""

from __future__ import annotations

from pathlib import Path

import pytest

from nerfseg.evaluation.reference import write_gt_submission
from tests.evaluation.fixtures import make_tiny_benchmark
from tests.leaderboard.helpers import make_variant, scores


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
