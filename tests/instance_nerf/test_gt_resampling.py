"""The one GT resampling (training targets, validation, oracle): no instance is lost on a coarser grid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from nerfseg.instance_nerf.rcnn.data import (
    instance_label_grid,
    pool_instance_masks,
    resample_gt_instances,
    resample_labels_nearest,
)
from nerfseg.instance_nerf.rcnn.roi_align import crop_and_resize_binary, crop_and_resize_masks
from nerfseg import spec
from nerfseg.gt3d import read_gt3d
from tests.demo_bench import build_one_room_benchmark


@pytest.fixture(scope="module")
def demo_gt(tmp_path_factory: pytest.TempPathFactory):
    """The solid 128-voxel GT of demo room 0 (mini's GT resolution; few tiny views, no prior: only gt3d.h5 matters)."""
    root = tmp_path_factory.mktemp("gtres")
    bench = build_one_room_benchmark(root, width=32, height=24, focal=20.0, num_views=3, grid_resolution=128, priors=())
    sid = spec.scenes_in_split(bench, "train")[0]
    return read_gt3d(spec.scene_dir(bench, sid) / spec.GT3D_H5)


@pytest.mark.parametrize("resolution", [64, 32])
def test_every_demo_instance_survives_resampling(demo_gt, resolution: int) -> None:
    gt = demo_gt
    assert max(gt.instance.shape) == 128
    f = resolution / max(gt.instance.shape)
    shape = tuple(max(1, int(round(s * f))) for s in gt.instance.shape)
    classes = gt.class_of()
    things = sorted(i for i in np.unique(gt.instance).tolist() if i and 1 <= classes.get(i, 0) < len(spec.CLASS_NAMES))
    assert len(things) >= 5
    ids, masks, label = resample_gt_instances(gt, shape)
    assert ids.tolist() == things
    assert masks.shape == (len(things), *shape) and label.shape == shape
    for k, iid in enumerate(things):
        # every coarse voxel that holds a GT voxel centre of the instance is in its mask
        assert masks[k].sum() >= (resample_labels_nearest(gt.instance, shape) == iid).sum()
        assert masks[k].any(), f"instance {iid} ({spec.CLASS_NAMES[classes[iid]]}) lost at {resolution} voxels"
        assert (label == iid).any(), f"instance {iid} lost from the label grid at {resolution} voxels"


def test_thin_and_small_instances_survive_where_nearest_drops_them() -> None:
    """A one-voxel table top, a one-voxel post, a cup on the table: nearest sampling loses them at 1/4."""
    inst = np.zeros((16, 16, 16), dtype=np.uint16)
    inst[2:14, 2:14, 5] = 1  # table top, one voxel thick, off the sampled indices 2, 6, 10, 14 at 1/4
    inst[1, 1, 0:16] = 2  # a post one voxel wide in x and y
    inst[7, 7, 6] = 3  # a cup standing on the table (shares a coarse voxel with it)
    inst[9:13, 9:13, 8:12] = 4  # a solid box
    near = resample_labels_nearest(inst, (4, 4, 4))
    assert set(np.unique(near).tolist()) == {0, 4}  # the naive resampling keeps only the box
    ids, masks = pool_instance_masks(inst, (4, 4, 4))
    assert ids.tolist() == [1, 2, 3, 4] and all(m.any() for m in masks)
    assert masks[0][:, :, 1].sum() == 16  # the table top covers its whole layer
    label = instance_label_grid(ids, masks)
    assert set(np.unique(label).tolist()) == {0, 1, 2, 3, 4}
    assert label[1, 1, 1] == 3  # the cup (1 voxel) wins the voxel it shares with the table (144 voxels)
    # a finer target grid: nearest sampling covers it (no holes), pooling adds nothing wrong
    ids2, fine = pool_instance_masks(inst, (32, 32, 32))
    np.testing.assert_array_equal(fine[3], resample_labels_nearest(inst, (32, 32, 32)) == 4)


def test_pooling_between_boxes_and_missing_ids() -> None:
    """Source and target boxes differ: the target grid covers the upper half of the GT box along x."""
    inst = np.zeros((8, 2, 2), dtype=np.int32)
    inst[1, 0, 0] = 5  # in the lower half: outside the target box
    inst[6, 1, 1] = 7
    ids, masks = pool_instance_masks(inst, (2, 2, 2), src_box=((0, 0, 0), (8, 2, 2)), dst_box=((4, 0, 0), (8, 2, 2)), ids=[5, 7, 9])
    assert ids.tolist() == [5, 7, 9]
    assert not masks[0].any() and not masks[2].any()
    assert masks[1][1, 1, 1] and masks[1].sum() == 1


def test_mask_stack_crops_equal_label_crops_when_disjoint() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, size=(10, 9, 8))
    ids = torch.tensor([1, 3, 2])
    stack = torch.from_numpy(np.stack([labels == i for i in (1, 2, 3)]))
    boxes = torch.tensor([[0.5, 1.0, 0.0, 7.0, 8.0, 6.5], [2.0, 2.0, 2.0, 9.0, 9.0, 8.0], [0.0, 0.0, 0.0, 3.0, 3.0, 3.0]])
    want = crop_and_resize_binary(torch.from_numpy(labels), boxes, ids, 6)
    got = crop_and_resize_masks(stack, boxes, torch.tensor([0, 2, 1]), 6)
    torch.testing.assert_close(got, want)


def test_detection_recall_counts_found_instances(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Recall at each score with any / the correct class, from a stand-in detector that returns the GT masks
    with chosen scores and one wrong class."""
    from types import SimpleNamespace

    from nerfseg.instance_nerf.rcnn import train as train_mod
    from nerfseg.instance_nerf.rcnn.model import Detections
    from nerfseg.instance_nerf.rcnn.synthetic import write_synthetic_benchmark

    ids_by_split = write_synthetic_benchmark(tmp_path, {"test": 1}, shape=(24, 20, 12), num_objects=3, size_range=(4, 8))
    sid = ids_by_split["test"][0]
    gt = read_gt3d(spec.scene_dir(tmp_path, sid) / spec.GT3D_H5)
    ids, masks, _ = resample_gt_instances(gt, gt.instance.shape)
    assert len(ids) == 3
    classes = gt.class_of()
    labels = np.array([classes[int(i)] for i in ids])
    labels[2] = 1 + labels[2] % 10  # the third detection has the wrong class
    det = Detections(np.zeros((3, 6), np.float32), labels, np.array([0.9, 0.4, 0.2], np.float32), masks)
    monkeypatch.setattr(train_mod, "predict_scene", lambda model, grid, device=None: det)
    model = SimpleNamespace(config=SimpleNamespace(features_dir="features"))
    res = train_mod.detection_recall(model, tmp_path, [sid])
    assert res["instances"] == 3
    assert res["recall_any@0.5"] == pytest.approx(1 / 3) and res["recall_any@0.3"] == pytest.approx(2 / 3) and res["recall_any@0.1"] == 1.0
    assert res["recall_class@0.1"] == pytest.approx(2 / 3) and res["scenes"][sid]["recall_class@0.5"] == pytest.approx(1 / 3)
    rows = {g["id"]: g for g in res["scenes"][sid]["gt"]}
    assert [rows[int(i)]["score_any"] for i in ids] == pytest.approx([0.9, 0.4, 0.2])
    assert [rows[int(i)]["score_class"] for i in ids] == pytest.approx([0.9, 0.4, 0.0])  # the third: wrong class
    assert all(rows[int(i)]["best_iou"] == pytest.approx(1.0) for i in ids)

    from nerfseg.instance_nerf.rcnn.plot import draw_detections, scene_found

    found = scene_found(res["scenes"][sid])
    assert found == {int(ids[0]): True, int(ids[1]): False, int(ids[2]): False}
    grid = np.zeros((*gt.instance.shape, 4), np.float32)
    grid[..., 3] = gt.instance > 0
    boxes = np.array([[0, 0, 0, 5, 5, 5], [6, 6, 0, 9, 9, 4], [1, 10, 0, 4, 14, 3]], np.float32)
    png = draw_detections(tmp_path / "plots" / f"{sid}.png", grid, ids, masks, classes, boxes, labels, det.scores,
                          title=sid, found=found)
    from PIL import Image

    with Image.open(png) as im:
        assert im.size[0] > 300 and im.size[1] > 300
