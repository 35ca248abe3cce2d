"""3D ground truth: instance / semantic voxel grids over the room box (SPEC 3.1) and boxes in voxel units.

Grid convention (recorded in gt3d.h5 by nerfseg.gt3d): the grid covers exactly ``room_bbox`` with no
margin; its shape is :func:`grid_shape` (longest side = ``resolution`` voxels, the others scaled to keep the
voxels near-isotropic, at least 1); ``voxel_size = (bbox_max - bbox_min) / shape`` per axis; voxel
(i, j, k) covers ``bbox_min + [index, index + 1) * voxel_size`` and is labelled by what lies at its
centre ``bbox_min + (index + 0.5) * voxel_size``.

Two modes:

* ``solid`` (default): a voxel belongs to an object when its centre is inside the object's mesh. Each
  instance's triangles are welded into connected shells; every shell is tested on its own with ray
  parity (the inside of a closed shell is between its 1st and 2nd, 3rd and 4th ... crossing), and the
  shells are OR-ed, so a chair made of overlapping closed boxes is the union of the boxes. The test runs
  along x, y and z columns of voxel centres through an Embree BVH of the instance and a voxel is inside
  when at least two of the three axes agree: a hole or a stray open sheet fools one axis, rarely two.
  An open shell never fills beyond its last crossing.
* ``surface``: voxels whose cell the instance's surface passes through (all of its triangles, sampled on
  a barycentric lattice finer than half a voxel). The reference data marked only the *visible* surfaces
  (back-projected depth); this marks hidden surfaces too, a superset of it.

Objects win over the background (0). Where instances overlap, the one with fewer voxels wins (ties: the
lower id), so a small object on or in a big one is never swallowed by it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from embreex import mesh_construction, rtcore_scene
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from nerfseg.dataset_tools.scene import Scene
from nerfseg.errors import InputError

MODES = ("solid", "surface")


@dataclass
class VoxelGrid:
    """Instance and semantic labels at voxel centres over ``[bbox_min, bbox_max]``."""

    instance: np.ndarray  # (X,Y,Z) uint16, 0 = background
    semantic: np.ndarray  # (X,Y,Z) uint8 class index
    bbox_min: np.ndarray  # (3,) world metres (= room_bbox[0])
    bbox_max: np.ndarray  # (3,)
    shape: tuple[int, int, int]
    mode: str  # "solid" | "surface"

    @property
    def voxel_size(self) -> np.ndarray:
        return (self.bbox_max - self.bbox_min) / np.asarray(self.shape, dtype=np.float64)

    def centers(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return voxel_centers(self.bbox_min, self.bbox_max, self.shape)

    def instance_counts(self) -> dict[int, int]:
        ids, counts = np.unique(self.instance, return_counts=True)
        return {int(i): int(c) for i, c in zip(ids, counts) if i != 0}


def grid_shape(room_bbox: np.ndarray, resolution: int) -> tuple[int, int, int]:
    """(X, Y, Z): the longest side of the box gets ``resolution`` voxels, the others
    ``max(1, round(extent / longest * resolution))``. Voxel size = extent / shape per axis."""
    box = np.asarray(room_bbox, dtype=np.float64).reshape(2, 3)
    extent = box[1] - box[0]
    if not np.all(np.isfinite(extent)) or np.any(extent <= 0):
        raise InputError(None, f"room_bbox must have a positive extent on every axis, got {box.tolist()}", key="room_bbox")
    if int(resolution) < 1:
        raise InputError(None, f"grid resolution must be >= 1, got {resolution}", key="resolution")
    shape = np.maximum(1, np.round(extent / extent.max() * int(resolution))).astype(int)
    shape[int(np.argmax(extent))] = int(resolution)
    return int(shape[0]), int(shape[1]), int(shape[2])


def voxel_centers(bbox_min: np.ndarray, bbox_max: np.ndarray, shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-axis voxel centre coordinates ``bbox_min + (i + 0.5) * voxel_size``."""
    lo, hi = np.asarray(bbox_min, dtype=np.float64), np.asarray(bbox_max, dtype=np.float64)
    size = (hi - lo) / np.asarray(shape, dtype=np.float64)
    return tuple(lo[a] + (np.arange(shape[a]) + 0.5) * size[a] for a in range(3))  # type: ignore[return-value]


def voxelize_scene(scene: Scene, resolution: int, mode: str = "solid") -> VoxelGrid:
    """Instance and semantic grids of ``scene`` over its room box (see the module docstring)."""
    if mode not in MODES:
        raise InputError(None, f"unknown voxelization mode {mode!r}; choose from {MODES}", key="voxelization")
    bbox = np.asarray(scene.room_bbox, dtype=np.float64).reshape(2, 3)
    try:
        shape = grid_shape(bbox, resolution)
    except InputError as err:
        raise InputError(scene.scene_id, err.problem, key=err.key) from None
    centres = voxel_centers(bbox[0], bbox[1], shape)
    size = (bbox[1] - bbox[0]) / np.asarray(shape, dtype=np.float64)

    by_instance: dict[int, list] = {}
    part_class: dict[int, int] = {}
    for part in scene.parts:
        if part.instance_id > 0 and len(part.faces):
            by_instance.setdefault(int(part.instance_id), []).append(part)
            part_class.setdefault(int(part.instance_id), int(part.class_index))
    class_of = {**part_class, **{int(i.instance_id): int(i.class_index) for i in scene.instances}}

    masks: list[tuple[int, tuple[slice, slice, slice], np.ndarray]] = []
    for inst_id, parts in sorted(by_instance.items()):
        verts = np.concatenate([np.asarray(p.vertices, dtype=np.float64) for p in parts])
        offsets = np.cumsum([0] + [len(p.vertices) for p in parts[:-1]])
        faces = np.concatenate([np.asarray(p.faces, dtype=np.int64) + o for p, o in zip(parts, offsets)])
        window = _window(verts, bbox[0], size, shape)
        if window is None:
            continue
        local = tuple(c[w] for c, w in zip(centres, window))
        if mode == "solid":
            mask = solid_mask(verts, faces, local)
            if not mask.any():
                # Thinner than a voxel everywhere (a wall lamp, a thin shelf at a coarse grid): no voxel
                # centre is inside, but the object must still exist in the 3D GT, so take its surface voxels.
                mask = surface_mask(verts, faces, local, size)
        else:
            mask = surface_mask(verts, faces, local, size)
        if mask.any():
            masks.append((inst_id, window, mask))

    instance = np.zeros(shape, dtype=np.uint16)
    semantic = np.zeros(shape, dtype=np.uint8)
    # paint big first, so the smaller instance (then the lower id) is the one left where they overlap
    for inst_id, window, mask in sorted(masks, key=lambda m: (-int(m[2].sum()), -m[0])):
        instance[window][mask] = inst_id
        semantic[window][mask] = class_of.get(inst_id, 0)
    return VoxelGrid(instance=instance, semantic=semantic, bbox_min=bbox[0].copy(), bbox_max=bbox[1].copy(), shape=shape, mode=mode)


def _window(verts: np.ndarray, lo: np.ndarray, size: np.ndarray, shape: tuple[int, int, int]) -> tuple[slice, slice, slice] | None:
    """Index ranges of the voxels whose cells meet the vertices' bounding box (None if outside the grid)."""
    i0 = np.floor((verts.min(axis=0) - lo) / size).astype(int) - 1
    i1 = np.floor((verts.max(axis=0) - lo) / size).astype(int) + 2
    i0 = np.clip(i0, 0, shape)
    i1 = np.clip(i1, 0, shape)
    if np.any(i1 <= i0):
        return None
    return tuple(slice(int(a), int(b)) for a, b in zip(i0, i1))  # type: ignore[return-value]


def shell_labels(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(F,) connected-shell index of each face, vertices welded by position (parts split by material or
    uv seams are one shell again; separate closed parts stay separate)."""
    scale = max(1.0, float(np.abs(verts).max(initial=0.0)))
    key = np.round(verts / (scale * 1e-7)).astype(np.int64)
    _, weld = np.unique(key, axis=0, return_inverse=True)
    weld = weld.ravel()
    f = weld[faces]
    n = int(weld.max()) + 1 if len(weld) else 0
    rows = np.concatenate([f[:, 0], f[:, 1], f[:, 2]])
    cols = np.concatenate([f[:, 1], f[:, 2], f[:, 0]])
    graph = coo_matrix((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    return labels[f[:, 0]]


def solid_mask(verts: np.ndarray, faces: np.ndarray, centres: tuple[np.ndarray, np.ndarray, np.ndarray], max_layers: int = 4096) -> np.ndarray:
    """(nx,ny,nz) bool: voxel centres inside the union of the mesh's closed shells (2-of-3 axis vote)."""
    shells = shell_labels(verts, faces)
    scene = rtcore_scene.EmbreeScene(robust=True)  # watertight: no ray slips through a shared edge
    mesh_construction.TriangleMesh(scene, verts.astype(np.float32), faces.astype(np.int32))
    shape = tuple(len(c) for c in centres)
    votes = np.zeros(shape, dtype=np.uint8)
    lo, hi = verts.min(axis=0), verts.max(axis=0)
    for axis in range(3):
        votes += _parity_along(scene, shells, centres, axis, lo, hi, max_layers)
    return votes >= 2


def _parity_along(
    scene: rtcore_scene.EmbreeScene,
    shells: np.ndarray,
    centres: tuple[np.ndarray, np.ndarray, np.ndarray],
    axis: int,
    lo: np.ndarray,
    hi: np.ndarray,
    max_layers: int,
) -> np.ndarray:
    """Inside test along one axis: all crossings of each column of centres, paired per shell."""
    a, b = [k for k in range(3) if k != axis]
    ca, cb = np.meshgrid(centres[a], centres[b], indexing="ij")
    n_rays = ca.size
    start = lo[axis] - 1e-3 * (1.0 + abs(lo[axis])) - 1e-2
    origins = np.zeros((n_rays, 3))
    origins[:, a], origins[:, b], origins[:, axis] = ca.ravel(), cb.ravel(), start
    direction = np.zeros((n_rays, 3), dtype=np.float32)
    direction[:, axis] = 1.0
    eps = 1e-5 * (1.0 + float(np.abs(np.concatenate([lo, hi])).max()))
    length = hi[axis] - start + 1e-2

    ray_ids, ts, shell_ids = [], [], []
    live = np.arange(n_rays)
    t_now = np.zeros(n_rays)
    for _ in range(max_layers):
        if len(live) == 0:
            break
        o = origins[live].copy()
        o[:, axis] += t_now[live]
        far = np.maximum(length - t_now[live], 0.0).astype(np.float32)
        out = scene.run(o.astype(np.float32), direction[: len(live)], dists=far, output=1)
        prim = out["primID"]
        ok = prim >= 0
        live = live[ok]
        if len(live) == 0:
            break
        t_hit = t_now[live] + out["tfar"][ok].astype(np.float64)
        ray_ids.append(live)
        ts.append(t_hit)
        shell_ids.append(shells[prim[ok]])
        t_now[live] = t_hit + eps  # step past this crossing (drops a duplicate hit on a shared edge)
    shape = tuple(len(c) for c in centres)
    inside = np.zeros((n_rays, shape[axis] + 1), dtype=np.int32)
    if ray_ids:
        ray = np.concatenate(ray_ids)
        t = np.concatenate(ts)
        shell = np.concatenate(shell_ids)
        order = np.lexsort((t, shell, ray))
        ray, t, shell = ray[order], t[order], shell[order]
        new_group = np.ones(len(ray), dtype=bool)
        new_group[1:] = (ray[1:] != ray[:-1]) | (shell[1:] != shell[:-1])
        group_start = np.maximum.accumulate(np.where(new_group, np.arange(len(ray)), 0))
        rank = np.arange(len(ray)) - group_start
        enter = np.nonzero((rank % 2 == 0)[:-1] & ~new_group[1:])[0]  # even crossing with a partner after it
        exit_ = enter + 1
        coords = centres[axis]
        s0 = origins[ray[enter], axis] + t[enter]
        s1 = origins[ray[exit_], axis] + t[exit_]
        k0 = np.searchsorted(coords, s0, side="right")
        k1 = np.searchsorted(coords, s1, side="left")
        real = k1 > k0  # intervals with at least one centre strictly inside
        np.add.at(inside, (ray[enter][real], k0[real]), 1)
        np.add.at(inside, (ray[enter][real], k1[real]), -1)
    filled = np.cumsum(inside[:, :-1], axis=1) > 0  # (n_rays, n_axis): union of the intervals
    filled = filled.reshape(len(centres[a]), len(centres[b]), shape[axis])
    # back to (x, y, z) order: the array axes are currently (a, b, axis)
    return np.moveaxis(filled, (0, 1, 2), (a, b, axis)).astype(np.uint8)


def surface_mask(
    verts: np.ndarray, faces: np.ndarray, centres: tuple[np.ndarray, np.ndarray, np.ndarray], voxel_size: np.ndarray, max_points: int = 4_000_000
) -> np.ndarray:
    """(nx,ny,nz) bool: voxels whose cell contains a point of a barycentric lattice on the triangles
    (lattice spacing under half the smallest voxel side)."""
    shape = tuple(len(c) for c in centres)
    lo = np.array([c[0] for c in centres]) - voxel_size / 2.0  # corner of the window's first voxel
    mask = np.zeros(shape, dtype=bool)
    tri = verts[faces]
    e1, e2 = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]
    longest = np.max(np.stack([np.linalg.norm(e1, axis=1), np.linalg.norm(e2, axis=1), np.linalg.norm(tri[:, 2] - tri[:, 1], axis=1)]), axis=0)
    h = 0.5 * float(voxel_size.min())
    levels = np.maximum(1, np.ceil(longest / h)).astype(np.int64)
    for k in np.unique(levels):
        ii, jj = np.meshgrid(np.arange(k + 1), np.arange(k + 1), indexing="ij")
        keep = ii + jj <= k
        bary = np.stack([ii[keep], jj[keep]], axis=1).astype(np.float64) / k  # (M,2)
        idx = np.nonzero(levels == k)[0]
        step = max(1, max_points // len(bary))
        for s in range(0, len(idx), step):
            sel = idx[s : s + step]
            pts = tri[sel, 0][:, None, :] + bary[None, :, 0:1] * e1[sel][:, None, :] + bary[None, :, 1:2] * e2[sel][:, None, :]
            vox = np.floor((pts.reshape(-1, 3) - lo) / voxel_size).astype(np.int64)
            inside = np.all((vox >= 0) & (vox < np.asarray(shape)), axis=1)
            vox = vox[inside]
            mask[vox[:, 0], vox[:, 1], vox[:, 2]] = True
    return mask


def boxes_to_voxel_units(
    aabb_world: np.ndarray, obb_world: np.ndarray, bbox_min: np.ndarray, bbox_max: np.ndarray, shape: tuple[int, int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """NeRF-RPN export: AABB (N,6) and OBB (N,7) in voxel units, ``(p - min) / (max - min) * shape`` per axis.

    OBB centres map per axis; ``h`` scales with z; ``w`` and ``l`` lie along rotated axes, so they scale
    with the mean of the x and y factors (exact when the voxels are square in xy, which grid_shape keeps
    to within rounding); the yaw is unchanged. Same rule as nerfseg.gt3d.GT3D.boxes_in_voxel_units.
    """
    lo, hi = np.asarray(bbox_min, dtype=np.float64), np.asarray(bbox_max, dtype=np.float64)
    res = np.asarray(shape, dtype=np.float64)
    scale = res / (hi - lo)
    aabb = np.asarray(aabb_world, dtype=np.float64).reshape(-1, 6)
    obb = np.asarray(obb_world, dtype=np.float64).reshape(-1, 7).copy()
    aabb_v = np.concatenate([(aabb[:, :3] - lo) * scale, (aabb[:, 3:] - lo) * scale], axis=1)
    obb[:, :3] = (obb[:, :3] - lo) * scale
    obb[:, 3:5] *= float(np.mean(scale[:2]))
    obb[:, 5] *= scale[2]
    return aabb_v.astype(np.float32), obb.astype(np.float32)
