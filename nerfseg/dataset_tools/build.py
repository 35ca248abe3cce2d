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

from nerfseg.dataset_tools.cameras import sample_cameras, split_views
from nerfseg.dataset_tools.build_report import BuildWarnings, build_report
# The data types and the 3D-FRONT planning live in build_plan.py (sources.py needs them too); re-exported here.
from nerfseg.dataset_tools.build_plan import BuildConfig, Plan, SceneJob, plan_build, to_jsonable  # noqa: F401
from nerfseg.dataset_tools.ray_executor import map_scenes
from nerfseg.dataset_tools.raycast import Lighting, SceneRaycaster
from nerfseg.dataset_tools.scene import Scene
from nerfseg.dataset_tools.sources import SceneSource
from nerfseg.dataset_tools.voxelize import voxelize_scene

SCENE_MANIFEST = "scene_manifest.json"
PARTIAL_PREFIX = ".partial-"

logger = logging.getLogger(__name__)


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


# ---------------------------------------------------------------------------------------------
# The scene split (planning, which rooms become scenes, is plan_build in build_plan.py)


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
        "prior_params": config.prior_params(),
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
