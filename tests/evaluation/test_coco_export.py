"""`nerfseg export-coco`: COCO instances JSON of the GT, read back by pycocotools and checked pixel for pixel."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

pytest.importorskip("pycocotools")
from pycocotools import mask as mask_utils  # noqa: E402
from pycocotools.coco import COCO  # noqa: E402

from nerfseg.evaluation.coco_instances import export_coco, views_for  # noqa: E402
from nerfseg.evaluation.gt import load_gt_scene  # noqa: E402
from nerfseg.evaluation.metrics.mask_ap import encode_segments, rle_counts_from_ids  # noqa: E402
from nerfseg import io, spec  # noqa: E402
from nerfseg.cli import cli  # noqa: E402
from nerfseg.errors import InputError  # noqa: E402

# pycocotools' decode passes copy=False to numpy 2's __array__ internally: its warning, not ours
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def _reference_rle(ids: np.ndarray, k: int) -> dict:
    return mask_utils.encode(np.asfortranarray((ids == k).astype(np.uint8)))


@pytest.mark.parametrize("seed", range(6))
def test_rle_from_ids_is_pycocotools_encode(seed: int) -> None:
    """The one-pass encoder gives the bytes, area and box of pycocotools.mask.encode of each binary mask:
    masks that start or end on an object pixel, span columns, are empty or cover the whole image."""
    rng = np.random.default_rng(seed)
    h, w = (int(v) for v in rng.integers(1, 23, size=2))
    if seed % 3 == 0:
        ids = rng.integers(0, 5, size=(h, w))
    elif seed % 3 == 1:
        ids = np.kron(rng.integers(0, 5, size=(4, 4)), np.ones((7, 9), np.int64))[:h, :w]
    else:
        ids = np.full((h, w), 3)
    ids = ids.astype(np.uint32)
    wanted = [1, 2, 3, 4, 99]
    for k, enc, counts in zip(wanted, encode_segments(ids, wanted), rle_counts_from_ids(ids, wanted)):
        ref = _reference_rle(ids, k)
        assert enc["segmentation"] == {"size": [h, w], "counts": ref["counts"].decode("ascii")}
        assert enc["area"] == int(mask_utils.area(ref)) == int((ids == k).sum())
        assert enc["bbox"] == [float(v) for v in mask_utils.toBbox(ref)]
        assert sum(counts) == h * w


def _check_detectron2_expectations(data: dict) -> None:
    """What detectron2's load_coco_json (and its mapper) assert or rely on, read from its source: unique
    integer image and annotation ids, each annotation's image exists, no 'ignore' key, a non-empty 4-number
    XYWH bbox, category ids listed in 'categories' and contiguous 1..N (else it remaps with a warning), an
    RLE dict whose 'counts' is a compressed string that mask.decode turns into an (H, W) mask."""
    image_ids = [im["id"] for im in data["images"]]
    assert all(isinstance(i, int) for i in image_ids) and len(set(image_ids)) == len(image_ids)
    ann_ids = [a["id"] for a in data["annotations"]]
    assert len(set(ann_ids)) == len(ann_ids)
    cat_ids = sorted(c["id"] for c in data["categories"])
    assert cat_ids == list(range(1, len(cat_ids) + 1)) and all(c["name"] for c in data["categories"])
    sizes = {im["id"]: (im["height"], im["width"]) for im in data["images"]}
    for a in data["annotations"]:
        assert a["image_id"] in sizes and "ignore" not in a and a["category_id"] in cat_ids
        assert len(a["bbox"]) == 4 and a["iscrowd"] == 0
        segm = a["segmentation"]
        assert isinstance(segm, dict) and isinstance(segm["counts"], str) and segm["size"] == list(sizes[a["image_id"]])
        assert mask_utils.decode({"size": segm["size"], "counts": segm["counts"].encode("ascii")}).shape == sizes[a["image_id"]]


def _assert_export_is_the_gt(data_root: Path, out: Path, split: str, view_splits: tuple[str, ...]) -> int:
    """Load ``out`` with pycocotools' COCO unchanged; paint every annotation's decoded mask with its
    instance id and compare with the GT instance maps (instance/<frame>.png); return the number of views."""
    coco = COCO(str(out))
    data = json.loads(out.read_text())
    _check_detectron2_expectations(data)
    assert sorted(coco.getCatIds()) == list(spec.THING_CLASSES)
    by_view = {(im["scene_id"], im["frame"]): im for im in coco.dataset["images"]}
    expected_views = 0
    for sid in spec.scenes_in_split(data_root, split):
        for view_split in view_splits:
            gt = load_gt_scene(data_root, sid, view_split)
            for name in gt.frame_names:
                expected_views += 1
                image = by_view[(sid, name)]
                assert (data_root / image["file_name"]).is_file()
                instance = gt.instance(name)
                _, segments = gt.frame(name)
                painted = np.zeros(instance.shape, np.int64)
                covered = np.zeros(instance.shape, np.int64)
                anns = coco.loadAnns(coco.getAnnIds(imgIds=[image["id"]]))
                for ann in anns:
                    m = coco.annToMask(ann).astype(bool)
                    assert m.shape == instance.shape and m.any()
                    assert ann["area"] == int(m.sum()) == segments[ann["instance_id"]]["area"]
                    assert ann["category_id"] == segments[ann["instance_id"]]["category_id"]
                    x, y, w, h = ann["bbox"]
                    ys, xs = np.nonzero(m)
                    assert (x, y, x + w, y + h) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
                    painted[m] = ann["instance_id"]
                    covered += m
                assert covered.max(initial=0) <= 1, "masks of one view overlap"
                np.testing.assert_array_equal(painted, instance.astype(np.int64))
                things = {k for k, s in segments.items() if s["category_id"] in spec.THING_CLASSES}
                assert {a["instance_id"] for a in anns} == things
    assert len(coco.dataset["images"]) == expected_views
    return expected_views


@pytest.fixture(scope="module")
def demo_room(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One procedural demo room built by the real pipeline (scene split 'train'), tiny renders."""
    from tests.demo_bench import build_one_room_benchmark

    return build_one_room_benchmark(tmp_path_factory.mktemp("coco_demo"), width=40, height=30, focal=24.0, num_views=8, grid_resolution=16, priors=())


def test_export_of_a_demo_split_decodes_to_the_gt_instance_maps(demo_room: Path, tmp_path: Path) -> None:
    out = tmp_path / "train.json"
    result = CliRunner().invoke(cli, ["export-coco", "--data", str(demo_room), "--split", "train", "--out", str(out)])
    assert result.exit_code == 0, result.output
    n_views = _assert_export_is_the_gt(demo_room, out, "train", ("train", "test"))
    assert n_views == 8 and f"{n_views} images" in result.output
    data = json.loads(out.read_text())
    assert len(data["annotations"]) > 0
    # the same object keeps its instance_id in every view of its scene
    classes = {}
    for a in data["annotations"]:
        assert classes.setdefault(a["instance_id"], a["category_id"]) == a["category_id"]


def test_export_of_test_scenes_takes_their_test_views(tiny_benchmark: Path, tmp_path: Path) -> None:
    out = tmp_path / "test.json"
    export_coco(tiny_benchmark, "test", out)
    assert _assert_export_is_the_gt(tiny_benchmark, out, "test", ("test",)) == 4  # 2 scenes x 2 test views
    export_coco(tiny_benchmark, "test", tmp_path / "all.json", views="all")
    assert _assert_export_is_the_gt(tiny_benchmark, tmp_path / "all.json", "test", ("train", "test")) == 12


def test_view_choice_and_errors(tiny_benchmark: Path, tmp_path: Path) -> None:
    assert views_for("train") == ("train", "test") and views_for("test") == ("test",) and views_for("val", "train") == ("train",)
    with pytest.raises(InputError, match="unknown views"):
        views_for("test", "some")
    empty = export_coco(tiny_benchmark, "train", None)  # the tiny benchmark has no train scenes
    assert empty["images"] == [] and len(empty["categories"]) == 10
    broken = tmp_path / "broken"
    io.write_json_atomic(broken / spec.BENCHMARK_JSON, {"splits": {"test": ["nope"]}})
    with pytest.raises(InputError, match="nope"):
        export_coco(broken, "test", None)
