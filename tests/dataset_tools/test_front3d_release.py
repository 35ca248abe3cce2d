"""The builder against hand-written fixtures in the real 3D-FRONT / 3D-FUTURE format (tests/dataset_tools/front3d_fixtures.py):
every real category pair, broken inputs, whole-house geometry through a door, textures by jid, layout de-duplication."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from nerfseg.dataset_tools import front3d as f3
from nerfseg.dataset_tools import front3d_models
from nerfseg.dataset_tools.build import build_dataset, label_maps, plan_build, preset_config, split_scenes
from nerfseg.dataset_tools.cameras import inside_polygons, sample_cameras
from nerfseg.dataset_tools.front3d import RoomFilter, load_house
from nerfseg.dataset_tools.raycast import SceneRaycaster
from nerfseg import spec
from nerfseg.cameras import Intrinsics, look_at

from tests.dataset_tools import front3d_fixtures as fx


def _tiny(**kw):
    base = dict(width=48, height=36, focal=30.0, num_views=6, grid_resolution=24, priors=())
    base.update(kw)
    return preset_config("mini", **base)


def yup(x: float, y: float, z: float) -> np.ndarray:
    """A y-up 3D-FRONT point in nerfseg's z-up world."""
    return np.array([x, -z, y])


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> fx.Release:
    root = tmp_path_factory.mktemp("release")
    return fx.write_release(
        root,
        {
            "house-door": fx.door_house(),
            "house-door2": fx.door_house("house-door2"),  # the same rooms again (real 3D-FRONT repeats layouts)
            "house-truncated": json.dumps(fx.door_house("house-truncated"))[:-40],  # not JSON
        },
    )


@pytest.fixture(scope="module")
def door_scenes(release: fx.Release) -> f3.LoadedHouse:
    return load_house(release.front3d / "house-door.json", release.future, release.textures, 0)


# --------------------------------------------------------------------------------------------


def test_every_real_pair_has_a_class_and_builds(tmp_path: Path) -> None:
    pairs = [(sup, cat) for sup, cat, _ in spec.real_category_pairs()]
    assert len(pairs) == 54
    house, info = fx.pair_house(pairs)
    rel = fx.write_release(tmp_path, {"house-pairs": house})
    (rel.future / "model_info.json").write_text(json.dumps(info))
    for k in range(len(pairs)):
        fx.write_model(rel.future, f"pair-{k:02d}")
    rf = RoomFilter(max_objects=100)
    loaded = load_house(rel.front3d / "house-pairs.json", rel.future, rel.textures, 0, rf)
    assert loaded.unknown_pairs == {} and loaded.issues == []
    (scene,) = loaded.scenes
    by_jid = {i.jid: i for i in scene.instances}
    for k, (sup, cat) in enumerate(pairs):
        cls = spec.class_of_pair(cat, sup)
        assert cls is not None, (sup, cat)
        rule = rf.ban_of((cat, sup))
        if rule is None or (rule.keep_if_larger_than_m is not None and 0.7 >= rule.keep_if_larger_than_m):
            assert by_jid[f"pair-{k:02d}"].class_index == cls, (sup, cat)
        else:  # a banned fixture or small decor: rendered, background
            assert f"pair-{k:02d}" not in by_jid
    assert {i.class_index for i in scene.instances} == set(spec.THING_CLASSES) - {spec.CLASS_INDEX_BY_NAME["otherfurniture"]}
    bench = build_dataset(tmp_path / "out", rel.front3d, rel.future, rel.textures, _tiny(room_filter=rf), show_progress=False, show_warnings=False)
    assert list(bench["scenes"]) == ["3dfront_0000_00"] and bench["report"]["unknown_category_pairs"] == []
    assert bench["scenes"]["3dfront_0000_00"]["num_instances"] == len(scene.instances)


def test_broken_inputs_build_with_the_rest_intact(release: fx.Release, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    bench = build_dataset(tmp_path / "out", release.front3d, release.future, release.textures, _tiny(), show_progress=False)
    rep = bench["report"]
    # the door house's two rooms are built; its copy repeats their layouts; the truncated house stops alone
    assert sorted(bench["scenes"]) == ["3dfront_0000_00", "3dfront_0000_01"]
    assert [b["house"] for b in rep["houses_unreadable"]] == ["house-truncated.json"] and "malformed JSON" in rep["houses_unreadable"][0]["reason"]
    assert rep["dropped_room_counts"] == {"repeated layout": 2}
    assert rep["skips"] == {
        "house_not_json": 1,
        "model_missing": 1,  # the barstool; the stale entry of the repeated wardrobe uid is replaced (the toolbox keeps the last)
        "model_unreadable": 2,  # no faces; NaN vertices
        "ref_unknown": 2,  # once per house file that has it (the copy is read by planning too)
        "texture_corrupt": 1,
        "texture_missing": 2,  # the pocket material's jid folder; the drawer chest's texture.png
    }
    assert rep["missing_models"] == [fx.NOT_ON_DISK]
    reasons = {(i["kind"], i["item"]): i["reason"] for i in rep["issues"]}
    assert "no faces" in reasons[("model_unreadable", fx.BROKEN_OBJ)] and "NaN" in reasons[("model_unreadable", fx.NAN_OBJ)]
    assert ("texture_missing", fx.NO_TEXTURE) in reasons and ("texture_corrupt", fx.BAD_TEXTURE) in reasons
    assert rep["unknown_category_pairs"] == [{"super_category": "Vehicles", "category": "Spaceship", "objects": 2, "models": [fx.SPACESHIP]}]
    assert rep["textures"] == {"colour": 1, "colour_fallback": 1, "jid_folder": 1, "url_folder": 1}
    assert rep["selection"]["furniture_not_valid"] == 2 and rep["selection"]["furniture_duplicate_uid"] == 2 and rep["selection"]["object_banned"] == 1
    # one warning line per issue (house, item, reason) and one per unknown pair, each once although two scenes load the house
    err = [r.getMessage() for r in caplog.records if r.name.startswith("nerfseg.dataset_tools.build") and r.levelno == logging.WARNING]
    assert len([line for line in err if line.startswith("warning: ")]) == len(rep["issues"]) + 1 + 1  # + the one-house split warning
    assert rep["split_unit"] == "scene" and sum("come from one house" in line for line in err) == 1
    assert sum("Spaceship" in line for line in err) == 1 and sum(fx.BROKEN_OBJ in line for line in err) == 1
    # the rest is intact: room A keeps bed, nightstand, wardrobe (the last duplicate entry), drawer chest and shelf
    scene_a = bench["scenes"]["3dfront_0000_00"]
    assert scene_a["num_instances"] == 5 and scene_a["room_type"] == "Bedroom"
    assert bench["scenes"]["3dfront_0000_01"]["num_instances"] == 3
    assert bench["splits"]["test"] and set(sum(bench["splits"].values(), [])) == set(bench["scenes"])


def test_the_neighbour_shows_through_the_door(door_scenes: f3.LoadedHouse) -> None:
    scene_a, scene_b = door_scenes.scenes
    assert scene_a.room_type == "Bedroom" and scene_b.room_type == "LivingRoom"
    rc = SceneRaycaster(scene_a)
    intr = Intrinsics(96, 72, 60.0, 60.0, 48.0, 36.0)
    c2w = look_at(yup(1.0, 1.5, 2.0), yup(4.0, 1.0, 2.0))  # in room A, looking at the door
    out = rc.render(c2w, intr)
    assert out.hit.all() and (out.depth > 0).all()  # closed house: every ray hits, depth never 0
    sofa_tris = np.array([i for i, p in enumerate(scene_a.parts) if p.kind == "furniture" and fx.SOFA in p.name])
    seen = np.isin(rc.tri_part[np.maximum(rc.intersect(*_rays(c2w, intr)).tri, 0)], sofa_tris).reshape(out.depth.shape)
    assert seen.sum() > 20  # the neighbour's sofa, through the door
    inst, sem, pan = label_maps(out.instance, out.semantic, out.hit)
    assert (out.instance[seen] == spec.UNLABELLED_INSTANCE_ID).all()
    assert (pan[seen] == spec.VOID_ID).all() and (inst[seen] == 0).all() and (sem[seen] == 0).all()
    assert (pan[out.instance == 0] == spec.GT_BACKGROUND_SEGMENT_ID).all()  # walls, banned objects: background
    assert (pan[out.instance == spec.UNLABELLED_INSTANCE_ID] == spec.VOID_ID).all()
    assert np.percentile(out.depth[seen], 50) > 5.0  # beyond the wall (the camera is 3 m from the door)
    # in room B's own scene the sofa is a labelled instance, and room A's bed is void
    sofa_b = next(i for i in scene_b.instances if i.jid == fx.SOFA)
    assert all(p.instance_id == sofa_b.instance_id for p in scene_b.parts if fx.SOFA in p.name)
    assert all(p.instance_id == spec.UNLABELLED_INSTANCE_ID for p in scene_b.parts if fx.BED in p.name)


def _rays(c2w: np.ndarray, intr: Intrinsics) -> tuple[np.ndarray, np.ndarray]:
    from nerfseg.cameras import world_rays

    o, d = world_rays(c2w, intr)
    return o.reshape(-1, 3), d.reshape(-1, 3)


def test_views_never_start_in_another_room(door_scenes: f3.LoadedHouse) -> None:
    for scene in door_scenes.scenes:
        rc = SceneRaycaster(scene)
        poses = sample_cameras(scene, _tiny().camera, np.random.default_rng(0), target_views=12, raycaster=rc)
        eyes = np.array([p[:3, 3] for p in poses])
        assert len(eyes) and inside_polygons(eyes[:, :2], scene.floor_polygons).all()
        lo, hi = scene.room_bbox
        assert (eyes >= lo).all() and (eyes <= hi).all()


def test_wall_material_reachable_only_by_its_jid_is_textured(door_scenes: f3.LoadedHouse) -> None:
    scene_a = door_scenes.scenes[0]
    walls = [p for p in scene_a.parts if p.kind == "WallInner"]
    assert walls and all(p.texture is not None and p.uvs is not None for p in walls)
    assert walls[0].texture.max() == 200  # tex-wall-jid/texture.png (value 180 + 20), not white
    floor = next(p for p in scene_a.parts if p.kind == "Floor")
    assert floor.texture is not None and floor.texture.max() == 140  # found by the URL's folder name
    pocket = next(p for p in scene_a.parts if p.kind == "Pocket")
    assert pocket.texture is None and np.allclose(pocket.color, (120 / 255, 90 / 255, 60 / 255))  # named, missing: its colour
    assert door_scenes.textures == {"jid_folder": 1, "url_folder": 1, "colour": 1, "colour_fallback": 1}


def test_planning_opens_no_model(release: fx.Release, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_obj(*args, **kwargs):
        raise AssertionError("planning parsed a model")

    monkeypatch.setattr(front3d_models, "read_obj", no_obj)
    monkeypatch.setattr(front3d_models, "_read_texture", no_obj)
    plan = plan_build(release.front3d, release.future, release.textures, tmp_path, _tiny())
    assert [(j.scene_id, j.inputs["room_index"], j.house_id) for j in plan.jobs] == [("3dfront_0000_00", 0, "house-door"), ("3dfront_0000_01", 1, "house-door")]


def test_a_repeated_layout_never_lands_in_two_splits(tmp_path: Path) -> None:
    same_ids = fx.door_house("h2")  # same room instanceids
    same_furniture = fx.door_house("h3", room_ids=("Bedroom-9", "LivingRoom-9"))  # new ids, same furniture sets
    rel = fx.write_release(tmp_path, {"h1": fx.door_house("h1"), "h2": same_ids, "h3": same_furniture})
    plan = plan_build(rel.front3d, rel.future, rel.textures, tmp_path / "out", _tiny())
    assert [j.scene_id for j in plan.jobs] == ["3dfront_0000_00", "3dfront_0000_01"]
    reasons = {d["scene_id"]: d["reason"] for d in plan.dropped_rooms}
    assert "3dfront_0000_00 (same room instanceid" in reasons["3dfront_0001_00"]
    assert "3dfront_0000_01 (same furniture set)" in reasons["3dfront_0002_01"]
    off = RoomFilter(dedup_layouts=False)
    assert len(plan_build(rel.front3d, rel.future, rel.textures, tmp_path / "out", _tiny(room_filter=off)).jobs) == 6


def test_the_split_is_by_house() -> None:
    rng = np.random.default_rng(0)
    for trial in range(30):
        n_houses = int(rng.integers(2, 12))
        groups = {f"3dfront_{h:04d}_{r:02d}": f"h{h}" for h in range(n_houses) for r in range(int(rng.integers(1, 4)))}
        splits = split_scenes(list(groups), (0.7, 0.1, 0.2), seed=trial, groups=groups)
        assert sorted(sum(splits.values(), [])) == sorted(groups) and splits["test"] and splits["train"]
        where = {groups[s]: k for k, ids in splits.items() for s in ids}
        assert all(where[groups[s]] == k for k, ids in splits.items() for s in ids)  # no house in two splits


def test_verify_front3d_reports_a_download(release: fx.Release, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from nerfseg.cli import cli

    args = ["verify-front3d", "--front3d", str(release.front3d), "--future", str(release.future), "--texture", str(release.textures), "--parse-models", "-1", "--json", str(tmp_path / "v.json")]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "houses: 3 (1 unreadable)" in result.output and "missing model folders: 1 (m-absent)" in result.output
    assert "('Vehicles', 'Spaceship'): 1 models" in result.output and "problems: none" in result.output
    rep = json.loads((tmp_path / "v.json").read_text())
    assert sorted(j for j, _ in rep["unreadable_models"]) == [fx.NAN_OBJ, fx.BROKEN_OBJ] and rep["parsed_models"] == 12
    assert rep["materials_textured"] == 2 and rep["materials_missing_texture"] == 1
    wrong = CliRunner().invoke(cli, ["verify-front3d", "--front3d", str(release.front3d), "--future", str(release.textures)])
    assert wrong.exit_code == 1 and "is --future the 3D-FUTURE-model folder?" in wrong.output


def test_a_ban_list_file_replaces_the_default(release: fx.Release, tmp_path: Path) -> None:
    from nerfseg.errors import InputError

    path = tmp_path / "bans.json"
    path.write_text(json.dumps({"rules": [{"super_category": "Sofa", "category": "*", "keep_if_larger_than_m": None}]}))
    rf = RoomFilter(ban_rules=f3.read_ban_rules(path))
    scene_a, scene_b = load_house(release.front3d / "house-door.json", release.future, release.textures, 0, RoomFilter(ban_rules=f3.read_ban_rules(path), min_objects=0)).scenes
    assert fx.PENDANT in {i.jid for i in scene_a.instances}  # lamps are no longer banned
    assert {i.jid for i in scene_b.instances} == {fx.COFFEE}  # sofas are
    assert rf.ban_of(("armchair", "Sofa")) is not None
    path.write_text(json.dumps({"rules": [{"category": "x"}]}))
    with pytest.raises(InputError, match=r"rules\[0\]"):
        f3.read_ban_rules(path)


def test_parallel_planning_decides_the_same(tmp_path: Path) -> None:
    houses = {f"h{k}": fx.door_house(f"h{k}", room_ids=(f"Bedroom-{k % 3}", f"LivingRoom-{k}")) for k in range(6)}
    houses["h9"] = "{not json"
    rel = fx.write_release(tmp_path, houses)
    serial = plan_build(rel.front3d, rel.future, rel.textures, tmp_path / "out", _tiny())
    pooled = plan_build(rel.front3d, rel.future, rel.textures, tmp_path / "out", _tiny(), workers=2)
    assert [(j.scene_id, j.inputs["room_index"], j.house_id) for j in pooled.jobs] == [(j.scene_id, j.inputs["room_index"], j.house_id) for j in serial.jobs]
    assert pooled.dropped_rooms == serial.dropped_rooms and pooled.issues == serial.issues and pooled.bad_houses == serial.bad_houses
    assert pooled.unknown_pairs == serial.unknown_pairs and pooled.unknown_pairs[("Vehicles", "Spaceship")]["objects"] == 6
    assert len(serial.jobs) == 2 and len(serial.bad_houses) == 1  # every later room repeats h0's furniture sets


def test_a_piece_listed_by_two_rooms_is_drawn_once_as_the_scene_rooms(tmp_path: Path) -> None:
    house = fx.door_house()
    sofa = next(c for c in house["scene"]["room"][1]["children"] if c["ref"] == "f-sofa")
    house["scene"]["room"][0]["children"].append(dict(sofa, instanceid="furniture/99"))  # room A lists B's sofa too
    rel = fx.write_release(tmp_path, {"house": house})
    scene_a, scene_b = load_house(rel.front3d / "house.json", rel.future, rel.textures, 0, RoomFilter(containment_tol_m=5.0)).scenes
    for scene in (scene_a, scene_b):
        sofa_parts = [p for p in scene.parts if fx.SOFA in p.name]
        assert len(sofa_parts) == 1 and sofa_parts[0].instance_id not in (0, spec.UNLABELLED_INSTANCE_ID)


def test_a_room_emptied_by_broken_models_is_dropped_by_its_worker(tmp_path: Path) -> None:
    from nerfseg.errors import InputError

    pairs_house, info = fx.pair_house([("Bed", "King-size Bed"), ("Sofa", "armchair"), ("Table", "Desk"), ("Chair", "Dining Chair"), ("Cabinet/Shelf/Desk", "Shelf"), ("Cabinet/Shelf/Desk", "Wardrobe")])
    rel = fx.write_release(tmp_path, {"a-door": fx.door_house(), "b-pairs": pairs_house})
    (rel.future / "model_info.json").write_text(json.dumps(fx.MODEL_INFO + info))
    for k in range(6):
        fx.write_model(rel.future, f"pair-{k:02d}")
    six = _tiny(room_filter=RoomFilter(min_objects=6))
    plan = plan_build(rel.front3d, rel.future, rel.textures, tmp_path / "out", six)
    assert [j.scene_id for j in plan.jobs] == ["3dfront_0000_00", "3dfront_0001_00"]  # the bedroom lists 8 candidates
    bench = build_dataset(tmp_path / "out", rel.front3d, rel.future, rel.textures, six, show_progress=False, show_warnings=False)
    assert list(bench["scenes"]) == ["3dfront_0001_00"] and not (tmp_path / "out" / "scenes" / "3dfront_0000_00").exists()
    (dropped,) = [d for d in bench["report"]["dropped_rooms"] if d["scene_id"] == "3dfront_0000_00"]
    assert dropped["reason"] == "5 objects (need 6..25) (after loading the models)"
    assert bench["report"]["dropped_room_counts"]["object count (after loading the models)"] == 1
    assert bench["report"]["skips"]["model_unreadable"] == 2  # what emptied it is still reported
    with pytest.raises(InputError, match="no scene left once the models were loaded"):
        build_dataset(tmp_path / "out2", rel.front3d, rel.future, rel.textures, six, houses=["a-door"], show_progress=False, show_warnings=False)
