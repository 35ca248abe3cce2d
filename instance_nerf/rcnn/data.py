"""NeRF-RCNN inputs: radiance grids + gt3d.h5 -> training samples, resampling, augmentation, batching.

Contract (SPEC 3.1 / 3.2): ``<data>/features/<scene>.npz`` holds ``rgbsigma`` (X, Y, Z, 4) float32, RGB and
**alpha** in [0, 1], sampled at voxel centres over ``room_bbox``; ``<data>/scenes/<scene>/gt3d.h5`` holds the
instance grid (voxel centres over the same box) and the instance table. Both span the same box, so a GT box
in voxel units of a grid of shape ``S`` is ``(p - bbox_min) / (bbox_max - bbox_min) * S``, for whatever ``S``.

Resampling is centre-consistent: the label of target voxel ``i`` (of ``N``) is the source label at its centre,
source index ``floor((i + 0.5) * M / N)``; RGB + alpha are area-averaged when shrinking and trilinearly
interpolated (``align_corners=False``) when enlarging, both of which keep voxel centres aligned.

Augmentation (the reference NeRF-RPN's): flips along x and y, and a 90 degree rotation about z, each with its
probability; together they reach all 8 symmetries of the floor square. Grid, instance grid and boxes go
through the same transform, so a box always encloses its instance.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

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


def load_scene_sample(data_root: str | Path, scene_id: str, input_resolution: int | None = None, features_dir: str = "features") -> SceneSample:
    """Radiance grid + GT of one scene at the working resolution (``input_resolution`` longest side).

    Kept instances: rows of the instance table with a class in 1..10 that still own at least one voxel of the
    resampled grid (an instance that vanished cannot be segmented, and the evaluator would never match it).
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
    instance = resample_labels_nearest(gt.instance, shape).astype(np.int32)
    return targets_from_gt(scene_id, grid, instance, gt.instances, gt.bbox_min, gt.bbox_max, gpath)


def targets_from_gt(scene_id: str, grid: np.ndarray, instance: np.ndarray, table: np.ndarray, bbox_min: np.ndarray, bbox_max: np.ndarray, source: str | Path | None = None) -> SceneSample:
    """Boxes (voxel units of ``instance.shape``), classes and ids of the table rows present in ``instance``."""
    shape = np.array(instance.shape, dtype=np.float64)
    extent = np.asarray(bbox_max, dtype=np.float64) - np.asarray(bbox_min, dtype=np.float64)
    if (extent <= 0).any():
        raise InputError(source, f"degenerate bbox {np.asarray(bbox_min).tolist()} .. {np.asarray(bbox_max).tolist()}")
    present = np.unique(instance)
    ids = np.asarray(table["id"], dtype=np.int64)
    cls = np.asarray(table["class_index"], dtype=np.int64)
    keep = (cls >= 1) & (cls < NUM_CLASSES) & np.isin(ids, present) & (ids != 0)
    aabb = np.asarray(table["aabb"], dtype=np.float64).reshape(-1, 6)[keep]
    lo = (aabb[:, :3] - bbox_min) / extent * shape
    hi = (aabb[:, 3:] - bbox_min) / extent * shape
    boxes = np.clip(np.concatenate([lo, hi], axis=1), 0.0, np.concatenate([shape, shape]))
    return SceneSample(scene_id, np.asarray(grid, dtype=np.float32), instance.astype(np.int32), boxes.astype(np.float32), cls[keep], ids[keep])


# ------------------------------------------------------------------------------------------- augmentation
def flip_sample(s: SceneSample, axis: int) -> SceneSample:
    """Mirror along x (0) or y (1): voxel i -> n - 1 - i, coordinate x -> n - x."""
    n = s.grid.shape[axis]
    boxes = s.boxes.copy()
    boxes[:, axis], boxes[:, axis + 3] = n - s.boxes[:, axis + 3], n - s.boxes[:, axis]
    return replace(s, grid=np.ascontiguousarray(np.flip(s.grid, axis)), instance=np.ascontiguousarray(np.flip(s.instance, axis)), boxes=boxes)


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
