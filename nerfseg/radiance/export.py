"""Export a trained field as a radiance grid ``features/<scene>.npz`` (SPEC 3.2) for NeRF-RPN style detectors.

Layout: key ``rgbsigma`` (X, Y, Z, 4) float32 in world axes (z-up), sampled at voxel centres over
room_bbox with the grid convention of the 3D ground truth (``nerfseg/dataset_tools/voxelize.py``): the longest
side has ``resolution`` voxels, the others ``max(1, round(extent / longest * resolution))``, centre of
voxel i at ``bbox_min + (i + 0.5) * (bbox_max - bbox_min) / shape``. So a voxel of this grid and a voxel
of gt3d.h5 are the same box in space.

Channel 3 is **alpha**, not raw density: ``alpha = 1 - exp(-sigma * voxel_size)`` with sigma in 1/m and
voxel_size = longest side / resolution in metres, i.e. the opacity of one voxel-length of matter. NeRF-RPN
stored raw log-density and converted with ``1 - exp(-exp(s)/100)``; alpha is already in [0, 1] and does
not depend on the scene scale. RGB (channels 0-2, in [0, 1]) is the mean of the field's colour seen
along the six world axis directions (+x, -x, +y, -y, +z, -z); the demo scenes are diffuse, so the choice
barely matters, but it is fixed so that two exports of one field agree. Cells the occupancy grid marks
empty get alpha 0 (Instant-NGP's exporter likewise masks them). Exporting with an occupancy grid that was never
updated is an error (:class:`NeverPrunedError`): such a field (trained for no more than its occupancy warm-up)
was marched coarsely throughout and every cell of its grid still counts as occupied, so its grid is not what
the same settings give a fully trained field (NeRF-RCNN trained on such grids sees fog it never meets at test).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from nerfseg.errors import InputError
from nerfseg.io import atomic_path
from nerfseg.radiance.field import RadianceField
from nerfseg.radiance.occupancy import OccupancyGrid

#: View directions (world) whose colours are averaged into the exported RGB.
EXPORT_DIRECTIONS = ((1.0, 0.0, 0.0), (-1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, -1.0, 0.0), (0.0, 0.0, 1.0), (0.0, 0.0, -1.0))
ALPHA_DEFINITION = "alpha = 1 - exp(-sigma * voxel_size); sigma: field density in 1/m; voxel_size: longest room_bbox side / resolution in m"
RGB_DEFINITION = "mean of the field colour along the world directions +x, -x, +y, -y, +z, -z, in [0, 1]"
SAMPLE_POINTS = "voxel centres: bbox_min + (i + 0.5) * (bbox_max - bbox_min) / shape, world metres, z-up"


class NeverPrunedError(InputError):
    """A grid export from a field whose occupancy grid was never updated."""


def check_pruned(occupancy: OccupancyGrid | None, source: str | Path | None = None) -> None:
    """Raise :class:`NeverPrunedError` when ``occupancy`` exists but was never updated."""
    if occupancy is not None and int(occupancy.updates) == 0:
        raise NeverPrunedError(
            source,
            "the field's occupancy grid was never updated (trained for no more than its occupancy warm-up), so nothing "
            "was pruned and the grid would not match a trained field's; train past the warm-up (see "
            "RadianceConfig.first_occupancy_update) or use the test grids' settings",
        )


def grid_shape(room_bbox: Sequence[Sequence[float]], resolution: int) -> tuple[int, int, int]:
    """(X, Y, Z) voxels: the longest side gets ``resolution``, the others ``max(1, round(extent/longest*res))``
    (the convention of ``nerfseg.dataset_tools.voxelize.grid_shape``, repeated here because the radiance core does not
    depend on the dataset tools; a test checks the two agree)."""
    box = np.asarray(room_bbox, dtype=np.float64).reshape(2, 3)
    extent = box[1] - box[0]
    if not np.all(np.isfinite(extent)) or np.any(extent <= 0):
        raise ValueError(f"room_bbox must have a positive extent on every axis, got {box.tolist()}")
    if int(resolution) < 1:
        raise ValueError(f"grid resolution must be >= 1, got {resolution}")
    shape = np.maximum(1, np.round(extent / extent.max() * int(resolution))).astype(int)
    shape[int(np.argmax(extent))] = int(resolution)
    return int(shape[0]), int(shape[1]), int(shape[2])


@torch.no_grad()
def sample_radiance_grid(
    field: RadianceField,
    room_bbox: Sequence[Sequence[float]],
    resolution: int,
    occupancy: OccupancyGrid | None = None,
    chunk: int = 1 << 18,
) -> np.ndarray:
    """(X, Y, Z, 4) float32 RGB + alpha at voxel centres (see module docstring), computed in chunks of
    whole x-slices so that a 256-voxel grid of a large room needs only a few hundred MB. ``occupancy``: the
    field's trained occupancy grid (None: the raw field density everywhere); one never updated raises
    :class:`NeverPrunedError`."""
    check_pruned(occupancy)
    box = np.asarray(room_bbox, dtype=np.float64).reshape(2, 3)
    shape = grid_shape(box, resolution)
    size = (box[1] - box[0]) / np.asarray(shape, dtype=np.float64)
    voxel = float((box[1] - box[0]).max() / resolution)
    axes = [torch.tensor(box[0, a] + (np.arange(shape[a]) + 0.5) * size[a], dtype=torch.float32) for a in range(3)]
    device = next(field.parameters()).device
    was_training = field.training
    field.eval()
    dirs = torch.tensor(EXPORT_DIRECTIONS, dtype=torch.float32, device=device)
    dir_enc = field.encode_dirs(dirs)  # (D, S)
    out = np.zeros((*shape, 4), dtype=np.float32)
    slab = max(1, chunk // (shape[1] * shape[2]))
    yy, zz = torch.meshgrid(axes[1], axes[2], indexing="ij")
    for x0 in range(0, shape[0], slab):
        xs = axes[0][x0 : x0 + slab]
        pts = torch.stack([xs[:, None, None].expand(-1, *yy.shape), yy.expand(len(xs), -1, -1), zz.expand(len(xs), -1, -1)], -1).reshape(-1, 3)
        pts_n = field.box.normalise_points(pts.to(device))
        sigma, geo = field.geometry(pts_n)
        if occupancy is not None:
            sigma = torch.where(occupancy.occupied(pts_n), sigma, torch.zeros_like(sigma))
        rgb = torch.zeros(pts.shape[0], 3, device=device)
        for d in range(dirs.shape[0]):
            rgb += field.color(geo, dir_enc=dir_enc[d].expand(pts.shape[0], -1))
        rgb /= dirs.shape[0]
        alpha = 1.0 - torch.exp(-sigma.float() * voxel)
        vals = torch.cat([rgb.clamp(0, 1), alpha.clamp(0, 1)[:, None]], -1)
        out[x0 : x0 + len(xs)] = vals.reshape(len(xs), shape[1], shape[2], 4).cpu().numpy()
    field.train(was_training)
    return out


def export_radiance_grid(
    field: RadianceField,
    room_bbox: Sequence[Sequence[float]],
    resolution: int,
    out_path: str | Path,
    occupancy: OccupancyGrid | None = None,
    chunk: int = 1 << 18,
) -> Path:
    """Write ``rgbsigma`` (X,Y,Z,4) and its conventions to ``out_path`` (npz, atomically) and return the path.

    Keys: ``rgbsigma``, ``bbox_min``, ``bbox_max`` (world metres), ``resolution`` (X,Y,Z voxel counts),
    ``grid_resolution`` (the longest side), ``voxel_size`` (m), ``alpha_definition``, ``rgb_definition``,
    ``sample_points``.
    """
    out_path = Path(out_path)
    check_pruned(occupancy, out_path)
    box = np.asarray(room_bbox, dtype=np.float64).reshape(2, 3)
    grid = sample_radiance_grid(field, box, resolution, occupancy, chunk)
    with atomic_path(out_path) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(
                f,
                rgbsigma=grid,
                bbox_min=box[0],
                bbox_max=box[1],
                resolution=np.asarray(grid.shape[:3], dtype=np.int64),
                grid_resolution=np.int64(resolution),
                voxel_size=np.float64((box[1] - box[0]).max() / resolution),
                alpha_definition=np.str_(ALPHA_DEFINITION),
                rgb_definition=np.str_(RGB_DEFINITION),
                sample_points=np.str_(SAMPLE_POINTS),
            )
    return out_path
