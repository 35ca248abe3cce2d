"""PanopticQuality: hand-computed cases for every panopticapi rule, merge/state, and parity with hotcoco.

``make_coco_case`` (also used by test_pq_compute.py) writes random COCO panoptic GT/prediction pairs with
void, crowd regions, merges, splits, class swaps, shifts and spurious segments.
"""

from __future__ import annotations

import contextlib
import io
import json
import pickle
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from nerfseg.evaluation.metrics.frame import _runs, frame_stats, label_image, read_panoptic_ids, rgb_to_ids
from nerfseg.evaluation.metrics.panoptic import PanopticQuality
from nerfseg.errors import InputError
from nerfseg.io import id2rgb, write_png

CATS = {1: True, 2: True, 3: False}


def seg(cat: int, crowd: int = 0, area: int | None = None) -> dict[str, Any]:
    d: dict[str, Any] = {"category_id": cat, "iscrowd": crowd}
    if area is not None:
        d["area"] = area
    return d


def one_frame(gt: np.ndarray, gt_segs: dict, pred: np.ndarray, pred_segs: dict, cats: dict = CATS) -> dict:
    pq = PanopticQuality(cats)
    pq.update(gt, gt_segs, pred, pred_segs)
    return pq.compute()


def assert_same(a: Any, b: Any, tol: float = 1e-12) -> None:
    """Equal nested dicts/lists; ints and None exactly, floats to ``tol`` (summation order differs)."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), (a, b)
        for k in a:
            assert_same(a[k], b[k], tol)
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_same(x, y, tol)
    elif isinstance(a, float) and not isinstance(b, bool):
        assert isinstance(b, (int, float)) and abs(a - b) <= tol, (a, b)
    else:
        assert a == b, (a, b)


# ---------------------------------------------------------------------------------------------
# hand-computed rules


def test_void_discount_applies_to_the_prediction_side_only():
    # GT object 1 is 10 px; the prediction covers 6 of them plus 4 px of GT void.
    gt = np.array([[1] * 10 + [0] * 4])
    pred = np.array([[0] * 4 + [7] * 10])
    # |p|=10, |g|=10, I=6, |p on void|=4 -> union = 10 + 10 - 6 - 4 = 10 -> IoU 0.6: a match
    r = one_frame(gt, {1: seg(1)}, pred, {7: seg(1)})
    c = r["per_class"][1]
    assert (c["tp"], c["fp"], c["fn"]) == (1, 0, 0)
    assert c["iou_sum"] == pytest.approx(0.6)
    # predicted void on the GT object is NOT discounted: 5 px predicted, 5 px of the GT left as void
    gt2 = np.array([[1] * 10])
    pred2 = np.array([[7] * 5 + [0] * 5])
    r2 = one_frame(gt2, {1: seg(1)}, pred2, {7: seg(1)})
    c2 = r2["per_class"][1]  # IoU = 5 / (5 + 10 - 5) = 0.5 exactly -> no match (a symmetric rule would give 1.0)
    assert (c2["tp"], c2["fp"], c2["fn"]) == (0, 1, 1)


def test_iou_exactly_half_is_not_a_match_and_just_above_is():
    gt = np.array([[1] * 4 + [2] * 4])
    pred = np.array([[5] * 2 + [6] * 6])  # pred 6 vs GT 2: I=4, union=6+4-4=6 -> 0.667 (cat 2)
    r = one_frame(gt, {1: seg(1), 2: seg(2)}, pred, {5: seg(1), 6: seg(2)})
    # pred 5 vs GT 1: I=2, union = 2 + 4 - 2 = 4 -> IoU 0.5: not a match
    assert (r["per_class"][1]["tp"], r["per_class"][1]["fp"], r["per_class"][1]["fn"]) == (0, 1, 1)
    assert r["per_class"][2]["tp"] == 1
    assert r["per_class"][2]["iou_sum"] == pytest.approx(4 / 6)
    gt3 = np.array([[1] * 4 + [0] * 4])
    pred3 = np.array([[5] * 3 + [0] * 5])  # 3/4 > 0.5
    assert one_frame(gt3, {1: seg(1)}, pred3, {5: seg(1)})["per_class"][1]["tp"] == 1


def test_category_must_agree():
    gt = np.array([[1] * 6])
    pred = np.array([[4] * 6])
    r = one_frame(gt, {1: seg(1)}, pred, {4: seg(2)})
    assert r["per_class"][1]["fn"] == 1 and r["per_class"][2]["fp"] == 1
    assert r["per_class"][1]["tp"] == 0 and r["per_class"][2]["tp"] == 0


def test_unmatched_prediction_mostly_on_void_is_ignored():
    gt = np.array([[1] * 6 + [0] * 6])
    pred = np.array([[5] * 6 + [0] * 2 + [6] * 4])  # pred 6 lies entirely on GT void
    r = one_frame(gt, {1: seg(1)}, pred, {5: seg(1), 6: seg(2)})
    assert r["per_class"][2]["fp"] == 0
    assert r["per_class"][2]["pq"] is None  # nothing counted: skipped, not 0
    # exactly half on void is still a FP (the rule is "> 0.5")
    gt2 = np.array([[1] * 6 + [2] * 2 + [0] * 2 + [0] * 2])
    pred2 = np.array([[5] * 6 + [8] * 2 + [0] * 2 + [8] * 2])  # pred 8: 2 px on GT 2 (cat 1 != 2), 2 px on void
    r2 = one_frame(gt2, {1: seg(1), 2: seg(2)}, pred2, {5: seg(1), 8: seg(1)})
    assert r2["per_class"][1]["fp"] == 1


def test_skipped_categories_and_empty_split_give_none():
    gt = np.array([[3] * 8])
    pred = np.array([[9] * 8])
    r = one_frame(gt, {3: seg(3)}, pred, {9: seg(3)})
    assert r["stuff"] == {"pq": 1.0, "sq": 1.0, "rq": 1.0, "n": 1}
    assert r["things"] == {"pq": None, "sq": None, "rq": None, "n": 0}  # panopticapi: ZeroDivisionError
    assert r["all"]["n"] == 1
    assert r["per_class"][1]["pq"] is None and r["per_class"][1]["tp"] == 0


def test_pq_sq_rq_are_averaged_separately():
    # cat 1: TP with IoU 1 and nothing else; cat 2: one FN -> PQ_2 = 0, SQ_2 = 0 (tp = 0), RQ_2 = 0
    gt = np.array([[1] * 4 + [2] * 4])
    pred = np.array([[5] * 4 + [0] * 4])
    r = one_frame(gt, {1: seg(1), 2: seg(2)}, pred, {5: seg(1)})
    assert r["things"] == {"pq": 0.5, "sq": 0.5, "rq": 0.5, "n": 2}
    # cat 1 TP IoU 0.75 + cat 2 TP IoU 1 + one cat 2 FP: PQ_2 = 1/1.5, SQ_2 = 1, RQ_2 = 1/1.5
    gt = np.array([[1] * 4 + [2] * 4 + [0] * 4])
    pred = np.array([[5] * 3 + [0] + [6] * 4 + [7] * 4])
    r = one_frame(gt, {1: seg(1), 2: seg(2)}, pred, {5: seg(1), 6: seg(2), 7: seg(2)})
    # pred 7 is entirely on void: ignored; so cat 2 has TP only
    assert r["per_class"][2]["fp"] == 0
    pred = np.array([[5] * 3 + [7] + [6] * 4 + [0] * 4])
    r = one_frame(gt, {1: seg(1), 2: seg(2)}, pred, {5: seg(1), 6: seg(2), 7: seg(2)})
    pq2 = 1 / 1.5
    assert r["things"]["pq"] == pytest.approx((0.75 + pq2) / 2)
    assert r["things"]["sq"] == pytest.approx((0.75 + 1.0) / 2)
    assert r["things"]["rq"] == pytest.approx((1.0 + pq2) / 2)
    assert r["things"]["pq"] != pytest.approx(r["things"]["sq"] * r["things"]["rq"])


def test_crowd_regions():
    # GT: object 1 (cat 1), crowd 2 (cat 1), crowd 3 (cat 2)
    gt = np.array([[1] * 4 + [2] * 6 + [3] * 6])
    gt_segs = {1: seg(1), 2: seg(1, crowd=1), 3: seg(2, crowd=1)}
    # pred 5 = object 1 exactly (TP); pred 6 (cat 1) on the cat-1 crowd: ignored; pred 7 (cat 1) on the
    # cat-2 crowd: a FP (only the crowd of the same category counts)
    pred = np.array([[5] * 4 + [6] * 6 + [7] * 6])
    r = one_frame(gt, gt_segs, pred, {5: seg(1), 6: seg(1), 7: seg(1)})
    c1 = r["per_class"][1]
    assert (c1["tp"], c1["fp"], c1["fn"]) == (1, 1, 0)
    assert r["per_class"][2]["fn"] == 0  # crowd is never a FN
    # a prediction matching a crowd region exactly is not a TP either
    r = one_frame(gt, gt_segs, np.array([[5] * 4 + [6] * 6 + [8] * 6]), {5: seg(1), 6: seg(1), 8: seg(2)})
    assert r["per_class"][2]["tp"] == 0 and r["per_class"][2]["fp"] == 0


def test_only_the_last_crowd_region_of_a_category_counts():
    gt = np.array([[2] * 6 + [3] * 6])
    pred = np.array([[6] * 6 + [7] * 6])
    pred_segs = {6: seg(1), 7: seg(1)}
    # JSON order 2 then 3: crowd 3 is honoured, pred 6 (on crowd 2) is a FP
    r = one_frame(gt, {2: seg(1, crowd=1), 3: seg(1, crowd=1)}, pred, pred_segs)
    assert r["per_class"][1]["fp"] == 1
    # JSON order 3 then 2: now pred 7 is the FP
    r = one_frame(gt, {3: seg(1, crowd=1), 2: seg(1, crowd=1)}, pred, pred_segs)
    assert r["per_class"][1]["fp"] == 1
    # void + crowd together make the "more than half" ignored fraction
    gt = np.array([[2] * 3 + [0] * 3 + [1] * 6])
    pred = np.array([[6] * 7 + [5] * 5])
    r = one_frame(gt, {2: seg(1, crowd=1), 1: seg(2)}, pred, {6: seg(1), 5: seg(2)})
    assert r["per_class"][1]["fp"] == 0  # 3 crowd + 3 void of 7 px > half


def test_gt_area_comes_from_the_json_when_given():
    gt = np.array([[1] * 6 + [0] * 6])
    pred = np.array([[5] * 4 + [0] * 8])
    assert one_frame(gt, {1: seg(1)}, pred, {5: seg(1)})["per_class"][1]["tp"] == 1  # 4/6
    # a stale JSON area of 12 px: IoU = 4 / (4 + 12 - 4) = 1/3
    r = one_frame(gt, {1: seg(1, area=12)}, pred, {5: seg(1)})
    assert r["per_class"][1]["tp"] == 0 and r["per_class"][1]["fn"] == 1


def test_gt_ids_without_a_segment_are_neither_void_nor_segments():
    gt = np.array([[1] * 4 + [9] * 4])  # id 9 is not in the GT JSON
    pred = np.array([[5] * 4 + [6] * 4])
    r = one_frame(gt, {1: seg(1)}, pred, {5: seg(1), 6: seg(2)})
    assert r["per_class"][2]["fp"] == 1  # not ignored: id 9 pixels are not void


def test_prediction_errors_name_the_frame():
    gt = np.array([[1, 1]])
    pq = PanopticQuality(CATS)
    with pytest.raises(InputError, match=r"scene/0001.*\[5\].*PNG but not in its JSON"):
        pq.update(gt, {1: seg(1)}, np.array([[5, 5]]), {}, source="scene/0001")
    with pytest.raises(InputError, match=r"\[6\].*JSON but not in its PNG"):
        pq.update(gt, {1: seg(1)}, np.array([[5, 5]]), {5: seg(1), 6: seg(1)})
    with pytest.raises(InputError, match="unknown category"):
        pq.update(gt, {1: seg(1)}, np.array([[5, 5]]), {5: seg(42)})
    with pytest.raises(InputError, match="id 0"):
        pq.update(gt, {1: seg(1)}, np.array([[0, 0]]), {0: seg(1)})
    with pytest.raises(InputError, match="shape"):
        pq.update(gt, {1: seg(1)}, np.array([[5, 5, 5]]), {5: seg(1)})
    assert pq.num_frames == 0


def test_label_image_lut_and_search_paths_agree(rng):
    keys = np.sort(rng.choice(np.arange(1, 1 << 24), 50, replace=False)).astype(np.int64)
    ids = rng.choice(np.concatenate([keys, [0, 3, 77]]), size=(30, 40))
    small = label_image(ids.astype(np.uint32), keys)
    big_keys = keys + (1 << 26)
    big_ids = np.where(np.isin(ids, keys), ids + (1 << 26), ids)
    assert (label_image(big_ids.astype(np.uint64), big_keys) == small).all()
    assert (small[ids.reshape(-1) == 0] == 1).all() and (small[ids.reshape(-1) == 3] == 0).all()


def test_runs_and_pixel_paths_give_the_same_histogram(rng):
    gt = np.repeat(np.repeat(rng.integers(1, 5, (6, 8)), 5, axis=0), 5, axis=1)
    noisy = rng.integers(0, 5, gt.shape)
    segs = {i: seg(1) for i in range(1, 5)}

    def ref_labels(ids: np.ndarray, keys: np.ndarray) -> np.ndarray:
        flat = ids.reshape(-1)
        return np.where(flat == 0, 1, np.searchsorted(keys, flat) + 2)

    for pred, uses_runs in ((gt, True), (noisy, False)):
        assert (_runs(gt.reshape(-1), pred.reshape(-1)) is not None) == uses_runs
        st = frame_stats(gt, segs, pred, {i: segs[i] for i in np.unique(pred) if i})
        ref = np.zeros_like(st.matrix)
        np.add.at(ref, (ref_labels(gt, st.gt_ids), ref_labels(pred, st.pred_ids)), 1)
        assert (st.matrix == ref).all()


def test_rgb_to_ids_matches_the_reference_codec(rng):
    ids = rng.integers(0, 1 << 24, size=(7, 9)).astype(np.uint32)
    rgb = id2rgb(ids)
    assert (rgb_to_ids(rgb) == ids).all()
    assert (rgb_to_ids(np.ascontiguousarray(rgb[:, ::-1])) == ids[:, ::-1]).all()
    assert (rgb_to_ids(rgb[:, ::-1]) == ids[:, ::-1]).all()  # non-contiguous: slow path


# ---------------------------------------------------------------------------------------------
# merge / state


def test_merge_and_state_roundtrip_equal_one_pass(tmp_path):
    case = make_coco_case(tmp_path, n_images=12, seed=3)
    full = PanopticQuality(case["categories"])
    a = PanopticQuality(case["categories"])
    b = PanopticQuality(case["categories"])
    for i, frame in enumerate(load_frames(case)):
        full.update(*frame)
        (a if i % 3 else b).update(*frame)
    b2 = PanopticQuality.from_state(pickle.loads(pickle.dumps(b.state_dict())))
    merged = a.merge(b2)
    assert_same(merged.compute(), full.compute())
    with pytest.raises(ValueError):
        a.merge(PanopticQuality({1: True}))


# ---------------------------------------------------------------------------------------------
# random COCO panoptic cases and hotcoco parity

COCO_CATS = [  # id, isthing
    (1, 1), (2, 1), (3, 1), (5, 1), (8, 1), (13, 1), (100, 0), (101, 0), (120, 0), (199, 0),
]  # fmt: skip


def _rand_rect(rng: np.random.Generator, h: int, w: int, lo: int, hi: int) -> tuple[slice, slice]:
    rh, rw = rng.integers(lo, hi, 2)
    y, x = rng.integers(0, max(1, h - rh)), rng.integers(0, max(1, w - rw))
    return slice(y, y + rh), slice(x, x + rw)


def _coco_gt_map(rng: np.random.Generator, new_id: Callable[[], int], h: int, w: int, stuffs: list[int], things: list[int]) -> tuple[np.ndarray, dict[int, int], set[int]]:
    """One GT id map of :func:`make_coco_case`: stuff bands, thing rectangles, maybe crowd regions, void patches."""
    gt = np.zeros((h, w), dtype=np.int64)
    cat_of: dict[int, int] = {}
    crowd: set[int] = set()
    # stuff: 1-3 horizontal bands
    bands = np.sort(rng.choice(np.arange(1, h), rng.integers(0, 3), replace=False))
    edges = [0, *bands.tolist(), h]
    for a, b in pairwise(edges):
        sid = new_id()
        gt[a:b] = sid
        cat_of[sid] = int(rng.choice(stuffs))
    for _ in range(rng.integers(2, 12)):
        sid = new_id()
        gt[_rand_rect(rng, h, w, 3, 20)] = sid
        cat_of[sid] = int(rng.choice(things))
    if rng.random() < 0.35:
        for _ in range(rng.integers(1, 3)):
            sid = new_id()
            gt[_rand_rect(rng, h, w, 4, 16)] = sid
            cat_of[sid] = int(rng.choice(things[:2]))
            crowd.add(sid)
    for _ in range(rng.integers(0, 4)):
        gt[_rand_rect(rng, h, w, 2, 12)] = 0
    return gt, cat_of, crowd


def _coco_pred_map(
    rng: np.random.Generator, new_id: Callable[[], int], gt: np.ndarray, present: list[int], cat_of: dict[int, int], cat_ids: list[int]
) -> tuple[np.ndarray, dict[int, int]]:
    """The prediction of one GT map: each segment kept, shifted, split, class-swapped, merged or dropped; plus noise."""
    h, w = gt.shape
    pred = np.zeros_like(gt)
    pcat: dict[int, int] = {}
    merge_into: int | None = None
    for sid in present:
        mask = gt == sid
        r = rng.random()
        cat = cat_of[sid]
        if r < 0.08:
            continue  # dropped: void
        if r < 0.16:
            cat = int(rng.choice(cat_ids))  # class swap
        if r < 0.26 and merge_into is not None and pcat[merge_into] == cat:
            pred[mask] = merge_into  # merged with an earlier segment of the same class
            continue
        pid = new_id()
        if 0.26 <= r < 0.34:
            shifted = np.roll(mask, int(rng.integers(-4, 5)), axis=int(rng.integers(0, 2)))
            pred[shifted] = pid
        elif 0.34 <= r < 0.44:
            _, xs = np.nonzero(mask)
            cut = mask & (np.arange(w)[None, :] < int(np.median(xs)))
            pid2 = new_id()
            pred[mask] = pid
            pred[cut] = pid2
            pcat[pid2] = cat
        else:
            pred[mask] = pid
        pcat[pid] = cat
        merge_into = pid
    for _ in range(rng.integers(0, 3)):
        pid = new_id()
        pred[_rand_rect(rng, h, w, 2, 10)] = pid
        pcat[pid] = int(rng.choice(cat_ids))
    noise = rng.random(pred.shape) < 0.02
    pred[noise] = 0
    return pred, pcat


def make_coco_case(root: Path, n_images: int = 20, seed: int = 0, h: int = 48, w: int = 64, stale_area: bool = True) -> dict[str, Any]:
    """Write ``gt.json``/``gt/`` and ``pred.json``/``pred/`` under ``root``; return paths and categories.

    GT: stuff backgrounds, thing rectangles, void patches, ~1 crowd region in 3 images (sometimes two of
    one category), ids random in [1, 2^24). Prediction per GT segment: kept (maybe shifted or eroded),
    class-swapped, merged with a neighbour, split in two, dropped to void or absorbed; plus spurious
    segments and void noise. Segments listed in the JSON always occur in the PNG.
    """
    rng = np.random.default_rng(seed)
    cat_ids = [c for c, _ in COCO_CATS]
    things = [c for c, t in COCO_CATS if t]
    stuffs = [c for c, t in COCO_CATS if not t]
    (root / "gt").mkdir(parents=True, exist_ok=True)
    (root / "pred").mkdir(parents=True, exist_ok=True)
    images, gt_anns, pred_anns = [], [], []
    used: set[int] = set()

    def new_id() -> int:
        while True:
            v = int(rng.integers(1, 1 << 24))
            if v not in used:
                used.add(v)
                return v

    for k in range(n_images):
        gt, cat_of, crowd = _coco_gt_map(rng, new_id, h, w, stuffs, things)
        present = [i for i in np.unique(gt).tolist() if i]

        pred, pcat = _coco_pred_map(rng, new_id, gt, present, cat_of, cat_ids)
        pred_present = [i for i in np.unique(pred).tolist() if i]

        name = f"{k:06d}.png"
        write_png(root / "gt" / name, id2rgb(gt))
        write_png(root / "pred" / name, id2rgb(pred))
        areas = dict(zip(*np.unique(gt, return_counts=True)))
        gsegs = []
        for sid in present:
            area = int(areas[sid])
            if stale_area and rng.random() < 0.05:
                area += int(rng.integers(-2, 5))  # panopticapi trusts the JSON area
            gsegs.append({"id": sid, "category_id": cat_of[sid], "iscrowd": int(sid in crowd), "area": max(area, 1), "bbox": [0, 0, 1, 1]})
        rng.shuffle(gsegs)  # JSON order matters for "last crowd region wins"
        images.append({"id": k, "file_name": name.replace(".png", ".jpg"), "height": h, "width": w})
        gt_anns.append({"image_id": k, "file_name": name, "segments_info": gsegs})
        pred_anns.append({"image_id": k, "file_name": name, "segments_info": [{"id": p, "category_id": pcat[p]} for p in pred_present]})
    categories = [{"id": c, "name": f"c{c}", "isthing": t, "supercategory": "x", "color": [0, 0, 0]} for c, t in COCO_CATS]
    (root / "gt.json").write_text(json.dumps({"images": images, "annotations": gt_anns, "categories": categories}))
    (root / "pred.json").write_text(json.dumps({"images": images, "annotations": pred_anns, "categories": categories}))
    return {"gt_json": root / "gt.json", "pred_json": root / "pred.json", "categories": {c: bool(t) for c, t in COCO_CATS}}


def load_frames(case: dict[str, Any]):
    gt_json = json.loads(Path(case["gt_json"]).read_text())
    pred_json = json.loads(Path(case["pred_json"]).read_text())
    preds = {a["image_id"]: a for a in pred_json["annotations"]}
    root = Path(case["gt_json"]).parent
    for ann in gt_json["annotations"]:
        p = preds[ann["image_id"]]
        yield (
            read_panoptic_ids(root / "gt" / ann["file_name"]),
            {s["id"]: s for s in ann["segments_info"]},
            read_panoptic_ids(root / "pred" / p["file_name"]),
            {s["id"]: s for s in p["segments_info"]},
        )


def hotcoco_pq(gt_json: Path, pred_json: Path, gt_folder: Path | None = None, pred_folder: Path | None = None) -> dict:
    hot = pytest.importorskip("hotcoco.panoptic")
    with contextlib.redirect_stdout(io.StringIO()):
        return hot.pq_compute(
            str(gt_json),
            str(pred_json),
            gt_folder=None if gt_folder is None else str(gt_folder),
            pred_folder=None if pred_folder is None else str(pred_folder),
        )


def assert_parity(ours: dict, hot: dict, panopticapi_shape: bool) -> None:
    """Compare our result with hotcoco's: splits to 1e-9 (hotcoco -1 = our None), per-class counts exactly."""
    for name, key in (("All", "all"), ("Things", "things"), ("Stuff", "stuff")):
        mine = ours[name] if panopticapi_shape else ours[key]
        theirs = hot[name]
        assert mine["n"] == theirs["n"]
        for k in ("pq", "sq", "rq"):
            if theirs["n"] == 0:
                assert mine[k] is None and theirs[k] == -1.0
            else:
                assert mine[k] == pytest.approx(theirs[k], abs=1e-9)
    checked = 0
    for cat, row in hot["per_class"].items():
        mine = ours["per_class"][int(cat)]
        assert (mine["tp"], mine["fp"], mine["fn"]) == (row["tp"], row["fp"], row["fn"]), cat
        assert mine["iou_sum"] == pytest.approx(row["iou"], abs=1e-9)
        if row["tp"] + row["fp"] + row["fn"] == 0:
            assert row["pq"] == -1.0  # hotcoco's sentinel; panopticapi 0.0; us None (or 0.0 in pq_compute)
            assert mine["pq"] == (0.0 if panopticapi_shape else None)
        else:
            checked += 1
            for k in ("pq", "sq", "rq"):
                assert mine[k] == pytest.approx(row[k], abs=1e-9)
    assert checked > 0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_parity_with_hotcoco_on_random_cases(tmp_path, seed):
    case = make_coco_case(tmp_path, n_images=25, seed=seed)
    pq = PanopticQuality(case["categories"])
    for frame in load_frames(case):
        pq.update(*frame)
    ours = pq.compute()
    hot = hotcoco_pq(case["gt_json"], case["pred_json"])
    assert_parity(ours, hot, panopticapi_shape=False)
    # the generator must exercise the rules it claims to: crowd, FPs, FNs, swaps
    counts = np.array([[v["tp"], v["fp"], v["fn"]] for v in ours["per_class"].values()]).sum(axis=0)
    assert (counts > 0).all()
    gt_json = json.loads(Path(case["gt_json"]).read_text())
    assert any(s["iscrowd"] for a in gt_json["annotations"] for s in a["segments_info"])


def test_parity_with_hotcoco_when_a_split_is_empty(tmp_path):
    case = make_coco_case(tmp_path, n_images=4, seed=7)
    for name in ("gt.json", "pred.json"):  # drop every stuff category from the GT categories
        data = json.loads((tmp_path / name).read_text())
        stuff = {c["id"] for c in data["categories"] if not c["isthing"]}
        data["categories"] = [c for c in data["categories"] if c["id"] not in stuff]
        for ann in data["annotations"]:
            for s in ann["segments_info"]:
                if s["category_id"] in stuff:
                    s["category_id"] = 1  # keep every segment, now a thing
        (tmp_path / name).write_text(json.dumps(data))
    cats = {c: t for c, t in case["categories"].items() if t}
    pq = PanopticQuality(cats)
    for frame in load_frames(case):
        pq.update(*frame)
    ours = pq.compute()
    assert ours["stuff"]["n"] == 0 and ours["stuff"]["pq"] is None
    assert_parity(ours, hotcoco_pq(case["gt_json"], case["pred_json"]), panopticapi_shape=False)
