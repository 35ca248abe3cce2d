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
from nerfseg.gt3d import GT3D, make_instance_table, read_gt3d, write_gt3d
from nerfseg.io import atomic_path, segments_info_from_ids, sha256_file, write_json_atomic, write_panoptic_png, write_png

from dataset_tools.cameras import CameraConfig, sample_cameras, split_views
from dataset_tools.cycles import CyclesSettings
from dataset_tools.front3d import RoomFilter, iter_houses, load_house
from dataset_tools.ray_executor import map_scenes
from dataset_tools.raycast import Lighting, SceneRaycaster
from dataset_tools.scene import Scene
from dataset_tools.voxelize import voxelize_scene

MANIFEST = "scene_manifest.json"
PARTIAL_PREFIX = ".partial-"


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
    """Everything one worker needs to build one scene (picklable, no open handles)."""

    scene_id: str
    house_json: str
    future_dir: str
    texture_dir: str | None
    house_index: int
    out_root: str
    config: BuildConfig


@dataclass
class Plan:
    jobs: list[SceneJob]
    dropped_rooms: list[dict[str, str]]
    missing_models: list[str]
    warnings: list[str]


def plan_build(front3d_dir: Path, future_dir: Path, texture_dir: Path | None, out_root: Path, config: BuildConfig, houses: list[str] | None = None) -> Plan:
    """Load every requested house once to find its kept rooms; the workers load them again (cheap)."""
    jobs: list[SceneJob] = []
    dropped: list[dict[str, str]] = []
    missing: list[str] = []
    warnings: list[str] = []
    for house_index, house_json in iter_houses(front3d_dir, houses):
        loaded = load_house(house_json, future_dir, texture_dir, house_index, config.room_filter)
        dropped += [{"house": house_json.name, "room": room, "reason": reason} for room, reason in loaded.dropped_rooms]
        missing += loaded.missing_models
        warnings += loaded.warnings
        for scene in loaded.scenes:
            jobs.append(SceneJob(scene.scene_id, str(house_json), str(future_dir), None if texture_dir is None else str(texture_dir), house_index, str(out_root), config))
    return Plan(jobs, dropped, sorted(set(missing)), warnings)


def split_scenes(scene_ids: list[str], fractions: tuple[float, float, float], seed: int) -> dict[str, list[str]]:
    """Seeded train/val/test split of scenes; at least one test (and one val when >= 3 scenes) scene."""
    ids = sorted(scene_ids)
    order = np.random.default_rng(seed).permutation(len(ids))
    n = len(ids)
    n_test = max(1, int(round(fractions[2] * n))) if n >= 2 else 0
    n_val = max(1, int(round(fractions[1] * n))) if n >= 3 else 0
    shuffled = [ids[i] for i in order]
    test = sorted(shuffled[:n_test])
    val = sorted(shuffled[n_test : n_test + n_val])
    train = sorted(shuffled[n_test + n_val :])
    return {"train": train, "val": val, "test": test}


# ---------------------------------------------------------------------------------------------
# One scene


def _find_scene(job: SceneJob) -> Scene:
    loaded = load_house(Path(job.house_json), Path(job.future_dir), None if job.texture_dir is None else Path(job.texture_dir), job.house_index, job.config.room_filter)
    for scene in loaded.scenes:
        if scene.scene_id == job.scene_id:
            scene.warnings = list(scene.warnings) + [w for w in loaded.warnings if w not in scene.warnings]
            return scene
    raise InputError(job.house_json, f"room of scene {job.scene_id} is no longer kept by the room filter")


def scene_is_complete(scene_path: Path, config: BuildConfig, verify: bool = True) -> bool:
    """A scene counts as finished only if its manifest exists, matches the settings, and (verify) checksums match."""
    manifest_path = scene_path / MANIFEST
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


def _panoptic_ids(instance: np.ndarray, hit: np.ndarray) -> np.ndarray:
    ids = instance.astype(np.uint32)
    ids[(instance == 0) & hit] = spec.GT_BACKGROUND_SEGMENT_ID
    return ids


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
        scene = _find_scene(job)
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
        class_of = {inst.instance_id: inst.class_index for inst in scene.instances}
        class_of[spec.GT_BACKGROUND_SEGMENT_ID] = spec.BACKGROUND
        frames, annotations, images = [], [], []
        for i, c2w in enumerate(poses):
            name = spec.frame_name(i)
            out = raycaster.render(c2w, intr) if rgb_source is None else raycaster.render_depth_labels_only(c2w, intr)
            rgb = out.rgb if rgb_source is None else rgb_source.view(name, c2w, intr)
            depth_mm = np.clip(np.round(out.depth * spec.DEPTH_SCALE), 0, 65535).astype(np.uint16)
            pan = _panoptic_ids(out.instance, out.hit)
            write_png(partial / spec.IMAGES_DIR / f"{name}.png", rgb)
            write_png(partial / spec.DEPTH_DIR / f"{name}.png", depth_mm)
            write_png(partial / spec.INSTANCE_DIR / f"{name}.png", out.instance.astype(np.uint16))
            write_png(partial / spec.SEMANTIC_DIR / f"{name}.png", out.semantic.astype(np.uint8))
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
        t_render = time.perf_counter()
        _write_transforms(partial, scene, intr, frames)
        write_json_atomic(partial / spec.PANOPTIC_JSON, {"images": images, "annotations": annotations, "categories": spec.category_info()}, indent=None)
        grid = voxelize_scene(scene, config.grid_resolution, mode=config.voxelization)
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
        t_voxel = time.perf_counter()
        for prior in config.priors:
            _write_prior(partial, prior, config.seed)
        t_priors = time.perf_counter()
        files = {str(p.relative_to(partial)): sha256_file(p) for p in sorted(partial.rglob("*")) if p.is_file()}
        record = {
            "scene_id": job.scene_id,
            "house": Path(job.house_json).name,
            "room_type": scene.room_type,
            "num_views": len(poses),
            "num_test_views": int(is_test.sum()),
            "num_instances": len(scene.instances),
            "warnings": scene.warnings,
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
        manifest = {"fingerprint": config.fingerprint(), "tool_version": __version__, "spec_version": spec.SPEC_VERSION, "record": record, "files": files}
        write_json_atomic(partial / MANIFEST, manifest)
        # Make room for the finished scene, then rename: the only moment the scene becomes visible.
        if final.exists():
            shutil.rmtree(final)
        os.replace(partial, final)
        if rgb_source is not None:
            rgb_source.finish()  # the scene is in place: its per-view resume cache is no longer needed
        record["files"] = files
        record["timings_s"]["total"] = time.perf_counter() - t0
        return record
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise


def _cycles_rgb(job: SceneJob, scene: Scene) -> Any:
    """The Cycles RGB source of one scene (dataset_tools/cycles.py), resuming per view from a cache folder
    next to the scene folders (it survives a killed build; ``.partial-`` folders do not)."""
    from dataset_tools.cycles import SceneRGB

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
    from dataset_tools.priors import write_priors  # priors import the evaluator for quality reports

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
) -> dict[str, Any]:
    """Build (or resume) a benchmark in ``out_root`` and write benchmark.json last."""
    check_renderer(config)
    if config.renderer == "cycles" and executor == "process":
        from dataset_tools.cycles import share_cores

        config = dataclasses.replace(config, cycles=share_cores(config.cycles, workers))
    out_root = Path(out_root)
    (out_root / spec.SCENES_DIR).mkdir(parents=True, exist_ok=True)
    for stale in (out_root / spec.SCENES_DIR).glob(f"{PARTIAL_PREFIX}*"):
        shutil.rmtree(stale, ignore_errors=True)  # leftovers of a killed build
    plan = plan_build(front3d_dir, future_dir, texture_dir, out_root, config, houses)
    if not plan.jobs:
        raise InputError(front3d_dir, "no room passed the room filter; nothing to build")
    todo, records = [], {}
    for job in plan.jobs:
        path = spec.scene_dir(out_root, job.scene_id)
        if scene_is_complete(path, config):
            records[job.scene_id] = _record_from_manifest(path)
        else:
            todo.append(job)
    t0 = time.perf_counter()
    with _progress(show_progress, len(plan.jobs), len(records)) as advance:

        def done(record: dict[str, Any]) -> None:
            records[record["scene_id"]] = record
            advance(record["scene_id"])

        _run_jobs(todo, workers, executor, done)
    elapsed = time.perf_counter() - t0
    ids = [job.scene_id for job in plan.jobs]
    splits = split_scenes(ids, config.scene_split, config.seed)
    if config.nerf_rpn_export:
        export_nerf_rpn(out_root, ids, splits)
    bench = {
        "name": name,
        "spec_version": spec.SPEC_VERSION,
        "tool_version": __version__,
        "source": source,
        "classes": [{"index": i, "nyu40_id": nyu, "name": n} for i, nyu, n in spec.CLASS_TABLE],
        "splits": splits,
        "build_settings": to_jsonable(config),
        "prior_params": _prior_params(config),
        "report": {
            "scenes_built": len(todo),
            "scenes_reused": len(plan.jobs) - len(todo),
            "build_seconds": elapsed,
            "dropped_rooms": plan.dropped_rooms,
            "missing_models": plan.missing_models,
            "num_missing_models": len(plan.missing_models),
            "warnings": plan.warnings,
            "unsupported_materials": sum(int(records[sid].get("cycles", {}).get("unsupported_materials", 0)) for sid in records),
        },
        "scenes": {sid: {k: v for k, v in records[sid].items() if k != "files"} for sid in sorted(records)},
        "files": {f"{spec.SCENES_DIR}/{sid}/{rel}": digest for sid in sorted(records) for rel, digest in records[sid]["files"].items()},
    }
    write_json_atomic(out_root / spec.BENCHMARK_JSON, bench)
    return bench


def check_renderer(config: BuildConfig) -> None:
    """Fail fast (before planning or rendering) on an unknown renderer or a missing optional extra."""
    if config.renderer not in ("raycast", "cycles"):
        raise InputError(None, f"unknown renderer {config.renderer!r}; choose raycast or cycles", key="renderer")
    if config.renderer == "cycles":
        from dataset_tools.cycles import check_bpy_installed

        config.cycles.validate()
        check_bpy_installed()  # found, but not imported here: Blender starts in the workers


def _record_from_manifest(scene_path: Path) -> dict[str, Any]:
    manifest = json.loads((scene_path / MANIFEST).read_text())
    files = {rel: d for rel, d in manifest["files"].items() if not rel.startswith(f"{spec.PRIORS_DIR}/")}
    for p in sorted((scene_path / spec.PRIORS_DIR).rglob("*")):
        if p.is_file():
            files[str(p.relative_to(scene_path))] = sha256_file(p)
    return {**manifest["record"], "files": files}


def _prior_params(config: BuildConfig) -> dict[str, Any]:
    from dataset_tools.priors import prior_parameters

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


class _progress:
    """A rich progress bar over scenes (silent when disabled or not on a terminal)."""

    def __init__(self, enabled: bool, total: int, completed: int):
        self.enabled, self.total, self.completed = enabled, total, completed

    def __enter__(self) -> Callable[[str], None]:
        if not self.enabled:
            return lambda _sid: None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.bar = Progress(TextColumn("[bold]building scenes"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("{task.fields[last]}"))
        self.bar.start()
        self.task = self.bar.add_task("build", total=self.total, completed=self.completed, last="")
        return lambda sid: self.bar.update(self.task, advance=1, last=sid)

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self.bar.stop()
