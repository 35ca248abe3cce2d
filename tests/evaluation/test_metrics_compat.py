"""Compatibility metrics: Instance-NeRF's PQ quirks and Panoptic Lifting's filters, hand-computed."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from PIL import Image

from nerfseg.evaluation.metrics.compat import InstanceNerfPQ, PanopticLiftingScene, resize_nearest
from nerfseg.evaluation.metrics.frame import frame_stats
from nerfseg.evaluation.metrics.panoptic import PanopticQuality

CATS = {c: c > 0 for c in range(11)}


# ---------------------------------------------------------------------------------------------
# Instance-NeRF


def _inerf_frame():
    """GT: A (id 1, class 1) 20 px, B (id 2, class 2) 20 px, background stuff 60 px (id 100).
    Pred: p1 = A (16 px of it): IoU 0.8, right class; p2 = 14 px of B, class 3: IoU 0.7, wrong class;
    p3: 5 px of background, class 4 (IoU 0 with every object)."""
    gt = np.full((10, 10), 100)
    gt[0:2] = 1
    gt[2:4] = 2
    pred = np.zeros((10, 10), dtype=np.int64)
    pred.reshape(-1)[0:16] = 11
    pred.reshape(-1)[20:34] = 12
    pred.reshape(-1)[50:55] = 13
    gt_segs = {1: {"category_id": 1}, 2: {"category_id": 2}, 100: {"category_id": 0}}
    pred_segs = {11: {"category_id": 1}, 12: {"category_id": 3}, 13: {"category_id": 4}}
    return gt, gt_segs, pred, pred_segs


def test_instance_nerf_quirks():
    gt, gs, pred, ps = _inerf_frame()
    acc = InstanceNerfPQ()
    # GT instance 3 exists in the scene but is not visible here: still a FN
    acc.update_stats("s", frame_stats(gt, gs, pred, ps), scene_instances={1, 2, 3})
    r = acc.compute()
    # TP: p1 (0.8). FP: p2 (IoU 0.7 > 0.5, wrong class). p3 (best IoU 0): not counted at all.
    # FN: B is not one (its best IoU 0.7 >= 0.5 even though the class is wrong); instance 3 is.
    assert (r["tp"], r["fp"], r["fn"]) == (1, 1, 1)
    assert r["iou_sum"] == pytest.approx(0.8)
    assert r["pq"] == pytest.approx(0.8 / (1 + 0.5 + 0.5))
    # panopticapi on the same frame: p3 is a FP, B is a FN, instance 3 does not exist
    pq = PanopticQuality(CATS)
    pq.update(gt, gs, pred, ps)
    std = pq.compute()["per_class"]
    assert (std[2]["fn"], std[3]["fp"], std[4]["fp"]) == (1, 1, 1)


def test_instance_nerf_exact_half_is_neither_tp_nor_fn():
    gt = np.zeros((1, 8), dtype=np.int64)
    gt[0, :4] = 1
    pred = np.zeros((1, 8), dtype=np.int64)
    pred[0, :2] = 5  # IoU 2/4 = 0.5
    acc = InstanceNerfPQ()
    acc.update_stats("s", frame_stats(gt, {1: {"category_id": 1}}, pred, {5: {"category_id": 1}}), {1})
    r = acc.compute()
    assert (r["tp"], r["fp"], r["fn"]) == (0, 0, 0)
    assert r["pq"] is None


def test_instance_nerf_uses_pixel_counts_and_no_void_discount():
    gt = np.zeros((1, 10), dtype=np.int64)
    gt[0, :6] = 1
    pred = np.zeros((1, 10), dtype=np.int64)
    pred[0, 2:10] = 5  # 4 px on the object, 4 px on GT void: plain IoU 4/10 (panopticapi: 4/6)
    st = frame_stats(gt, {1: {"category_id": 1, "area": 1000}}, pred, {5: {"category_id": 1}})
    acc = InstanceNerfPQ()
    acc.update_stats("s", st, {1})
    assert (acc.compute()["tp"], acc.compute()["fn"]) == (0, 1)
    merged = InstanceNerfPQ().merge(InstanceNerfPQ.from_state(pickle.loads(pickle.dumps(acc.state_dict()))))
    assert merged.compute() == acc.compute()


# ---------------------------------------------------------------------------------------------
# Panoptic Lifting


@pytest.mark.parametrize("shape", [(480, 640), (427, 640), (100, 100), (512, 512), (7, 1000)])
def test_resize_nearest_is_pils(shape, rng):
    ids = rng.integers(0, 1 << 20, size=shape).astype(np.int32)
    expected = np.asarray(Image.fromarray(ids, mode="I").resize((512, 512), Image.NEAREST))
    assert (resize_nearest(ids) == expected).all()
    small = rng.integers(0, 255, size=shape).astype(np.uint8)
    assert (resize_nearest(small) == np.asarray(Image.fromarray(small).resize((512, 512), Image.NEAREST))).all()


def _pl(gt, gs, pred, ps) -> PanopticLiftingScene:
    acc = PanopticLiftingScene(CATS)
    acc.update_stats("s", frame_stats(gt, gs, pred, ps, strict=False))
    return acc


def test_panoptic_lifting_filters_and_mean_over_all_kept_classes():
    """100x100 px: GT rows 0..19 background (class 0: dropped), A (class 1) rows 20..59 = 4000 px,
    D (class 4) rows 60..99 but C (class 3, 30 px = 0.375% of the 8000 kept pixels: dropped as
    non-robust, so its pixels become void on both sides). Prediction: D exact, A but 20 px, and q
    (class 2) = C's 30 px + those 20 px of A: 50 px = 0.625%, kept; q is 60% on (the new) GT void, so
    its FP is ignored and class 2 is kept with nothing counted: it scores 0 in the mean."""
    gt = np.zeros((100, 100), dtype=np.int64)
    gt[0:20] = 100
    gt[20:60] = 1
    gt[60:100] = 4
    gt[90, 0:30] = 3
    pred = np.zeros_like(gt)
    pred[0:20] = 200  # whatever is predicted on GT class 0 is dropped with it
    pred[20:60] = 11
    pred[60:100] = 14
    pred[90, 0:30] = 12
    pred[20, 0:20] = 12
    gs = {100: {"category_id": 0}, 1: {"category_id": 1}, 4: {"category_id": 4}, 3: {"category_id": 3}}
    ps = {200: {"category_id": 0}, 11: {"category_id": 1}, 14: {"category_id": 4}, 12: {"category_id": 2}}
    r = _pl(gt, gs, pred, ps).compute()
    s = r["per_scene"]["s"]
    assert s["classes"] == [1, 2, 4]  # things in order; 0 unused after the drop, 3 non-robust
    assert s["per_class"][2] == {"pq": 0.0, "sq": 0.0, "rq": 0.0, "tp": 0, "fp": 0, "fn": 0, "iou_sum": 0.0}
    assert s["per_class"][1]["iou_sum"] == pytest.approx(3980 / 4000)
    assert r["pq"] == pytest.approx((3980 / 4000 + 0 + 1) / 3)
    assert r["rq"] == pytest.approx(2 / 3)
    # mIoU: class 3 (GT 30 px, never predicted) is non-robust on both sides -> NaN; class 2 (pred 50 px
    # = 0.625%) is not -> IoU 0 counts; class 1 = 3980/4000, class 4 = 1 (D is 3970 px, all predicted)
    assert s["per_class_iou"][3] is None and s["per_class_iou"][2] == 0.0
    assert s["per_class_iou"][4] == 1.0 and s["per_class_iou"][0] is None
    assert r["miou"] == pytest.approx((3980 / 4000 + 0 + 1) / 3)


def test_panoptic_lifting_union_subtracts_void_on_both_sides_and_ignores_gt_on_void():
    gt = np.zeros((10, 100), dtype=np.int64)
    gt[:, :50] = 1  # A, 500 px
    gt[:, 50:] = 2  # B, 500 px
    pred = np.zeros_like(gt)
    pred[:, :30] = 11  # 300 px of A; the other 200 px of A are predicted void
    pred[:, 50:65] = 12  # 150 px of B as class 2 id 12
    pred[:, 65:80] = 13  # 150 px of B as class 2 id 13; B's remaining 200 px: void
    gs = {1: {"category_id": 1}, 2: {"category_id": 2}}
    ps = {11: {"category_id": 1}, 12: {"category_id": 2}, 13: {"category_id": 2}}
    s = _pl(gt, gs, pred, ps).compute()["per_scene"]["s"]
    # A vs 11: union = 300 - 0 + 500 - 200 - 300 = 300 -> IoU 1 (panopticapi: 0.6)
    assert s["per_class"][1]["tp"] == 1 and s["per_class"][1]["iou_sum"] == pytest.approx(1.0)
    # B vs 12: union = 150 + 500 - 200 - 150 = 300 -> 0.5, no match; B unmatched, 40% on pred void -> FN
    assert (s["per_class"][2]["tp"], s["per_class"][2]["fp"], s["per_class"][2]["fn"]) == (0, 2, 1)
    # now B mostly on predicted void: its FN is ignored
    pred2 = np.zeros_like(gt)
    pred2[:, :30] = 11
    pred2[:, 50:60] = 12
    pred2[:, 60:70] = 13  # B: 100 + 100 px in two ids, 300 px void (60% > 50%)
    s = _pl(gt, gs, pred2, ps).compute()["per_scene"]["s"]
    assert s["per_class"][2]["fn"] == 0 and s["per_class"][2]["fp"] == 2


def test_panoptic_lifting_merge_state_and_scene_mean():
    gt, gs, pred, ps = _inerf_frame()
    a = PanopticLiftingScene(CATS)
    b = PanopticLiftingScene(CATS)
    full = PanopticLiftingScene(CATS)
    for k in range(4):
        st = frame_stats(np.roll(gt, k, axis=1), gs, np.roll(pred, k, axis=1), ps, strict=False)
        full.update_stats(f"s{k % 2}", st)
        (a if k < 2 else b).update_stats(f"s{k % 2}", st)
    b = PanopticLiftingScene.from_state(pickle.loads(pickle.dumps(b.state_dict())))
    r, ref = a.merge(b).compute(), full.compute()
    assert r["pq"] == pytest.approx(ref["pq"]) and r["miou"] == pytest.approx(ref["miou"])
    assert ref["pq"] == pytest.approx(np.mean([ref["per_scene"][s]["pq"] for s in ("s0", "s1")]))
