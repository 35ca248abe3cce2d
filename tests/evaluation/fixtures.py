"""A tiny fake benchmark in the exact SPEC section 3 layout, for tests that need GT without a renderer.

``make_tiny_benchmark`` draws a few rectangles per view (each a thing instance, stable ids across the
views of a scene, moving a little from view to view, sometimes leaving the image), a background stuff
segment and a VOID patch, and writes every file a built benchmark has: benchmark.json, transforms.json,
images/, depth/, instance/, semantic/, panoptic/ + panoptic.json, gt3d.h5 and a ``gt`` prior (GT with
per-view id permutation). Seeded, deterministic and fast (a few ms per scene).

Import it as ``from tests.evaluation.fixtures import make_tiny_benchmark`` (pytest runs from the repo root).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from nerfseg import io, spec
from nerfseg.cameras import Intrinsics, look_at
from nerfseg.gt3d import GT3D, make_instance_table, write_gt3d

__all__ = ["make_tiny_benchmark", "tiny_scene_ids"]

def tiny_scene_ids(num_scenes: int) -> list[str]:
    return [f"tiny_{i:03d}" for i in range(num_scenes)]


def _panoptic_json(names: list[str], maps: list[np.ndarray], classes: dict[int, int], size: tuple[int, int]) -> dict[str, Any]:
    h, w = size
    annotations = [
        {"image_id": n, "file_name": f"{n}.png", "segments_info": io.segments_info_from_ids(m, classes)} for n, m in zip(names, maps)
    ]
    images = [{"id": n, "file_name": f"{n}.png", "width": w, "height": h} for n in names]
    return {"images": images, "annotations": annotations, "categories": spec.category_info()}


def _write_gt3d(path: Path, rng: np.random.Generator, ids: list[int], classes: dict[int, int], bbox: np.ndarray, grid_shape: tuple[int, int, int]) -> None:
    """Random boxes of voxels per instance, written by the one gt3d.h5 writer (nerfseg.gt3d)."""
    inst = np.zeros(grid_shape, np.uint16)
    voxel = (bbox[1] - bbox[0]) / np.asarray(grid_shape)
    for inst_id in ids:
        lo = np.array([rng.integers(0, s - 1) for s in grid_shape])
        hi = np.minimum(lo + rng.integers(1, 3, size=3), grid_shape)
        inst[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] = inst_id  # later boxes may cover earlier ones
    rows = []
    for inst_id in sorted(set(np.unique(inst).tolist()) - {0}):  # an instance covered entirely has no row
        cls = classes[inst_id]
        where = np.argwhere(inst == inst_id)
        lo_w, hi_w = bbox[0] + where.min(0) * voxel, bbox[0] + (where.max(0) + 1) * voxel
        rows.append(
            {
                "id": inst_id,
                "class_index": cls,
                "nyu40_id": spec.NYU40_IDS[cls],
                "category": spec.CLASS_NAMES[cls],
                "super_category": spec.CLASS_NAMES[cls],
                "jid": f"jid-{inst_id:04d}",
                "uid": f"uid-{inst_id:04d}",
                "aabb": (*lo_w, *hi_w),
                "obb": (*((lo_w + hi_w) / 2), *(hi_w - lo_w), 0.0),
            }
        )
    sem_lut = np.zeros(int(inst.max()) + 1, np.uint8)
    for row in rows:
        sem_lut[row["id"]] = row["class_index"]
    write_gt3d(path, GT3D(inst, sem_lut[inst], bbox[0], bbox[1], "solid", make_instance_table(rows)))


def _write_scene(root: Path, scene_id: str, rng: np.random.Generator, frames: int, size: tuple[int, int], test_every: int, priors: tuple[str, ...], grid_shape: tuple[int, int, int]) -> None:
    """One scene: its views, priors, 3D GT and transforms.json, drawing from ``rng`` always in that order."""
    h, w = size
    sdir = spec.scene_dir(root, scene_id)
    n_inst = int(rng.integers(3, 6))
    ids = sorted(rng.choice(np.arange(1, 200), size=n_inst, replace=False).tolist())
    classes = {i: int(rng.integers(1, spec.NUM_CLASSES)) for i in ids}
    cat_of = {**classes, spec.GT_BACKGROUND_SEGMENT_ID: spec.BACKGROUND}
    boxes = {i: (int(rng.integers(0, h - 4)), int(rng.integers(0, w - 4)), int(rng.integers(3, h // 2)), int(rng.integers(3, w // 2))) for i in ids}
    drift = {i: (int(rng.integers(-2, 3)), int(rng.integers(-3, 4))) for i in ids}
    names = [spec.frame_name(k) for k in range(frames)]
    maps = _write_views(sdir, rng, names, size, ids, classes, boxes, drift)
    io.write_json_atomic(sdir / spec.PANOPTIC_JSON, _panoptic_json(names, maps, cat_of, size))
    for prior in priors:
        _write_prior(sdir / spec.PRIORS_DIR / prior, rng, names, maps, cat_of, size)
    bbox = np.array([[-2.0, -1.5, 0.0], [2.0, 1.5, 2.5]])
    _write_gt3d(sdir / spec.GT3D_H5, rng, ids, classes, bbox, grid_shape)
    _write_transforms(sdir, names, size, test_every, bbox)


def _write_views(
    sdir: Path, rng: np.random.Generator, names: list[str], size: tuple[int, int], ids: list[int], classes: dict[int, int],
    boxes: dict[int, tuple[int, int, int, int]], drift: dict[int, tuple[int, int]],
) -> list[np.ndarray]:
    """Every view's instance, semantic, panoptic, colour and depth PNGs; returns the panoptic id maps."""
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w]
    maps: list[np.ndarray] = []
    for k, name in enumerate(names):
        inst = np.zeros((h, w), np.uint16)
        for i in ids:  # painter's order: later instances occlude earlier ones
            y0, x0, bh, bw = boxes[i]
            y0, x0 = y0 + drift[i][0] * k, x0 + drift[i][1] * k
            inst[(yy >= y0) & (yy < y0 + bh) & (xx >= x0) & (xx < x0 + bw)] = i
        void = np.zeros((h, w), bool)
        vy, vx = int(rng.integers(0, h - 3)), int(rng.integers(0, w - 3))
        void[vy : vy + 3, vx : vx + 3] = True
        inst[void] = 0
        lut = np.zeros(int(max(ids)) + 1, np.uint8)
        for i in ids:
            lut[i] = classes[i]
        sem = lut[inst]
        pan = np.where(inst > 0, inst.astype(np.uint32), np.uint32(spec.GT_BACKGROUND_SEGMENT_ID))
        pan[void] = spec.VOID_ID
        maps.append(pan)
        io.write_png(sdir / spec.INSTANCE_DIR / f"{name}.png", inst)
        io.write_png(sdir / spec.SEMANTIC_DIR / f"{name}.png", sem)
        io.write_panoptic_png(sdir / spec.PANOPTIC_DIR / f"{name}.png", pan)
        colours = rng.integers(0, 256, size=(int(max(ids)) + 1, 3)).astype(np.uint8)
        io.write_png(sdir / spec.IMAGES_DIR / f"{name}.png", colours[inst])
        depth = np.where(void, 0, 1500 + 10 * inst.astype(np.int64)).astype(np.uint16)
        io.write_png(sdir / spec.DEPTH_DIR / f"{name}.png", depth)
    return maps


def _write_prior(pdir: Path, rng: np.random.Generator, names: list[str], maps: list[np.ndarray], cat_of: dict[int, int], size: tuple[int, int]) -> None:
    """The `gt` prior: GT maps with an independent id permutation per view."""
    pmaps = []
    pcats = []
    for pan in maps:
        uniq = np.unique(pan)
        uniq = uniq[uniq != 0]
        new_ids = rng.choice(np.arange(1, 1 << 24), size=uniq.size, replace=False).astype(np.uint32)
        lookup = dict(zip(uniq.tolist(), new_ids.tolist()))
        out = np.zeros_like(pan)
        for old, new in lookup.items():
            out[pan == old] = new
        pmaps.append(out)
        pcats.append({new: cat_of[old] for old, new in lookup.items()})
    for name, pmap in zip(names, pmaps):
        io.write_panoptic_png(pdir / spec.PANOPTIC_DIR / f"{name}.png", pmap)
    data = _panoptic_json(names, pmaps[:1], pcats[0], size)
    data["annotations"] = [
        {"image_id": n, "file_name": f"{n}.png", "segments_info": [{**s, "score": 0.9} for s in io.segments_info_from_ids(m, c)]}
        for n, m, c in zip(names, pmaps, pcats)
    ]
    io.write_json_atomic(pdir / spec.PANOPTIC_JSON, data)


def _write_transforms(sdir: Path, names: list[str], size: tuple[int, int], test_every: int, bbox: np.ndarray) -> None:
    """transforms.json: cameras on a circle around the room, every ``test_every``-th view a test view."""
    h, w = size
    frames = len(names)
    intr = Intrinsics.from_fov(w, h, focal=0.8 * w)
    frame_entries = []
    for k, name in enumerate(names):
        angle = 2 * np.pi * k / frames
        eye = np.array([1.5 * np.cos(angle), 1.2 * np.sin(angle), 1.4])
        frame_entries.append(
            {
                "file_path": f"{spec.IMAGES_DIR}/{name}.png",
                "depth_file_path": f"{spec.DEPTH_DIR}/{name}.png",
                "transform_matrix": look_at(eye, np.array([0.0, 0.0, 1.0])).tolist(),
                "split": "test" if k % test_every == 0 else "train",
            }
        )
    test = [f["file_path"] for f in frame_entries if f["split"] == "test"]
    transforms = {
        **intr.to_json(),
        "room_bbox": bbox.tolist(),
        "frames": frame_entries,
        "train_filenames": [f["file_path"] for f in frame_entries if f["split"] == "train"],
        "val_filenames": test,
        "test_filenames": test,
    }
    io.write_json_atomic(sdir / spec.TRANSFORMS_JSON, transforms)


def make_tiny_benchmark(
    root: str | Path,
    num_scenes: int = 2,
    frames: int = 6,
    size: tuple[int, int] = (24, 32),
    seed: int = 0,
    *,
    test_every: int = 3,
    val_scenes: int = 0,
    priors: tuple[str, ...] = ("gt",),
    grid_shape: tuple[int, int, int] = (8, 6, 5),
) -> Path:
    """Write a tiny benchmark under ``root`` and return ``root``.

    ``size`` is (H, W). Views ``k % test_every == 0`` are test views (frames=6 -> 0000 and 0003).
    All scenes are in the ``test`` scene split except the last ``val_scenes``, which go to ``val``.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    scenes = tiny_scene_ids(num_scenes)
    for scene_id in scenes:
        _write_scene(root, scene_id, rng, frames, size, test_every, priors, grid_shape)
    n_test = num_scenes - val_scenes
    files = sorted(p for p in (root / spec.SCENES_DIR).rglob("*") if p.is_file())
    benchmark = {
        "name": "tiny",
        "spec_version": spec.SPEC_VERSION,
        "classes": spec.category_info(),
        "splits": {"train": [], "val": scenes[n_test:], "test": scenes[:n_test]},
        "build": {"renderer": "fixture", "resolution": [size[1], size[0]], "views": frames, "test_every": test_every, "grid_shape": list(grid_shape), "seed": seed},
        "files": {p.relative_to(root).as_posix(): io.sha256_file(p) for p in files},
        "tool_version": "tests",
    }
    io.write_json_atomic(root / spec.BENCHMARK_JSON, benchmark)
    return root
