"""ConfusionMIoU and BinaryForeground: hand-computed matrices, void handling, NaN classes, merge."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from nerfseg.evaluation.metrics.confusion import BinaryForeground, ConfusionMIoU, confusion_from_maps, confusion_from_stats
from nerfseg.evaluation.metrics.frame import frame_stats
from nerfseg.evaluation.types import VOID, semantic_from_panoptic
from nerfseg.errors import InputError

V = VOID


def test_void_gt_is_removed_and_predicted_void_is_a_miss():
    gt = np.array([0, 0, 1, 1, 1, V, V])
    pred = np.array([0, 1, 1, 1, V, 0, 2])
    cm = confusion_from_maps(gt, pred, 3)
    assert cm.shape == (3, 4)
    assert cm.sum() == 5  # the two GT-void pixels are gone, whatever was predicted there
    assert cm[1, 3] == 1  # predicted void on a class-1 pixel: the void column
    acc = ConfusionMIoU(3)
    acc.update("a", gt, pred)
    r = acc.compute()
    # class 0: I=1, GT 2 + pred 1 - 1 = 2 -> 0.5; class 1: I=2, GT 3 + pred 3 - 2 = 4 -> 0.5;
    # class 2: predicted only on GT void -> union 0 -> NaN, skipped (not 0)
    assert r["per_class_iou"] == [0.5, 0.5, None]
    assert r["miou"] == 0.5 and r["miou_dataset"] == 0.5


def test_zero_union_is_skipped_but_a_false_positive_class_counts_zero():
    gt = np.array([0, 0, 1, 1])
    pred = np.array([0, 0, 1, 2])
    r_acc = ConfusionMIoU(4)
    r_acc.update("a", gt, pred)
    r = r_acc.compute()
    assert r["per_class_iou"] == [1.0, 0.5, 0.0, None]
    assert r["miou"] == pytest.approx(0.5)


def test_scene_mean_and_dataset_level_differ():
    acc = ConfusionMIoU(2)
    acc.update("s1", np.array([0, 0, 0, 1]), np.array([0, 0, 0, 0]))  # IoU0 = 3/4, IoU1 = 0
    acc.update("s2", np.array([1, 1, 1, 1]), np.array([1, 1, 1, 1]))  # IoU0 NaN, IoU1 = 1
    r = acc.compute()
    assert r["per_scene"]["s1"]["miou"] == pytest.approx(0.375)
    assert r["per_scene"]["s2"]["miou"] == 1.0
    assert r["miou"] == pytest.approx((0.375 + 1.0) / 2)
    # summed matrix: class 0 I=3 U=4 -> 0.75; class 1 I=4 U=5 -> 0.8
    assert r["miou_dataset"] == pytest.approx((0.75 + 0.8) / 2)
    assert r["per_class_iou_scene_mean"] == [pytest.approx(0.75), pytest.approx(0.5)]


def test_frames_pool_into_one_matrix_per_scene():
    acc = ConfusionMIoU(2)
    acc.update("s", np.array([1, 0]), np.array([1, 1]))
    acc.update("s", np.array([0, 0]), np.array([0, 0]))
    r = acc.compute()
    assert r["num_scenes"] == 1
    # pooled: class 0 I=2 U=3, class 1 I=1 U=2 (not the mean of per-frame mIoUs)
    assert r["miou"] == pytest.approx((2 / 3 + 0.5) / 2)


def test_bad_values_are_errors_not_silent_drops():
    with pytest.raises(InputError, match="outside"):
        confusion_from_maps(np.array([0, 5]), np.array([0, 0]), 3)
    with pytest.raises(InputError, match="outside"):
        confusion_from_maps(np.array([0, 1]), np.array([0, 9]), 3)
    with pytest.raises(InputError, match="shape"):
        confusion_from_maps(np.array([0, 1]), np.array([0]), 3)


def test_valid_mask():
    cm = confusion_from_maps(np.array([0, 1, 1]), np.array([1, 1, 0]), 2, valid=np.array([True, True, False]))
    assert cm.tolist() == [[0, 1, 0], [0, 1, 0]]


def test_confusion_from_frame_stats_equals_confusion_from_maps(rng):
    gt = rng.choice([0, 1, 2, 3, 9], size=(12, 16))  # 9: an id without a GT segment -> void
    pred = rng.choice([0, 11, 12, 13], size=(12, 16))
    gt_segs = {1: {"category_id": 0}, 2: {"category_id": 4}, 3: {"category_id": 4}}
    pred_segs = {11: {"category_id": 0}, 12: {"category_id": 4}, 13: {"category_id": 2}}
    st = frame_stats(gt, gt_segs, pred, pred_segs)
    expected = confusion_from_maps(semantic_from_panoptic(gt, gt_segs), semantic_from_panoptic(pred, pred_segs), 5)
    assert (confusion_from_stats(st, 5) == expected).all()
    gt_sem = semantic_from_panoptic(gt, gt_segs)
    pred_sem = semantic_from_panoptic(pred, pred_segs)
    no_void = confusion_from_maps(np.where(gt_sem == V, 0, gt_sem), np.where(pred_sem == V, 0, pred_sem), 5)
    assert (confusion_from_stats(st, 5, gt_void_as=0, pred_void_as=0) == no_void).all()


def test_binary_foreground():
    acc = BinaryForeground(4)
    # GT: bg bg fg fg fg void; pred: bg fg fg void(-> bg) bg fg
    acc.update("s", np.array([0, 0, 1, 3, 2, V]), np.array([0, 3, 2, V, 0, 1]))
    r = acc.compute()
    # 2x2 [[1, 1], [2, 1]]: acc 2/5; IoU bg = 1/(2+3-1) = 1/4, IoU fg = 1/(3+2-1) = 1/4
    assert r["acc"] == pytest.approx(0.4)
    assert r["iou_background"] == pytest.approx(0.25) and r["iou_foreground"] == pytest.approx(0.25)
    assert r["miou"] == pytest.approx(0.25)
    only_bg = BinaryForeground(4)
    only_bg.update("s", np.array([0, 0]), np.array([0, 0]))
    r = only_bg.compute()
    assert r["acc"] == 1.0 and r["iou_foreground"] is None and r["miou"] == 1.0


def test_merge_and_state_roundtrip(rng):
    full, a, b = ConfusionMIoU(5), ConfusionMIoU(5), ConfusionMIoU(5)
    fb, ba, bb = BinaryForeground(5), BinaryForeground(5), BinaryForeground(5)
    for i in range(8):
        gt, pred = rng.integers(0, 5, 50), rng.integers(0, 5, 50)
        sid = f"s{i % 3}"
        full.update(sid, gt, pred)
        fb.update(sid, gt, pred)
        (a if i % 2 else b).update(sid, gt, pred)
        (ba if i % 2 else bb).update(sid, gt, pred)
    b = ConfusionMIoU.from_state(pickle.loads(pickle.dumps(b.state_dict())))
    bb = BinaryForeground.from_state(pickle.loads(pickle.dumps(bb.state_dict())))
    assert a.merge(b).compute() == full.compute()
    assert ba.merge(bb).compute() == fb.compute()
    with pytest.raises(ValueError):
        a.merge(ConfusionMIoU(3))
