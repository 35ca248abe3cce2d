"""Run folders that know what made them, and benchmark identity (issue 13, cases 1-3).

A re-run with other inputs must never relabel old predictions: it refuses (default) or retrains; meta.json
and config.json describe the predictions that are in the submission; a run on the `gt` prior is flagged.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from nerfseg.evaluation.api import evaluate_submission
from nerfseg import runs, spec
from nerfseg.cli import cli
from nerfseg.errors import InputError
from nerfseg.identity import IDENTITY_KEY, benchmark_identity, gt_fingerprint, write_identity
from nerfseg.methods import run_method
from tests.evaluation.fixtures import make_tiny_benchmark


def quiet(*_: object) -> None:
    pass


@pytest.fixture
def bench(tmp_path: Path) -> Path:
    """Two test scenes with two priors: `gt` (flagged) and a `sim-m2f` stand-in (permuted GT, not flagged)."""
    return make_tiny_benchmark(tmp_path / "bench", priors=("gt", "sim-m2f"))


def _meta(sub: Path) -> dict:
    return json.loads((sub / spec.META_JSON).read_text())


def _marker(run: Path, sid: str) -> dict:
    marker = runs.read_marker(run / "scenes" / sid / runs.DONE_MARKER)
    assert marker is not None
    return marker


def test_gt_prior_run_is_flagged_and_records_its_inputs(bench: Path, tmp_path: Path) -> None:
    sub = run_method("prior2d", bench, tmp_path / "gt-run", prior="gt", log=quiet)
    meta = _meta(sub)
    assert meta["uses_gt_masks"] is True and meta["prior"] == "gt"
    assert any("prior 'gt'" in s for s in meta["gt_sources"])
    ident = benchmark_identity(bench)
    assert meta["benchmark"] == ident.to_json()
    for sid in spec.scenes_in_split(bench, "test"):
        marker = _marker(tmp_path / "gt-run", sid)
        assert marker["inputs"]["prior"] == "gt" and marker["inputs"]["benchmark"] == ident.fingerprint
        assert marker["fingerprint"] == runs.fingerprint(marker["inputs"]) and marker["uses_gt_masks"] is True
        assert meta["run_fingerprints"][sid] == marker["fingerprint"]
    # the evaluator carries the flag and the benchmark into the report
    report = evaluate_submission(bench, sub)
    assert report["meta"]["uses_gt_masks"] is True and report["benchmark"]["fingerprint"] == ident.fingerprint
    # a prior that is not made from the GT is not flagged
    other = _meta(run_method("prior2d", bench, tmp_path / "sim-run", prior="sim-m2f", log=quiet))
    assert other["uses_gt_masks"] is False and "gt_sources" not in other


def test_rerun_with_another_prior_refuses_and_keeps_the_old_labels(bench: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    sub = run_method("prior2d", bench, run, prior="sim-m2f", log=quiet)
    meta, config = _meta(sub), (run / "config.json").read_text()
    with pytest.raises(InputError) as err:
        run_method("prior2d", bench, run, prior="gt", log=quiet)
    text = str(err.value)
    assert "prior: 'sim-m2f' -> 'gt'" in text and "--on-change retrain" in text and "--out" in text
    assert _meta(sub) == meta and (run / "config.json").read_text() == config  # nothing relabelled
    # through the CLI: a one-line error, exit code 2
    result = CliRunner().invoke(cli, ["train", "--method", "prior2d", "--data", str(bench), "--out", str(run),
                                      "--prior", "gt"])
    assert result.exit_code != 0 and "refusing to mix" in str(result.exception)
    assert _meta(sub)["prior"] == "sim-m2f"


def test_rerun_with_another_prior_retrains_when_asked(bench: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    run_method("prior2d", bench, run, prior="sim-m2f", log=quiet)
    logs: list[str] = []
    sub = run_method("prior2d", bench, run, prior="gt", log=logs.append, on_change="retrain")
    scenes = spec.scenes_in_split(bench, "test")
    assert sum("retraining" in line and "prior: 'sim-m2f' -> 'gt'" in line for line in logs) == len(scenes)
    meta = _meta(sub)
    assert meta["prior"] == "gt" and meta["uses_gt_masks"] is True
    assert json.loads((run / "config.json").read_text())["prior"] == "gt"
    assert all(_marker(run, sid)["inputs"]["prior"] == "gt" for sid in scenes)
    # and a third run with the same inputs skips everything
    logs.clear()
    run_method("prior2d", bench, run, prior="gt", log=logs.append)
    assert logs and all("skipped" in line for line in logs)


def test_a_changed_preset_or_benchmark_is_detected(bench: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    run_method("prior2d", bench, run, prior="gt", log=quiet)
    with pytest.raises(InputError, match="preset: 'mini' -> 'paper'"):
        run_method("prior2d", bench, run, prior="gt", preset="paper", log=quiet)
    # the GT of a test scene changes: another benchmark, the old predictions are not silently reused
    sid = spec.scenes_in_split(bench, "test")[0]
    pan = spec.scene_dir(bench, sid) / spec.PANOPTIC_JSON
    pan.write_text(json.dumps({**json.loads(pan.read_text()), "edited": True}))
    with pytest.raises(InputError, match="benchmark: "):
        run_method("prior2d", bench, run, prior="gt", log=quiet)


def test_subset_rerun_never_ships_scenes_of_other_inputs(bench: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    first, second = spec.scenes_in_split(bench, "test")
    run_method("prior2d", bench, run, prior="sim-m2f", log=quiet)
    # refuse also looks at the scenes already in the submission, not only the requested ones
    with pytest.raises(InputError, match=second):
        run_method("prior2d", bench, run, scenes=[first], prior="gt", log=quiet)
    sub = run_method("prior2d", bench, run, scenes=[first], prior="gt", log=quiet, on_change="retrain")
    assert sorted(p.name for p in sub.iterdir() if p.is_dir()) == [first]  # the sim-m2f scene left the submission
    assert _meta(sub)["prior"] == "gt" and list(_meta(sub)["run_fingerprints"]) == [first]
    # --no-resume retrains the requested scene only; a scene of the same inputs outside the request stays
    run_method("prior2d", bench, run, scenes=[second], prior="gt", log=quiet, on_change="retrain")
    run_method("prior2d", bench, run, scenes=[first], prior="gt", log=quiet, resume=False)
    assert sorted(p.name for p in sub.iterdir() if p.is_dir()) == [first, second]
    assert list(_meta(sub)["run_fingerprints"]) == [first, second]


def test_a_run_killed_while_retraining_leaves_no_meta(bench: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nerfseg.baselines.prior2d import Prior2D

    run = tmp_path / "run"
    sub = run_method("prior2d", bench, run, prior="sim-m2f", log=quiet)
    calls = {"n": 0}
    real = Prior2D.predict

    def dies_on_second_scene(self, scene, work_dir):  # noqa: ANN001, ANN202
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(self, scene, work_dir)

    monkeypatch.setattr(Prior2D, "predict", dies_on_second_scene)
    with pytest.raises(KeyboardInterrupt):
        run_method("prior2d", bench, run, prior="gt", log=quiet, on_change="retrain")
    # one scene is gt, the other still sim-m2f: no meta.json, so this half-state cannot be evaluated as either
    assert not (sub / spec.META_JSON).exists()
    monkeypatch.setattr(Prior2D, "predict", real)
    logs: list[str] = []
    run_method("prior2d", bench, run, prior="gt", log=logs.append, on_change="retrain")
    assert sum("skipped" in line for line in logs) == 1 and _meta(sub)["prior"] == "gt"


def test_markers_of_an_older_nerfseg_are_not_trusted(bench: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    run_method("prior2d", bench, run, prior="gt", log=quiet)
    sid = spec.scenes_in_split(bench, "test")[0]
    (run / "scenes" / sid / runs.DONE_MARKER).write_text(json.dumps({"frames": 2}))  # what 0.1 wrote
    with pytest.raises(InputError, match="older nerfseg"):
        run_method("prior2d", bench, run, prior="gt", log=quiet)


def test_classify_resumes_only_a_run_of_the_same_inputs(tmp_path: Path) -> None:
    work, out = tmp_path / "work", tmp_path / "out"
    work.mkdir()
    a, b = {"prior": "gt", "config": {"steps": 5}}, {"prior": "gt", "config": {"steps": 6}}
    assert runs.classify(work, out, a).action == runs.FRESH
    runs.write_started(work, a)
    assert runs.classify(work, out, a).action == runs.RESUME
    changed = runs.classify(work, out, b)
    assert changed.action == runs.CHANGED and changed.changes == ["config.steps: 5 -> 6"]
    out.mkdir()
    runs.write_done(work, a, frames=2, uses_gt_masks=False)
    assert runs.classify(work, out, a).action == runs.DONE
    assert runs.classify(work, out, a, resume=False).action == runs.FRESH
    assert runs.classify(work, out, b).action == runs.CHANGED


# ---------------------------------------------------------------------------------------------
# benchmark identity


def test_identity_follows_the_ground_truth_not_the_priors(bench: Path) -> None:
    before = benchmark_identity(bench)
    assert not before.stored and len(before.fingerprint) == 64 and before.name.startswith("tiny (")
    stored = write_identity(bench)
    assert stored.fingerprint == before.fingerprint and benchmark_identity(bench).stored
    assert json.loads((bench / spec.BENCHMARK_JSON).read_text())[IDENTITY_KEY]["num_gt_files"] > 0
    sid = spec.scenes_in_split(bench, "test")[0]
    prior_png = next((spec.scene_dir(bench, sid) / spec.PRIORS_DIR / "gt" / spec.PANOPTIC_DIR).glob("*.png"))
    prior_png.write_bytes(prior_png.read_bytes() + b"\0")  # a regenerated prior: same benchmark
    assert gt_fingerprint(bench)[0] == before.fingerprint
    gt_png = next((spec.scene_dir(bench, sid) / spec.SEMANTIC_DIR).glob("*.png"))
    gt_png.write_bytes(gt_png.read_bytes() + b"\0")  # an edited GT map: another benchmark
    assert gt_fingerprint(bench)[0] != before.fingerprint
    assert benchmark_identity(bench).fingerprint == before.fingerprint  # the stored value ...
    with pytest.raises(InputError, match="does not match the files"):
        benchmark_identity(bench, verify=True)  # ... is caught by a check


def test_benchmark_id_command(bench: Path) -> None:
    runner = CliRunner()
    shown = runner.invoke(cli, ["benchmark-id", "--data", str(bench)])
    assert shown.exit_code == 0 and "gt_fingerprint: " in shown.output and "has no stored identity" in shown.output
    written = runner.invoke(cli, ["benchmark-id", "--data", str(bench), "--write", "--name", "tiny test bench"])
    assert written.exit_code == 0, written.output
    assert json.loads((bench / spec.BENCHMARK_JSON).read_text())[IDENTITY_KEY]["name"] == "tiny test bench"
    checked = runner.invoke(cli, ["benchmark-id", "--data", str(bench), "--check"])
    assert checked.exit_code == 0 and "name: tiny test bench" in checked.output


def test_build_stores_the_identity(tmp_path: Path) -> None:
    from nerfseg.dataset_tools.build import build_dataset, preset_config
    from nerfseg.dataset_tools.demo import write_demo_dataset

    src = write_demo_dataset(tmp_path / "src", num_rooms=2, seed=5)
    cfg = preset_config("mini", width=40, height=30, focal=25.0, num_views=8, grid_resolution=16, priors=())
    build_dataset(tmp_path / "b", src.front3d_dir, src.future_dir, src.texture_dir, cfg, show_progress=False,
                  name="nerfseg-demo")
    rec = json.loads((tmp_path / "b" / spec.BENCHMARK_JSON).read_text())[IDENTITY_KEY]
    assert rec["name"] == "nerfseg-demo (2 scenes, mini, seed 0)"
    assert rec["gt_fingerprint"] == gt_fingerprint(tmp_path / "b")[0] and rec["num_gt_files"] > 0
    assert benchmark_identity(tmp_path / "b", verify=True).stored


def test_radiance_methods_fitted_to_gt_depth_are_flagged(bench: Path) -> None:
    """docs/contract.md: a method that reads the train views' GT depth is flagged like one that reads GT masks."""
    from nerfseg.baselines.dm_nerf import DMNeRF
    from nerfseg.baselines.semantic_nerf import SemanticNeRF
    from nerfseg.methods import SceneData

    sid = spec.scenes_in_split(bench, "test")[0]
    scene = SceneData(spec.scene_dir(bench, sid), "sim-m2f")
    for cls in (SemanticNeRF, DMNeRF):
        assert cls(cls.make_config("mini")).gt_sources(scene) == []
        flagged = cls(cls.make_config("mini", depth_weight=0.02)).gt_sources(scene)
        assert len(flagged) == 1 and "GT depth" in flagged[0]


def test_instance_nerf_reusing_a_gt_depth_field_is_flagged(bench: Path) -> None:
    """Instance-NeRF builds on the `nerfseg grids` field when one exists: that field's settings decide the flag,
    not the method's own (unused) radiance settings."""
    import torch

    from nerfseg.instance_nerf.grids import CHECKPOINT, radiance_dir
    from nerfseg.instance_nerf.method import InstanceNeRF
    from nerfseg.methods import SceneData
    from nerfseg.radiance.config import preset as radiance_preset

    sid = spec.scenes_in_split(bench, "test")[0]
    scene = SceneData(spec.scene_dir(bench, sid), "sim-m2f")
    method = InstanceNeRF(InstanceNeRF.make_config("mini"))
    assert method.gt_sources(scene) == []
    shared = radiance_dir(bench, sid) / CHECKPOINT
    shared.parent.mkdir(parents=True)
    torch.save({"config": radiance_preset("mini").replace(depth_weight=0.02).to_dict(), "field": {}}, shared)
    flagged = method.gt_sources(scene)
    assert len(flagged) == 1 and "GT depth" in flagged[0]
    torch.save({"config": radiance_preset("mini").to_dict(), "field": {}}, shared)
    assert method.gt_sources(scene) == []
    # its own settings with depth are not what it used while the shared field exists
    assert InstanceNeRF(InstanceNeRF.make_config("mini", depth_weight=0.02)).gt_sources(scene) == []
