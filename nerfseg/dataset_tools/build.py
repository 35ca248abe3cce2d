# Over 600 lines on purpose: the build settings, scene jobs, build_scene and the runner stay together (workers pickle them, tests patch build_scene here); the report is in build_report.py.
"""Build orchestration for ``nerfseg build-dataset``: 3D-FRONT (or demo) rooms -> benchmark scenes (SPEC 3).

Each scene is built by one picklable function (:func:`build_scene`) so that a process pool or a Ray
cluster can run it unchanged. A scene is written into a hidden partial folder and renamed into place
only when every file and its manifest are complete, so a killed build never leaves a scene that looks
finished; a re-run skips scenes whose manifest and checksums match the current settings.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from nerfseg import __version__, spec
from nerfseg.cameras import Intrinsics
from nerfseg.errors import InputError
from nerfseg.identity import IDENTITY_KEY, identity_record
from nerfseg.gt3d import GT3D, make_instance_table, read_gt3d, write_gt3d
from nerfseg.progress import Progress
from nerfseg.io import atomic_path, segments_info_from_ids, sha256_file, write_json_atomic, write_panoptic_png, write_png

from nerfseg.dataset_tools.cameras import CameraConfig, sample_cameras, split_views
from nerfseg.dataset_tools.cycles import CyclesSettings
from nerfseg.dataset_tools.build_report import BuildWarnings, build_report
from nerfseg.dataset_tools.front3d import HOUSE_MALFORMED, HOUSE_NOT_JSON, Issue, RoomFilter, iter_houses, load_model_info, read_house
from nerfseg.dataset_tools.ray_executor import map_scenes
from nerfseg.dataset_tools.raycast import Lighting, SceneRaycaster
from nerfseg.dataset_tools.scene import Scene
from nerfseg.dataset_tools.sources import LoadedScene, SceneSource, load_front3d_job
from nerfseg.dataset_tools.voxelize import voxelize_scene

SCENE_MANIFEST = "scene_manifest.json"
PARTIAL_PREFIX = ".partial-"

logger = logging.getLogger(__name__)


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
        d["prior_params"] = _prior_params(self)  # new prior defaults must rebuild the priors
        if self.renderer == "cycles":  # device / threads change the speed, not the pixels
            d["cycles"] = {k: v for k, v in d["cycles"].items() if k not in CyclesSettings.RUNTIME_ONLY}
        else:
            d.pop("cycles", None)  # ray-cast builds keep their fingerprint
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


PRESETS: dict[str, dict[str, Any]] = {
    # CPU-friendly: ~100 views at 256x192 (the paper camera scaled by 0.4), 128-voxel grid.
    # Fewer fixed light / AO samples at mini: shading costs one shadow-ray batch per sample (7 rays a pixel
    # instead of 13), soft shadows get coarser steps but stay deterministic and view-consistent.
    "mini": dict(width=256, height=192, focal=160.0, num_views=100, grid_resolution=128, lighting=Lighting(light_samples=4, ao_samples=2)),
    # The paper's setting: 640x480, fx = fy = 400, 150-200 views, grid 256.
    "paper": dict(width=640, height=480, focal=400.0, num_views=180, grid_resolution=256),
}


def preset_config(name: str, **overrides: Any) -> BuildConfig:
    if name not in PRESETS:
        raise InputError(None, f"unknown preset {name!r}; choose from {sorted(PRESETS)}")
    values = {**PRESETS[name], **{k: v for k, v in overrides.items() if v is not None}}
    return BuildConfig(preset=name, **values)


def to_jsonable(obj: Any) -> Any:
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


# ---------------------------------------------------------------------------------------------
# Planning: which rooms become scenes


@dataclass(frozen=True)
class SceneJob:
    """Everything one worker needs to build one scene (picklable, no open handles).

    ``loader`` is the scene source's module-level load function (nerfseg/dataset_tools/sources.py); it reads
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


def split_scenes(scene_ids: list[str], fractions: tuple[float, float, float], seed: int, groups: dict[str, str] | None = None) -> dict[str, list[str]]:
    """Seeded train/val/test split, by house: every scene of a house lands in the same split.

    ``groups`` maps scene id -> house (None: each scene its own group). Houses are shuffled and taken
    for test, then val, until each holds its fraction of the scenes; at least one test group (and one
    val group when there are >= 3 groups). With a single house the scenes themselves are split (the
    only way a one-house build gets a test scene; recorded as ``split_unit`` in benchmark.json).
    """
    ids = sorted(scene_ids)
    groups = groups or {}
    members: dict[str, list[str]] = {}
    for sid in ids:
        members.setdefault(groups.get(sid, sid), []).append(sid)
    if len(members) < 2:
        members = {sid: [sid] for sid in ids}
    keys = sorted(members)
    order = np.random.default_rng(seed).permutation(len(keys))
    n, g = len(ids), len(keys)
    want_test = max(1, int(round(fractions[2] * n))) if g >= 2 else 0
    want_val = max(1, int(round(fractions[1] * n))) if g >= 3 else 0
    out: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for rank, k in enumerate(order):
        key = keys[k]
        left = g - rank  # groups not yet placed, this one included
        if len(out["test"]) < want_test and left > (1 if g >= 2 else 0):
            out["test"] += members[key]
        elif len(out["val"]) < want_val and left > 1:
            out["val"] += members[key]
        else:
            out["train"] += members[key]
    return {k: sorted(v) for k, v in out.items()}


# ---------------------------------------------------------------------------------------------
# One scene


def scene_is_complete(scene_path: Path, config: BuildConfig, verify: bool = True) -> bool:
    """A scene counts as finished only if its manifest exists, matches the settings, and (verify) checksums match."""
    manifest_path = scene_path / SCENE_MANIFEST
    if not manifest_path.exists():
        return False
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    if manifest.get("fingerprint") != config.fingerprint():
        return False
    if not verify:
        return True
    for rel, digest in manifest.get("files", {}).items():
        if rel.startswith(f"{spec.PRIORS_DIR}/"):
            continue  # priors may be regenerated in place by `nerfseg priors` (atomically); checked below
        f = scene_path / rel
        if not f.exists() or sha256_file(f) != digest:
            return False
    return all((scene_path / spec.PRIORS_DIR / p / spec.PANOPTIC_JSON).exists() for p in config.priors)


def label_maps(instance: np.ndarray, semantic: np.ndarray, hit: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(instance uint16, semantic uint8, panoptic ids uint32) to write, from a renderer's per-pixel labels.

    Pixels of :data:`~nerfseg.spec.UNLABELLED_INSTANCE_ID` (other rooms' furniture, unknown categories) become
    VOID: panoptic id 0, instance 0 and semantic 0 (as a ray that hit nothing); any renderer that fills
    ``instance`` from the scene's part ids gets the same treatment here.
    """
    void = instance == spec.UNLABELLED_INSTANCE_ID
    inst = np.where(void, 0, instance).astype(np.uint16)
    sem = np.where(void, 0, semantic).astype(np.uint8)
    ids = inst.astype(np.uint32)
    ids[(inst == 0) & hit & ~void] = spec.GT_BACKGROUND_SEGMENT_ID
    return inst, sem, ids


def _render_views(partial: Path, scene: Scene, raycaster: SceneRaycaster, rgb_source: Any, poses: list[np.ndarray], is_test: np.ndarray, intr: Intrinsics, progress: Callable[[int, int], None] | None) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Render every view and write its images, depth and label maps; returns (transforms frames, COCO images, COCO annotations)."""
    class_of = {inst.instance_id: inst.class_index for inst in scene.instances}
    class_of[spec.GT_BACKGROUND_SEGMENT_ID] = spec.BACKGROUND
    frames, annotations, images = [], [], []
    for i, c2w in enumerate(poses):
        name = spec.frame_name(i)
        out = raycaster.render(c2w, intr) if rgb_source is None else raycaster.render_depth_labels_only(c2w, intr)
        rgb = out.rgb if rgb_source is None else rgb_source.view(name, c2w, intr)
        depth_mm = np.clip(np.round(out.depth * spec.DEPTH_SCALE), 0, 65535).astype(np.uint16)
        inst_map, sem_map, pan = label_maps(out.instance, out.semantic, out.hit)
        write_png(partial / spec.IMAGES_DIR / f"{name}.png", rgb)
        write_png(partial / spec.DEPTH_DIR / f"{name}.png", depth_mm)
        write_png(partial / spec.INSTANCE_DIR / f"{name}.png", inst_map)
        write_png(partial / spec.SEMANTIC_DIR / f"{name}.png", sem_map)
        write_panoptic_png(partial / spec.PANOPTIC_DIR / f"{name}.png", pan)
        split = "test" if is_test[i] else "train"
        frames.append(
            {
                "file_path": f"{spec.IMAGES_DIR}/{name}.png",
                "depth_file_path": f"{spec.DEPTH_DIR}/{name}.png",
                "transform_matrix": np.asarray(c2w).tolist(),
                "split": split,
            }
        )
        images.append({"id": name, "file_name": f"{name}.png", "width": intr.width, "height": intr.height})
        annotations.append({"image_id": name, "file_name": f"{name}.png", "segments_info": segments_info_from_ids(pan, class_of)})
        if progress is not None:
            progress(i + 1, len(poses))
    return frames, images, annotations


def _write_scene_gt3d(partial: Path, scene: Scene, config: BuildConfig) -> None:
    """gt3d.h5: the labelled parts voxelized (void furniture left out) and the instance table."""
    labelled = dataclasses.replace(scene, parts=[p for p in scene.parts if p.instance_id != spec.UNLABELLED_INSTANCE_ID])
    grid = voxelize_scene(labelled, config.grid_resolution, mode=config.voxelization)
    gt = GT3D(
        instance=grid.instance,
        semantic=grid.semantic,
        bbox_min=np.asarray(grid.bbox_min),
        bbox_max=np.asarray(grid.bbox_max),
        mode=config.voxelization,
        instances=make_instance_table(
            [
                {
                    "id": inst.instance_id,
                    "class_index": inst.class_index,
                    "nyu40_id": inst.nyu40_id,
                    "category": inst.category or "",
                    "super_category": inst.super_category or "",
                    "jid": inst.jid,
                    "uid": inst.uid,
                    "aabb": inst.aabb,
                    "obb": inst.obb,
                }
                for inst in scene.instances
            ]
        ),
    )
    write_gt3d(partial / spec.GT3D_H5, gt)


def _publish_scene(partial: Path, final: Path, config: BuildConfig, record: dict[str, Any], files: dict[str, str]) -> None:
    """Write the manifest, then rename the partial folder into place: the only moment the scene becomes visible."""
    manifest = {"fingerprint": config.fingerprint(), "tool_version": __version__, "spec_version": spec.SPEC_VERSION, "record": record, "files": files}
    write_json_atomic(partial / SCENE_MANIFEST, manifest)
    if final.exists():
        shutil.rmtree(final)
    os.replace(partial, final)


def build_scene(job: SceneJob, progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Render and write one scene; returns its record (files with sha256, counts, timings, warnings)."""
    t0 = time.perf_counter()
    config = job.config
    final = spec.scene_dir(job.out_root, job.scene_id)
    partial = final.parent / f"{PARTIAL_PREFIX}{job.scene_id}-{os.getpid()}"
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    try:
        loaded = job.loader(job)
        scene = loaded.scene
        if scene is None:  # the source dropped the room at load time (e.g. too few objects once models loaded)
            shutil.rmtree(partial, ignore_errors=True)
            return {"scene_id": job.scene_id, "house": job.origin, "dropped": loaded.dropped or "room not kept by the source", **loaded.report}
        # One seed stream per scene, independent of build order and worker count.
        scene_seed = np.random.SeedSequence([config.seed, int(hashlib.sha256(job.scene_id.encode()).hexdigest()[:8], 16)])
        rng = np.random.default_rng(scene_seed)
        intr = config.intrinsics
        raycaster = SceneRaycaster(scene, lighting=config.lighting)
        rgb_source = _cycles_rgb(job, scene) if config.renderer == "cycles" else None
        t_load = time.perf_counter()
        poses = sample_cameras(scene, config.camera, rng, target_views=config.num_views, raycaster=raycaster)
        is_test = split_views(len(poses), int(scene_seed.generate_state(1)[0]), every=config.test_every)
        t_cams = time.perf_counter()
        frames, images, annotations = _render_views(partial, scene, raycaster, rgb_source, poses, is_test, intr, progress)
        t_render = time.perf_counter()
        _write_transforms(partial, scene, intr, frames)
        write_json_atomic(partial / spec.PANOPTIC_JSON, {"images": images, "annotations": annotations, "categories": spec.category_info()}, indent=None)
        _write_scene_gt3d(partial, scene, config)
        t_voxel = time.perf_counter()
        for prior in config.priors:
            _write_prior(partial, prior, config.seed)
        t_priors = time.perf_counter()
        files = {str(p.relative_to(partial)): sha256_file(p) for p in sorted(partial.rglob("*")) if p.is_file()}
        record = {
            "scene_id": job.scene_id,
            "house": job.origin,
            "room_type": scene.room_type,
            "num_views": len(poses),
            "num_test_views": int(is_test.sum()),
            "num_instances": len(scene.instances),
            "warnings": scene.warnings,
            **loaded.report,
            "timings_s": {
                "load": t_load - t0,
                "cameras": t_cams - t_load,
                "render_and_write": t_render - t_cams,
                "voxelize": t_voxel - t_render,
                "priors": t_priors - t_voxel,
            },
        }
        if rgb_source is not None:
            record["cycles"] = rgb_source.record()
        _publish_scene(partial, final, config, record, files)
        if rgb_source is not None:
            rgb_source.finish()  # the scene is in place: its per-view resume cache is no longer needed
        record["files"] = files
        record["timings_s"]["total"] = time.perf_counter() - t0
        return record
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise


def _cycles_rgb(job: SceneJob, scene: Scene) -> Any:
    """The Cycles RGB source of one scene (nerfseg/dataset_tools/cycles_views.py), resuming per view from a cache folder
    next to the scene folders (it survives a killed build; ``.partial-`` folders do not)."""
    from nerfseg.dataset_tools.cycles_views import SceneRGB

    config = job.config
    return SceneRGB(scene, config.cycles, spec.scene_dir(job.out_root, job.scene_id).parent, config.fingerprint(), config.lighting.crease_angle_deg)


def _write_transforms(scene_path: Path, scene: Scene, intr: Intrinsics, frames: list[dict[str, Any]]) -> None:
    bbox = np.asarray(scene.room_bbox, dtype=np.float64)
    extent = bbox[1] - bbox[0]
    scale = 1.5 / float(extent.max())  # instant-ngp: fit the room into its unit cube, as the reference did
    centre = bbox.mean(axis=0)
    data = {
        "scene_id": scene.scene_id,
        "camera_model": "OPENCV",
        **intr.to_json(),
        "room_bbox": bbox.tolist(),
        "aabb_scale": 2,
        "scale": scale,
        "offset": (0.5 - scale * centre).tolist(),
        "num_instances": len(scene.instances),
        "num_room_objects": len(scene.instances),
        "frames": frames,
        "train_filenames": [f["file_path"] for f in frames if f["split"] == "train"],
        "val_filenames": [f["file_path"] for f in frames if f["split"] == "test"],
        "test_filenames": [f["file_path"] for f in frames if f["split"] == "test"],
    }
    write_json_atomic(scene_path / spec.TRANSFORMS_JSON, data)


def _write_prior(scene_path: Path, prior: str, seed: int) -> None:
    from nerfseg.dataset_tools.priors import write_priors  # priors import the evaluator for quality reports

    write_priors(scene_path, prior, seed=seed)


# ---------------------------------------------------------------------------------------------
# The whole build


def _run_jobs(jobs: list[SceneJob], workers: int, executor: str, on_done: Callable[[dict[str, Any]], None]) -> None:
    # Blender started in this process (an earlier in-process Cycles build) holds locks a fork would copy
    # locked: its forked workers hang in Blender. Fresh interpreters then.
    blender_here = bool(jobs) and jobs[0].config.renderer == "cycles" and sys.modules.get("bpy") is not None
    for record in map_scenes(build_scene, jobs, workers, executor, start_method="spawn" if blender_here else None):
        on_done(record)


def build_dataset(
    out_root: Path,
    front3d_dir: Path,
    future_dir: Path,
    texture_dir: Path | None,
    config: BuildConfig,
    houses: list[str] | None = None,
    workers: int = 1,
    executor: str = "process",
    name: str = "nerfseg",
    source: str = "3D-FRONT",
    show_progress: bool = True,
    show_warnings: bool = True,
) -> dict[str, Any]:
    """Build (or resume) a benchmark from a 3D-FRONT folder: :func:`build_from_source` with the 3D-FRONT source."""
    from nerfseg.dataset_tools.sources import Front3DSource

    scene_source = Front3DSource(Path(front3d_dir), Path(future_dir), None if texture_dir is None else Path(texture_dir), houses, label=source)
    return build_from_source(out_root, scene_source, config, workers=workers, executor=executor, name=name, show_progress=show_progress, show_warnings=show_warnings)


def build_from_source(
    out_root: Path,
    scene_source: SceneSource,
    config: BuildConfig,
    workers: int = 1,
    executor: str = "process",
    name: str | None = None,
    show_progress: bool = True,
    show_warnings: bool = True,
) -> dict[str, Any]:
    """Build (or resume) a benchmark in ``out_root`` from any scene source and write benchmark.json last.

    ``name`` defaults to the source's ``dataset_name``; benchmark.json's ``source`` is the source's ``label``.
    """
    check_renderer(config)
    if config.renderer == "cycles" and executor == "process":
        from nerfseg.dataset_tools.cycles import share_cores

        config = dataclasses.replace(config, cycles=share_cores(config.cycles, workers))
    out_root = Path(out_root)
    (out_root / spec.SCENES_DIR).mkdir(parents=True, exist_ok=True)
    for stale in (out_root / spec.SCENES_DIR).glob(f"{PARTIAL_PREFIX}*"):
        shutil.rmtree(stale, ignore_errors=True)  # leftovers of a killed build
    plan = scene_source.plan(out_root, config, workers=workers if executor == "process" else 1)
    warn = BuildWarnings(show_warnings)
    warn.issues(plan.issues)
    warn.unknown_pairs(plan.unknown_pairs)
    if not plan.jobs:
        bad = "; ".join(b["reason"] for b in plan.bad_houses[:3]) + (" ..." if len(plan.bad_houses) > 3 else "")
        raise InputError(scene_source.location, f"no room passed the room filter; nothing to build ({len(plan.dropped_rooms)} rooms dropped, {len(plan.bad_houses)} houses unreadable{': ' + bad if bad else ''})")
    todo, records, dropped_at_build = [], {}, []
    for job in plan.jobs:
        path = spec.scene_dir(out_root, job.scene_id)
        if scene_is_complete(path, config):
            records[job.scene_id] = _record_from_manifest(path)
        else:
            todo.append(job)
    t0 = time.perf_counter()
    with Progress(len(plan.jobs), "build", "scene", enabled=show_progress, completed=len(records)) as bar:

        def done(record: dict[str, Any]) -> None:
            warn.issues(record.get("issues", []))
            if "dropped" in record:
                dropped_at_build.append(record)
            else:
                records[record["scene_id"]] = record
            bar.advance(info=f"last {record['scene_id']}")

        _run_jobs(todo, workers, executor, done)
    elapsed = time.perf_counter() - t0
    if not records:
        why = "; ".join(f"{r['scene_id']}: {r['dropped']}" for r in dropped_at_build[:3])
        raise InputError(scene_source.location, f"no scene left once the models were loaded ({why})")
    job_of = {job.scene_id: job for job in plan.jobs}
    ids = sorted(records)
    groups = {sid: job_of[sid].house_id for sid in ids}
    splits = split_scenes(ids, config.scene_split, config.seed, groups=groups)
    if len(ids) > 1 and len(set(groups.values())) < 2 and show_warnings:
        logger.warning(f"warning: all {len(ids)} scenes come from one house: split by scene, so rooms of that house share splits (build more houses for a leak-free split)")
    if config.nerf_rpn_export:
        export_nerf_rpn(out_root, ids, splits)
    bench = {
        "name": scene_source.dataset_name if name is None else name,
        "spec_version": spec.SPEC_VERSION,
        "tool_version": __version__,
        "source": scene_source.label,
        "classes": [{"index": i, "nyu40_id": nyu, "name": n} for i, nyu, n in spec.CLASS_TABLE],
        "splits": splits,
        "build_settings": to_jsonable(config),
        "prior_params": _prior_params(config),
        "report": {
            **build_report(plan, records, dropped_at_build, len(todo), elapsed, groups),
            "unsupported_materials": sum(int(records[sid].get("cycles", {}).get("unsupported_materials", 0)) for sid in records),
        },
        "scenes": {sid: {k: v for k, v in records[sid].items() if k != "files"} for sid in sorted(records)},
        "files": {f"{spec.SCENES_DIR}/{sid}/{rel}": digest for sid in sorted(records) for rel, digest in records[sid]["files"].items()},
    }
    bench[IDENTITY_KEY] = identity_record(out_root, bench)  # GT fingerprint + human name (nerfseg/identity.py)
    write_json_atomic(out_root / spec.BENCHMARK_JSON, bench)
    return bench


def check_renderer(config: BuildConfig) -> None:
    """Fail fast (before planning or rendering) on an unknown renderer or a missing optional extra."""
    if config.renderer not in ("raycast", "cycles"):
        raise InputError(None, f"unknown renderer {config.renderer!r}; choose raycast or cycles", key="renderer")
    if config.renderer == "cycles":
        from nerfseg.dataset_tools.cycles import check_bpy_installed

        config.cycles.validate()
        check_bpy_installed()  # found, but not imported here: Blender starts in the workers


def _record_from_manifest(scene_path: Path) -> dict[str, Any]:
    manifest = json.loads((scene_path / SCENE_MANIFEST).read_text())
    files = {rel: d for rel, d in manifest["files"].items() if not rel.startswith(f"{spec.PRIORS_DIR}/")}
    for p in sorted((scene_path / spec.PRIORS_DIR).rglob("*")):
        if p.is_file():
            files[str(p.relative_to(scene_path))] = sha256_file(p)
    return {**manifest["record"], "files": files}


def _prior_params(config: BuildConfig) -> dict[str, Any]:
    from nerfseg.dataset_tools.priors import prior_parameters

    return {p: prior_parameters(p, seed=config.seed) for p in config.priors}


def export_nerf_rpn(out_root: Path, scene_ids: Iterable[str], splits: dict[str, list[str]]) -> None:
    """NeRF-RPN style ``aabb/<scene>.npy`` (N,6) and ``obb/<scene>.npy`` (N,7) in voxel units, plus the split file."""
    for sid in scene_ids:
        gt = read_gt3d(spec.scene_dir(out_root, sid) / spec.GT3D_H5)
        aabb, obb = gt.boxes_in_voxel_units()
        for folder, arr in (("aabb", aabb), ("obb", obb)):
            with atomic_path(out_root / folder / f"{sid}.npy") as tmp, open(tmp, "wb") as fh:
                np.save(fh, arr)
    with atomic_path(out_root / "3dfront_split.npz") as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **{f"{k}_scenes": np.array(v) for k, v in splits.items()})
