"""End to end through the front door: `nerfseg eval` on GT and prior submissions, worker-count invariance."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from nerfseg.evaluation.api import evaluate_submission
from nerfseg.evaluation.reference import write_prior_submission
from nerfseg.evaluation.submission import SubmissionError
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


@pytest.mark.parametrize("protocol", ["panoptic-lifting", "instance-nerf"])
def test_submission_with_3d_predictions_evaluates_under_every_protocol(tiny_benchmark: Path, tmp_path: Path, protocol: str) -> None:
    """The GT submission carries instances3d.h5: a protocol without 3D metrics scores its 2D part (it used to fail)."""
    out = tmp_path / "report.json"
    result = CliRunner().invoke(cli, ["eval", "--method", "gt", "--data", str(tiny_benchmark), "--protocol", protocol, "--json", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["summary"]["miou"] == pytest.approx(1.0)
    voxel = report["summary"].get("voxel_miou")
    assert voxel == pytest.approx(1.0) if protocol == "instance-nerf" else voxel is None


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


def test_semantic_only_report_blanks_every_instance_number(submission_copy: Path, tiny_benchmark: Path) -> None:
    """A semantic-only submission gets mIoU and binary metrics, and '-' for instance metrics in every table,
    per class and per scene included (its class regions are not instance claims)."""
    from nerfseg.evaluation.report import per_class_table, per_scene_table, summary_table

    meta_path = submission_copy / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "semantic_only": True}))
    report = evaluate_submission(tiny_benchmark, submission_copy)
    assert report["semantic_only"] and report["summary"]["miou"] == pytest.approx(1.0)
    assert report["summary"]["binary_acc"] == pytest.approx(1.0)
    assert report["summary"]["pq"] is None and report["summary"]["pq_scene"] is None
    for table in ("per_class", "per_scene"):
        for row in report[table].values():
            assert all(row.get(k) is None for k in ("pq", "sq", "rq", "pq_things", "pq_scene", "tp", "fp", "fn")), row
    assert all(v is None for v in report["details"]["pq_all"].values())
    assert "| gt | 100.0 | - | - | - | - |" in summary_table(report, "gt")
    assert "| bed | 100.0 | - | - | - | - | - | - |" in per_class_table(report)
    assert all(line.count(" - ") == 2 for line in per_scene_table(report).splitlines()[2:])
