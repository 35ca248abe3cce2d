"""The procedural demo: real 3D-FRONT layout, loads through the real loader, plausible rooms, deterministic."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from scipy.ndimage import distance_transform_edt

from nerfseg.dataset_tools.boxes import aabb_contains, aabb_from_points, obb_corners, pairwise_overlap
from nerfseg.dataset_tools.demo import ARCH_TEXTURE_SIZE, ATLAS_SIZE, DEMO_MANIFEST, MARGIN, ROOM_TYPES, write_demo_dataset
from nerfseg.dataset_tools.front3d import RoomFilter, iter_houses, load_house
from nerfseg.dataset_tools.scene import Scene
from nerfseg import spec
from nerfseg.errors import InputError

NUM_ROOMS = 5  # one of each room type
ALL_OBJECTS = RoomFilter(ban_rules=(), min_object_size_m=0.0)  # every generated object an instance: compared with the manifest


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any, dict[str, Any]]:
    out = tmp_path_factory.mktemp("demo")
    paths = write_demo_dataset(out, NUM_ROOMS, seed=3)
    return out, paths, json.loads((out / DEMO_MANIFEST).read_text())


@pytest.fixture(scope="module")
def scenes(demo: tuple[Path, Any, dict[str, Any]]) -> list[Scene]:
    _, paths, _ = demo
    out: list[Scene] = []
    for index, house in iter_houses(paths.front3d_dir):
        loaded = load_house(house, paths.future_dir, paths.texture_dir, index, ALL_OBJECTS)
        assert loaded.dropped_rooms == [] and loaded.missing_models == [] and loaded.warnings == []
        out += loaded.scenes
    return out


def _tree_digests(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def test_layout_on_disk_is_3dfront(demo: tuple[Path, Any, dict[str, Any]]) -> None:
    out, paths, manifest = demo
    assert paths.front3d_dir == out / "3D-FRONT" and paths.future_dir == out / "3D-FUTURE-model" and paths.texture_dir == out / "3D-FRONT-texture"
    info = json.loads((paths.future_dir / "model_info.json").read_text())
    assert isinstance(info, list) and info
    for entry in info:
        assert {"model_id", "super-category", "category"} <= set(entry)
        spec.category_to_class(entry["category"], entry["super-category"])  # every demo category is a known one
        folder = paths.future_dir / entry["model_id"]
        assert (folder / "raw_model.obj").is_file() and "map_Kd texture.png" in (folder / "model.mtl").read_text()
        assert Image.open(folder / "texture.png").size == (ATLAS_SIZE, ATLAS_SIZE)
    for tex in paths.texture_dir.glob("*/texture.png"):
        assert Image.open(tex).size == (ARCH_TEXTURE_SIZE, ARCH_TEXTURE_SIZE)
    houses = sorted(paths.front3d_dir.glob("*.json"))
    assert sum(len(h["rooms"]) for h in manifest["houses"]) == NUM_ROOMS and len(houses) == len(manifest["houses"])
    for path in houses:
        house = json.loads(path.read_text())
        assert house["uid"] == path.stem
        for f in house["furniture"]:
            assert {"uid", "jid", "title", "valid"} <= set(f)
        for m in house["mesh"]:
            assert {"uid", "jid", "type", "xyz", "normal", "uv", "faces", "material", "constructid", "instanceid"} <= set(m)
            assert len(m["xyz"]) % 3 == 0 and len(m["uv"]) * 3 == len(m["xyz"]) * 2
        for m in house["material"]:
            assert {"uid", "jid", "texture", "color"} <= set(m) and len(m["color"]) == 4
        for room in house["scene"]["room"]:
            assert room["type"] in ROOM_TYPES and room["instanceid"]
            types = {next(m["type"] for m in house["mesh"] if m["uid"] == c["ref"]) for c in room["children"] if not c["instanceid"].startswith("furniture/")}
            assert {"Floor", "Ceiling", "WallInner", "LightBand"} <= types
            for c in room["children"]:
                assert len(c["pos"]) == 3 and len(c["rot"]) == 4 and len(c["scale"]) == 3
                assert abs(c["rot"][0]) < 1e-9 and abs(c["rot"][2]) < 1e-9  # yaw about the file's y-up axis only
            floor = next(m for m in house["mesh"] if m["type"] == "Floor" and any(c["ref"] == m["uid"] for c in room["children"]))
            assert np.allclose(np.asarray(floor["xyz"]).reshape(-1, 3)[:, 1], 0.0)  # y-up: the floor is y = 0


def test_loads_as_the_manifest_says(demo: tuple[Path, Any, dict[str, Any]], scenes: list[Scene]) -> None:
    _, _, manifest = demo
    expected = {r["scene_id"]: r for h in manifest["houses"] for r in h["rooms"]}
    assert sorted(s.scene_id for s in scenes) == sorted(expected)
    assert sorted(s.room_type for s in scenes) == sorted(ROOM_TYPES)
    classes = set()
    for s in scenes:
        rec = expected[s.scene_id]
        assert len(s.instances) == len(rec["objects"]) >= 5
        assert [i.instance_id for i in s.instances] == list(range(1, len(s.instances) + 1))
        # the generator computed these boxes in z-up directly; the loader went through y-up JSON + quaternions
        assert np.allclose([i.aabb for i in s.instances], [o["aabb"] for o in rec["objects"]], atol=1e-4)
        assert [i.class_index for i in s.instances] == [o["class_index"] for o in rec["objects"]]
        assert np.allclose(s.room_bbox.reshape(-1), rec["room_bbox"], atol=1e-4)
        classes |= {i.class_index for i in s.instances}
        for i in s.instances:
            assert i.obb[3] >= i.obb[4] and -np.pi / 2 <= i.obb[6] < np.pi / 2
            assert aabb_contains(aabb_from_points(obb_corners(i.obb)), i.aabb, tol=1e-6)  # the OBB encloses the object
    assert classes == set(spec.THING_CLASSES)  # all ten classes


def test_rooms_are_plausible(scenes: list[Scene]) -> None:
    by_type = {s.room_type: s for s in scenes}
    names = {t: [spec.CLASS_NAMES[i.class_index] for i in s.instances] for t, s in by_type.items()}
    assert names["DiningRoom"].count("chair") >= 4 and "table" in names["DiningRoom"]
    assert names["MasterBedroom"].count("nightstand") == 2 and "bed" in names["MasterBedroom"]
    assert "sofa" in names["LivingRoom"] and "desk" in names["Library"] and "bookshelf" in names["Library"]
    for s in scenes:
        size = s.room_bbox[1] - s.room_bbox[0]
        assert 3.0 <= min(size[:2]) and max(size[:2]) <= 7.0 and 2.6 <= size[2] <= 3.0
        boxes = np.array([i.aabb for i in s.instances])
        for b in boxes:
            assert aabb_contains(s.room_bbox, b, tol=1e-6)
        # no interpenetration: two objects may share xy only when one hangs above the other
        assert not pairwise_overlap(boxes, 0.0, dims=3).any()
        floor_items = boxes[boxes[:, 2] < 0.05]
        assert not pairwise_overlap(floor_items, MARGIN - 1e-3, dims=2).any()
        # free floor for cameras: some 0.9 m wide disc touches no floor object
        res = 0.05
        xs = np.arange(s.room_bbox[0, 0] + res / 2, s.room_bbox[1, 0], res)
        ys = np.arange(s.room_bbox[0, 1] + res / 2, s.room_bbox[1, 1], res)
        occ = np.zeros((len(xs), len(ys)), bool)
        for b in floor_items:
            occ |= ((xs[:, None] >= b[0]) & (xs[:, None] <= b[3])) & ((ys[None, :] >= b[1]) & (ys[None, :] <= b[4]))
        assert occ.mean() < 0.55 and distance_transform_edt(np.pad(~occ, 1)).max() * res >= 0.4


def test_geometry_faces_the_right_way(scenes: list[Scene]) -> None:
    for s in scenes:
        centre = s.room_bbox.mean(axis=0)
        for p in s.parts:
            tri = p.vertices[p.faces]
            if not aabb_contains(np.concatenate(s.room_bbox), aabb_from_points(p.vertices), tol=0.05):
                continue  # the house's other rooms (whole-house geometry) face their own centres
            n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
            if p.kind in ("WallInner", "Floor", "Ceiling", "LightBand"):
                assert ((n * (centre - tri.mean(axis=1))).sum(axis=1) > 0).all(), p.name  # towards the room
            if p.kind == "furniture":
                vol = np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() / 6
                assert vol > 0, p.name  # closed primitives, outward winding
                assert p.texture is not None and p.uvs is not None and p.uvs.min() >= 0 and p.uvs.max() <= 1
        bands = [p for p in s.parts if p.kind == "LightBand"]
        own = [p for p in bands if aabb_contains(np.concatenate(s.room_bbox), aabb_from_points(p.vertices), tol=0.05)]
        assert own and all(p.emissive > 0 for p in own)
        assert all(p.emissive == 0 for p in bands if not any(p is q for q in own))  # only the scene room lights itself


def test_default_selection_bans_fixtures_and_small_decor(demo: tuple[Path, Any, dict[str, Any]], scenes: list[Scene]) -> None:
    _, paths, manifest = demo
    expected = {r["scene_id"]: r for h in manifest["houses"] for r in h["rooms"]}
    rf = RoomFilter()
    kept: dict[str, list[str]] = {}
    for index, house in iter_houses(paths.front3d_dir):
        for s in load_house(house, paths.future_dir, paths.texture_dir, index, rf, rooms=None).scenes:
            kept[s.scene_id] = [i.jid for i in s.instances]
    assert kept  # at least one demo room keeps 3+ large objects
    for sid, jids in kept.items():
        want = []
        for o in expected[sid]["objects"]:
            size = max(np.subtract(o["aabb"][3:], o["aabb"][:3]))
            rule = rf.ban_of((o["category"], o["super_category"]))
            if rule is not None and (rule.keep_if_larger_than_m is None or size < rule.keep_if_larger_than_m):
                continue
            want.append(o["jid"])
        assert jids == want
        assert not {"Pendant Lamp", "Ceiling Lamp"} & {o["category"] for o in expected[sid]["objects"] if o["jid"] in jids}


def test_demo_labels_follow_the_real_pair_frequencies() -> None:
    from nerfseg.dataset_tools.demo.furniture import _FAMILY_PAIRS, _real_pair

    real = {(sup, cat): n for sup, cat, n in spec.real_category_pairs()}
    assert {p for ps in _FAMILY_PAIRS.values() for p in ps} == set(real)  # every real pair can be drawn, nothing else
    draws = [_real_pair(("Sofa", "Three-Seat / Multi-seat Sofa"), seed) for seed in range(4000)]
    family = _FAMILY_PAIRS["sofa"]
    total = sum(real[p] for p in family)
    for p in family:
        assert abs(draws.count(p) / len(draws) - real[p] / total) < 0.03, p


def test_same_seed_same_bytes(demo: tuple[Path, Any, dict[str, Any]], tmp_path: Path) -> None:
    out, _, manifest = demo
    write_demo_dataset(tmp_path / "again", NUM_ROOMS, seed=3)
    first, again = _tree_digests(out), _tree_digests(tmp_path / "again")
    assert first == again
    assert {k: v for k, v in first.items() if k in manifest["files"]} == manifest["files"]
    write_demo_dataset(tmp_path / "other", 2, seed=4)
    assert set(_tree_digests(tmp_path / "other").values()).isdisjoint(v for k, v in first.items() if k.endswith(".json") and "3D-FRONT/" in k)


def test_rewrite_removes_stale_houses_and_guards_foreign_folders(tmp_path: Path) -> None:
    out = tmp_path / "d"
    write_demo_dataset(out, 4, seed=1)
    small = write_demo_dataset(out, 1, seed=1)
    manifest = json.loads((out / DEMO_MANIFEST).read_text())
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file() and p.name not in (DEMO_MANIFEST, ".nerfseg-demo")) == sorted(manifest["files"])
    assert len(list(small.front3d_dir.glob("*.json"))) == 1
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("user data")
    with pytest.raises(InputError, match="marker"):
        write_demo_dataset(foreign, 1)
    with pytest.raises(InputError):
        write_demo_dataset(tmp_path / "e", 0)
