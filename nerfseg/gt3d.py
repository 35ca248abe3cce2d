"""gt3d.h5 (SPEC section 3.1): the voxel instance/semantic grid and the instance table of a scene.

One writer and one reader, so the dataset builder, the evaluator's 3D metrics and the NeRF-RCNN
trainer agree on the format. The grid samples voxel centres: voxel (i, j, k) covers
``bbox_min + [i, i+1) * voxel_size`` and its label is the label at the centre ``bbox_min + (i + 0.5) * voxel_size``
with ``voxel_size = (bbox_max - bbox_min) / shape`` per axis.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from nerfseg.errors import InputError
from nerfseg.io import atomic_path

SAMPLING_NOTE = "voxel centres: label of voxel (i,j,k) is taken at bbox_min + (index + 0.5) * (bbox_max - bbox_min) / shape"

INSTANCE_DTYPE = np.dtype(
    [
        ("id", np.uint16),
        ("class_index", np.uint8),
        ("nyu40_id", np.uint8),
        ("category", "S96"),
        ("super_category", "S48"),
        ("jid", "S64"),
        ("uid", "S64"),
        ("aabb", np.float64, (6,)),
        ("obb", np.float64, (7,)),
    ]
)


@dataclass
class GT3D:
    """The content of one gt3d.h5."""

    instance: np.ndarray  # (X,Y,Z) uint16
    semantic: np.ndarray  # (X,Y,Z) uint8
    bbox_min: np.ndarray  # (3,)
    bbox_max: np.ndarray  # (3,)
    mode: str  # "solid" | "surface"
    instances: np.ndarray  # structured array of INSTANCE_DTYPE

    @property
    def resolution(self) -> int:
        return int(max(self.instance.shape))

    def class_of(self) -> dict[int, int]:
        return {int(r["id"]): int(r["class_index"]) for r in self.instances}

    def voxel_size(self) -> np.ndarray:
        return (self.bbox_max - self.bbox_min) / np.array(self.instance.shape, dtype=np.float64)

    def boxes_in_voxel_units(self) -> tuple[np.ndarray, np.ndarray]:
        """NeRF-RPN export: AABB (N,6) and OBB (N,7) in voxel units, (p - min) / (max - min) * res per axis."""
        res = np.array(self.instance.shape, dtype=np.float64)
        extent = self.bbox_max - self.bbox_min
        aabb = self.instances["aabb"].reshape(-1, 6)
        lo = (aabb[:, :3] - self.bbox_min) / extent * res
        hi = (aabb[:, 3:] - self.bbox_min) / extent * res
        obb = self.instances["obb"].reshape(-1, 7).copy()
        obb[:, :3] = (obb[:, :3] - self.bbox_min) / extent * res
        # sizes: w,l lie along the rotated axes; voxels are near-isotropic, use the xy mean scale for both
        scale_xy = float(np.mean(res[:2] / extent[:2]))
        obb[:, 3:5] *= scale_xy
        obb[:, 5] *= res[2] / extent[2]
        return np.concatenate([lo, hi], axis=1).astype(np.float32), obb.astype(np.float32)


def make_instance_table(rows: list[dict]) -> np.ndarray:
    """Build the structured /instances table from dicts with the INSTANCE_DTYPE field names."""
    table = np.zeros(len(rows), dtype=INSTANCE_DTYPE)
    for i, row in enumerate(rows):
        for name in INSTANCE_DTYPE.names:
            value = row.get(name)
            if value is None:
                continue
            if INSTANCE_DTYPE[name].kind == "S":
                value = str(value).encode("utf-8")[: INSTANCE_DTYPE[name].itemsize]
            table[i][name] = value
    return table


def write_gt3d(path: str | Path, gt: GT3D) -> None:
    """Write gt3d.h5 atomically (gzip-compressed grids)."""
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            grid = f.create_group("grid")
            for name, arr, dtype in (("instance", gt.instance, np.uint16), ("semantic", gt.semantic, np.uint8)):
                grid.create_dataset(name, data=arr.astype(dtype, copy=False), compression="gzip", compression_opts=4, shuffle=True)
            grid.attrs["bbox_min"] = np.asarray(gt.bbox_min, dtype=np.float64)
            grid.attrs["bbox_max"] = np.asarray(gt.bbox_max, dtype=np.float64)
            grid.attrs["resolution"] = int(max(gt.instance.shape))
            grid.attrs["shape"] = np.array(gt.instance.shape, dtype=np.int64)
            grid.attrs["sampling"] = SAMPLING_NOTE
            grid.attrs["mode"] = gt.mode
            f.attrs["bbox_min"] = grid.attrs["bbox_min"]
            f.attrs["bbox_max"] = grid.attrs["bbox_max"]
            f.attrs["resolution"] = grid.attrs["resolution"]
            f.attrs["voxelization"] = gt.mode
            f.create_dataset("instances", data=gt.instances)


def read_gt3d(path: str | Path) -> GT3D:
    """Read gt3d.h5 with errors that name the file and the missing piece."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "file not found")
    try:
        with h5py.File(path, "r") as f:
            for key in ("grid/instance", "grid/semantic", "instances"):
                if key not in f:
                    raise InputError(path, "missing dataset", key=key)
            grid = f["grid"]
            inst = grid["instance"][...]
            sem = grid["semantic"][...]
            if inst.shape != sem.shape or inst.ndim != 3:
                raise InputError(path, f"grid shapes disagree or are not 3D: instance {inst.shape}, semantic {sem.shape}", key="grid")
            return GT3D(
                instance=inst,
                semantic=sem,
                bbox_min=np.asarray(grid.attrs["bbox_min"], dtype=np.float64),
                bbox_max=np.asarray(grid.attrs["bbox_max"], dtype=np.float64),
                mode=str(grid.attrs.get("mode", "solid")),
                instances=f["instances"][...],
            )
    except InputError:
        raise
    except (OSError, KeyError) as exc:
        raise InputError(path, f"unreadable HDF5 ({exc})") from None
