"""``nerfseg reproduce``: rows run as ordinary run folders, share the grids' radiance field, resume, and the
table reports mean ± std over scenes with each row's time."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from nerfseg.baselines.reproduce import TABLES, format_table, reproduce, reproduce_table, row_stats
from nerfseg import spec
from nerfseg.errors import InputError
from tests.demo_bench import build_one_room_benchmark

#: tiny Instance-NeRF (its radiance part comes from the shared grid field) and tiny shared grids
TINY_INERF = {
    "field.num_levels": 3, "field.log2_table_size": 10, "field.base_resolution": 4, "field.max_resolution": 16, "field.hidden": 16,
    "stage1_steps": 4, "stage2_steps": 2, "batch_rays": 128, "checkpoint_every": 0, "device": "cpu",
}
TINY_GRID = {"steps": 12, "batch_rays": 256, "num_levels": 4, "log2_table_size": 12, "base_resolution": 8, "max_resolution": 32,
             "march_resolution": 32, "occ_resolution": 16, "occ_warmup_steps": 4, "occ_update_every": 4, "log_every": 4,
             "checkpoint_every": 0, "resolution": 16, "eval_views": 0, "device": "cpu"}


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("repro")
    return build_one_room_benchmark(root, width=48, height=36, focal=30.0, num_views=12, grid_resolution=16, priors=("sim-m2f",))


def test_row_stats_and_table_by_hand() -> None:
    report = {"per_scene": {"a": {"miou": 0.2, "pq_things": 0.1, "pq_scene_things": None}, "b": {"miou": 0.4, "pq_things": 0.3, "pq_scene_things": None}}}
    st = row_stats(report)
    assert st["miou"]["mean"] == pytest.approx(30.0) and st["miou"]["std"] == pytest.approx(10.0) and (st["miou"]["min"], st["miou"]["max"]) == pytest.approx((20.0, 40.0))
    assert st["pq_scene_things"]["mean"] is None
    text = format_table(1, [{"name": "x", "stats": st, "seconds": 90.0}])
    assert "| x | 30.0 ± 10.0 (20.0-40.0) | 20.0 ± 10.0 (10.0-30.0) | - | 1.5 min |" in text
    assert [r.folder for r in TABLES[2]][-1] == "instance-nerf"  # Table 2's full row is Table 1's run


def test_reproduce_rows_share_the_grid_field_and_resume(bench: Path, tmp_path: Path) -> None:
    out = tmp_path / "t1"
    logs: list[str] = []
    res = reproduce_table(1, bench, out, split="train", rows=["prior2d", "instance-nerf-oracle"], method_overrides={"instance-nerf": TINY_INERF},
                          grid_overrides=TINY_GRID, log=logs.append)
    sid = spec.scenes_in_split(bench, "train")[0]
    assert [r["folder"] for r in res["rows"]] == ["prior2d", "instance-nerf-oracle"]
    assert res["rows"][1]["uses_gt"] and res["rows"][0]["stats"]["miou"]["scenes"] == 1
    # the Instance-NeRF row reused the field that `nerfseg grids` trained for the scene
    summary = json.loads((out / "instance-nerf-oracle" / "train_log.jsonl").read_text().splitlines()[-1])
    assert summary["radiance_source"] == "nerfseg grids" and (bench / "radiance" / sid / "checkpoint.pt").exists()
    assert (out / "table1.md").read_text().startswith("Table 1") and json.loads((out / "table1.json").read_text())["rows"][0]["name"] == "prior2d"
    recorded = json.loads((bench / "radiance" / sid / "grid.json").read_text())
    table_json = json.loads((out / "table1.json").read_text())
    assert table_json["grids_recorded_seconds"] == pytest.approx(recorded["wall_train_seconds"] + recorded["export_seconds"])
    assert "as their grid.json records" in (out / "table1.md").read_text()
    state = json.loads((out / "reproduce.json").read_text())
    first = state["rows"]["instance-nerf-oracle"]["seconds"]
    assert first > 0 and state["rows"]["prior2d"]["finished"]
    # resume: nothing is refit, the time only grows by the skip
    logs.clear()
    reproduce_table(1, bench, out, split="train", rows=["instance-nerf-oracle"], method_overrides={"instance-nerf": TINY_INERF}, grid_overrides=TINY_GRID, log=logs.append)
    assert any("skipped (resume)" in line for line in logs) and any("grid up to date" in line for line in logs)
    again = json.loads((out / "reproduce.json").read_text())["rows"]["instance-nerf-oracle"]["seconds"]
    assert first <= again < first + 30
    with pytest.raises(InputError, match="unknown rows"):
        reproduce_table(2, bench, out, split="train", rows=["prior2d"])


def test_cli_parses_method_settings(bench: Path, tmp_path: Path) -> None:
    res = CliRunner().invoke(reproduce, ["--table", "1", "--data", str(bench), "--split", "train", "--out", str(tmp_path / "o"), "--set", "nocolon=1"])
    assert res.exit_code == 2 and "METHOD:KEY=VALUE" in res.output
    res = CliRunner().invoke(reproduce, ["--table", "1", "--data", str(bench), "--split", "train", "--out", str(tmp_path / "o"), "--row", "prior2d"])
    assert res.exit_code == 0, res.output
    assert "| prior2d |" in res.output


def test_dm_nerf_row_learns_on_the_shared_field_unless_told_otherwise(bench: Path, tmp_path: Path) -> None:
    tiny_dm = {k: v for k, v in TINY_GRID.items() if k not in ("resolution", "eval_views")} | {"max_objects": 4, "head_hidden": 8, "vote_views": 1, "steps": 6}
    out = tmp_path / "t1"
    reproduce_table(1, bench, out, split="train", rows=["dm-nerf"], method_overrides={"dm-nerf": tiny_dm}, grid_overrides=TINY_GRID, log=lambda *_: None)
    sid = spec.scenes_in_split(bench, "train")[0]
    config = json.loads((out / "dm-nerf" / "config.json").read_text())["config"]
    assert config["shared_field"] is True and config["radiance"]["steps"] == 6  # --set wins over the row's default budget
    marker = json.loads((out / "dm-nerf" / "scenes" / sid / "predictions.done").read_text())
    assert marker["inputs"]["method_inputs"]["shared_radiance"]  # the grids' field, hashed into the run
    # a --set may change the row's recipe: DM-NeRF trains its own field again
    own = tmp_path / "own"
    reproduce_table(1, bench, own, split="train", rows=["dm-nerf"], method_overrides={"dm-nerf": tiny_dm | {"shared_field": False}},
                    grid_overrides=TINY_GRID, log=lambda *_: None)
    assert json.loads((own / "dm-nerf" / "config.json").read_text())["config"]["shared_field"] is False
    assert not (own / "reproduce.json").exists() or "grids_seconds" not in json.loads((own / "reproduce.json").read_text())
