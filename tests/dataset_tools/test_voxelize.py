"""3D ground truth: grids compared voxel by voxel with analytic inside tests of the primitives."""

from __future__ import annotations

import numpy as np
import pytest

from nerfseg.dataset_tools.scene import MeshPart, ObjectInstance
from nerfseg.dataset_tools.voxelize import boxes_to_voxel_units, grid_shape, voxel_centers, voxelize_scene
from nerfseg.errors import InputError
from nerfseg.gt3d import GT3D, make_instance_table
from tests.dataset_tools.scenes import DEFAULT_OBJECTS, ROOM_ORIGIN, ObjectSpec, Primitive, make_box_room, primitive_mesh

ORIGIN = np.array(ROOM_ORIGIN)


def _centre_grid(grid) -> np.ndarray:
    cx, cy, cz = grid.centers()
    return np.stack(np.meshgrid(cx, cy, cz, indexing="ij"), axis=-1)  # (X,Y,Z,3)


def _box_signed_margin(points: np.ndarray, prim: Primitive) -> np.ndarray:
    """Positive inside the (yawed) box, negative outside: min distance to the slabs' faces (Chebyshev-like)."""
    c, s = np.cos(prim.yaw), np.sin(prim.yaw)
    rel = points - (ORIGIN + np.asarray(prim.centre))
    local = np.stack([c * rel[..., 0] + s * rel[..., 1], -s * rel[..., 0] + c * rel[..., 1], rel[..., 2]], axis=-1)
    return np.min(np.asarray(prim.size) / 2 - np.abs(local), axis=-1)


def test_grid_shape_and_centres() -> None:
    box = np.array([[-1.0, -2.0, 0.0], [4.0, 2.0, 2.8]])
    assert grid_shape(box, 128) == (128, 102, 72)
    assert grid_shape(box, 160) == (160, 128, 90)
    assert grid_shape(np.array([[0, 0, 0], [10.0, 0.01, 3.0]]), 16) == (16, 1, 5)
    cx, _, cz = voxel_centers(box[0], box[1], (128, 102, 72))
    np.testing.assert_allclose(cx[0], -1.0 + 5.0 / 128 / 2)
    np.testing.assert_allclose(cz[-1], 2.8 - 2.8 / 72 / 2)
    with pytest.raises(InputError):
        grid_shape(np.array([[0, 0, 0], [1.0, 0.0, 1.0]]), 16)
    with pytest.raises(InputError):
        grid_shape(box, 0)


@pytest.mark.parametrize("yaw", [0.0, 0.5])
def test_solid_box_matches_analytic_inside(yaw: float) -> None:
    prim = Primitive((2.03, 1.71, 0.5), (0.83, 0.61, 0.77), yaw=yaw)
    room = make_box_room(objects=[ObjectSpec("box", 10, 39, (prim,))])
    grid = voxelize_scene(room, 128, mode="solid")
    margin = _box_signed_margin(_centre_grid(grid), prim)
    clear = np.abs(margin) > 1e-6
    expected = margin > 0
    assert np.array_equal((grid.instance == 1)[clear], expected[clear])
    # volume / voxel volume, within a boundary layer
    vol = np.prod(prim.size) / np.prod(grid.voxel_size)
    assert abs((grid.instance == 1).sum() - vol) < 0.08 * vol
    assert set(np.unique(grid.semantic)) == {0, 10}
    assert np.array_equal(grid.semantic == 10, grid.instance == 1)


def test_union_of_overlapping_parts_is_filled() -> None:
    chair = DEFAULT_OBJECTS[2]  # seat and back overlap
    room = make_box_room(objects=[chair])
    grid = voxelize_scene(room, 128)
    pts = _centre_grid(grid)
    margins = np.stack([_box_signed_margin(pts, p) for p in chair.primitives])
    expected = (margins > 0).any(axis=0)
    clear = (np.abs(margins) > 1e-6).all(axis=0)
    overlap = (margins > 0).all(axis=0)
    assert overlap.sum() > 0  # the test means something: some centres are inside both parts
    assert np.array_equal((grid.instance == 1)[clear], expected[clear])


def test_cylinder_and_open_box() -> None:
    cyl = Primitive((1.0, 1.0, 0.6), (0.4, 0.4, 1.0), shape="cylinder")
    room = make_box_room(objects=[ObjectSpec("lamp", 9, 35, (cyl,))])
    grid = voxelize_scene(room, 128)
    pts = _centre_grid(grid) - (ORIGIN + np.asarray(cyl.centre))
    r = np.hypot(pts[..., 0], pts[..., 1])
    z_in = np.abs(pts[..., 2]) < 0.5
    apothem = 0.2 * np.cos(np.pi / 24)  # the 24-gon lies between its inscribed and circumscribed circles
    occ = grid.instance == 1
    assert occ[z_in & (r < apothem - 1e-6)].all()
    assert not occ[~z_in | (r > 0.2 + 1e-6)].any()

    # a box with its top missing is open: one axis sees a single crossing, the other two still agree
    box = Primitive((2.5, 2.0, 0.4), (0.6, 0.5, 0.4))
    room = make_box_room(objects=[ObjectSpec("crate", 1, 3, (box,))])
    part = next(p for p in room.parts if p.instance_id == 1)
    tri = part.vertices[part.faces]
    top = np.isclose(tri[:, :, 2], tri[:, :, 2].max()).all(axis=1)
    part.faces = part.faces[~top]
    grid = voxelize_scene(room, 96)
    margin = _box_signed_margin(_centre_grid(grid), box)
    clear = np.abs(margin) > 1e-6
    assert np.array_equal((grid.instance == 1)[clear], (margin > 0)[clear])

    # a lone open sheet has no inside: solid mode falls back to its surface voxels (an object never vanishes
    # from the 3D GT), and those are exactly the surface-mode voxels
    sheet = make_box_room(objects=[])
    sheet.parts.append(MeshPart("sheet", np.array([[0, 0, 1.0], [1, 0, 1.0], [1, 1, 1.0]]), np.array([[0, 1, 2]]), instance_id=1, class_index=10))
    solid = voxelize_scene(sheet, 64).instance == 1
    assert solid.any() and np.array_equal(solid, voxelize_scene(sheet, 64, mode="surface").instance == 1)


def test_surface_mode_is_a_hollow_shell() -> None:
    prim = Primitive((2.03, 1.71, 0.5), (0.83, 0.61, 0.77))
    room = make_box_room(objects=[ObjectSpec("box", 10, 39, (prim,))])
    grid = voxelize_scene(room, 128, mode="surface")
    occ = grid.instance == 1
    vs = grid.voxel_size
    lo = ORIGIN + np.asarray(prim.centre) - np.asarray(prim.size) / 2
    hi = lo + np.asarray(prim.size)
    pts = _centre_grid(grid)
    cell_lo, cell_hi = pts - vs / 2, pts + vs / 2
    overlaps = np.all((cell_hi > lo) & (cell_lo < hi), axis=-1)
    contained = np.all((cell_lo > lo) & (cell_hi < hi), axis=-1)
    straddles = overlaps & ~contained  # cells the surface passes through
    assert not occ[contained].any()  # hollow
    assert not occ[~overlaps].any()  # nothing outside
    assert occ[straddles].mean() > 0.97  # the lattice may miss a cell the surface only clips at a corner
    # and the instance's voxel AABB matches the box within a voxel
    idx = np.argwhere(occ)
    lo_v = grid.bbox_min + idx.min(axis=0) * vs
    hi_v = grid.bbox_min + (idx.max(axis=0) + 1) * vs
    assert (np.abs(lo_v - lo) <= vs + 1e-9).all() and (np.abs(hi_v - hi) <= vs + 1e-9).all()


def test_default_room_instances_and_aabbs() -> None:
    room = make_box_room()
    for mode in ("solid", "surface"):
        grid = voxelize_scene(room, 128, mode=mode)
        assert grid.shape == (128, 102, 72) and grid.mode == mode
        assert grid.instance.dtype == np.uint16 and grid.semantic.dtype == np.uint8
        np.testing.assert_allclose(grid.bbox_min, room.room_bbox[0])
        counts = grid.instance_counts()
        assert sorted(counts) == [1, 2, 3, 4, 5]
        vs = grid.voxel_size
        for inst in room.instances:
            occ = grid.instance == inst.instance_id
            assert (grid.semantic[occ] == inst.class_index).all()
            idx = np.argwhere(occ)
            centres_lo = grid.bbox_min + (idx.min(axis=0) + 0.5) * vs
            centres_hi = grid.bbox_min + (idx.max(axis=0) + 0.5) * vs
            assert (np.abs(centres_lo - inst.aabb[:3]) <= vs + 1e-9).all(), (mode, inst.category)
            assert (np.abs(centres_hi - inst.aabb[3:]) <= vs + 1e-9).all(), (mode, inst.category)
    # the background never carries a label
    assert (grid.semantic[grid.instance == 0] == 0).all()


def test_overlapping_instances_smaller_wins() -> None:
    big = Primitive((2.5, 2.0, 0.5), (1.0, 1.0, 1.0))
    small = Primitive((2.9, 2.0, 0.5), (0.4, 0.4, 0.4))  # half inside the big box
    for order in ([("big", big, 5), ("small", small, 3)], [("small", small, 3), ("big", big, 5)]):
        room = make_box_room(objects=[ObjectSpec(n, c, 0, (p,)) for n, p, c in order])
        grid = voxelize_scene(room, 64)
        small_id = 1 + [n for n, _, _ in order].index("small")
        m_small = _box_signed_margin(_centre_grid(grid), small)
        inside_small = m_small > 1e-6
        assert (grid.instance[inside_small] == small_id).all()
        assert (grid.semantic[inside_small] == 3).all()


def test_boxes_in_voxel_units_agree_with_gt3d() -> None:
    room = make_box_room()
    grid = voxelize_scene(room, 64)
    aabb = np.stack([i.aabb for i in room.instances])
    obb = np.stack([i.obb for i in room.instances])
    a_v, o_v = boxes_to_voxel_units(aabb, obb, grid.bbox_min, grid.bbox_max, grid.shape)
    # the room box maps to [0, shape]
    r_v, _ = boxes_to_voxel_units(np.concatenate([grid.bbox_min, grid.bbox_max])[None], np.zeros((1, 7)), grid.bbox_min, grid.bbox_max, grid.shape)
    np.testing.assert_allclose(r_v[0], [0, 0, 0, *grid.shape], atol=1e-4)
    rows = [{"id": i.instance_id, "class_index": i.class_index, "aabb": i.aabb, "obb": i.obb} for i in room.instances]
    gt = GT3D(grid.instance, grid.semantic, grid.bbox_min, grid.bbox_max, "solid", make_instance_table(rows))
    ga, go = gt.boxes_in_voxel_units()
    np.testing.assert_allclose(a_v, ga, rtol=1e-6)
    np.testing.assert_allclose(o_v, go, rtol=1e-6)
    np.testing.assert_allclose(o_v[:, 6], obb[:, 6], rtol=1e-6)  # yaw unchanged
    # voxel-unit AABBs bound the voxels of each instance
    for inst, box in zip(room.instances, a_v):
        idx = np.argwhere(grid.instance == inst.instance_id)
        assert (idx.min(axis=0) >= np.floor(box[:3]) - 1).all() and (idx.max(axis=0) + 1 <= np.ceil(box[3:]) + 1).all()


def test_bad_mode_and_instances_without_parts() -> None:
    room = make_box_room(objects=[DEFAULT_OBJECTS[0]])
    with pytest.raises(InputError, match="mode"):
        voxelize_scene(room, 32, mode="hollow")
    room.instances.append(ObjectInstance(7, 1, 3, "ghost", None, "j", "u", np.zeros(6), np.zeros(7)))
    assert voxelize_scene(room, 32).instance_counts().keys() == {1}


def test_primitive_meshes_are_closed() -> None:
    for prim in (Primitive((0, 0, 0), (1, 1, 1)), Primitive((0, 0, 0), (0.3, 0.3, 1), shape="cylinder")):
        assert primitive_mesh(prim, ORIGIN).is_watertight
