"""NeRF-RCNN inputs: radiance grids + gt3d.h5 -> training samples, resampling, augmentation, batching.

Contract (SPEC 3.1 / 3.2): ``<data>/features/<scene>.npz`` holds ``rgbsigma`` (X, Y, Z, 4) float32, RGB and
**alpha** in [0, 1], sampled at voxel centres over ``room_bbox``; ``<data>/scenes/<scene>/gt3d.h5`` holds the
instance grid (voxel centres over the same box) and the instance table. Both span the same box, so a GT box
in voxel units of a grid of shape ``S`` is ``(p - bbox_min) / (bbox_max - bbox_min) * S``, for whatever ``S``.

GT to grid resolution (:func:`pool_instance_masks`, the ONE resampling of GT instances, shared by the training
targets, validation AP and Instance-NeRF's oracle detections): a grid voxel belongs to every instance that has a
GT voxel centre inside it (max-pooling) or whose GT voxel holds its own centre (nearest, which covers grids finer
than the GT). So no instance ever disappears on a coarser grid: nearest sampling alone kept chairs at a third of
their voxels and dropped thin tables entirely on the 64-voxel demo grids. Masks may overlap at boundaries (as
NeRF-RCNN's own predictions do); where one label per voxel is needed (the evaluator's GT grid),
:func:`instance_label_grid` gives a contested voxel to the instance with the fewest voxels. RGB + alpha are
area-averaged when shrinking and trilinearly interpolated (``align_corners=False``) when enlarging, both of which
keep voxel centres aligned.

Augmentation (the reference NeRF-RPN's): flips along x and y, and a 90 degree rotation about z, each with its
probability; together they reach all 8 symmetries of the floor square. Grid, instance grid and boxes go
through the same transform, so a box always encloses its instance.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from nerfseg.errors import InputError
from nerfseg.gt3d import read_gt3d
from nerfseg.spec import GT3D_H5, NUM_CLASSES, scene_dir

FEATURE_KEY = "rgbsigma"


@dataclass
class SceneSample:
    """One scene ready for the detector, all in voxel units of ``grid``."""

    scene_id: str
    grid: np.ndarray  # (X, Y, Z, 4) float32, RGB + alpha in [0, 1]
    instance: np.ndarray  # (X, Y, Z) int32 instance ids, 0 = background
    boxes: np.ndarray  # (G, 6) float32
    labels: np.ndarray  # (G,) int64 class index 1..10
    ids: np.ndarray  # (G,) int64 instance id of each box
    #: (G, X, Y, Z) bool mask of each box's instance (may overlap: pooled GT); None: ``instance == ids[g]``
    masks: np.ndarray | None = None

    def instance_masks(self) -> np.ndarray:
        """(G, X, Y, Z) bool: the stored masks, or the label grid split per id."""
        if self.masks is not None:
            return self.masks
        return np.asarray(self.instance)[None] == np.asarray(self.ids).reshape(-1, 1, 1, 1)


# ------------------------------------------------------------------------------------------------ reading
def feature_path(data_root: str | Path, scene_id: str, features_dir: str = "features") -> Path:
    return Path(data_root) / features_dir / f"{scene_id}.npz"


def load_feature_grid(path: str | Path) -> np.ndarray:
    """Read ``rgbsigma`` as (X, Y, Z, 4) float32 RGB + alpha; errors name the file and what is wrong."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "radiance grid not found (export it with the radiance grid step first)")
    try:
        with np.load(path) as npz:
            if FEATURE_KEY not in npz.files:
                raise InputError(path, f"missing array (has {sorted(npz.files)})", key=FEATURE_KEY)
            grid = npz[FEATURE_KEY]
    except InputError:
        raise
    except (OSError, ValueError) as exc:
        raise InputError(path, f"unreadable npz ({exc})") from None
    if grid.ndim != 4 or grid.shape[-1] != 4 or min(grid.shape[:3]) < 1:
        raise InputError(path, f"expected shape (X, Y, Z, 4), got {grid.shape}", key=FEATURE_KEY)
    if grid.dtype == np.uint8:
        grid = grid.astype(np.float32) / 255.0
    grid = np.asarray(grid, dtype=np.float32)
    if not np.isfinite(grid).all():
        raise InputError(path, "non-finite values", key=FEATURE_KEY)
    lo, hi = float(grid.min()), float(grid.max())
    if lo < -1e-3 or hi > 1.0 + 1e-3:
        raise InputError(path, f"values span [{lo:.3g}, {hi:.3g}]; expected RGB and alpha in [0, 1] (not raw density)", key=FEATURE_KEY)
    return np.clip(grid, 0.0, 1.0)


def working_shape(shape: Sequence[int], input_resolution: int | None) -> tuple[int, int, int]:
    """Shape whose longest side is ``input_resolution`` with the aspect of ``shape`` (unchanged if None)."""
    shape = tuple(int(s) for s in shape)
    if input_resolution is None or max(shape) == int(input_resolution):
        return shape  # type: ignore[return-value]
    f = float(input_resolution) / max(shape)
    return tuple(max(1, int(round(s * f))) for s in shape)  # type: ignore[return-value]


def grid_to_tensor(grid: np.ndarray | Tensor) -> Tensor:
    """(X, Y, Z, C) array or tensor -> (C, X, Y, Z) float32 tensor."""
    if isinstance(grid, Tensor):
        if grid.dim() != 4:
            raise InputError(None, f"grid must be (X, Y, Z, C), got shape {tuple(grid.shape)}")
        return grid.to(torch.float32).permute(3, 0, 1, 2).contiguous()
    arr = np.asarray(grid, dtype=np.float32)
    if arr.ndim != 4:
        raise InputError(None, f"grid must be (X, Y, Z, C), got shape {arr.shape}")
    return torch.from_numpy(np.ascontiguousarray(np.moveaxis(arr, -1, 0)))


def resize_grid(x: Tensor, shape: Sequence[int]) -> Tensor:
    """(C, X, Y, Z) -> (C, *shape): area average when shrinking every axis, else trilinear (voxel centres)."""
    shape = tuple(int(s) for s in shape)
    if tuple(x.shape[1:]) == shape:
        return x
    if all(n <= o for n, o in zip(shape, x.shape[1:])):
        return F.interpolate(x[None], size=shape, mode="area")[0]
    return F.interpolate(x[None], size=shape, mode="trilinear", align_corners=False)[0]


def resample_labels_nearest(labels: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Nearest-neighbour resampling of a label grid at the target voxel centres."""
    shape = tuple(int(s) for s in shape)
    if labels.shape == shape:
        return labels
    idx = [np.minimum(((np.arange(n) + 0.5) * m / n).astype(np.int64), m - 1) for n, m in zip(shape, labels.shape)]
    return labels[np.ix_(*idx)]


def _box(box: tuple[Sequence[float], Sequence[float]] | None) -> tuple[np.ndarray, np.ndarray]:
    if box is None:
        return np.zeros(3), np.ones(3)
    lo, hi = (np.asarray(b, dtype=np.float64).reshape(3) for b in box)
    if not np.all(hi > lo):
        raise InputError(None, f"degenerate box {lo.tolist()} .. {hi.tolist()}")
    return lo, hi


def pool_instance_masks(
    instance: np.ndarray,
    shape: Sequence[int],
    src_box: tuple[Sequence[float], Sequence[float]] | None = None,
    dst_box: tuple[Sequence[float], Sequence[float]] | None = None,
    ids: Sequence[int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """GT instance grid -> (ids (K,), masks (K, *shape) bool) on a grid of ``shape`` voxels.

    ``instance`` spans ``src_box`` (lo, hi), the target grid ``dst_box`` (both default to the same box). Target
    voxel ``v`` belongs to instance ``i`` when a GT voxel of ``i`` has its centre inside ``v`` (max-pooling:
    thin parts such as a one-voxel table top survive a coarser grid) or when ``v``'s centre lies in a GT voxel
    of ``i`` (nearest: a finer grid is covered without holes). Every instance with a GT voxel inside
    ``dst_box`` therefore keeps at least one voxel at ANY resolution. ``ids``: the instances wanted (default:
    every nonzero id of the grid); an id without voxels in the box gets an empty mask.
    """
    instance = np.asarray(instance)
    shape = tuple(int(s) for s in shape)
    if instance.ndim != 3 or len(shape) != 3 or min(shape) < 1:
        raise InputError(None, f"need a 3D instance grid and a 3D target shape, got {instance.shape} -> {shape}")
    src_lo, src_hi = _box(src_box)
    dst_lo, dst_hi = _box(dst_box if dst_box is not None else src_box)
    want = np.unique(instance[instance != 0]) if ids is None else np.asarray(ids, dtype=np.int64).reshape(-1)
    want = np.asarray(want, dtype=np.int64)
    masks = np.zeros((want.size, *shape), dtype=bool)
    if want.size == 0:
        return want, masks
    src = np.asarray(instance.shape)
    dst = np.asarray(shape)
    # nearest: the GT voxel under each target voxel centre (-1 where the centre lies outside the GT box)
    idx = []
    for a in range(3):
        c = dst_lo[a] + (np.arange(dst[a]) + 0.5) * (dst_hi[a] - dst_lo[a]) / dst[a]
        i = np.floor((c - src_lo[a]) / (src_hi[a] - src_lo[a]) * src[a]).astype(np.int64)
        idx.append(np.where((i >= 0) & (i < src[a]), i, -1))
    nearest = instance[np.ix_(*[np.maximum(i, 0) for i in idx])].astype(np.int64)
    outside = (idx[0] < 0)[:, None, None] | (idx[1] < 0)[None, :, None] | (idx[2] < 0)[None, None, :]
    nearest[outside] = 0
    # max-pooling: the target voxel under each GT voxel centre (-1 outside the target grid)
    cells = []
    for a in range(3):
        c = src_lo[a] + (np.arange(src[a]) + 0.5) * (src_hi[a] - src_lo[a]) / src[a]
        i = np.floor((c - dst_lo[a]) / (dst_hi[a] - dst_lo[a]) * dst[a]).astype(np.int64)
        cells.append(np.where((i >= 0) & (i < dst[a]), i, -1))
    nz = np.nonzero(instance)
    cx, cy, cz = cells[0][nz[0]], cells[1][nz[1]], cells[2][nz[2]]
    inside = (cx >= 0) & (cy >= 0) & (cz >= 0)
    lab = instance[nz][inside].astype(np.int64)
    flat = (cx[inside] * dst[1] + cy[inside]) * dst[2] + cz[inside]
    order = np.argsort(want, kind="stable")
    sorted_ids = want[order]
    for src_labels, src_cells in ((lab, flat), (nearest.reshape(-1), np.arange(nearest.size))):
        pos = np.searchsorted(sorted_ids, src_labels)
        pos = np.minimum(pos, sorted_ids.size - 1)
        hit = sorted_ids[pos] == src_labels
        k = order[pos[hit]]
        masks.reshape(want.size, -1)[k, src_cells[hit]] = True
    return want, masks


def instance_label_grid(ids: Sequence[int], masks: np.ndarray) -> np.ndarray:
    """(X, Y, Z) int32 label grid of possibly overlapping masks: a contested voxel goes to the instance with
    the fewest voxels (so a small object on a table keeps its voxels, and the table its other ones)."""
    ids = np.asarray(ids, dtype=np.int64).reshape(-1)
    masks = np.asarray(masks, dtype=bool)
    out = np.zeros(masks.shape[1:], dtype=np.int32)
    if ids.size:
        sizes = masks.reshape(ids.size, -1).sum(1)
        for k in np.argsort(-sizes, kind="stable").tolist():  # largest first, smallest writes last
            out[masks[k]] = ids[k]
    return out


def resample_gt_instances(gt: Any, shape: Sequence[int], bbox: tuple[Sequence[float], Sequence[float]] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A gt3d.h5's thing instances on a grid of ``shape`` over ``bbox`` (default: the GT's own box).

    -> (ids, masks (K, *shape), label grid) via :func:`pool_instance_masks` / :func:`instance_label_grid`;
    only rows with a class in 1..10 count (ascending id; ids without a voxel in the box are dropped).
    """
    table_ids = np.asarray(gt.instances["id"], dtype=np.int64)
    cls = np.asarray(gt.instances["class_index"], dtype=np.int64)
    things = np.unique(table_ids[(cls >= 1) & (cls < NUM_CLASSES) & (table_ids != 0)])
    ids, masks = pool_instance_masks(gt.instance, shape, (gt.bbox_min, gt.bbox_max), bbox, ids=things)
    present = masks.reshape(ids.size, -1).any(1)
    ids, masks = ids[present], masks[present]
    return ids, masks, instance_label_grid(ids, masks)


def load_scene_sample(data_root: str | Path, scene_id: str, input_resolution: int | None = None, features_dir: str = "features") -> SceneSample:
    """Radiance grid + GT of one scene at the working resolution (``input_resolution`` longest side).

    Kept instances: rows of the instance table with a class in 1..10 and a GT voxel in the room box; their
    masks come from :func:`resample_gt_instances` (max-pooled: none is lost at any working resolution).
    """
    fpath = feature_path(data_root, scene_id, features_dir)
    grid = load_feature_grid(fpath)
    gpath = scene_dir(data_root, scene_id) / GT3D_H5
    gt = read_gt3d(gpath)
    with np.load(fpath) as npz:
        for key, ref in (("bbox_min", gt.bbox_min), ("bbox_max", gt.bbox_max)):
            if key in npz.files and not np.allclose(np.asarray(npz[key], dtype=np.float64).reshape(-1)[:3], ref, atol=1e-4):
                raise InputError(fpath, f"{key} {np.asarray(npz[key]).tolist()} differs from gt3d.h5's {ref.tolist()}", key=key)
    shape = working_shape(grid.shape[:3], input_resolution)
    if shape != grid.shape[:3]:
        grid = resize_grid(grid_to_tensor(grid), shape).permute(1, 2, 3, 0).contiguous().numpy()
    ids, masks, instance = resample_gt_instances(gt, shape)
    return targets_from_gt(scene_id, grid, instance, gt.instances, gt.bbox_min, gt.bbox_max, gpath, ids=ids, masks=masks)


def targets_from_gt(
    scene_id: str,
    grid: np.ndarray,
    instance: np.ndarray,
    table: np.ndarray,
    bbox_min: np.ndarray,
    bbox_max: np.ndarray,
    source: str | Path | None = None,
    ids: np.ndarray | None = None,
    masks: np.ndarray | None = None,
) -> SceneSample:
    """Boxes (voxel units of ``instance.shape``), classes and ids of the table rows present in ``instance``
    (or, with ``ids`` and their ``masks``, of exactly those instances, in that order)."""
    shape = np.array(instance.shape, dtype=np.float64)
    extent = np.asarray(bbox_max, dtype=np.float64) - np.asarray(bbox_min, dtype=np.float64)
    if (extent <= 0).any():
        raise InputError(source, f"degenerate bbox {np.asarray(bbox_min).tolist()} .. {np.asarray(bbox_max).tolist()}")
    table_ids = np.asarray(table["id"], dtype=np.int64)
    cls = np.asarray(table["class_index"], dtype=np.int64)
    if ids is None:
        keep = (cls >= 1) & (cls < NUM_CLASSES) & np.isin(table_ids, np.unique(instance)) & (table_ids != 0)
        rows = np.flatnonzero(keep)
    else:
        row_of = {int(i): r for r, i in enumerate(table_ids.tolist())}
        missing = [int(i) for i in ids if int(i) not in row_of]
        if missing:
            raise InputError(source, f"instance ids {missing[:5]} are not in the instance table")
        rows = np.array([row_of[int(i)] for i in ids], dtype=np.int64)
    aabb = np.asarray(table["aabb"], dtype=np.float64).reshape(-1, 6)[rows]
    lo = (aabb[:, :3] - bbox_min) / extent * shape
    hi = (aabb[:, 3:] - bbox_min) / extent * shape
    boxes = np.clip(np.concatenate([lo, hi], axis=1), 0.0, np.concatenate([shape, shape]))
    return SceneSample(scene_id, np.asarray(grid, dtype=np.float32), instance.astype(np.int32), boxes.astype(np.float32), cls[rows], table_ids[rows],
                       None if masks is None else np.asarray(masks, dtype=bool))


# ------------------------------------------------------------------------------------------- augmentation
def flip_sample(s: SceneSample, axis: int) -> SceneSample:
    """Mirror along x (0) or y (1): voxel i -> n - 1 - i, coordinate x -> n - x."""
    n = s.grid.shape[axis]
    boxes = s.boxes.copy()
    boxes[:, axis], boxes[:, axis + 3] = n - s.boxes[:, axis + 3], n - s.boxes[:, axis]
    masks = None if s.masks is None else np.ascontiguousarray(np.flip(s.masks, axis + 1))
    return replace(s, grid=np.ascontiguousarray(np.flip(s.grid, axis)), instance=np.ascontiguousarray(np.flip(s.instance, axis)), boxes=boxes, masks=masks)


def rot90_sample(s: SceneSample) -> SceneSample:
    """Rotate 90 degrees about z (``np.rot90`` on axes x, y): new (x, y) = (Y - y, x), shape (Y, X, Z)."""
    ny = s.grid.shape[1]
    b = s.boxes
    boxes = np.stack([ny - b[:, 4], b[:, 0], b[:, 2], ny - b[:, 1], b[:, 3], b[:, 5]], axis=1).astype(np.float32)
    return replace(
        s,
        grid=np.ascontiguousarray(np.rot90(s.grid, 1, axes=(0, 1))),
        instance=np.ascontiguousarray(np.rot90(s.instance, 1, axes=(0, 1))),
        boxes=boxes.reshape(-1, 6),
        masks=None if s.masks is None else np.ascontiguousarray(np.rot90(s.masks, 1, axes=(1, 2))),
    )


def augment_sample(s: SceneSample, rng: np.random.Generator, flip_prob: float = 0.5, rot90_prob: float = 0.5) -> SceneSample:
    """Random x flip, y flip and 90 degree z rotation, applied consistently to grid, instance grid and boxes."""
    if rng.random() < flip_prob:
        s = flip_sample(s, 0)
    if rng.random() < flip_prob:
        s = flip_sample(s, 1)
    if rng.random() < rot90_prob:
        s = rot90_sample(s)
    return s


# ------------------------------------------------------------------------------------------------ dataset
class TrainStream(torch.utils.data.Dataset):
    """The training draws as a deterministic stream: draw ``k`` -> (scene, augmentation) from ``(seed, k)``.

    Scenes are visited in a fresh seeded permutation every epoch; the augmentation of draw ``k`` uses its own
    generator, so the stream is the same with any number of loader workers and a resumed run continues it
    exactly (start at draw ``iteration * batch_size``).
    """

    def __init__(self, data_root: str | Path, scene_ids: Sequence[str], total: int, input_resolution: int | None, features_dir: str = "features",
                 seed: int = 0, flip_prob: float = 0.5, rot90_prob: float = 0.5, cache: bool = True, start: int = 0):
        if not scene_ids:
            raise InputError(Path(data_root), "no training scenes")
        self.data_root = Path(data_root)
        self.scene_ids = list(scene_ids)
        self.total = int(total)
        self.start = int(start)
        self.input_resolution = input_resolution
        self.features_dir = features_dir
        self.seed = int(seed)
        self.flip_prob = float(flip_prob)
        self.rot90_prob = float(rot90_prob)
        self.cache: dict[str, SceneSample] | None = {} if cache else None

    def __len__(self) -> int:
        return max(0, self.total - self.start)

    def scene_of(self, k: int) -> str:
        n = len(self.scene_ids)
        perm = np.random.default_rng([self.seed, 7, k // n]).permutation(n)
        return self.scene_ids[int(perm[k % n])]

    def load(self, scene_id: str) -> SceneSample:
        if self.cache is not None and scene_id in self.cache:
            return self.cache[scene_id]
        s = load_scene_sample(self.data_root, scene_id, self.input_resolution, self.features_dir)
        if self.cache is not None:
            self.cache[scene_id] = s
        return s

    def __getitem__(self, i: int) -> SceneSample:
        k = self.start + int(i)
        s = self.load(self.scene_of(k))
        return augment_sample(s, np.random.default_rng([self.seed, 11, k]), self.flip_prob, self.rot90_prob)


def collate_samples(samples: Sequence[SceneSample]) -> list[SceneSample]:
    """Keep samples as a list: scenes differ in shape; ``model.pad_grids`` batches them on the device."""
    return list(samples)
