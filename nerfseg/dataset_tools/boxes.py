"""Geometry helpers shared by the 3D-FRONT loader and the demo generator: frames, quaternions and boxes.

Conventions (SPEC section 1 and reference section 2.7):

* nerfseg's world is z-up; 3D-FRONT files are y-up. The conversion is the *proper* rotation of +90
  degrees about +x, ``(x, y, z)_yup -> (x, -z, y)_zup`` (determinant +1, so handedness, face winding and
  rotation senses survive). BlenderProc swaps y and z instead, which is a mirror; we do not.
  A rotation by ``theta`` about the file's +y axis becomes a rotation by the same ``theta`` about +z.
* 3D-FRONT quaternions are stored ``[x, y, z, w]`` (scalar last).
* AABB: ``(6,)`` ``[xmin, ymin, zmin, xmax, ymax, zmax]`` in world metres.
* OBB: ``(7,)`` ``[x, y, z, w, l, h, yaw]``: centre, the two horizontal side lengths with ``w >= l``, the
  height, and the rotation about +z of the ``w`` side, normalised to ``yaw in [-pi/2, pi/2)`` (the
  reference ``poly2obb_3d``). The box is upright: its z-range is the object's z-range.
"""

from __future__ import annotations

import math

import numpy as np

#: (x, y, z)_yup -> (x, -z, y)_zup : a +90 degree rotation about +x.
Y_UP_TO_Z_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
#: The inverse map (x, y, z)_zup -> (x, z, -y)_yup (the transpose: a rotation).
Z_UP_TO_Y_UP = Y_UP_TO_Z_UP.T.copy()


def yup_to_zup(points: np.ndarray) -> np.ndarray:
    """Map (..., 3) y-up points or directions to nerfseg's z-up frame: ``(x, y, z) -> (x, -z, y)``."""
    p = np.asarray(points, dtype=np.float64)
    return np.stack([p[..., 0], -p[..., 2], p[..., 1]], axis=-1)


def zup_to_yup(points: np.ndarray) -> np.ndarray:
    """Inverse of :func:`yup_to_zup`: ``(x, y, z) -> (x, z, -y)`` (used by the demo writer)."""
    p = np.asarray(points, dtype=np.float64)
    return np.stack([p[..., 0], p[..., 2], -p[..., 1]], axis=-1)


def quat_xyzw_to_matrix(q: np.ndarray | list[float]) -> np.ndarray:
    """3x3 rotation matrix of a quaternion stored ``[x, y, z, w]`` (3D-FRONT order, scalar last).

    The quaternion is normalised first (files store rounded values). Raises ValueError for a
    wrong length or a zero quaternion; callers turn that into an InputError naming the file.
    """
    q = np.asarray(q, dtype=np.float64).reshape(-1)
    if q.shape != (4,) or not np.all(np.isfinite(q)):
        raise ValueError(f"a rotation quaternion needs 4 finite numbers [x, y, z, w], got {q.tolist()}")
    n = float(np.linalg.norm(q))
    if n < 1e-12:
        raise ValueError("zero quaternion")
    x, y, z, w = q / n
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def yaw_to_quat_xyzw(yaw: float) -> list[float]:
    """Quaternion ``[x, y, z, w]`` of a y-up file rotating by ``yaw`` about +y.

    After :func:`yup_to_zup` it is a rotation by the same ``yaw`` about +z (the demo writer places
    furniture with a yaw about z-up and stores this).
    """
    return [0.0, math.sin(yaw / 2.0), 0.0, math.cos(yaw / 2.0)]


def rot_z(yaw: float) -> np.ndarray:
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


# ---------------------------------------------------------------------------------------------
# Axis-aligned boxes


def aabb_from_points(points: np.ndarray) -> np.ndarray:
    """``[xmin, ymin, zmin, xmax, ymax, zmax]`` of (N, 3) points (N >= 1)."""
    p = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    if p.shape[0] == 0:
        raise ValueError("AABB of an empty point set")
    return np.concatenate([p.min(axis=0), p.max(axis=0)])


def aabb_volume(aabb: np.ndarray) -> float:
    a = np.asarray(aabb, dtype=np.float64).reshape(6)
    return float(np.prod(np.clip(a[3:] - a[:3], 0.0, None)))


def aabb_contains(outer: np.ndarray, inner: np.ndarray, tol: float = 0.0) -> bool:
    """True when ``inner`` (6,) lies fully inside ``outer`` ((6,) or (2, 3) room box) grown by ``tol``.

    This is the reference's room membership test (``bbox_contained``): an object belongs to a room
    only if its whole box is inside; ``tol`` absorbs models that touch a wall or the ceiling.
    """
    o = np.asarray(outer, dtype=np.float64).reshape(6)
    i = np.asarray(inner, dtype=np.float64).reshape(6)
    return bool(np.all(i[:3] >= o[:3] - tol) and np.all(i[3:] <= o[3:] + tol))


def pairwise_overlap(aabbs: np.ndarray, margin: float = 0.0, dims: int = 3) -> np.ndarray:
    """(N, N) bool: boxes ``i`` and ``j`` (i != j) overlap in their first ``dims`` axes, grown by ``margin``.

    ``dims=2`` tests the xy footprints only (the demo's floor-plan check); a positive margin demands
    a gap of at least ``margin`` between boxes. Vectorised over all pairs.
    """
    a = np.asarray(aabbs, dtype=np.float64).reshape(-1, 6)
    lo, hi = a[:, :dims], a[:, 3 : 3 + dims]
    sep = (lo[:, None, :] >= hi[None, :, :] + margin) | (lo[None, :, :] >= hi[:, None, :] + margin)
    out = ~sep.any(axis=-1)
    np.fill_diagonal(out, False)
    return out


# ---------------------------------------------------------------------------------------------
# Oriented boxes


def wrap_half_pi(yaw: float) -> float:
    """Wrap an angle into ``[-pi/2, pi/2)`` (a rectangle is symmetric under a half turn)."""
    y = math.fmod(yaw + math.pi / 2.0, math.pi)
    if y < 0:
        y += math.pi
    y -= math.pi / 2.0
    if y >= math.pi / 2.0:  # fmod rounding at the boundary
        y -= math.pi
    return y


def normalize_obb(obb: np.ndarray) -> np.ndarray:
    """Reference normal form of ``[x, y, z, w, l, h, yaw]``: ``w >= l`` (swap sides and add pi/2) and
    ``yaw in [-pi/2, pi/2)``. The box itself is unchanged, only its description."""
    o = np.asarray(obb, dtype=np.float64).reshape(7).copy()
    if o[3] < o[4]:
        o[3], o[4] = o[4], o[3]
        o[6] += math.pi / 2.0
    o[6] = wrap_half_pi(float(o[6]))
    return o


def obb_from_points(points: np.ndarray, yaw: float) -> np.ndarray:
    """Tight upright OBB of (N, 3) world points whose box axes are rotated by ``yaw`` about +z.

    The points are rotated by ``-yaw`` into the box frame, the extents taken there, and the centre
    rotated back; z-centre and h come from the z-range. Result in :func:`normalize_obb` form.
    """
    p = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    if p.shape[0] == 0:
        raise ValueError("OBB of an empty point set")
    c, s = math.cos(yaw), math.sin(yaw)
    u = p[:, 0] * c + p[:, 1] * s  # coordinate along the box's first axis
    v = -p[:, 0] * s + p[:, 1] * c  # along the second axis
    u0, u1, v0, v1 = u.min(), u.max(), v.min(), v.max()
    z0, z1 = p[:, 2].min(), p[:, 2].max()
    uc, vc = (u0 + u1) / 2.0, (v0 + v1) / 2.0
    cx, cy = uc * c - vc * s, uc * s + vc * c
    return normalize_obb(np.array([cx, cy, (z0 + z1) / 2.0, u1 - u0, v1 - v0, z1 - z0, yaw]))


def yaw_from_linear(m: np.ndarray) -> float:
    """Yaw about +z of an object whose model->world linear map (z-up world) is ``m`` (3x3).

    The model's horizontal axes are its local x and local depth axis (columns 0 and 2 of a map that
    starts from a y-up model); we take the one whose image is most horizontal, so a tilted model
    still gets a sensible heading. A half-turn or quarter-turn ambiguity does not matter: the OBB
    normal form absorbs it (w/l swap, yaw modulo pi).
    """
    m = np.asarray(m, dtype=np.float64).reshape(3, 3)
    best = max((m[:, 0], m[:, 2]), key=lambda col: float(np.hypot(col[0], col[1])))
    if float(np.hypot(best[0], best[1])) < 1e-12:
        return 0.0
    return math.atan2(float(best[1]), float(best[0]))


def obb_corners(obb: np.ndarray) -> np.ndarray:
    """(8, 3) corners of an OBB ``[x, y, z, w, l, h, yaw]`` (bottom four first, counter-clockwise)."""
    x, y, z, w, l, h, yaw = np.asarray(obb, dtype=np.float64).reshape(7)
    c, s = math.cos(yaw), math.sin(yaw)
    local = np.array([[-w, -l], [w, -l], [w, l], [-w, l]]) / 2.0
    xy = local @ np.array([[c, s], [-s, c]]) + np.array([x, y])
    bottom = np.column_stack([xy, np.full(4, z - h / 2.0)])
    top = np.column_stack([xy, np.full(4, z + h / 2.0)])
    return np.vstack([bottom, top])


def footprint_aabb_2d(cx: float, cy: float, w: float, d: float, yaw: float) -> np.ndarray:
    """``[xmin, ymin, xmax, ymax]`` of a ``w x d`` rectangle centred at (cx, cy), rotated by ``yaw``."""
    c, s = abs(math.cos(yaw)), abs(math.sin(yaw))
    hx = (w * c + d * s) / 2.0
    hy = (w * s + d * c) / 2.0
    return np.array([cx - hx, cy - hy, cx + hx, cy + hy])
