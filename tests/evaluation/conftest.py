"""Fixtures for evaluation tests: a tiny benchmark (built once per session) and submissions made from it."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from nerfseg.evaluation.reference import write_gt_submission
from tests.evaluation.fixtures import make_tiny_benchmark


@pytest.fixture(scope="session")
def tiny_benchmark(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two test scenes, six views each (test views 0000 and 0003), 32x24 pixels. Treat as read-only."""
    return make_tiny_benchmark(tmp_path_factory.mktemp("tiny_benchmark"))


@pytest.fixture(scope="session")
def gt_submission(tiny_benchmark: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The GT of the tiny benchmark's test split as a submission folder. Treat as read-only."""
    return write_gt_submission(tiny_benchmark, tmp_path_factory.mktemp("gt_submission") / "gt")


@pytest.fixture
def submission_copy(gt_submission: Path, tmp_path: Path) -> Path:
    """A private, writable copy of the GT submission, for tests that break it."""
    return Path(shutil.copytree(gt_submission, tmp_path / "submission"))


@pytest.fixture
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Route temporary extraction folders to a folder of our own, so tests can see that they are removed."""
    tmp = tmp_path / "systmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    return tmp
