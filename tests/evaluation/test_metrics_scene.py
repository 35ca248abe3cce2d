"""ScenePanopticQuality (PQ^scene): equal to PanopticQuality on the concatenated views; sees id consistency."""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import pytest

from nerfseg.evaluation.metrics.panoptic import PanopticQuality
from nerfseg.evaluation.metrics.scene_panoptic import ScenePanopticQuality, SparseSum
from tests.evaluation.test_metrics_panoptic import assert_same

CATS = {0: False, 1: True, 2: True, 3: True, 7: False}


def _scene(rng: np.random.Generator, n_frames: int, consistent: bool, h: int = 20, w: int = 24) -> dict[str, Any]:
    """Frames of one scene: GT objects with scene-wide ids (and one crowd id per category), stuff with
    one id per category; predictions derived with per-object ids that are scene-wide if ``consistent``,
    else re-drawn per frame. Also the concatenation of the frames as one image + JSON."""
    objects = {int(i): int(rng.choice([1, 2, 3])) for i in rng.choice(np.arange(1, 500), 6, replace=False)}
    stuff_ids = {0: 9000, 7: 9001}
    crowd_ids = {1: 9100, 2: 9101}
    pred_obj = {i: int(rng.integers(10_000, 20_000)) for i in objects}
    pred_stuff = {0: 30_000, 7: 30_001}
    frames = []
    for f in range(n_frames):
        gt = np.full((h, w), stuff_ids[0], dtype=np.int64)
        gt[: h // 3] = stuff_ids[7]
        for oid in rng.choice(list(objects), rng.integers(2, 6), replace=False):
            y, x = rng.integers(0, h - 4), rng.integers(0, w - 4)
            gt[y : y + rng.integers(3, 9), x : x + rng.integers(3, 9)] = oid
        if rng.random() < 0.5:
            cat = int(rng.choice([1, 2]))
            y, x = rng.integers(0, h - 3), rng.integers(0, w - 3)
            gt[y : y + 3, x : x + 4] = crowd_ids[cat]
        gt[rng.random(gt.shape) < 0.03] = 0
        gt_segs = {}
        for i in np.unique(gt).tolist():
            if i == 0:
                continue
            if i in objects:
                gt_segs[i] = {"category_id": objects[i], "iscrowd": 0}
            elif i in crowd_ids.values():
                gt_segs[i] = {"category_id": next(c for c, v in crowd_ids.items() if v == i), "iscrowd": 1}
            else:
                gt_segs[i] = {"category_id": next(c for c, v in stuff_ids.items() if v == i), "iscrowd": 0}
        pred = np.zeros_like(gt)
        pred_segs = {}
        for i, s in gt_segs.items():
            mask = gt == i
            if s["iscrowd"] or rng.random() < 0.1:
                continue
            if i in objects:
                pid = pred_obj[i] if consistent else int(rng.integers(20_000, 29_999))
                cat = objects[i] if rng.random() > 0.1 else int(rng.choice([1, 2, 3]))
                if consistent and cat != objects[i]:
                    cat = objects[i]  # an id keeps one category across views
            else:
                pid = pred_stuff[s["category_id"]]
                cat = s["category_id"]
            if rng.random() < 0.3:
                mask = np.roll(mask, 1, axis=1)
            pred[mask] = pid
            pred_segs[pid] = {"category_id": cat}
        pred[rng.random(pred.shape) < 0.02] = 0
        pred_segs = {k: v for k, v in pred_segs.items() if (pred == k).any()}
        frames.append((gt, gt_segs, pred, pred_segs))
    # the joined image: stack the views; segments merged by id, GT areas summed
    cat_gt, cat_pred = {}, {}
    for gt, gt_segs, pred, pred_segs in frames:
        for i, s in gt_segs.items():
            cat_gt.setdefault(i, dict(s, area=0))["area"] += int((gt == i).sum())
        cat_pred.update(pred_segs)
    joined = (np.concatenate([f[0] for f in frames]), cat_gt, np.concatenate([f[2] for f in frames]), cat_pred)
    return {"frames": frames, "joined": joined}


@pytest.mark.parametrize("consistent", [True, False])
def test_scene_pq_equals_pq_of_the_concatenated_views(consistent):
    rng = np.random.default_rng(11 if consistent else 12)
    scenes = {f"s{k}": _scene(rng, 5, consistent) for k in range(3)}
    spq = ScenePanopticQuality(CATS)
    for sid, sc in scenes.items():
        for frame in sc["frames"]:
            spq.update(sid, *frame)
    out = spq.compute()
    for sid, sc in scenes.items():
        ref = PanopticQuality(CATS)
        ref.update(*sc["joined"])
        expected = ref.compute()
        expected.pop("num_frames")
        got = dict(out["per_scene"][sid])
        assert got.pop("num_frames") == 5
        assert_same(got, expected, tol=1e-12)
    things = [out["per_scene"][s]["things"]["pq"] for s in scenes]
    assert out["things"]["pq"] == pytest.approx(np.mean(things))
    assert out["num_scenes"] == 3


def _two_views(ids: tuple[int, int]) -> list[tuple]:
    """One chair (GT id 5) seen in two views, predicted perfectly but with ids ``ids``; background stuff."""
    frames = []
    for pid in ids:
        gt = np.full((4, 8), 100)
        gt[:, :4] = 5
        pred = np.full((4, 8), 700)
        pred[:, :4] = pid
        frames.append((gt, {5: {"category_id": 3}, 100: {"category_id": 0}}, pred, {pid: {"category_id": 3}, 700: {"category_id": 0}}))
    return frames


def test_consistent_ids_match_and_inconsistent_ids_do_not():
    per_frame = PanopticQuality(CATS)
    results = {}
    for name, ids in (("consistent", (41, 41)), ("inconsistent", (41, 42))):
        spq = ScenePanopticQuality(CATS)
        for frame in _two_views(ids):
            spq.update("scene", *frame)
            per_frame.update(*frame)
        results[name] = spq.compute()
    assert per_frame.compute()["things"]["pq"] == 1.0  # per-frame PQ cannot tell the difference
    assert results["consistent"]["things"]["pq"] == 1.0
    c = results["inconsistent"]["per_scene"]["scene"]["per_class"][3]
    # each id covers half of the chair's pixels over both views: IoU 0.5, not > 0.5 -> 2 FP + 1 FN
    assert (c["tp"], c["fp"], c["fn"]) == (0, 2, 1)
    assert results["inconsistent"]["things"]["pq"] == 0.0
    assert results["inconsistent"]["stuff"]["pq"] == 1.0  # stuff is one segment per scene whatever its ids


def test_stuff_ids_may_differ_between_views():
    frames = _two_views((41, 41))
    gt, _, pred, _ = frames[1]
    pred = np.where(pred == 700, 701, pred)
    gt = np.where(gt == 100, 101, gt)
    frames[1] = (gt, {5: {"category_id": 3}, 101: {"category_id": 0}}, pred, {41: {"category_id": 3}, 701: {"category_id": 0}})
    spq = ScenePanopticQuality(CATS)
    for frame in frames:
        spq.update("scene", *frame)
    assert spq.compute()["all"]["pq"] == 1.0


def test_merge_and_state_roundtrip():
    rng = np.random.default_rng(5)
    scenes = {f"s{k}": _scene(rng, 4, k % 2 == 0) for k in range(3)}
    full, a, b = (ScenePanopticQuality(CATS) for _ in range(3))
    for sid, sc in scenes.items():
        for j, frame in enumerate(sc["frames"]):
            full.update(sid, *frame)
            (a if j % 2 else b).update(sid, *frame)  # frames of one scene split over two workers
    b = ScenePanopticQuality.from_state(pickle.loads(pickle.dumps(b.state_dict())))
    assert_same(a.merge(b).compute(), full.compute())


def test_sparse_sum_compacts_without_losing_counts(rng):
    s = SparseSum()
    keys = rng.integers(0, 50, 20_000).astype(np.uint64)
    vals = rng.integers(1, 5, 20_000)
    for i in range(0, 20_000, 700):
        s.add(keys[i : i + 700], vals[i : i + 700])
    st = s.state()
    assert st["keys"].size <= 50
    expected = np.bincount(keys.astype(np.int64), weights=vals, minlength=50)
    assert (st["values"] == expected[st["keys"].astype(np.int64)]).all()
