"""The build's data types and the 3D-FRONT planning: settings, scene jobs, the plan, and what a loader returns.

They live apart from build.py (the runner) and sources.py (the source registry) because both of those
use them: with the types here, neither imports the other's module back, so the dataset tools have no
import cycle. build.py re-exports the names it always had (``from nerfseg.dataset_tools.build import
BuildConfig, Plan, SceneJob, plan_build, to_jsonable`` keeps working) and sources.py re-exports ``LoadedScene``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from nerfseg import spec
from nerfseg.cameras import Intrinsics
from nerfseg.errors import InputError

from nerfseg.dataset_tools.cameras import CameraConfig
from nerfseg.dataset_tools.cycles import CyclesSettings
from nerfseg.dataset_tools.front3d import HOUSE_MALFORMED, HOUSE_NOT_JSON, Issue, RoomFilter, iter_houses, load_house, load_model_info, read_house
from nerfseg.dataset_tools.raycast import Lighting
from nerfseg.dataset_tools.scene import Scene


@dataclass
class BuildConfig:
    """Every setting that changes the built files; recorded in benchmark.json and in each scene manifest."""

    preset: str = "mini"
    width: int = 256
    height: int = 192
    focal: float = 160.0  # fx = fy; cx, cy at the image centre
    num_views: int = 100  # target views per scene (close-ups around objects + global views)
    grid_resolution: int = 128  # longest side of the voxel grid
    voxelization: str = "solid"  # "solid" | "surface"
    test_every: int = spec.TEST_EVERY
    seed: int = 0
    renderer: str = "raycast"  # "raycast" | "cycles" (RGB from Cycles, labels and depth still from Embree)
    priors: tuple[str, ...] = ("sim-m2f", "gt")
    nerf_rpn_export: bool = False
    scene_split: tuple[float, float, float] = (0.7, 0.1, 0.2)  # train / val / test fractions of scenes
    camera: CameraConfig = field(default_factory=CameraConfig)
    room_filter: RoomFilter = field(default_factory=RoomFilter)
    lighting: Lighting = field(default_factory=Lighting)
    cycles: CyclesSettings = field(default_factory=CyclesSettings)  # used when renderer == "cycles"

    @property
    def intrinsics(self) -> Intrinsics:
        return Intrinsics(self.width, self.height, self.focal, self.focal, self.width / 2.0, self.height / 2.0)

    def fingerprint(self) -> str:
        """Hash of the settings that affect one scene's files (not the scene split, which is dataset-wide)."""
        d = to_jsonable(self)
        d.pop("scene_split", None)
        d.pop("nerf_rpn_export", None)
        d["prior_params"] = self.prior_params()  # new prior defaults must rebuild the priors
        if self.renderer == "cycles":  # device / threads change the speed, not the pixels
            d["cycles"] = {k: v for k, v in d["cycles"].items() if k not in CyclesSettings.RUNTIME_ONLY}
        else:
            d.pop("cycles", None)  # ray-cast builds keep their fingerprint
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]

    def prior_params(self) -> dict[str, Any]:
        """Each prior's parameters at this seed (benchmark.json records them; the fingerprint hashes them)."""
        from nerfseg.dataset_tools.priors import prior_parameters  # priors import the evaluator: only when asked

        return {p: prior_parameters(p, seed=self.seed) for p in self.priors}


def to_jsonable(obj: Any) -> Any:
    """``obj`` as plain JSON values (dataclasses, numpy scalars, paths): what benchmark.json and the fingerprint hash hold."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {k: to_jsonable(v) for k, v in asdict(obj).items()}
    if isinstance(obj, dict):
        return {k: to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, (np.integer, np.floating)):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    return obj


@dataclass
class LoadedScene:
    """What a worker's loader returns for one job: the scene, or ``dropped`` (why the room is not a scene).

    ``report`` is merged into the scene's build record (issues, textures, notes, missing_models: the keys
    benchmark.json's report aggregates; a source without such diagnostics leaves it empty).
    """

    scene: Scene | None
    dropped: str | None = None
    report: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# Planning: which rooms become scenes


@dataclass(frozen=True)
class SceneJob:
    """Everything one worker needs to build one scene (picklable, no open handles).

    ``loader`` is the scene source's module-level load function (3D-FRONT: :func:`load_front3d_job`); it reads
    ``inputs``, the source's own picklable description of the scene (for 3D-FRONT: house file, room index,
    model folders). Nothing below the loader knows which dataset the scene came from.
    """

    scene_id: str
    out_root: str
    config: BuildConfig
    loader: Callable[["SceneJob"], "LoadedScene"]
    inputs: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    house_id: str = ""  # the unit of the scene split (a 3D-FRONT house uid): its scenes share a split
    origin: str = ""  # the input the scene came from, as the record's "house" names it (a house JSON's file name)


@dataclass
class Plan:
    """What planning decided, from the house JSONs and model_info.json alone (no model is parsed)."""

    jobs: list[SceneJob]
    dropped_rooms: list[dict[str, str]]
    missing_models: list[str]
    warnings: list[str]
    issues: list[dict[str, str]] = field(default_factory=list)  # Issue.to_json() of the house JSONs
    bad_houses: list[dict[str, str]] = field(default_factory=list)  # houses that stopped: {house, reason}
    unknown_pairs: dict[tuple[str | None, str | None], dict[str, Any]] = field(default_factory=dict)  # -> {models, objects}
    notes: dict[str, int] = field(default_factory=dict)
    houses: int = 0
    seconds: float = 0.0


def _plan_house(args: tuple[int, str, str, RoomFilter]) -> dict[str, Any]:
    """Planning's view of one house, small and picklable (a planning worker returns it; no model is opened)."""
    house_index, house_json, future_dir, rf = args
    path = Path(house_json)
    try:
        hd = read_house(path, load_model_info(future_dir), rf)
    except InputError as exc:
        kind = HOUSE_NOT_JSON if "JSON" in exc.problem or "UTF-8" in exc.problem else HOUSE_MALFORMED
        issue = Issue(kind, path.name, path.name, f"{exc.problem}{f' [{exc.key}]' if exc.key else ''}; house skipped")
        return {"index": house_index, "path": house_json, "bad": {"house": path.name, "kind": kind, "reason": str(exc)}, "issues": [issue.to_json()]}
    objects: dict[tuple[str | None, str | None], int] = {}
    for room in hd.rooms:
        for _, child in room.furniture:
            pair = hd.pairs.get(str(hd.furniture_by_uid[str(child["ref"])]["jid"]))
            if pair is not None and (pair[1], pair[0]) in hd.unknown_pairs:
                objects[(pair[1], pair[0])] = objects.get((pair[1], pair[0]), 0) + 1
    return {
        "index": house_index,
        "path": house_json,
        "house_id": hd.house_id or path.stem,
        "issues": [i.to_json() for i in hd.issues.issues],
        "notes": dict(hd.issues.notes),
        "unknown": {pair: (jids, objects.get(pair, 0)) for pair, jids in hd.unknown_pairs.items()},
        "rooms": [(r.index, r.instanceid, r.drop, r.layout) for r in hd.rooms],
    }


def _plan_summaries(args: list[tuple[int, str, str, RoomFilter]], workers: int) -> Iterable[dict[str, Any]]:
    """House summaries in the sorted house order (a process pool when ``workers`` > 1: JSON parsing dominates)."""
    if workers <= 1 or len(args) < 2 * workers:
        return map(_plan_house, args)
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(_plan_house, args, chunksize=max(1, len(args) // (8 * workers))))


def plan_build(front3d_dir: Path, future_dir: Path, texture_dir: Path | None, out_root: Path, config: BuildConfig, houses: list[str] | None = None, workers: int = 1) -> Plan:
    """Decide the scenes from the house JSONs and model_info.json only; models are parsed by the workers.

    A house that is not a JSON house is recorded in ``bad_houses`` and skipped (never the build). With
    ``room_filter.dedup_layouts`` a room whose ``instanceid`` or furniture set (sorted jids) repeats one
    already taken, in this or an earlier house of the sorted listing, is dropped with the scene id it
    repeats, so no layout can land in two splits. ``workers`` > 1 parses the house JSONs on a process
    pool; the decisions are the same (they are taken in house order here).
    """
    t0 = time.perf_counter()
    rf = config.room_filter
    load_model_info(future_dir)  # a missing or broken model_info.json stops the build here, before any work
    plan = Plan([], [], [], [])
    seen_instanceid: dict[str, str] = {}
    seen_layout: dict[tuple[str, ...], str] = {}
    args = [(i, str(p), str(future_dir), rf) for i, p in iter_houses(front3d_dir, houses)]
    for summary in _plan_summaries(args, workers):
        plan.houses += 1
        plan.issues += summary["issues"]
        house_name = Path(summary["path"]).name
        if "bad" in summary:
            plan.bad_houses.append(summary["bad"])
            continue
        for kind, n in summary["notes"].items():
            plan.notes[kind] = plan.notes.get(kind, 0) + n
        for pair, (jids, n_objects) in summary["unknown"].items():
            entry = plan.unknown_pairs.setdefault(pair, {"models": [], "objects": 0})
            entry["models"] = sorted(set(entry["models"]) | set(jids))
            entry["objects"] += n_objects
        for room_index, instanceid, reason, layout in summary["rooms"]:
            scene_id = f"3dfront_{summary['index']:04d}_{room_index:02d}"
            if reason is None and rf.dedup_layouts:
                if instanceid in seen_instanceid:
                    reason = f"repeats the layout of {seen_instanceid[instanceid]} (same room instanceid {instanceid})"
                elif layout and layout in seen_layout:
                    reason = f"repeats the layout of {seen_layout[layout]} (same furniture set)"
            if reason is not None:
                plan.dropped_rooms.append({"house": house_name, "room": instanceid, "scene_id": scene_id, "reason": reason})
                continue
            seen_instanceid[instanceid] = scene_id
            if layout:
                seen_layout[layout] = scene_id
            plan.jobs.append(
                SceneJob(
                    scene_id,
                    str(out_root),
                    config,
                    load_front3d_job,
                    {
                        "house_json": summary["path"],
                        "future_dir": str(future_dir),
                        "texture_dir": None if texture_dir is None else str(texture_dir),
                        "house_index": summary["index"],
                        "room_index": room_index,
                    },
                    summary["house_id"],
                    house_name,
                )
            )
    plan.warnings = [Issue(**i).line() for i in plan.issues]
    plan.seconds = time.perf_counter() - t0
    return plan


def load_front3d_job(job: SceneJob) -> LoadedScene:
    """Worker side of the 3D-FRONT source: load the job's house (its room only) and pick the job's scene."""
    a = job.inputs
    rooms = [a["room_index"]] if a["room_index"] >= 0 else None
    texture = None if a["texture_dir"] is None else Path(a["texture_dir"])
    loaded = load_house(Path(a["house_json"]), Path(a["future_dir"]), texture, a["house_index"], job.config.room_filter, rooms=rooms)
    report = {
        "issues": [i.to_json() for i in loaded.issues],
        "textures": dict(loaded.textures),
        "notes": dict(loaded.notes),
        "missing_models": list(loaded.missing_models),
    }
    scene = next((s for s in loaded.scenes if s.scene_id == job.scene_id), None)
    if scene is not None:
        return LoadedScene(scene, None, report)
    # the models left the room too few objects (or the room is gone): not a scene
    reason = next((r for _, r in loaded.dropped_rooms), "room not kept by the room filter")
    return LoadedScene(None, reason, report)
