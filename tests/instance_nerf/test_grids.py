"""``nerfseg grids``: radiance grids from trained fields for every scene, atomic, resumable, reused by the method."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from nerfseg.instance_nerf.cli import grids as grids_command
from nerfseg.instance_nerf.grids import (
    GRID_RECORD,
    build_grids,
    feature_file,
    grid_is_current,
    grid_settings,
    load_radiance,
    radiance_dir,
)
from nerfseg import spec
from nerfseg.errors import InputError
from nerfseg.radiance.export import grid_shape
from tests.demo_bench import build_one_room_benchmark

TINY = dict(steps=6, batch_rays=128, num_levels=3, log2_table_size=10, base_resolution=4, max_resolution=16, march_resolution=24,
            occ_resolution=8, occ_warmup_steps=2, occ_update_every=2, log_every=2, checkpoint_every=0)


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("grids")
    return build_one_room_benchmark(root, width=32, height=24, focal=20.0, num_views=8, grid_resolution=16, priors=())


def test_presets_and_overrides() -> None:
    mini, paper = grid_settings("mini"), grid_settings("paper")
    assert mini.resolution == 64 and paper.resolution == 256 and paper.radiance.steps == 30000 and mini.radiance.steps < paper.radiance.steps
    s = grid_settings("mini", resolution=20, steps=5, **{"radiance.lr": 0.1})
    assert s.resolution == 20 and s.radiance.steps == 5 and s.radiance.lr == 0.1
    with pytest.raises(InputError):
        grid_settings("mini", nonsense=1)
    with pytest.raises(InputError):
        grid_settings("big")


def test_build_grids_writes_resumes_and_reloads(bench: Path) -> None:
    settings = grid_settings("mini", resolution=12, device="cpu", eval_views=1, **TINY)
    logs: list[str] = []
    recs = build_grids(bench, settings, log=logs.append)
    sid = spec.scenes_in_split(bench, "train")[0]
    assert [r["scene"] for r in recs] == [sid] and not recs[0]["skipped"]
    info = spec.load_scene_info(spec.scene_dir(bench, sid))
    with np.load(feature_file(bench, sid)) as d:
        grid = d["rgbsigma"]
        assert grid.shape == (*grid_shape(info.room_bbox, 12), 4) and grid.dtype == np.float32
        assert 0 <= grid[..., 3].min() and grid[..., 3].max() <= 1
        np.testing.assert_allclose(d["bbox_min"], info.room_bbox[0])
    rec = json.loads((radiance_dir(bench, sid) / GRID_RECORD).read_text())
    assert rec["radiance_steps"] == TINY["steps"] and rec["settings"]["resolution"] == 12 and np.isfinite(rec["test_psnr"])
    assert 0.0 <= rec["test_opacity"] <= 1.0
    assert grid_is_current(bench, sid, settings)
    # up to date: skipped without touching the file
    stamp = feature_file(bench, sid).stat().st_mtime_ns
    assert build_grids(bench, settings, log=logs.append)[0]["skipped"] and feature_file(bench, sid).stat().st_mtime_ns == stamp
    # another resolution re-exports from the stored field (no retraining: same radiance config)
    other = grid_settings("mini", resolution=10, device="cpu", eval_views=0, **TINY)
    assert not grid_is_current(bench, sid, other)
    rec2 = build_grids(bench, other, log=logs.append)[0]
    assert not rec2["skipped"] and rec2["wall_train_seconds"] < 5 and np.load(feature_file(bench, sid))["rgbsigma"].shape[:3] == grid_shape(info.room_bbox, 10)
    # the stored field reloads with identical weights
    trainer = load_radiance(radiance_dir(bench, sid) / "checkpoint.pt", spec.scene_dir(bench, sid))
    state = torch.load(radiance_dir(bench, sid) / "checkpoint.pt", weights_only=False)
    assert all(torch.equal(state["field"][k], v) for k, v in trainer.field.state_dict().items())


def test_cli_and_errors(bench: Path) -> None:
    sets = [f"--set={k}={v}" for k, v in TINY.items()]
    res = CliRunner().invoke(grids_command, ["--data", str(bench), "--device", "cpu", "--set", "resolution=8", "--set", "eval_views=0", *sets])
    assert res.exit_code == 0, res.output
    assert "1 grids" in res.output
    # --split picks the split's scenes (the one train room, now up to date); an empty split is an error
    base = ["--data", str(bench), "--device", "cpu", "--set", "resolution=8", "--set", "eval_views=0", *sets]
    res = CliRunner().invoke(grids_command, [*base, "--split", "train"])
    assert res.exit_code == 0 and "1 grids (0 built, 1 up to date)" in res.output, res.output
    res = CliRunner().invoke(grids_command, [*base, "--split", "test"])
    assert res.exit_code == 2 and "no scenes in split(s) test" in res.output
    with pytest.raises(InputError):
        build_grids(bench, grid_settings("mini"), scenes=["no_such_scene"])
    with pytest.raises(InputError):
        build_grids(bench, grid_settings("mini"), executor="threads")


def test_never_pruned_budget_is_refused_and_settings_are_compared(bench: Path, tmp_path: Path) -> None:
    """A budget that ends before the first occupancy update (README's old `--set steps=200` at mini) is
    refused before any training; train/val grids of mixed settings are refused; a detector trained on grids
    of other settings than a scene's is reported."""
    from nerfseg.instance_nerf.grids import detector_grid_mismatch, recorded_grid_settings

    mini = grid_settings("mini")
    assert mini.radiance.first_occupancy_update() == 208 and mini.radiance.steps >= 208
    with pytest.raises(InputError, match=r"steps=200 ends before the first occupancy update \(after step 208"):
        build_grids(bench, grid_settings("mini", steps=200, device="cpu"))
    with pytest.raises(InputError, match="never pruned"):
        build_grids(bench, grid_settings("mini", resolution=8, device="cpu", **{**TINY, "steps": 1, "occ_warmup_steps": 2}))
    # recorded settings: one scene gridded (previous test or now), then compared with a fake second record
    sid = spec.scenes_in_split(bench, "train")[0]
    settings = grid_settings("mini", resolution=12, device="cpu", eval_views=0, **TINY)
    build_grids(bench, settings, log=lambda _: None)
    assert recorded_grid_settings(bench, [sid]) == settings.record()
    other_root = tmp_path / "other"
    rec = json.loads((radiance_dir(bench, sid) / GRID_RECORD).read_text())
    for name, steps in (("a", 6), ("b", 300)):
        (radiance_dir(other_root, name)).mkdir(parents=True)
        r = json.loads(json.dumps(rec))
        r["settings"]["radiance"]["steps"] = steps
        (radiance_dir(other_root, name) / GRID_RECORD).write_text(json.dumps(r))
    with pytest.raises(InputError, match="2 different settings"):
        recorded_grid_settings(other_root, ["a", "b"])
    run = tmp_path / "rcnn"
    run.mkdir()
    (run / "summary.json").write_text(json.dumps({"grid_settings": recorded_grid_settings(other_root, ["b"])}))
    msg = detector_grid_mismatch(run / "checkpoint_best.pt", bench, sid)
    assert msg and "steps 300 vs 6" in msg
    (run / "summary.json").write_text(json.dumps({"grid_settings": settings.record()}))
    assert detector_grid_mismatch(run / "checkpoint_best.pt", bench, sid) is None
