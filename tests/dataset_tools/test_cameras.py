"""Camera sampling: every pose valid (room, objects, clearance), close-ups see their object; view splits."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial import cKDTree

from nerfseg.dataset_tools.cameras import CameraConfig, inside_polygons, sample_camera_set, sample_cameras, split_views
from nerfseg.dataset_tools.raycast import SceneRaycaster
from nerfseg.cameras import Intrinsics
from nerfseg.errors import InputError
from tests.dataset_tools.scenes import ObjectSpec, Primitive, make_box_room


@pytest.fixture(scope="module")
def cams(room, rc):
    return sample_camera_set(room, CameraConfig(), np.random.default_rng(7), raycaster=rc)


def _dense_surface_points(rc: SceneRaycaster, spacing: float = 0.01) -> np.ndarray:
    """Points on every triangle on a lattice of about ``spacing`` (ground truth for clearance)."""
    pts = []
    tri = rc.vertices[rc.faces]
    for t in tri:
        k = max(1, int(np.ceil(np.linalg.norm(t[[1, 2, 0]] - t, axis=1).max() / spacing)))
        i, j = np.meshgrid(np.arange(k + 1), np.arange(k + 1), indexing="ij")
        keep = i + j <= k
        a, b = i[keep] / k, j[keep] / k
        pts.append(t[0] + a[:, None] * (t[1] - t[0]) + b[:, None] * (t[2] - t[0]))
    return np.concatenate(pts)


def test_all_views_are_valid(room, rc, cams) -> None:
    cfg = CameraConfig()
    eyes = cams.poses[:, :3, 3]
    lo, hi = room.room_bbox
    assert len(eyes) == 5 * cfg.views_per_object + cfg.max_global_views
    assert (eyes[:, :2] >= lo[:2] + cfg.room_margin - 1e-9).all() and (eyes[:, :2] <= hi[:2] - cfg.room_margin + 1e-9).all()
    assert (eyes[:, 2] >= lo[2] + cfg.floor_margin - 1e-9).all() and (eyes[:, 2] <= hi[2] - cfg.ceiling_margin + 1e-9).all()
    for inst in room.instances:
        inside = np.all((eyes >= inst.aabb[:3]) & (eyes <= inst.aabb[3:]), axis=1)
        assert not inside.any(), inst.category
    # clearance against a dense sampling of every surface (the sampler probes along 90 directions:
    # exact for faces seen along an axis, within ~10 % near edges and corners)
    dist, _ = cKDTree(_dense_surface_points(rc)).query(eyes)
    assert dist.min() >= 0.9 * cfg.min_surface_distance
    # proper rotations, OpenGL camera looking at the target
    rot = cams.poses[:, :3, :3]
    np.testing.assert_allclose(np.einsum("nij,nik->njk", rot, rot), np.broadcast_to(np.eye(3), rot.shape), atol=1e-9)
    np.testing.assert_allclose(np.linalg.det(rot), 1.0, atol=1e-9)
    view = cams.targets - eyes
    np.testing.assert_allclose(-rot[:, :, 2], view / np.linalg.norm(view, axis=1, keepdims=True), atol=1e-9)


def test_closeups_see_their_object_and_globals_look_level(room, rc, cams) -> None:
    intr = Intrinsics(64, 48, 40.0, 40.0, 32.0, 24.0)
    for c2w, inst_id in zip(cams.poses, cams.target_instance):
        if inst_id == 0:
            assert abs(c2w[2, 2]) < 1e-9  # global view: optical axis horizontal
            continue
        labels = rc.render_depth_labels_only(c2w, intr).instance
        assert (labels == inst_id).mean() > 0.02, inst_id
    # close-ups are on the sphere of radius 1.7 x half diagonal (x 1.2 for objects under 1 m)
    for inst in room.instances:
        sel = cams.target_instance == inst.instance_id
        ext = inst.aabb[3:] - inst.aabb[:3]
        r = 0.5 * np.linalg.norm(ext) * 1.7 * (1.2 if ext.max() < 1.0 else 1.0)
        d = np.linalg.norm(cams.poses[sel, :3, 3] - (inst.aabb[:3] + inst.aabb[3:]) / 2, axis=1)
        np.testing.assert_allclose(d, r, rtol=1e-9)


def test_closeups_skip_occluded_positions() -> None:
    # a small cube with a screen 0.3 m away on its +x side; clearance relaxed so that positions behind the
    # screen are valid places to stand: only the visibility test can reject them
    cube = ObjectSpec("cube", 10, 39, (Primitive((2.5, 2.0, 0.15), (0.3, 0.3, 0.3)),))
    screen = ObjectSpec("screen", 10, 39, (Primitive((2.8, 2.0, 0.8), (0.05, 1.5, 1.6)),))
    room = make_box_room(objects=[cube, screen])
    rc = SceneRaycaster(room)
    cfg = CameraConfig(views_per_object=60, max_global_views=0, min_surface_distance=0.02, floor_margin=0.05)
    cams = sample_camera_set(room, cfg, np.random.default_rng(0), raycaster=rc)
    sel = cams.target_instance == 1
    assert sel.sum() == 60
    intr = Intrinsics(64, 48, 40.0, 40.0, 32.0, 24.0)
    for c2w in cams.poses[sel]:
        assert (rc.render_depth_labels_only(c2w, intr).instance == 1).mean() > 0.02


def test_target_views_deterministic_and_proportional(room, rc) -> None:
    a = sample_camera_set(room, CameraConfig(), np.random.default_rng(3), target_views=60, raycaster=rc)
    b = sample_cameras(room, CameraConfig(), np.random.default_rng(3), target_views=60, raycaster=rc)
    c = sample_cameras(room, CameraConfig(), np.random.default_rng(4), target_views=60, raycaster=rc)
    assert a.poses.shape == (60, 4, 4)
    assert np.array_equal(a.poses, b)
    assert not np.array_equal(b, c)
    counts = np.bincount(a.target_instance, minlength=6)
    # quotas 15 per object and 150 global, scaled to 60 views
    assert counts[0] == 40 and (np.abs(counts[1:] - 4) <= 1).all() and counts.sum() == 60
    # asking for more than the quotas draws more from the pools instead of stopping at 225
    many = sample_cameras(room, CameraConfig(), np.random.default_rng(3), target_views=300, raycaster=rc)
    assert len(many) == 300


def test_floor_polygon_restricts_positions() -> None:
    room = make_box_room(objects=[])
    lo, hi = room.room_bbox
    mid = (lo + hi) / 2
    # L-shaped floor: the quadrant x > mid, y > mid is not part of the room
    room.floor_polygons = [np.array([[lo[0], lo[1]], [hi[0], lo[1]], [hi[0], mid[1]], [mid[0], mid[1]], [mid[0], hi[1]], [lo[0], hi[1]]])]
    eyes = sample_cameras(room, CameraConfig(), np.random.default_rng(0))[:, :3, 3]
    assert len(eyes) > 50
    assert not ((eyes[:, 0] > mid[0]) & (eyes[:, 1] > mid[1])).any()
    assert inside_polygons(eyes[:, :2], room.floor_polygons).all()


def test_no_valid_position_is_an_error() -> None:
    tiny = make_box_room(objects=[], size=(0.9, 0.9, 2.8))
    with pytest.raises(InputError, match="no valid camera"):
        sample_cameras(tiny, CameraConfig(), np.random.default_rng(0))
    with pytest.raises(InputError, match="elevation"):
        sample_cameras(tiny, CameraConfig(elevation_range_deg=(-90.0, 45.0)), np.random.default_rng(0))


@pytest.mark.parametrize("n", [1, 7, 8, 9, 100, 181])
def test_split_views_every_eighth(n: int) -> None:
    is_test = split_views(n, seed=11)
    assert is_test.dtype == bool and len(is_test) == n
    assert is_test.sum() == math.ceil(n / 8)
    assert np.array_equal(is_test, split_views(n, seed=11))


def test_split_views_depends_on_seed() -> None:
    assert not np.array_equal(split_views(100, 1), split_views(100, 2))
    assert split_views(100, 1, every=4).sum() == 25
    with pytest.raises(InputError):
        split_views(10, 1, every=0)
