"""Synthetic radiance grids with known boxes: for tests, speed benchmarks and smoke runs without a real build.

A scene is a room-shaped grid with a floor and two walls (background, alpha 1) and a few solid axis-aligned
objects, each with its class colour (plus noise) and alpha near 1; empty space has alpha 0. The GT is exact:
the instance grid marks each object's voxels, boxes are the objects' extents. ``write_synthetic_benchmark``
writes the SPEC layout (benchmark.json, scenes/<id>/gt3d.h5, features/<id>.npz) so ``train_rcnn`` can run on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from nerfseg.instance_nerf.rcnn.data import SceneSample
from nerfseg.gt3d import GT3D, make_instance_table, write_gt3d
from nerfseg.io import atomic_path, write_json_atomic
from nerfseg.spec import BENCHMARK_JSON, GT3D_H5, NUM_CLASSES, scene_dir

#: a distinct colour per class index (0 = background grey)
CLASS_COLOURS = np.array(
    [[0.5, 0.5, 0.5], [0.8, 0.2, 0.2], [0.2, 0.8, 0.2], [0.2, 0.2, 0.8], [0.8, 0.8, 0.2], [0.8, 0.2, 0.8],
     [0.2, 0.8, 0.8], [0.9, 0.5, 0.1], [0.5, 0.1, 0.9], [0.1, 0.9, 0.5], [0.95, 0.95, 0.95]],
    dtype=np.float32,
)


def make_scene(
    shape: Sequence[int] = (32, 32, 32),
    boxes: np.ndarray | None = None,
    classes: Sequence[int] | None = None,
    rng: np.random.Generator | None = None,
    num_objects: int = 2,
    size_range: tuple[int, int] = (6, 12),
    scene_id: str = "synthetic",
) -> SceneSample:
    """One synthetic scene. ``boxes`` (N, 6) integer voxel extents; random non-overlapping ones when None."""
    rng = np.random.default_rng(0) if rng is None else rng
    sx, sy, sz = (int(s) for s in shape)
    grid = np.zeros((sx, sy, sz, 4), dtype=np.float32)
    grid[:, :, 0, :3] = CLASS_COLOURS[0]
    grid[:, :, 0, 3] = 1.0
    grid[0, :, :, :3], grid[0, :, :, 3] = CLASS_COLOURS[0] * 0.8, 1.0
    grid[:, 0, :, :3], grid[:, 0, :, 3] = CLASS_COLOURS[0] * 0.9, 1.0
    if boxes is None:
        placed: list[np.ndarray] = []
        tries = 0
        while len(placed) < num_objects and tries < 200:
            tries += 1
            size = rng.integers(size_range[0], size_range[1] + 1, size=3)
            size[2] = min(size[2], sz - 2)
            lo = np.array([rng.integers(1, max(2, sx - size[0])), rng.integers(1, max(2, sy - size[1])), 1])
            b = np.concatenate([lo, np.minimum(lo + size, [sx, sy, sz])])
            if all((np.minimum(b[3:], p[3:]) - np.maximum(b[:3], p[:3]) <= 0).any() for p in placed):
                placed.append(b)
        boxes = np.array(placed, dtype=np.int64).reshape(-1, 6)
    boxes = np.asarray(boxes, dtype=np.int64).reshape(-1, 6)
    if classes is None:
        classes = rng.integers(1, NUM_CLASSES, size=len(boxes))
    classes = np.asarray(classes, dtype=np.int64)
    instance = np.zeros((sx, sy, sz), dtype=np.int32)
    for i, (b, c) in enumerate(zip(boxes, classes)):
        sl = (slice(b[0], b[3]), slice(b[1], b[4]), slice(b[2], b[5]))
        region = grid[sl]
        region[..., :3] = np.clip(CLASS_COLOURS[c] + rng.normal(0, 0.03, size=region[..., :3].shape), 0, 1)
        region[..., 3] = np.clip(0.95 + rng.normal(0, 0.02, size=region.shape[:3]), 0, 1)
        instance[sl] = i + 1
    return SceneSample(scene_id, grid, instance, boxes.astype(np.float32), classes, np.arange(1, len(boxes) + 1, dtype=np.int64))


def write_synthetic_benchmark(
    root: str | Path,
    splits: dict[str, int],
    shape: Sequence[int] = (48, 40, 24),
    room_size: Sequence[float] = (4.8, 4.0, 2.4),
    num_objects: int = 3,
    size_range: tuple[int, int] = (6, 12),
    seed: int = 0,
) -> dict[str, list[str]]:
    """Write ``splits`` (split -> scene count) of synthetic scenes in the SPEC layout; return split -> ids."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    bbox_min = np.array([-1.0, 0.5, 0.0])
    bbox_max = bbox_min + np.asarray(room_size, dtype=np.float64)
    res = np.asarray(shape, dtype=np.float64)
    ids: dict[str, list[str]] = {}
    n = 0
    for split, count in splits.items():
        ids[split] = []
        for _ in range(count):
            sid = f"synth_{n:04d}"
            n += 1
            s = make_scene(shape, rng=rng, num_objects=num_objects, size_range=size_range, scene_id=sid)
            rows = []
            for b, c, i in zip(s.boxes, s.labels, s.ids):
                lo = bbox_min + b[:3] / res * (bbox_max - bbox_min)
                hi = bbox_min + b[3:] / res * (bbox_max - bbox_min)
                ctr, size = (lo + hi) / 2, hi - lo
                rows.append({"id": int(i), "class_index": int(c), "category": "synthetic", "aabb": np.concatenate([lo, hi]),
                             "obb": np.array([*ctr, *size, 0.0])})
            sem = np.zeros(s.instance.shape, dtype=np.uint8)
            lut = np.zeros(len(s.ids) + 1, dtype=np.uint8)
            lut[s.ids] = s.labels
            sem[:] = lut[s.instance]
            gt = GT3D(instance=s.instance.astype(np.uint16), semantic=sem, bbox_min=bbox_min, bbox_max=bbox_max, mode="solid",
                      instances=make_instance_table(rows))
            write_gt3d(scene_dir(root, sid) / GT3D_H5, gt)
            fpath = root / "features" / f"{sid}.npz"
            fpath.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(fpath) as tmp:
                with open(tmp, "wb") as f:
                    np.savez_compressed(f, rgbsigma=s.grid, bbox_min=bbox_min, bbox_max=bbox_max, density="alpha")
            ids[split].append(sid)
    write_json_atomic(root / BENCHMARK_JSON, {"name": "synthetic-rcnn", "spec_version": "1", "splits": ids})
    return ids
