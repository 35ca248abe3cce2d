"""Camera poses for a room, following the reference's ``generate_room_poses`` (anchors section 2.4).

Two kinds of views, as the reference renders them:

* close-ups: for every object, positions on a sphere around its AABB centre (radius = half the AABB
  diagonal x 1.7, x 1.2 more for objects under 1 m), stratified over azimuth x elevation cells with
  elevation in [-45, 45] degrees, looking at the centre; the object must be visible from there;
* global "flower" views: rays out from the room centre at 20 azimuths, a camera every 0.15 m from 0.3 m
  to 5 m, height uniform in [0.8, 2.0] m above the floor, looking horizontally back to the room's
  vertical centre axis.

A position is valid when it is inside the room box shrunk by the margins (0.5 m at the walls and above the
floor, 0.8 m under the ceiling), inside the room's floor polygon when the scene has one (L-shaped
rooms), outside every object AABB and at least ``min_surface_distance`` from any surface (probed with
rays, see :meth:`SceneRaycaster.nearest_surface_distance`). Poses are camera-to-world, OpenGL axes,
built with :func:`nerfseg.cameras.look_at` (world z-up).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nerfseg.dataset_tools.raycast import SceneRaycaster
from nerfseg.dataset_tools.scene import Scene
from nerfseg.cameras import look_at
from nerfseg.errors import InputError


@dataclass
class CameraConfig:
    """Camera sampling settings (reference defaults; the mini preset asks for fewer views via target_views)."""

    views_per_object: int = 15
    max_global_views: int = 150
    global_height_range: tuple[float, float] = (0.8, 2.0)  # metres above the floor
    global_azimuths: int = 20
    global_radius_range: tuple[float, float] = (0.3, 5.0)  # metres from the room centre
    global_radius_step: float = 0.15
    elevation_range_deg: tuple[float, float] = (-45.0, 45.0)
    azimuth_cells: int = 30
    elevation_cells: int = 10
    radius_factor: float = 1.7  # sphere radius = half AABB diagonal x this
    small_object_extent: float = 1.0  # objects whose largest side is under this ...
    small_object_factor: float = 1.2  # ... get a sphere this much larger
    min_surface_distance: float = 0.3
    room_margin: float = 0.5  # from the walls (x, y)
    floor_margin: float = 0.5
    ceiling_margin: float = 0.8
    visibility_samples: int = 16  # surface points (plus the centre) probed for a close-up's visibility
    min_visible_fraction: float = 0.5  # of those rays whose first hit must be the object

    def validate(self) -> None:
        lo, hi = self.elevation_range_deg
        if not (-90.0 < lo <= hi < 90.0):
            raise InputError(None, f"elevation_range_deg must lie strictly inside (-90, 90), got {self.elevation_range_deg}", key="camera")
        if self.views_per_object < 0 or self.max_global_views < 0:
            raise InputError(None, "view counts must be >= 0", key="camera")
        if self.azimuth_cells < 1 or self.elevation_cells < 1 or self.global_azimuths < 1 or self.global_radius_step <= 0:
            raise InputError(None, "cell counts and the radius step must be positive", key="camera")


@dataclass
class CameraSet:
    """Sampled views: poses plus what each close-up looks at (instance 0 = a global view)."""

    poses: np.ndarray  # (N,4,4) camera-to-world, OpenGL axes
    target_instance: np.ndarray  # (N,) int64, 0 for global views
    targets: np.ndarray  # (N,3) look-at point


def sample_cameras(
    scene: Scene,
    config: CameraConfig,
    rng: np.random.Generator,
    target_views: int | None = None,
    raycaster: SceneRaycaster | None = None,
) -> np.ndarray:
    """(N,4,4) camera-to-world poses (OpenGL) for ``scene``; see :func:`sample_camera_set`."""
    return sample_camera_set(scene, config, rng, target_views=target_views, raycaster=raycaster).poses


def sample_camera_set(
    scene: Scene,
    config: CameraConfig,
    rng: np.random.Generator,
    target_views: int | None = None,
    raycaster: SceneRaycaster | None = None,
) -> CameraSet:
    """Close-up views around every object plus global views, all valid and deterministic given ``rng``.

    Without ``target_views`` each object gets up to ``views_per_object`` and the room up to
    ``max_global_views`` global views. With it, exactly ``target_views`` views are returned when that many
    valid ones exist (fewer otherwise), shared out in proportion to those quotas (D'Hondt), spare quota of
    a group that ran out of valid positions going to the others. Raises if no valid view exists at all.
    """
    config.validate()
    if target_views is not None and target_views < 1:
        raise InputError(None, f"target_views must be >= 1, got {target_views}", key="target_views")
    rc = raycaster if raycaster is not None else SceneRaycaster(scene)
    groups: list[tuple[int, np.ndarray, np.ndarray]] = []  # (instance id, eyes (K,3), targets (K,3))
    for inst in scene.instances:
        eyes, targets = _closeup_candidates(scene, inst.instance_id, np.asarray(inst.aabb, dtype=np.float64), config, rng, rc)
        groups.append((inst.instance_id, eyes, targets))
    eyes, targets = _global_candidates(scene, config, rng, rc)
    groups.append((0, eyes, targets))

    weights = np.array([config.views_per_object] * (len(groups) - 1) + [config.max_global_views], dtype=np.float64)
    available = np.array([len(g[1]) for g in groups])
    if target_views is None:
        take = np.minimum(weights.astype(np.int64), available)
    else:
        take = _dhondt(weights, available, int(target_views))
    poses, inst_ids, looks = [], [], []
    for (inst_id, eyes, targets), k in zip(groups, take):
        for eye, target in zip(eyes[:k], targets[:k]):
            poses.append(look_at(eye, target))
        inst_ids.extend([inst_id] * int(k))
        looks.append(targets[:k])
    if not poses:
        raise InputError(scene.scene_id, "no valid camera position: room too small for the margins, or every position is blocked")
    return CameraSet(np.stack(poses), np.asarray(inst_ids, dtype=np.int64), np.concatenate(looks))


def _dhondt(weights: np.ndarray, available: np.ndarray, total: int) -> np.ndarray:
    """Share ``total`` views among groups in proportion to ``weights``, never above ``available``."""
    take = np.zeros(len(weights), dtype=np.int64)
    w = np.where(weights > 0, weights, 0.0)
    if not np.any(w > 0):
        w = np.ones(len(weights))
    for _ in range(total):
        open_ = (take < available) & (w > 0)
        if not np.any(open_):
            open_ = take < available  # quotas of zero still absorb views when nothing else can
            if not np.any(open_):
                break
            w = np.where(open_, 1.0, w)
        score = np.where(open_, w / (take + 1.0), -np.inf)
        take[int(np.argmax(score))] += 1
    return take


def split_views(num_views: int, seed: int, every: int = 8) -> np.ndarray:
    """(num_views,) bool is_test: every ``every``-th view of a seeded shuffle (ceil(num_views / every) views)."""
    if every < 1:
        raise InputError(None, f"every must be >= 1, got {every}", key="test_every")
    is_test = np.zeros(num_views, dtype=bool)
    perm = np.random.default_rng(seed).permutation(num_views)
    is_test[perm[::every]] = True
    return is_test


# ---------------------------------------------------------------------------------------------------


def valid_positions(scene: Scene, points: np.ndarray, config: CameraConfig, raycaster: SceneRaycaster) -> np.ndarray:
    """(N,) bool: inside the shrunk room box and floor polygon, outside all object AABBs, far from surfaces."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    lo = np.asarray(scene.room_bbox[0], dtype=np.float64) + np.array([config.room_margin, config.room_margin, config.floor_margin])
    hi = np.asarray(scene.room_bbox[1], dtype=np.float64) - np.array([config.room_margin, config.room_margin, config.ceiling_margin])
    ok = np.all((points >= lo) & (points <= hi), axis=1)
    if scene.floor_polygons and np.any(ok):
        ok &= inside_polygons(points[:, :2], scene.floor_polygons)
    if scene.instances and np.any(ok):
        boxes = np.stack([np.asarray(inst.aabb, dtype=np.float64) for inst in scene.instances])  # (M,6)
        inside = np.all((points[:, None, :] >= boxes[None, :, :3]) & (points[:, None, :] <= boxes[None, :, 3:]), axis=2)
        ok &= ~inside.any(axis=1)
    if np.any(ok):
        idx = np.nonzero(ok)[0]
        dist = raycaster.nearest_surface_distance(points[idx], config.min_surface_distance * 1.01)
        ok[idx] = dist >= config.min_surface_distance
    return ok


def inside_polygons(xy: np.ndarray, polygons: list[np.ndarray]) -> np.ndarray:
    """(N,) bool: point inside any of the (K,2) polygons (even-odd crossing rule, vectorised)."""
    inside = np.zeros(len(xy), dtype=bool)
    px, py = xy[:, 0:1], xy[:, 1:2]
    for poly in polygons:
        poly = np.asarray(poly, dtype=np.float64)
        if len(poly) < 3:
            continue
        a, b = poly, np.roll(poly, -1, axis=0)
        straddle = (a[None, :, 1] > py) != (b[None, :, 1] > py)
        dy = np.where(b[:, 1] == a[:, 1], 1.0, b[:, 1] - a[:, 1])
        x_cross = a[None, :, 0] + (py - a[None, :, 1]) * (b[None, :, 0] - a[None, :, 0]) / dy[None, :]
        crossings = np.sum(straddle & (px < x_cross), axis=1)
        inside |= crossings % 2 == 1
    return inside


def _surface_samples(raycaster: SceneRaycaster, instance_id: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` area-weighted random points on the triangles of one instance."""
    tris = np.nonzero(raycaster.tri_instance == instance_id)[0]
    area = raycaster.tri_area[tris]
    if len(tris) == 0 or area.sum() <= 0 or n <= 0:
        return np.zeros((0, 3))
    pick = tris[rng.choice(len(tris), size=n, p=area / area.sum())]
    r1, r2 = rng.random((2, n))
    s = np.sqrt(r1)
    v = raycaster.vertices[raycaster.faces[pick]]
    return (1 - s)[:, None] * v[:, 0] + (s * (1 - r2))[:, None] * v[:, 1] + (s * r2)[:, None] * v[:, 2]


def _closeup_candidates(
    scene: Scene, instance_id: int, aabb: np.ndarray, config: CameraConfig, rng: np.random.Generator, rc: SceneRaycaster
) -> tuple[np.ndarray, np.ndarray]:
    """Valid, visible close-up positions for one object, shuffled (eyes (K,3), targets (K,3))."""
    centre = (aabb[:3] + aabb[3:]) / 2.0
    extent = aabb[3:] - aabb[:3]
    radius = 0.5 * float(np.linalg.norm(extent)) * config.radius_factor
    if extent.max() < config.small_object_extent:
        radius *= config.small_object_factor
    if not np.isfinite(radius) or radius <= 1e-6:  # a degenerate box has no sphere to stand on
        return np.zeros((0, 3)), np.zeros((0, 3))
    na, ne = config.azimuth_cells, config.elevation_cells
    ia, ie = np.meshgrid(np.arange(na), np.arange(ne), indexing="ij")
    jitter = rng.random((2, na * ne))
    az = (ia.ravel() + jitter[0]) / na * 2.0 * np.pi
    el_lo, el_hi = np.deg2rad(config.elevation_range_deg)
    el = el_lo + (ie.ravel() + jitter[1]) / ne * (el_hi - el_lo)
    eyes = centre + radius * np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], axis=1)
    eyes = eyes[valid_positions(scene, eyes, config, rc)]
    if len(eyes):
        probes = np.concatenate([centre[None], _surface_samples(rc, instance_id, config.visibility_samples, rng)])
        o = np.repeat(eyes, len(probes), axis=0)
        d = np.tile(probes, (len(eyes), 1)) - o
        _, tri = rc.first_hit(o, d)
        seen = (tri >= 0) & (rc.tri_instance[np.maximum(tri, 0)] == instance_id)
        frac = seen.reshape(len(eyes), len(probes)).mean(axis=1)
        eyes = eyes[frac >= config.min_visible_fraction]
    eyes = eyes[rng.permutation(len(eyes))]
    return eyes, np.broadcast_to(centre, eyes.shape).copy()


def _global_candidates(scene: Scene, config: CameraConfig, rng: np.random.Generator, rc: SceneRaycaster) -> tuple[np.ndarray, np.ndarray]:
    """Valid "flower" positions around the room centre, shuffled, looking horizontally at the centre axis."""
    lo, hi = np.asarray(scene.room_bbox[0], dtype=np.float64), np.asarray(scene.room_bbox[1], dtype=np.float64)
    centre = (lo + hi) / 2.0
    r0, r1 = config.global_radius_range
    radii = np.arange(r0, r1 + 1e-9, config.global_radius_step)
    az = np.arange(config.global_azimuths) / config.global_azimuths * 2.0 * np.pi
    aa, rr = np.meshgrid(az, radii, indexing="ij")
    aa, rr = aa.ravel(), rr.ravel()
    aa, rr = aa[rr > 1e-6], rr[rr > 1e-6]  # a camera on the axis itself has no horizontal direction
    h = rng.uniform(config.global_height_range[0], config.global_height_range[1], size=aa.size)
    eyes = np.stack([centre[0] + rr * np.cos(aa), centre[1] + rr * np.sin(aa), lo[2] + h], axis=1)
    eyes = eyes[valid_positions(scene, eyes, config, rc)]
    # the whole valid pool is returned: max_global_views caps it in sample_camera_set, and a target_views
    # larger than the quotas may draw more global views when the objects run out of positions
    eyes = eyes[rng.permutation(len(eyes))]
    targets = np.stack([np.full(len(eyes), centre[0]), np.full(len(eyes), centre[1]), eyes[:, 2]], axis=1)
    return eyes, targets
