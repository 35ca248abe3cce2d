"""COCO mask AP of 2D instance predictions: panoptic segments -> RLE masks -> ``COCOeval(iouType="segm")``.

Why COCO's own evaluator: mask AP is only comparable with the rest of the field when it is *the* COCO
number (101-point interpolated precision, IoU thresholds 0.50:0.05:0.95, 100 detections per image, crowd
handling, area ranges small/medium/large). Re-implementing those rules invites off-by-one drift, so the
accumulator keeps the masks (compressed RLE, a few hundred bytes each) and hands them to ``pycocotools``
at ``compute`` time. ``hotcoco`` (a Rust port) is an opt-in backend, ``NERFSEG_MASK_AP_BACKEND=hotcoco``;
the tests prove both give the same numbers to 1e-9, ``benchmarks/mask_ap_speed.py`` measures both.

What goes in, per test view:

* GT: every segment of a thing class (1..10) is one instance; ``iscrowd`` is passed through (the benchmark's
  GT has none, a crowd GT would be COCO's ignore region); the stuff segment and VOID (id 0) are not
  instances. VOID pixels are plain non-object pixels, as everywhere in COCO: a prediction spilling onto
  them loses IoU (PQ, by contrast, discounts them).
* prediction: every segment whose ``category_id`` is a thing class, with its ``score`` (1.0 when absent;
  equal scores keep the submission's segment order, ascending id, as COCOeval sorts stably).

Masks are run-length encoded straight from the id map (one column-major pass finds the runs of every
segment at once) and compressed by pycocotools' C encoder, so the bytes are exactly what
``pycocotools.mask.encode`` gives for each binary mask (tested), at a fraction of the cost of building
one binary mask per segment.

The state is a dict of frames -> plain lists (JSON/pickle friendly), so accumulators merge across
processes; ``compute`` orders frames by (scene, frame) before numbering images, so the result does not
depend on how frames were split over workers.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from nerfseg.evaluation.metrics.base import Accumulator
from nerfseg import spec
from nerfseg.errors import InputError

__all__ = [
    "MaskAP",
    "STAT_KEYS",
    "coco_categories",
    "encode_segments",
    "evaluate_coco_segm",
    "mask_ap_backend",
    "rle_counts_from_ids",
]

#: COCOeval ``stats`` in its order (summarize()), under the report's names
STAT_KEYS: tuple[str, ...] = (
    "ap", "ap50", "ap75", "ap_small", "ap_medium", "ap_large",
    "ar1", "ar10", "ar100", "ar_small", "ar_medium", "ar_large",
)  # fmt: skip
BACKENDS = ("pycocotools", "hotcoco")


def coco_categories(classes: Iterable[int] = spec.THING_CLASSES) -> list[dict[str, Any]]:
    """COCO instances ``categories`` for the thing classes: id = the benchmark's class index (1..10)."""
    return [{"id": int(c), "name": spec.CLASS_NAMES[c], "supercategory": "furniture"} for c in classes]


def mask_ap_backend() -> str:
    """The COCOeval in use: ``pycocotools`` (default, the reference), or ``hotcoco`` when
    ``NERFSEG_MASK_AP_BACKEND=hotcoco`` asks for it."""
    name = os.environ.get("NERFSEG_MASK_AP_BACKEND", "pycocotools").strip().lower() or "pycocotools"
    if name not in BACKENDS:
        raise InputError(None, f"NERFSEG_MASK_AP_BACKEND={name!r} is not one of {', '.join(BACKENDS)}")
    return name


# ---------------------------------------------------------------------------------------------
# Encoding


def rle_counts_from_ids(ids: np.ndarray, wanted: Sequence[int]) -> list[list[int]]:
    """Uncompressed COCO RLE counts of the mask ``ids == w`` for each ``w`` in ``wanted``, in one pass.

    COCO RLE runs down columns (Fortran order) and starts with a run of zeros (possibly empty); a mask
    that ends inside the object has no trailing zero run, exactly as pycocotools' ``rleEncode``. An id
    absent from the map gives ``[H*W]`` (an empty mask).
    """
    flat = np.asarray(ids).ravel(order="F")
    n = flat.size
    wanted_arr = np.asarray(list(wanted), dtype=np.int64)
    if wanted_arr.size == 0:
        return []
    if n == 0:
        return [[0] for _ in wanted_arr]
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    starts = np.concatenate(([0], change))
    ends = np.concatenate((change, [n]))
    values = flat[starts].astype(np.int64)
    table = np.unique(wanted_arr)  # sorted; a lookup by binary search (np.isin is ~10x slower here)
    pos = np.minimum(np.searchsorted(table, values), table.size - 1)
    keep = table[pos] == values
    starts, ends, values = starts[keep], ends[keep], values[keep]
    order = np.argsort(values, kind="stable")  # grouped by id, each group still in raster (column) order
    starts, ends, values = starts[order], ends[order], values[order]
    bounds = np.searchsorted(values, wanted_arr, side="left"), np.searchsorted(values, wanted_arr, side="right")
    out: list[list[int]] = []
    for lo, hi in zip(*bounds):
        if lo == hi:
            out.append([n])
            continue
        s, e = starts[lo:hi], ends[lo:hi]
        counts = np.empty(2 * (hi - lo), dtype=np.int64)
        counts[0] = s[0]
        counts[2::2] = s[1:] - e[:-1]
        counts[1::2] = e - s
        tail = [n - int(e[-1])] if e[-1] < n else []
        out.append(counts.tolist() + tail)
    return out


def encode_segments(ids: np.ndarray, seg_ids: Sequence[int]) -> list[dict[str, Any]]:
    """Compressed COCO RLE (``{"size": [h, w], "counts": str}``, JSON-ready) of each segment of an id map,
    plus its ``area`` (pixels) and ``bbox`` ([x, y, w, h], COCO's convention), via pycocotools."""
    from pycocotools import mask as mask_utils

    ids = np.asarray(ids)
    if ids.ndim != 2:
        raise InputError(None, f"expected an (H, W) id map, got shape {ids.shape}")
    if len(seg_ids) == 0:
        return []
    h, w = (int(v) for v in ids.shape)
    counts = rle_counts_from_ids(ids, seg_ids)
    rles = mask_utils.frPyObjects([{"counts": c, "size": [h, w]} for c in counts], h, w)
    areas = mask_utils.area(rles)
    boxes = mask_utils.toBbox(rles)
    return [
        {"segmentation": {"size": [h, w], "counts": r["counts"].decode("ascii")}, "area": int(a), "bbox": [float(v) for v in b]}
        for r, a, b in zip(rles, areas, boxes)
    ]


def _frame_record(
    gt_ids: np.ndarray,
    gt_segments: Mapping[int, Mapping[str, Any]],
    pred_ids: np.ndarray,
    pred_segments: Mapping[int, Mapping[str, Any]],
    classes: frozenset[int],
) -> dict[str, Any]:
    """One view's GT instances and scored predictions as plain lists (the accumulator's per-frame state)."""
    gt_ids, pred_ids = np.asarray(gt_ids), np.asarray(pred_ids)
    if gt_ids.shape != pred_ids.shape or gt_ids.ndim != 2:
        raise InputError(None, f"prediction map has shape {pred_ids.shape}, GT map has shape {gt_ids.shape}")
    gt_keys = sorted(int(k) for k, s in gt_segments.items() if int(s["category_id"]) in classes)
    pred_keys = sorted(int(k) for k, s in pred_segments.items() if int(s["category_id"]) in classes)
    gt = []
    for key, enc in zip(gt_keys, encode_segments(gt_ids, gt_keys)):
        if enc["area"] == 0:
            continue  # listed but not visible: not an instance of this view
        seg = gt_segments[key]
        gt.append({"id": key, "category_id": int(seg["category_id"]), "iscrowd": int(bool(seg.get("iscrowd", 0))), **enc})
    dt = []
    for key, enc in zip(pred_keys, encode_segments(pred_ids, pred_keys)):
        if enc["area"] == 0:
            continue
        seg = pred_segments[key]
        score = seg.get("score")
        dt.append({"id": key, "category_id": int(seg["category_id"]), "score": 1.0 if score is None else float(score), "segmentation": enc["segmentation"]})
    h, w = gt_ids.shape
    return {"height": int(h), "width": int(w), "gt": gt, "dt": dt}


# ---------------------------------------------------------------------------------------------
# COCOeval


def _coco_gt_dataset(frames: Sequence[tuple[str, str, Mapping[str, Any]]], classes: Sequence[int]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(COCO instances GT dataset, detection results list) of frames given in their final order."""
    images, annotations, results = [], [], []
    for image_id, (sid, frame, rec) in enumerate(frames, start=1):
        images.append({"id": image_id, "height": rec["height"], "width": rec["width"], "file_name": f"{sid}/{frame}"})
        for g in rec["gt"]:
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": g["category_id"],
                    "segmentation": g["segmentation"],
                    "area": g["area"],
                    "bbox": g["bbox"],
                    "iscrowd": g["iscrowd"],
                }
            )
        for d in rec["dt"]:
            results.append({"image_id": image_id, "category_id": d["category_id"], "segmentation": d["segmentation"], "score": d["score"]})
    return {"info": {"description": "nerfseg test views"}, "licenses": [], "images": images, "annotations": annotations, "categories": coco_categories(classes)}, results


def _summary_from_eval(precision: np.ndarray, recall: np.ndarray, area_labels: Sequence[str], max_dets: Sequence[int], iou_thrs: np.ndarray) -> list[float]:
    """COCOeval.summarize()'s 12 numbers from ``eval['precision']`` / ``eval['recall']``, without printing.

    Same rule: the mean over the entries > -1 of the slice, -1 when there is none.
    """

    def one(ap: bool, iou: float | None = None, area: str = "all", dets: int = 100) -> float:
        a = list(area_labels).index(area)
        m = list(max_dets).index(dets)
        if ap:
            s = precision[..., a, m]  # T, R, K
            if iou is not None:
                s = s[np.flatnonzero(np.abs(iou_thrs - iou) < 1e-12)]
        else:
            s = recall[..., a, m]  # T, K
            if iou is not None:
                s = s[np.flatnonzero(np.abs(iou_thrs - iou) < 1e-12)]
        valid = s[s > -1]
        return float(np.mean(valid)) if valid.size else -1.0

    return [
        one(True), one(True, 0.5), one(True, 0.75),
        one(True, area="small"), one(True, area="medium"), one(True, area="large"),
        one(False, dets=max_dets[0]), one(False, dets=max_dets[1]), one(False, dets=max_dets[2]),
        one(False, area="small"), one(False, area="medium"), one(False, area="large"),
    ]  # fmt: skip


def _coco_from_dataset(coco_cls: Any, backend: str, dataset: dict[str, Any]) -> Any:
    """A COCO index of an in-memory dataset: hotcoco takes the dict, pycocotools' constructor only a file name."""
    if backend != "pycocotools":
        return coco_cls(dataset)
    coco = coco_cls()
    coco.dataset = dataset
    coco.createIndex()
    return coco


def evaluate_coco_segm(gt_dataset: dict[str, Any], results: list[dict[str, Any]], backend: str = "pycocotools") -> dict[str, Any]:
    """Run COCOeval(iouType="segm") on an in-memory GT dataset and a results list.

    Returns ``{"stats": [12 floats, -1 = undefined], "precision": T x R x K x A x M array, "cat_ids",
    "iou_thrs"}``; COCO's chatter on stdout is swallowed (the CLI prints a table, not a log).
    """
    if backend == "hotcoco":
        import hotcoco

        coco_cls, eval_cls = hotcoco.COCO, hotcoco.COCOeval
    elif backend == "pycocotools":
        from pycocotools.coco import COCO as coco_cls  # noqa: N811 - the library's name
        from pycocotools.cocoeval import COCOeval as eval_cls  # noqa: N813
    else:
        raise InputError(None, f"unknown mask AP backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    # pycocotools writes into what it is given (loadRes adds bbox/area/id to each result, evaluate() an
    # 'ignore' flag to each GT annotation): it gets copies, so the caller's lists can be evaluated again
    gt_dataset = {**gt_dataset, "annotations": [dict(a) for a in gt_dataset["annotations"]]}
    results = [dict(r) for r in results]
    with contextlib.redirect_stdout(io.StringIO()):
        gt = _coco_from_dataset(coco_cls, backend, gt_dataset)
        if results:
            dt = gt.loadRes(results)
        else:  # pycocotools' loadRes cannot take an empty list: an empty result set, by hand
            dt = _coco_from_dataset(coco_cls, backend, {**gt_dataset, "annotations": []})
        ev = eval_cls(gt, dt, "segm")
        ev.evaluate()
        ev.accumulate()
    params = ev.params
    evald = ev.eval
    precision = np.asarray(evald["precision"], dtype=np.float64)
    recall = np.asarray(evald["recall"], dtype=np.float64)
    area_labels = list(getattr(params, "areaRngLbl", None) or ["all", "small", "medium", "large"])
    max_dets = [int(m) for m in params.maxDets]
    iou_thrs = np.asarray(params.iouThrs, dtype=np.float64)
    cat_ids = [int(c) for c in params.catIds]
    stats = _summary_from_eval(precision, recall, area_labels, max_dets, iou_thrs)
    return {"stats": stats, "precision": precision, "cat_ids": cat_ids, "iou_thrs": iou_thrs, "area_labels": area_labels, "max_dets": max_dets}


def _ap_of(precision: np.ndarray, k: int, t: int | None = None) -> float | None:
    """AP of category index ``k`` (all areas, most detections), over all IoU thresholds or threshold ``t``."""
    s = precision[:, :, k, 0, -1] if t is None else precision[t, :, k, 0, -1]
    valid = s[s > -1]
    return float(np.mean(valid)) if valid.size else None


# ---------------------------------------------------------------------------------------------
# Accumulator


class MaskAP(Accumulator):
    """COCO mask AP over 2D views; ``update`` per view, ``merge`` across workers, ``compute`` runs COCOeval.

    ``compute()`` returns the :data:`STAT_KEYS` (fractions in [0, 1], ``None`` when undefined: no GT
    instance of any class), ``per_class`` ({class index: {"ap", "ap50", "num_gt"}}), ``per_scene``, the
    counts ``num_images`` / ``num_gt`` / ``num_dt`` and the ``backend`` used.
    """

    def __init__(self, classes: Sequence[int] = spec.THING_CLASSES):
        self.classes = tuple(int(c) for c in classes)
        self.frames: dict[tuple[str, str], dict[str, Any]]  # (scene, frame) -> encoded view
        self.add_state(
            "frames",
            dict,
            "union",
            what="frames",
            dump=lambda v: [[sid, frame, rec] for (sid, frame), rec in sorted(v.items())],
            load=lambda v: {(str(sid), str(frame)): dict(rec) for sid, frame, rec in v},
        )

    def _config(self) -> dict[str, Any]:
        return {"classes": list(self.classes)}

    def encode(
        self, gt_ids: np.ndarray, gt_segments: Mapping[int, Mapping[str, Any]], pred_ids: np.ndarray, pred_segments: Mapping[int, Mapping[str, Any]]
    ) -> dict[str, Any]:
        """One view's record, without recording it (so a protocol can reject the frame first)."""
        return _frame_record(gt_ids, gt_segments, pred_ids, pred_segments, frozenset(self.classes))

    def add(self, scene_id: str, frame: str, record: Mapping[str, Any]) -> None:
        """Record a view encoded by :meth:`encode`; a view given twice is an error."""
        key = (str(scene_id), str(frame))
        if key in self.frames:
            raise InputError(None, f"frame {key[0]}/{key[1]} was given to mask AP twice")
        self.frames[key] = dict(record)

    def update(
        self,
        scene_id: str,
        frame: str,
        gt_ids: np.ndarray,
        gt_segments: Mapping[int, Mapping[str, Any]],
        pred_ids: np.ndarray,
        pred_segments: Mapping[int, Mapping[str, Any]],
    ) -> None:
        """Encode and record one view."""
        self.add(scene_id, frame, self.encode(gt_ids, gt_segments, pred_ids, pred_segments))

    def coco(self, scene_id: str | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """(COCO instances GT dataset, results list) of every recorded view (or of one scene's), images
        numbered in (scene, frame) order: what :meth:`compute` evaluates, for anyone who wants to run
        COCOeval themselves."""
        keys = sorted(k for k in self.frames if scene_id is None or k[0] == scene_id)
        return _coco_gt_dataset([(sid, frame, self.frames[(sid, frame)]) for sid, frame in keys], self.classes)

    def compute(self, backend: str | None = None) -> dict[str, Any]:
        """The numbers over every recorded view, plus ``per_scene`` ({scene: {"ap", "ap50", "num_gt"}}, each
        scene's views evaluated on their own)."""
        backend = backend or mask_ap_backend()
        out = self._evaluate(*self.coco(), backend)
        scenes = sorted({sid for sid, _ in self.frames})
        out["per_scene"] = {}
        for sid in scenes:
            one = out if len(scenes) == 1 else self._evaluate(*self.coco(sid), backend)
            out["per_scene"][sid] = {"ap": one["ap"], "ap50": one["ap50"], "num_gt": one["num_gt"]}
        return out

    def _evaluate(self, gt_dataset: dict[str, Any], results: list[dict[str, Any]], backend: str) -> dict[str, Any]:
        num_gt = {c: 0 for c in self.classes}
        for ann in gt_dataset["annotations"]:
            if not ann["iscrowd"]:
                num_gt[ann["category_id"]] += 1
        out: dict[str, Any] = {k: None for k in STAT_KEYS}
        out.update(
            {
                "per_class": {c: {"ap": None, "ap50": None, "num_gt": num_gt[c]} for c in self.classes},
                "num_images": len(gt_dataset["images"]),
                "num_gt": sum(num_gt.values()),
                "num_dt": len(results),
                "backend": backend,
            }
        )
        if not gt_dataset["images"] or not gt_dataset["annotations"]:
            return out  # nothing to find: AP is undefined, not 0
        ev = evaluate_coco_segm(gt_dataset, results, backend)
        for key, value in zip(STAT_KEYS, ev["stats"]):
            out[key] = None if value < 0 else float(value)
        t50 = int(np.flatnonzero(np.abs(ev["iou_thrs"] - 0.5) < 1e-12)[0])
        for k, cat in enumerate(ev["cat_ids"]):
            if cat in out["per_class"]:
                out["per_class"][cat]["ap"] = _ap_of(ev["precision"], k)
                out["per_class"][cat]["ap50"] = _ap_of(ev["precision"], k, t50)
        return out
