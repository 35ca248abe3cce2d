"""3D-FRONT loader, OBJ reader and box helpers on small hand-made houses whose answers are worked out by hand."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from nerfseg.dataset_tools.boxes import (
    Y_UP_TO_Z_UP,
    aabb_contains,
    aabb_from_points,
    normalize_obb,
    obb_corners,
    obb_from_points,
    pairwise_overlap,
    quat_xyzw_to_matrix,
    wrap_half_pi,
    yaw_from_linear,
    yaw_to_quat_xyzw,
    yup_to_zup,
    zup_to_yup,
)
from nerfseg.dataset_tools.front3d import LIGHT_BAND_STRENGTH, RoomFilter, floor_outlines, iter_houses, load_house, load_model_info
from nerfseg.dataset_tools.obj import format_obj, read_obj
from nerfseg import spec
from nerfseg.errors import InputError, UnknownCategoryError

# --------------------------------------------------------------------------------------------
# A hand-made house: a unit cube model (x, z in [-0.5, 0.5], y in [0, 1]; front +z) and a room
# whose floor spans x in [-1, 4], z (y-up) in [-1, 5]  ->  z-up y in [-5, 1], ceiling at 2.8.

CUBE_JID = "cube-0001"
Q90 = yaw_to_quat_xyzw(math.pi / 2)  # [0, sin 45, 0, cos 45]: 90 degrees about the file's +y


def _cube_obj() -> bytes:
    v = np.array([[x, y, z] for x in (-0.5, 0.5) for y in (0.0, 1.0) for z in (-0.5, 0.5)])
    # 12 outward triangles of the cube (indices into v: bit2 = x, bit1 = y, bit0 = z)
    quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    faces = np.array([t for a, b, c, d in quads for t in ((a, b, c), (a, c, d))])
    uvs = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    uv_faces = np.array([t for _ in quads for t in ((0, 1, 2), (0, 2, 3))])  # per-corner uvs: forces splits
    return format_obj(v, faces, uvs, uv_faces, "model.mtl", "material_0")


def _quad(x0: float, x1: float, z0: float, z1: float, y: float, up: bool) -> dict[str, Any]:
    xyz = [[x0, y, z0], [x1, y, z0], [x1, y, z1], [x0, y, z1]]
    faces = [0, 2, 1, 0, 3, 2] if up else [0, 1, 2, 0, 2, 3]
    n = [0, 1 if up else -1, 0]
    return {"xyz": [c for p in xyz for c in p], "normal": n * 4, "uv": [0, 0, 1, 0, 1, 1, 0, 1], "faces": faces}


def make_house(
    tmp: Path,
    children: list[dict[str, Any]] | None = None,
    model_info: list[dict[str, Any]] | None = None,
    with_model: bool = True,
    mutate: Any = None,
) -> tuple[Path, Path, Path]:
    """Write house.json, a 3D-FUTURE folder (the cube) and a texture folder under ``tmp``."""
    future = tmp / "future"
    tex = tmp / "textures"
    (tex / "floortex").mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((4, 4, 3), 200, np.uint8)).save(tex / "floortex" / "texture.png")
    future.mkdir(parents=True, exist_ok=True)
    info = model_info if model_info is not None else [{"model_id": CUBE_JID, "super-category": "Cabinet/Shelf/Desk", "category": "Nightstand", "style": None}]
    (future / "model_info.json").write_text(json.dumps(info))
    if with_model:
        (future / CUBE_JID).mkdir(exist_ok=True)
        (future / CUBE_JID / "raw_model.obj").write_bytes(_cube_obj())
        (future / CUBE_JID / "model.mtl").write_text("newmtl material_0\nKd 1 1 1\nmap_Kd texture.png\n")
        Image.fromarray(np.full((8, 8, 3), 90, np.uint8)).save(future / CUBE_JID / "texture.png")
    floor = {"uid": "m-floor", "jid": "", "type": "Floor", "material": "mat-floor", "constructid": "1", "instanceid": "Floor/1", **_quad(-1, 4, -1, 5, 0.0, up=True)}
    ceiling = {"uid": "m-ceil", "jid": "", "type": "Ceiling", "material": "mat-ceil", "constructid": "2", "instanceid": "Ceiling/2", **_quad(-1, 4, -1, 5, 2.8, up=False)}
    band = {"uid": "m-band", "jid": "", "type": "LightBand", "material": "mat-ceil", "constructid": "3", "instanceid": "LightBand/3", **_quad(0, 1, 0, 1, 2.79, up=False)}
    mesh_children = [{"ref": m, "instanceid": f"mesh/{m}", "pos": [0, 0, 0], "rot": [0, 0, 0, 1], "scale": [1, 1, 1]} for m in ("m-floor", "m-ceil", "m-band")]
    if children is None:
        children = [
            {"ref": "f1", "instanceid": "furniture/1", "pos": [1.0, 0.0, 3.0], "rot": Q90, "scale": [2.0, 1.0, 0.5]},
            {"ref": "f1", "instanceid": "furniture/2", "pos": [0.0, 0.0, 0.0], "rot": [0, 0, 0, 1], "scale": [1, 1, 1]},
            {"ref": "f1", "instanceid": "furniture/3", "pos": [3.0, 0.0, 0.0], "rot": [0, 0, 0, 1], "scale": [1, 1, 1]},
        ]
    house = {
        "uid": "house-1",
        "furniture": [{"uid": "f1", "jid": CUBE_JID, "title": "cube", "valid": True}],
        "mesh": [floor, ceiling, band],
        "material": [
            {"uid": "mat-floor", "jid": "floortex", "texture": "https://x.invalid/floortex/t.png", "normaltexture": "", "color": [255, 255, 255, 255], "UVTransform": [2, 0, 0, 0, 2, 0, 0, 0, 1]},
            {"uid": "mat-ceil", "jid": "", "texture": "", "normaltexture": "", "color": [255, 128, 0, 255]},
        ],
        "scene": {"room": [{"type": "Bedroom", "instanceid": "Bedroom-1", "children": mesh_children + children}]},
    }
    if mutate is not None:
        mutate(house)
    path = tmp / "front" / "house-1.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(house))
    return path, future, tex


LOOSE = RoomFilter(min_objects=1)


# --------------------------------------------------------------------------------------------
# Frames and quaternions


def test_yup_to_zup_is_a_proper_rotation() -> None:
    assert np.allclose(yup_to_zup(np.array([1.0, 2.0, 3.0])), [1.0, -3.0, 2.0])
    assert np.allclose(yup_to_zup(np.array([0.0, 1.0, 0.0])), [0, 0, 1])  # up stays up
    assert math.isclose(np.linalg.det(Y_UP_TO_Z_UP), 1.0)  # not BlenderProc's y/z swap (det -1)
    p = np.random.default_rng(0).normal(size=(10, 3))
    assert np.allclose(zup_to_yup(yup_to_zup(p)), p)
    assert np.allclose(yup_to_zup(p), p @ Y_UP_TO_Z_UP.T)


def test_quaternion_is_xyzw() -> None:
    assert np.allclose(quat_xyzw_to_matrix([0, 0, 0, 1]), np.eye(3))
    r = quat_xyzw_to_matrix(Q90)  # +90 deg about y: x -> -z, z -> x
    assert np.allclose(r @ [1, 0, 0], [0, 0, -1])
    assert np.allclose(r @ [0, 0, 1], [1, 0, 0])
    # a rotation about the file's y becomes the same rotation about z-up
    assert np.allclose(Y_UP_TO_Z_UP @ r @ Y_UP_TO_Z_UP.T, [[0, -1, 0], [1, 0, 0], [0, 0, 1]])
    with pytest.raises(ValueError):
        quat_xyzw_to_matrix([0, 0, 0])


# --------------------------------------------------------------------------------------------
# Boxes


def test_obb_normal_form_and_yaw_range(rng: np.random.Generator) -> None:
    for _ in range(200):
        w, l, yaw = rng.uniform(0.1, 3), rng.uniform(0.1, 3), rng.uniform(-10, 10)
        o = normalize_obb(np.array([0, 0, 0, w, l, 1, yaw]))
        assert o[3] >= o[4]
        assert -math.pi / 2 <= o[6] < math.pi / 2
        # same rectangle: corners agree as sets
        a = obb_corners(np.array([0, 0, 0, w, l, 1, yaw]))
        b = obb_corners(o)
        d = np.linalg.norm(a[:, None, :] - b[None, :, :], axis=-1)
        assert d.min(axis=1).max() < 1e-9
    assert wrap_half_pi(math.pi / 2) == -math.pi / 2
    assert np.allclose(normalize_obb(normalize_obb([1, 2, 3, 1, 2, 1, 0.3])), normalize_obb([1, 2, 3, 1, 2, 1, 0.3]))


def test_obb_from_points_recovers_a_rotated_box(rng: np.random.Generator) -> None:
    true = np.array([1.0, -2.0, 0.75, 2.0, 0.6, 1.5, 0.4])
    pts = obb_corners(true)
    pts = np.vstack([pts, pts.mean(axis=0) + rng.uniform(-0.1, 0.1, size=(20, 3))])  # interior points
    got = obb_from_points(pts, 0.4 + math.pi / 2)  # the box axes, given a quarter turn off: still the same box
    assert np.allclose(got, true, atol=1e-9)
    assert np.allclose(aabb_from_points(pts)[[2, 5]], [0.0, 1.5])


def test_yaw_from_linear_and_aabb_helpers() -> None:
    lin = Y_UP_TO_Z_UP @ quat_xyzw_to_matrix(Q90) @ np.diag([2.0, 1.0, 0.5])
    assert math.isclose(yaw_from_linear(lin), math.pi / 2)
    room = np.array([[0, 0, 0], [4, 3, 2.8]])
    assert aabb_contains(room, np.array([0, 0, 0, 4, 3, 2.8]))
    assert not aabb_contains(room, np.array([-0.1, 0, 0, 1, 1, 1]))
    assert aabb_contains(room, np.array([-0.01, 0, 0, 1, 1, 2.81]), tol=0.02)
    boxes = np.array([[0, 0, 0, 1, 1, 1], [1.02, 0, 0, 2, 1, 1], [0.5, 0.5, 2, 1.5, 1.5, 3]])
    assert pairwise_overlap(boxes, 0.0, 3).sum() == 0
    assert pairwise_overlap(boxes, 0.05, 2)[0, 1]  # closer than the margin
    assert pairwise_overlap(boxes, 0.0, 2)[0, 2]  # stacked: overlap in xy only


# --------------------------------------------------------------------------------------------
# OBJ reader


def test_obj_reader_splits_uvs_and_triangulates(tmp_path: Path) -> None:
    (tmp_path / "a.obj").write_bytes(_cube_obj())
    m = read_obj(tmp_path / "a.obj")
    assert m.faces.shape == (12, 3)
    assert m.uvs is not None and len(m.uvs) == len(m.vertices)
    assert len(m.vertices) > 8  # 8 positions, split where a corner has several uvs
    tri = m.vertices[m.faces]
    vol = np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() / 6
    assert math.isclose(vol, 1.0)
    text = "v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nv 0 0 1\nvn 0 0 1\nusemtl a\nf 1//1 2//1 3//1 4//1\nusemtl b\nf 1//1 2//1 5//1\n"
    (tmp_path / "b.obj").write_text(text)
    m = read_obj(tmp_path / "b.obj")
    assert m.faces.shape == (3, 3) and m.uvs is None
    assert m.face_material.tolist() == [0, 0, 1] and m.material_names == ["a", "b"]
    (tmp_path / "c.obj").write_text("v 0 0 0\nv 1 0 0\nf 1 2 3\n")
    with pytest.raises(InputError, match="c.obj"):
        read_obj(tmp_path / "c.obj")
    (tmp_path / "e.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nv 0 0 1\nvt 0 0\nvt 1 0\nf 1/1 2/2 3\nf 1//1 2//1 4//1\n")
    m = read_obj(tmp_path / "e.obj")  # mixed corner forms take the general path
    assert m.faces.shape == (2, 3) and m.uvs is not None
    assert np.allclose(m.uvs[m.faces[0, 1]], [1, 0]) and np.allclose(m.vertices[m.faces[1]], [[0, 0, 0], [1, 0, 0], [0, 0, 1]])
    (tmp_path / "d.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf -3 -2 -1\n")
    with pytest.raises(InputError, match="negative"):
        read_obj(tmp_path / "d.obj")


# --------------------------------------------------------------------------------------------
# The loader


def test_furniture_transform_by_hand(tmp_path: Path) -> None:
    house, future, tex = make_house(tmp_path)
    loaded = load_house(house, future, tex, 7, LOOSE)
    assert loaded.dropped_rooms == [] and loaded.missing_models == []
    (scene,) = loaded.scenes
    assert scene.scene_id == "3dfront_0007_00" and scene.house_id == "house-1" and scene.room_type == "Bedroom"
    # floor x in [-1, 4], file z in [-1, 5] -> z-up y in [-5, 1]; ceiling at 2.8
    assert np.allclose(scene.room_bbox, [[-1, -5, 0], [4, 1, 2.8]])
    inst = scene.instances[0]
    # scale (2, 1, 0.5), 90 deg about y, pos (1, 0, 3): x in [0.75, 1.25], file z in [2, 4], y in [0, 1]
    assert np.allclose(inst.aabb, [0.75, -4.0, 0.0, 1.25, -2.0, 1.0])
    assert np.allclose(inst.obb, [1.0, -3.0, 0.5, 2.0, 0.5, 1.0, -math.pi / 2])
    part = next(p for p in scene.parts if p.instance_id == 1)
    # the model corner (0.5, 0, 0.5): scaled (1, 0, 0.25), rotated (0.25, 0, -1), moved (1.25, 0, 2) -> z-up (1.25, -2, 0)
    assert np.isclose(np.linalg.norm(part.vertices - [1.25, -2.0, 0.0], axis=1), 0).any()
    assert part.texture is not None and part.texture.shape == (8, 8, 3) and part.uvs is not None
    assert [i.instance_id for i in scene.instances] == [1, 2, 3]
    assert {i.class_index for i in scene.instances} == {spec.CLASS_INDEX_BY_NAME["nightstand"]}
    assert all(i.nyu40_id == 32 and i.jid == CUBE_JID and i.uid == "f1" for i in scene.instances)


def test_architecture_materials_lights_and_outline(tmp_path: Path) -> None:
    house, future, tex = make_house(tmp_path)
    (scene,) = load_house(house, future, tex, 0, LOOSE).scenes
    floor = next(p for p in scene.parts if p.kind == "Floor")
    assert floor.instance_id == 0 and floor.class_index == 0
    assert floor.texture is not None and floor.color == (1.0, 1.0, 1.0)
    assert np.allclose(floor.uvs.max(axis=0), [2.0, 2.0])  # UVTransform scale 2 applied
    a, b, c = floor.vertices[floor.faces[0]]
    assert np.cross(b - a, c - a)[2] > 0  # the floor faces up in z-up
    ceiling = next(p for p in scene.parts if p.kind == "Ceiling")
    assert ceiling.texture is None and np.allclose(ceiling.color, [1.0, 128 / 255, 0.0]) and ceiling.emissive > 0
    band = next(p for p in scene.parts if p.kind == "LightBand")
    assert band.emissive == LIGHT_BAND_STRENGTH and band.instance_id == 0
    (outline,) = scene.floor_polygons
    assert len(outline) == 4 and np.allclose(np.sort(outline[:, 0]), [-1, -1, 4, 4])


def test_floor_outline_of_two_triangulated_quads() -> None:
    from nerfseg.dataset_tools.scene import MeshPart

    # two 1x1 squares side by side, every triangle with its own vertices (as 3D-FRONT floors often are)
    tris = np.array([[[0, 0], [1, 0], [1, 1]], [[0, 0], [1, 1], [0, 1]], [[1, 0], [2, 0], [2, 1]], [[1, 0], [2, 1], [1, 1]]], float)
    v = np.concatenate([tris.reshape(-1, 2), np.zeros((12, 1))], axis=1)
    part = MeshPart("f", v, np.arange(12).reshape(4, 3), kind="Floor")
    (loop,) = floor_outlines([part])
    x, y = loop[:, 0], loop[:, 1]
    assert math.isclose(abs(0.5 * np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y)), 2.0)


def test_objects_outside_the_room_are_background_or_dropped(tmp_path: Path) -> None:
    kids = [
        {"ref": "f1", "instanceid": "furniture/1", "pos": [0, 0, 0], "rot": [0, 0, 0, 1], "scale": [1, 1, 1]},
        {"ref": "f1", "instanceid": "furniture/2", "pos": [3.9, 0, 0], "rot": [0, 0, 0, 1], "scale": [1, 1, 1]},  # pokes through x = 4
        {"ref": "f1", "instanceid": "furniture/3", "pos": [1, 0, 1], "rot": [0, 0, 0, 1], "scale": [1, 1e-4, 1e-4]},  # too small
    ]
    house, future, tex = make_house(tmp_path, children=kids)
    loaded = load_house(house, future, tex, 0, LOOSE)
    (scene,) = loaded.scenes
    assert [i.instance_id for i in scene.instances] == [1]
    furn = [p for p in scene.parts if p.kind == "furniture"]
    assert [p.instance_id for p in furn] == [1, 0, 0]  # still rendered, unlabelled
    assert sum("not fully inside" in w for w in loaded.warnings) == 1 and sum("volume" in w for w in loaded.warnings) == 1
    (scene,) = load_house(house, future, tex, 0, RoomFilter(min_objects=1, outside_objects="drop")).scenes
    assert len([p for p in scene.parts if p.kind == "furniture"]) == 2


def test_mirrored_scale_keeps_outward_faces(tmp_path: Path) -> None:
    kids = [{"ref": "f1", "instanceid": "furniture/1", "pos": [1, 0, 1], "rot": [0, 0, 0, 1], "scale": [-1, 1, 1]}]
    house, future, tex = make_house(tmp_path, children=kids)
    (scene,) = load_house(house, future, tex, 0, LOOSE).scenes
    part = next(p for p in scene.parts if p.instance_id == 1)
    tri = part.vertices[part.faces]
    vol = np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() / 6
    assert vol > 0.99


def test_room_filter_reasons(tmp_path: Path) -> None:
    house, future, tex = make_house(tmp_path)
    loaded = load_house(house, future, tex, 0, RoomFilter(min_objects=4))
    assert loaded.scenes == [] and loaded.dropped_rooms == [("Bedroom-1", "3 objects (need 4..25)")]
    loaded = load_house(house, future, tex, 0, RoomFilter(min_objects=1, min_floor_area_m2=31.0))
    assert "floor area 30.00" in loaded.dropped_rooms[0][1]
    loaded = load_house(house, future, tex, 0, RoomFilter(min_objects=1, room_types=("LivingRoom",)))
    assert "room type Bedroom" in loaded.dropped_rooms[0][1]
    assert len(load_house(house, future, tex, 0, RoomFilter()).scenes) == 1  # defaults keep 3 objects in 30 m^2


def test_missing_model_folder_is_a_counted_warning(tmp_path: Path) -> None:
    house, future, tex = make_house(tmp_path, with_model=False)
    loaded = load_house(house, future, tex, 0, RoomFilter(min_objects=0))
    assert loaded.missing_models == [CUBE_JID]
    assert any(CUBE_JID in w and "not found" in w for w in loaded.warnings)
    assert loaded.scenes[0].instances == []


def test_valid_flag_follows_the_toolbox_by_default(tmp_path: Path) -> None:
    house, future, tex = make_house(tmp_path, mutate=lambda h: h["furniture"][0].__setitem__("valid", False))
    loaded = load_house(house, future, tex, 0, RoomFilter(min_objects=0))
    assert loaded.scenes[0].instances == [] and loaded.notes["furniture_not_valid"] == 1  # official toolbox / ATISS
    assert not [p for p in loaded.scenes[0].parts if p.kind == "furniture"] and not loaded.issues  # not even rendered, not a warning
    assert len(load_house(house, future, tex, 0, RoomFilter(min_objects=1, valid_only=False)).scenes[0].instances) == 3  # BlenderProc
    house, future, tex = make_house(tmp_path / "b", mutate=lambda h: h["furniture"][0].__setitem__("jid", "../future"))
    loaded = load_house(house, future, tex, 0, RoomFilter(min_objects=0))
    assert loaded.missing_models == ["../future"]  # a jid is never a path


def test_unknown_category_is_void_and_named_not_fatal(tmp_path: Path) -> None:
    info = [{"model_id": CUBE_JID, "super-category": "Vehicles", "category": "Spaceship"}]
    house, future, tex = make_house(tmp_path, model_info=info)
    loaded = load_house(house, future, tex, 0, RoomFilter(min_objects=0))
    assert loaded.unknown_pairs == {("Vehicles", "Spaceship"): [CUBE_JID]}
    assert any("Spaceship" in w and "Vehicles" in w and CUBE_JID in w for w in loaded.warnings)
    (scene,) = loaded.scenes
    assert scene.instances == [] and {p.instance_id for p in scene.parts if p.kind == "furniture"} == {spec.UNLABELLED_INSTANCE_ID}
    with pytest.raises(UnknownCategoryError):  # the strict lookup still names the pair
        spec.category_to_class("Spaceship", "Vehicles")


def test_broken_json_names_the_file(tmp_path: Path) -> None:
    house, future, tex = make_house(tmp_path)
    house.write_text('{"uid": "x", "furniture": [')
    with pytest.raises(InputError) as err:
        load_house(house, future, tex, 0)
    assert "house-1.json" in str(err.value) and "malformed JSON" in str(err.value)
    (future / "model_info.json").write_text("[{]")
    with pytest.raises(InputError, match="model_info.json"):
        load_model_info(future)


def test_a_house_without_its_lists_stops_that_house_naming_the_key(tmp_path: Path) -> None:
    house, future, tex = make_house(tmp_path, mutate=lambda h: h.pop("mesh"))
    with pytest.raises(InputError) as err:
        load_house(house, future, tex, 0, LOOSE)
    assert err.value.key == "mesh" and "house-1.json" in str(err.value)


@pytest.mark.parametrize(
    ("mutate", "words"),
    [
        (lambda h: h["scene"]["room"][0].pop("children"), ["scene.room[0]", "children"]),
        (lambda h: h["scene"]["room"][0]["children"][3].pop("rot"), ["scene.room[0].children[3].rot", "missing key"]),
        (lambda h: h["furniture"][0].pop("jid"), ["furniture[0]", "jid"]),
        (lambda h: h["scene"]["room"][0]["children"][3].__setitem__("pos", [1, 2]), ["scene.room[0].children[3].pos", "3 finite numbers"]),
    ],
)
def test_a_bad_entry_is_a_warning_naming_the_key(tmp_path: Path, mutate: Any, words: list[str]) -> None:
    house, future, tex = make_house(tmp_path, mutate=mutate)
    loaded = load_house(house, future, tex, 0, RoomFilter(min_objects=0))  # never raises: the entry is skipped
    lines = [i.line() for i in loaded.issues]
    assert any(all(w in line for w in words) and "house-1.json" in line for line in lines), lines


def test_iter_houses_indexes_the_whole_sorted_folder(tmp_path: Path) -> None:
    for name in ("c", "a", "b"):
        (tmp_path / f"{name}.json").write_text("{}")
    (tmp_path / "notes.txt").write_text("")
    assert [(i, p.name) for i, p in iter_houses(tmp_path)] == [(0, "a.json"), (1, "b.json"), (2, "c.json")]
    assert [(i, p.name) for i, p in iter_houses(tmp_path, ["c", "a.json"])] == [(0, "a.json"), (2, "c.json")]
    with pytest.raises(InputError, match="zzz"):
        iter_houses(tmp_path, ["zzz"])
    with pytest.raises(InputError):
        iter_houses(tmp_path / "nope")
    with pytest.raises(InputError, match="model_info.json"):
        load_model_info(tmp_path)
