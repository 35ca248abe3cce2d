"""End to end through the front door: `nerfseg eval` on GT and prior submissions, worker-count invariance."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from evaluation.api import evaluate_submission
from evaluation.reference import write_prior_submission
from evaluation.submission import SubmissionError
from nerfseg.cli import cli
from nerfseg.methods import run_method


def test_eval_gt_is_perfect(tiny_benchmark: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    result = CliRunner().invoke(cli, ["eval", "--method", "gt", "--data", str(tiny_benchmark), "--json", str(out), "--plots", str(tmp_path / "plots")])
    assert result.exit_code == 0, result.output
    assert "| gt | 100.0 | 100.0 |" in result.output
    report = json.loads(out.read_text())
    assert report["summary"]["pq_things"] == pytest.approx(1.0)
    assert (tmp_path / "plots" / "per_class.png").exists()


def test_prior_row_is_inconsistent_across_views(tiny_benchmark: Path, tmp_path: Path) -> None:
    sub = write_prior_submission(tiny_benchmark, "gt", tmp_path / "prior")
    one = evaluate_submission(tiny_benchmark, sub, workers=1)
    two = evaluate_submission(tiny_benchmark, sub, workers=2)
    # the gt prior is the GT with ids permuted per view: per-frame PQ is perfect, PQ^scene is not
    assert one["summary"]["pq_things"] == pytest.approx(1.0)
    assert one["summary"]["pq_scene"] < 0.9
    assert one["summary"] == two["summary"]


def test_method_runner_writes_a_valid_submission(tiny_benchmark: Path, tmp_path: Path) -> None:
    sub = run_method("prior2d", tiny_benchmark, tmp_path / "run", prior="gt", log=lambda *_: None)
    assert (tmp_path / "run" / "config.json").exists()
    report = evaluate_submission(tiny_benchmark, sub)
    assert report["method"] == "prior2d" and report["summary"]["pq_things"] == pytest.approx(1.0)
    # resume: a second run skips finished scenes but still yields the same submission
    logs: list[str] = []
    run_method("prior2d", tiny_benchmark, tmp_path / "run", prior="gt", log=logs.append)
    assert all("skipped" in line for line in logs)


def test_invalid_submission_lists_problems(tiny_benchmark: Path, tmp_path: Path) -> None:
    sub = write_prior_submission(tiny_benchmark, "gt", tmp_path / "prior")
    next(sub.glob("*/panoptic/*.png")).unlink()
    with pytest.raises(SubmissionError, match="missing"):
        evaluate_submission(tiny_benchmark, sub)
    result = CliRunner().invoke(cli, ["eval", "--method", "x", "--data", str(tiny_benchmark), "--predictions", str(sub)])
    assert result.exit_code != 0
