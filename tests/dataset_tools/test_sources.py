"""Scene-source registry: names, options, plugins, the CLI spellings, and a non-3D-FRONT source built end to end."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from nerfseg import spec
from nerfseg.cli import cli
from nerfseg.dataset_tools import sources
from nerfseg.dataset_tools.build import BuildConfig, Plan, SceneJob, build_from_source, preset_config
from nerfseg.dataset_tools.sources import DemoSource, Front3DSource, LoadedScene, get_source, register_source, source_names
from nerfseg.errors import InputError
from tests.dataset_tools.scenes import DEFAULT_OBJECTS, make_box_room


def test_builtin_sources_are_registered_and_built_from_options(tmp_path: Path) -> None:
    assert {"3d-front", "demo"} <= set(source_names())
    demo = get_source("demo", rooms="3")  # command-line options arrive as strings
    assert isinstance(demo, DemoSource) and demo.rooms == 3 and demo.label == "demo"
    (tmp_path / "front").mkdir()
    (tmp_path / "future").mkdir()
    front = get_source("3d-front", front3d=str(tmp_path / "front"), future=str(tmp_path / "future"), houses="a,b")
    assert isinstance(front, Front3DSource) and front.houses == ["a", "b"] and front.texture_dir is None and front.label == "3D-FRONT"


def test_unknown_source_and_option_say_what_exists(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"unknown scene source '3dfront'; did you mean '3d-front'\?"):
        get_source("3dfront")
    with pytest.raises(InputError, match=r"has no option 'room'; did you mean 'rooms'\?"):
        get_source("demo", room=2)
    with pytest.raises(InputError, match=r"needs option\(s\) future"):
        get_source("3d-front", front3d=str(tmp_path))
    with pytest.raises(InputError, match="must be >= 1"):
        get_source("demo", rooms="0")
    with pytest.raises(InputError, match="not a folder"):
        get_source("3d-front", front3d=str(tmp_path / "missing"), future=str(tmp_path))


def test_registering_a_taken_name_needs_replace() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_source("demo", sources.demo_source)


# --- a second data source, built through the whole pipeline ------------------------------------


def load_box_room(job: SceneJob) -> LoadedScene:
    """Module level, so a worker unpickles it by reference (what a real source's loader must be too)."""
    if job.inputs["objects"] == 0:
        return LoadedScene(None, "no objects in this room", {"notes": {"empty_rooms": 1}})
    return LoadedScene(make_box_room(scene_id=job.scene_id), report={"notes": {"box_rooms": 1}})


@dataclass
class BoxRoomSource:
    """A toy dataset: ``rooms`` hand-built box rooms (the shape of e.g. a ScanNet source, minus the files)."""

    rooms: int
    empty: int = 0
    label: str = "box-rooms"
    dataset_name: str = "nerfseg-box"
    location: Path | None = None

    def plan(self, out_root: Path, config: BuildConfig, workers: int = 1) -> Plan:
        jobs = [SceneJob(f"box_{i:02d}", str(out_root), config, load_box_room, {"objects": len(DEFAULT_OBJECTS)}, house_id=f"site{i}", origin=f"room{i}.ply") for i in range(self.rooms)]
        jobs += [SceneJob(f"empty_{i:02d}", str(out_root), config, load_box_room, {"objects": 0}, house_id="empty", origin="empty.ply") for i in range(self.empty)]
        return Plan(jobs, [], [], [], houses=self.rooms + self.empty)


def test_a_custom_source_builds_a_benchmark(tmp_path: Path) -> None:
    config = preset_config("mini", width=48, height=36, focal=30.0, num_views=6, grid_resolution=24, priors=())
    bench = build_from_source(tmp_path / "out", BoxRoomSource(rooms=3, empty=1), config, show_progress=False, show_warnings=False)
    assert bench["source"] == "box-rooms" and bench["name"] == "nerfseg-box"
    assert sorted(bench["scenes"]) == ["box_00", "box_01", "box_02"]
    assert bench["scenes"]["box_01"]["house"] == "room1.ply"
    assert sorted(bench["splits"]["train"] + bench["splits"]["val"] + bench["splits"]["test"]) == ["box_00", "box_01", "box_02"]
    dropped = bench["report"]["dropped_rooms"]
    assert [d["scene_id"] for d in dropped] == ["empty_00"] and dropped[0]["reason"].startswith("no objects in this room")
    assert bench["report"]["selection"] == {}  # only 3D-FRONT's per-object notes are aggregated
    scene = spec.scene_dir(tmp_path / "out", "box_00")
    assert (scene / spec.TRANSFORMS_JSON).exists() and (scene / spec.GT3D_H5).exists()
    assert json.loads((scene / spec.TRANSFORMS_JSON).read_text())["num_instances"] == len(DEFAULT_OBJECTS)


def test_entry_point_sources_are_found(monkeypatch: pytest.MonkeyPatch) -> None:
    class FakeEntryPoint:
        name = "box-rooms-plugin"

        def load(self):
            return BoxRoomSource

    seen = []
    monkeypatch.setattr(sources, "_entry_points_loaded", False)
    monkeypatch.setattr(sources, "_REGISTRY", dict(sources._REGISTRY))
    monkeypatch.setattr(sources, "entry_points", lambda group: seen.append(group) or [FakeEntryPoint()])
    src = get_source("box-rooms-plugin", rooms=2)
    assert seen == [sources.ENTRY_POINT_GROUP] and isinstance(src, BoxRoomSource) and src.rooms == 2


# --- the command line ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, message",
    [
        (["--source", "demo", "--front3d", "{tmp}"], "does not take --front3d"),
        (["--demo", "2", "--front3d", "{tmp}", "--future", "{tmp}"], "exactly one of --demo N or --front3d"),
        ([], "or --source NAME"),
        (["--source", "demo", "--source-option", "rooms"], "expected KEY=VALUE"),
        (["--front3d", "{tmp}"], "--front3d needs --future"),
    ],
)
def test_cli_source_usage_errors(tmp_path: Path, args: list[str], message: str) -> None:
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    res = CliRunner().invoke(cli, ["build-dataset", "--out", str(tmp_path / "o"), *args])
    assert res.exit_code != 0 and message in res.output, res.output
    assert not (tmp_path / "o" / spec.BENCHMARK_JSON).exists()


def test_cli_unknown_source_suggests_a_name(tmp_path: Path) -> None:
    res = CliRunner().invoke(cli, ["build-dataset", "--out", str(tmp_path / "o"), "--source", "dmeo"])
    assert res.exit_code != 0
    assert "did you mean 'demo'" in res.output + str(res.exception)


def test_cli_source_demo_equals_the_demo_flag(tmp_path: Path) -> None:
    common = ["--views", "6", "--grid", "24", "--prior", "none", "--quiet", "--set", "width=48", "--set", "height=36", "--set", "focal=30"]
    a = CliRunner().invoke(cli, ["build-dataset", "--out", str(tmp_path / "a"), "--demo", "2", *common])
    b = CliRunner().invoke(cli, ["build-dataset", "--out", str(tmp_path / "b"), "--source", "demo", "--source-option", "rooms=2", *common])
    assert a.exit_code == 0 and b.exit_code == 0, a.output + b.output
    ja, jb = (json.loads((tmp_path / x / spec.BENCHMARK_JSON).read_text()) for x in ("a", "b"))
    assert ja["files"] == jb["files"] and ja["source"] == jb["source"] == "demo" and ja["name"] == "nerfseg-demo"
