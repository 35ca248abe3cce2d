"""Voxel3D: voxel mIoU and NeRF-RCNN-style 3D mask AP, hand-computed."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from nerfseg.evaluation.metrics.voxel3d import Voxel3D, voc_ap
from nerfseg.evaluation.types import GT3D, Pred3D
from nerfseg.errors import InputError


def _grid() -> tuple[np.ndarray, dict[int, int]]:
    """A 10x10x1 grid: GT chair (class 3, id 1) = x 0..4 (50 voxels), GT bed (class 2, id 2) = x 5..6."""
    g = np.zeros((10, 10, 1), dtype=np.uint16)
    g[0:5] = 1
    g[5:7] = 2
    return g, {1: 3, 2: 2}


def _mask(xs: slice, ys: slice = slice(0, 10)) -> np.ndarray:
    m = np.zeros((10, 10, 1), dtype=bool)
    m[xs, ys] = True
    return m


def test_voc_ap_hand_values():
    assert voc_ap(np.array([True, False]), 1) == pytest.approx(1.0)
    assert voc_ap(np.array([False, True]), 1) == pytest.approx(0.5)
    assert voc_ap(np.array([True, False, True]), 4) == pytest.approx(0.25 * 1 + 0.25 * (2 / 3))
    assert voc_ap(np.zeros(0, bool), 3) == 0.0


def test_greedy_matching_by_score_as_nerf_rcnn():
    gt, classes = _grid()
    # chair predictions: the most confident has IoU 0.3 (15 of 50 voxels), the second IoU 0.8 (40 of 50)
    masks = np.stack([_mask(slice(0, 5), slice(0, 3)), _mask(slice(0, 4)), _mask(slice(5, 7))])
    pred = Pred3D(classes=[3, 3, 2], scores=[0.9, 0.8, 0.5], masks=masks)
    acc = Voxel3D(11)
    acc.update("s", GT3D(gt, classes), pred)
    r = acc.compute()
    # IoU 0.25: the first takes the chair (TP), the second's best GT is taken -> FP: AP = 1
    assert r["ap"]["0.25"]["per_class"][3] == pytest.approx(1.0)
    # IoU 0.5: the first misses (FP, the chair stays free), the second takes it: AP = 0.5
    assert r["ap"]["0.5"]["per_class"][3] == pytest.approx(0.5)
    assert r["ap"]["0.5"]["per_class"][2] == pytest.approx(1.0)
    assert r["ap"]["0.5"]["per_class"][5] is None  # no GT sofa: NaN, left out of the mean
    assert r["ap50"] == pytest.approx(0.75) and r["ap25"] == pytest.approx(1.0)


def test_class_with_gt_and_no_prediction_scores_zero():
    gt, classes = _grid()
    acc = Voxel3D(11)
    acc.update("s", GT3D(gt, classes), Pred3D(classes=[2], scores=[1.0], masks=_mask(slice(5, 7))[None]))
    r = acc.compute()
    assert r["ap"]["0.5"]["per_class"][3] == 0.0
    assert r["ap50"] == pytest.approx(0.5)


def test_instance_grid_and_masks_agree_and_semantic_mIoU():
    gt, classes = _grid()
    p = np.zeros_like(gt)
    p[0:4] = 7  # chair-ish
    p[5:8] = 9  # bed, one slab too thick
    by_grid = Voxel3D(11)
    by_grid.update("s", GT3D(gt, classes), Pred3D(classes=[3, 2], scores=[0.7, 0.6], instance=p, ids=[7, 9]))
    by_mask = Voxel3D(11)
    by_mask.update("s", GT3D(gt, classes), Pred3D(classes=[3, 2], scores=[0.7, 0.6], masks=np.stack([p == 7, p == 9])))
    a, b = by_grid.compute(), by_mask.compute()
    assert a["ap"] == b["ap"] and a["voxel_miou"] == b["voxel_miou"]
    # classes: bg I=20 U=40-? : GT bg = x 7..9 (30), pred bg = x 4 and 8..9 (30), I = 20 -> 20/40 = 0.5
    # bed: GT 20, pred 30, I 20 -> 2/3; chair: GT 50, pred 40, I 40 -> 0.8
    assert a["voxel_miou"] == pytest.approx((0.5 + 2 / 3 + 0.8) / 3)


def test_overlapping_masks_paint_the_most_confident_last():
    gt, classes = _grid()
    masks = np.stack([_mask(slice(0, 7)), _mask(slice(0, 5))])
    acc = Voxel3D(11)
    acc.update("s", GT3D(gt, classes), Pred3D(classes=[2, 3], scores=[0.4, 0.9], masks=masks))
    iou = acc.compute()["per_class_iou"]
    assert iou[3] == 1.0 and iou[2] == 1.0


def test_errors_and_merge():
    gt, classes = _grid()
    acc = Voxel3D(11)
    with pytest.raises(InputError, match="1..10"):
        acc.update("s", GT3D(gt, classes), Pred3D(classes=[0], scores=[1.0], masks=_mask(slice(0, 1))[None]))
    with pytest.raises(InputError, match="masks or an instance grid"):
        acc.update("s", GT3D(gt, classes), Pred3D(classes=[3], scores=[1.0]))
    a, b, full = Voxel3D(11), Voxel3D(11), Voxel3D(11)
    for k in range(4):
        pred = Pred3D(classes=[3, 2], scores=[0.5 + k / 10, 0.3], masks=np.stack([_mask(slice(0, 5 - k % 3)), _mask(slice(5, 7))]))
        full.update(f"s{k}", GT3D(gt, classes), pred)
        (a if k % 2 else b).update(f"s{k}", GT3D(gt, classes), pred)
    b = Voxel3D.from_state(pickle.loads(pickle.dumps(b.state_dict())))
    merged = a.merge(b).compute()
    ref = full.compute()
    assert merged["ap"] == ref["ap"] and merged["voxel_miou"] == pytest.approx(ref["voxel_miou"])
    with pytest.raises(InputError, match="already"):
        full.update("s0", GT3D(gt, classes), Pred3D(classes=[], scores=[], masks=np.zeros((0, 10, 10, 1), bool)))
