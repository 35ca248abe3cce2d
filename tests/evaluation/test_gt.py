"""Reading the benchmark GT: test-view frames on demand, thing ids, gt3d.h5, and clear errors on bad files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from nerfseg.evaluation.gt import gt3d_grid_shape, load_gt3d, load_gt3d_for_eval, load_gt_scene
from nerfseg import io, spec
from nerfseg.errors import InputError
from tests.evaluation.fixtures import make_tiny_benchmark


@pytest.fixture
def bench(tmp_path: Path) -> Path:
    """A private one-scene benchmark that a test may break."""
    return make_tiny_benchmark(tmp_path / "bench", num_scenes=1, seed=3)


def test_test_frames_and_segments(tiny_benchmark: Path) -> None:
    scene_id = spec.scenes_in_split(tiny_benchmark, "test")[0]
    gt = load_gt_scene(tiny_benchmark, scene_id)
    assert gt.frame_names == ("0000", "0003")  # frames=6, test_every=3
    assert (gt.height, gt.width) == (24, 32)
    for name in gt.frame_names:
        ids, segments = gt.frame(name, check=True)
        assert ids.dtype == np.uint32 and ids.shape == (24, 32)
        uniq, counts = np.unique(ids, return_counts=True)
        areas = dict(zip(uniq.tolist(), counts.tolist()))
        for seg_id, seg in segments.items():
            assert seg["area"] == areas[seg_id]
            assert seg["iscrowd"] == 0
            # thing segment id = instance id; background stuff has the reserved id and class 0
            assert (seg["category_id"] == 0) == (seg_id == spec.GT_BACKGROUND_SEGMENT_ID)
        sem, inst = gt.semantic(name), gt.instance(name)
        assert sem.dtype == np.uint8 and inst.dtype == np.uint16
        things = (ids != 0) & (ids != spec.GT_BACKGROUND_SEGMENT_ID)
        assert np.array_equal(inst[things], ids[things])
        lut = {i: s["category_id"] for i, s in segments.items()}
        assert all(sem[ids == i].max(initial=0) == c for i, c in lut.items())


def test_views_and_thing_ids(tiny_benchmark: Path) -> None:
    scene_id = spec.scenes_in_split(tiny_benchmark, "test")[0]
    test, train, val = (load_gt_scene(tiny_benchmark, scene_id, s) for s in ("test", "train", "val"))
    assert train.frame_names == ("0001", "0002", "0004", "0005")
    assert val.frame_names == test.frame_names
    gt3d = load_gt3d(test.root)
    # the scene's thing ids are every instance seen in ANY view, each with its one class
    seen: dict[int, int] = {}
    for g in (test, train):
        for name in g.frame_names:
            for seg_id, seg in g.segments(name).items():
                if seg["category_id"]:
                    seen[seg_id] = seg["category_id"]
    assert test.thing_classes == seen and test.thing_ids == frozenset(seen)
    table = dict(zip(gt3d["instances"]["id"].tolist(), gt3d["instances"]["class_index"].tolist()))
    assert all(table.get(i, c) == c for i, c in seen.items())
    assert [n for n, _, _ in test.frames()] == list(test.frame_names)
    frame_gt = test.frame_gt("0003")
    assert frame_gt.scene_instances == test.thing_ids and np.array_equal(frame_gt.panoptic, test.frame("0003")[0])
    gt3d_eval = load_gt3d_for_eval(test.root)
    assert dict(gt3d_eval.classes) == gt3d["classes"] and np.array_equal(gt3d_eval.instance, gt3d["instance"])


def test_gt3d(tiny_benchmark: Path) -> None:
    root = spec.scene_dir(tiny_benchmark, spec.scenes_in_split(tiny_benchmark, "test")[0])
    gt3d = load_gt3d(root)
    assert gt3d["instance"].shape == gt3d["semantic"].shape == gt3d_grid_shape(root)
    assert gt3d["instance"].dtype == np.uint16 and gt3d["semantic"].dtype == np.uint8
    np.testing.assert_allclose(gt3d["bbox"], [[-2.0, -1.5, 0.0], [2.0, 1.5, 2.5]])
    table = gt3d["instances"]
    assert {"id", "class_index", "nyu40_id", "category", "jid", "aabb", "obb"} <= set(table)
    present = set(np.unique(gt3d["instance"]).tolist()) - {0}
    assert present == set(table["id"].tolist())
    classes = dict(zip(table["id"].tolist(), table["class_index"].tolist()))
    for i, c in classes.items():
        assert np.all(gt3d["semantic"][gt3d["instance"] == i] == c)
    assert isinstance(table["category"][0], str) and gt3d["resolution"] == 8 and gt3d["mode"] == "solid"
    assert gt3d["classes"] == classes


def test_gt3d_table_in_the_wrong_form_is_an_input_error(bench: Path) -> None:
    root = spec.scene_dir(bench, "tiny_000")
    with h5py.File(root / spec.GT3D_H5, "a") as f:
        table = f["instances"][()]
        del f["instances"]
        g = f.create_group("instances")  # a group of columns is not the format nerfseg.gt3d writes
        g["id"] = table["id"]
    with pytest.raises(InputError, match="gt3d.h5"):
        load_gt3d(root)


def _break_json(bench: Path, edit) -> Path:  # type: ignore[no-untyped-def]
    path = spec.scene_dir(bench, "tiny_000") / spec.PANOPTIC_JSON
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(
    "breaker,needle",
    [
        (lambda b: (spec.scene_dir(b, "tiny_000") / spec.PANOPTIC_JSON).write_text("{oops"), "malformed JSON"),
        (lambda b: (spec.scene_dir(b, "tiny_000") / spec.PANOPTIC_JSON).unlink(), "file not found"),
        (lambda b: (spec.scene_dir(b, "tiny_000") / spec.TRANSFORMS_JSON).unlink(), "file not found"),
        (lambda b: _break_json(b, lambda d: d["annotations"].pop(0)), "not annotated"),
        (lambda b: _break_json(b, lambda d: d["annotations"][0]["segments_info"][0].update(category_id=11)), "unknown category_id 11"),
        (lambda b: _break_json(b, lambda d: d["annotations"][0]["segments_info"][0].pop("area")), "'area'"),
        (lambda b: _break_json(b, lambda d: d["annotations"][1].update(file_name="0000.png")), "annotated twice"),
        (lambda b: _break_json(b, lambda d: d.pop("annotations")), "'annotations' list"),
    ],
)
def test_load_gt_scene_errors_name_file_and_problem(bench: Path, breaker, needle: str) -> None:  # type: ignore[no-untyped-def]
    breaker(bench)
    with pytest.raises(InputError) as err:
        load_gt_scene(bench, "tiny_000")
    assert needle in str(err.value) and "tiny_000" in str(err.value)


def test_missing_scene_and_bad_split(bench: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        load_gt_scene(bench, "nope")
    with pytest.raises(InputError, match="view split"):
        load_gt_scene(bench, "tiny_000", "everything")


def test_frame_errors(bench: Path) -> None:
    gt = load_gt_scene(bench, "tiny_000")
    with pytest.raises(InputError, match="not annotated"):
        gt.frame("9999")
    png = gt.root / spec.PANOPTIC_DIR / "0000.png"
    io.write_panoptic_png(png, np.zeros((10, 10), np.uint32))
    with pytest.raises(InputError, match="transforms.json says 32x24"):
        gt.frame("0000")
    png.write_bytes(b"not a png")
    with pytest.raises(InputError, match="0000.png"):
        gt.frame("0000")
    ids = io.read_panoptic_png(gt.root / spec.PANOPTIC_DIR / "0003.png")
    ids[0, 0] = 777
    io.write_panoptic_png(gt.root / spec.PANOPTIC_DIR / "0003.png", ids)
    gt.frame("0003")  # panopticapi does not recount GT; only check=True compares
    with pytest.raises(InputError, match="only in PNG \\[777\\]"):
        gt.frame("0003", check=True)


@pytest.mark.parametrize(
    "edit,needle",
    [
        (lambda f: f.__delitem__("grid/semantic"), "[grid/semantic]: missing dataset"),
        (lambda f: f.__delitem__("instances"), "[instances]: missing dataset"),
        (lambda f: f["grid"].attrs.__delitem__("bbox_min"), "bbox_min"),
        (lambda f: (f["grid"].__delitem__("instance"), f["grid"].create_dataset("instance", data=np.zeros((4, 4), np.uint16))), "not 3D"),
        (lambda f: (f["grid"].__delitem__("semantic"), f["grid"].create_dataset("semantic", data=np.full((8, 6, 5), 11, np.uint8))), "class indices"),
    ],
)
def test_gt3d_errors(bench: Path, edit, needle: str) -> None:  # type: ignore[no-untyped-def]
    root = spec.scene_dir(bench, "tiny_000")
    with h5py.File(root / spec.GT3D_H5, "a") as f:
        edit(f)
    with pytest.raises(InputError) as err:
        load_gt3d(root)
    assert needle in str(err.value) and "gt3d.h5" in str(err.value)


def test_gt3d_missing_or_not_hdf5(bench: Path) -> None:
    root = spec.scene_dir(bench, "tiny_000")
    shutil.copyfile(root / spec.PANOPTIC_JSON, root / spec.GT3D_H5)
    with pytest.raises(InputError, match="HDF5"):
        load_gt3d(root)
    with pytest.raises(InputError, match="not a readable HDF5"):
        gt3d_grid_shape(root)
    (root / spec.GT3D_H5).unlink()
    with pytest.raises(InputError, match="file not found"):
        load_gt3d(root)
