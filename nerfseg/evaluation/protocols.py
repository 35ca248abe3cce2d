"""Named, versioned evaluation protocols: each a small composition of the accumulators in ``metrics/``.

* ``nerfseg-v1`` (default, SPEC 5): mIoU (per-scene confusion, nanmean; dataset-level too), per-frame
  PQ/SQ/RQ with panopticapi semantics (Things = the paper's column, Stuff, All), PQ^scene (Things, All),
  binary foreground accuracy / mIoU, COCO mask AP of the thing segments (``mask_ap`` section, see
  ``metrics/mask_ap.py``), and the 3D metrics when 3D predictions are given.
* ``instance-nerf`` (SPEC 5.1): Instance-NeRF's ``eval.py``: no void (everything that is not an object is
  background), mIoU pooled per scene then per class over scenes, pooled things-only PQ with its quirks.
* ``panoptic-lifting`` (SPEC 5.1): Panoptic Lifting's ``evaluate.py``: 512x512 nearest, GT class 0 dropped,
  class filters, scene PQ and mIoU per scene, means over scenes.

Usage::

    acc = get_protocol("nerfseg-v1").new_accumulator()
    for scene_id, frame, gt, pred in frames:       # FrameGT / FramePred (nerfseg.evaluation.types)
        acc.update_frame(scene_id, frame, gt, pred)
    acc.update_scene_3d(scene_id, gt3d, pred3d)     # optional
    report = acc.compute()                          # the report dict (see ``ProtocolAccumulator.compute``)

Accumulators merge (``a.merge(b)``) and pickle (``state_dict`` / :func:`accumulator_from_state`), so scenes or
frames can be evaluated in several processes and combined.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from nerfseg.evaluation.metrics.base import Accumulator, nanmean
from nerfseg.evaluation.metrics.compat import InstanceNerfPQ, PanopticLiftingScene, resize_nearest
from nerfseg.evaluation.metrics.confusion import BinaryForeground, ConfusionMIoU, confusion_from_stats
from nerfseg.evaluation.metrics.frame import FrameStats, frame_stats
from nerfseg.evaluation.metrics.mask_ap import STAT_KEYS as MASK_AP_KEYS
from nerfseg.evaluation.metrics.mask_ap import MaskAP
from nerfseg.evaluation.metrics.panoptic import CategoryTable, PanopticQuality, frame_pq_counts
from nerfseg.evaluation.metrics.scene_panoptic import ScenePanopticQuality
from nerfseg.evaluation.metrics.voxel3d import Voxel3D
from nerfseg.evaluation.types import GT3D, FrameGT, FramePred, Pred3D
from nerfseg import spec
from nerfseg.errors import InputError

PROTOCOL_VERSION = "1"

#: category id -> isthing, for the benchmark's 11 classes
CATEGORIES: dict[int, bool] = {c: c in spec.THING_CLASSES for c in range(spec.NUM_CLASSES)}

SUMMARY_KEYS = (
    "miou", "miou_dataset",
    "pq", "sq", "rq", "pq_things", "sq_things", "rq_things", "pq_stuff", "sq_stuff", "rq_stuff",
    "pq_scene", "pq_scene_things",
    "binary_acc", "binary_miou",
    "voxel_miou", "ap25", "ap50",
    "mask_ap",
)  # fmt: skip
PER_CLASS_KEYS = ("iou", "pq", "sq", "rq", "tp", "fp", "fn", "iou_sum")


@dataclass(frozen=True)
class Protocol:
    """A named, versioned recipe; ``new_accumulator()`` starts an evaluation under it."""

    name: str
    version: str
    description: str
    accumulator: Callable[[Protocol], ProtocolAccumulator]

    def new_accumulator(self) -> ProtocolAccumulator:
        return self.accumulator(self)


class ProtocolAccumulator(Accumulator):
    """Frames (and 3D scenes) in, one report out. Subclasses fill ``_update`` / ``_update_3d`` / ``_report``."""

    #: whether the protocol scores instances3d.h5; a submission's 3D file is skipped under protocols without
    #: 3D metrics (they report 2D numbers only) instead of failing the whole evaluation
    has_3d_metrics: bool = False

    def __init__(self, protocol: Protocol):
        self.protocol = protocol
        self.reset()

    def _config(self) -> dict[str, Any]:
        return {"protocol": self.protocol.name, "version": self.protocol.version}

    def reset(self) -> None:
        self.frames: dict[str, set[str]] = {}
        self._reset_metrics()

    def _reset_metrics(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- input ------------------------------------------------------------------------------------
    def update_frame(self, scene_id: str, frame: str, gt: FrameGT, pred: FramePred) -> None:
        """Add one test view. A frame given twice is an error (it would be counted twice)."""
        sid, name = str(scene_id), str(frame)
        seen = self.frames.setdefault(sid, set())
        if name in seen:
            raise InputError(None, f"frame {sid}/{name} was evaluated twice")
        self._update(sid, name, gt, pred)
        seen.add(name)

    def update_scene_3d(self, scene_id: str, gt3d: GT3D, pred3d: Pred3D) -> None:
        """Add one scene's 3D GT and prediction (instances3d.h5); protocols without 3D metrics refuse."""
        self._update_3d(str(scene_id), gt3d, pred3d)

    def _update(self, sid: str, frame: str, gt: FrameGT, pred: FramePred) -> None:  # pragma: no cover
        raise NotImplementedError

    def _update_3d(self, sid: str, gt3d: GT3D, pred3d: Pred3D) -> None:
        raise InputError(None, f"protocol {self.protocol.name} has no 3D metrics")

    # -- state ------------------------------------------------------------------------------------
    def _metrics(self) -> dict[str, Accumulator]:  # pragma: no cover - abstract
        raise NotImplementedError

    def merge(self, other: ProtocolAccumulator) -> ProtocolAccumulator:
        self._check_same(other)
        for sid, names in other.frames.items():
            dup = self.frames.get(sid, set()) & names
            if dup:
                raise ValueError(f"frames {sorted(dup)[:5]} of scene {sid} are in both accumulators")
        for sid, names in other.frames.items():
            self.frames.setdefault(sid, set()).update(names)
        mine, theirs = self._metrics(), other._metrics()
        for key, acc in mine.items():
            acc.merge(theirs[key])
        return self

    def state_dict(self) -> dict[str, Any]:
        return {
            "config": self._config(),
            "frames": {sid: sorted(names) for sid, names in self.frames.items()},
            "metrics": {k: v.state_dict() for k, v in self._metrics().items()},
        }

    def _load(self, state: Mapping[str, Any]) -> None:
        self.frames = {str(sid): set(names) for sid, names in state["frames"].items()}
        for key, acc in self._metrics().items():
            acc._load(state["metrics"][key])

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> ProtocolAccumulator:
        return accumulator_from_state(state)

    # -- output -----------------------------------------------------------------------------------
    def compute(self) -> dict[str, Any]:
        """The report: ``protocol``, ``protocol_version``, ``spec_version``, ``summary`` (every key of
        ``SUMMARY_KEYS``, fractions or None), ``per_class`` (class name -> iou/pq/sq/rq/tp/fp/fn/iou_sum
        and extras), ``per_scene`` (scene -> miou, pq_things, pq_scene, pq_scene_things, binary_acc,
        num_frames, ...), ``counts`` (num_scenes, num_frames) and ``details`` (protocol-specific)."""
        summary: dict[str, Any] = {k: None for k in SUMMARY_KEYS}
        per_class: dict[str, dict[str, Any]] = {name: {k: None for k in PER_CLASS_KEYS} for name in spec.CLASS_NAMES}
        per_scene: dict[str, dict[str, Any]] = {
            sid: {"miou": None, "pq_things": None, "pq_scene": None, "pq_scene_things": None, "binary_acc": None, "num_frames": len(names)}
            for sid, names in sorted(self.frames.items())
        }
        details: dict[str, Any] = {}
        self._report(summary, per_class, per_scene, details)
        return {
            "protocol": self.protocol.name,
            "protocol_version": self.protocol.version,
            "spec_version": spec.SPEC_VERSION,
            "summary": summary,
            "per_class": per_class,
            "per_scene": per_scene,
            "counts": {"num_scenes": len(self.frames), "num_frames": sum(len(v) for v in self.frames.values())},
            "details": details,
        }

    def _report(self, summary: dict, per_class: dict, per_scene: dict, details: dict) -> None:  # pragma: no cover
        raise NotImplementedError


def _stats(sid: str, frame: str, gt: FrameGT, pred: FramePred, strict: bool = True) -> FrameStats:
    return frame_stats(gt.panoptic, gt.segments, pred.panoptic, pred.segments, source=f"{sid}/{frame}", strict=strict)


def _scene_slot(per_scene: dict, sid: str) -> dict:
    return per_scene.setdefault(
        sid, {"miou": None, "pq_things": None, "pq_scene": None, "pq_scene_things": None, "binary_acc": None, "num_frames": 0}
    )


def _report_3d(voxel: Voxel3D, summary: dict, per_class: dict, per_scene: dict, details: dict) -> None:
    if not voxel.scenes:
        return
    v = voxel.compute()
    summary["voxel_miou"], summary["ap25"], summary["ap50"] = v["voxel_miou"], v["ap25"], v["ap50"]
    for c, name in enumerate(spec.CLASS_NAMES):
        per_class[name]["voxel_iou"] = v["per_class_iou"][c]
        for thr, key in (("0.25", "ap25"), ("0.5", "ap50")):
            per_class[name][key] = v["ap"][thr]["per_class"].get(c) if thr in v["ap"] else None
    for sid, s in v["per_scene"].items():
        _scene_slot(per_scene, sid)["voxel_miou"] = s["voxel_miou"]
    details["voxel_miou_dataset"] = v["voxel_miou_dataset"]
    details["num_gt_3d"] = v["num_gt"]


# ---------------------------------------------------------------------------------------------
# metrics as list items (detectron2's DatasetEvaluators): a protocol is a list of ProtocolMetric


@dataclass
class FrameInput:
    """One test view as every metric of a protocol sees it: the pixel pass (``stats``) runs once per frame
    and the confusion matrix is derived from it on first use, so metrics share work instead of repeating it."""

    sid: str
    frame: str
    gt: FrameGT
    pred: FramePred
    stats: FrameStats

    @property
    def source(self) -> str:
        return f"{self.sid}/{self.frame}"

    @cached_property
    def confusion(self) -> np.ndarray:
        return confusion_from_stats(self.stats, spec.NUM_CLASSES)


@dataclass
class ReportParts:
    """The report sections a metric fills in :meth:`ProtocolMetric.report` (see ``ProtocolAccumulator.compute``)."""

    summary: dict[str, Any]
    per_class: dict[str, dict[str, Any]]
    per_scene: dict[str, dict[str, Any]]
    details: dict[str, Any]

    def scene(self, sid: str) -> dict[str, Any]:
        return _scene_slot(self.per_scene, sid)


class ProtocolMetric:
    """One metric of a list-composed protocol: its accumulator, how a frame feeds it, how it reports.

    ``prepare`` does everything that can reject a frame and records nothing; only when every metric has
    prepared does any ``record`` run, so a bad frame leaves no partial counts. ``name`` is the key of its
    state in ``state_dict()["metrics"]`` and the protocol attribute that holds its accumulator.
    """

    name: str = ""

    def __init__(self) -> None:
        self.acc = self.new()

    def new(self) -> Accumulator:  # pragma: no cover - abstract
        raise NotImplementedError

    def prepare(self, x: FrameInput) -> Any:
        return None

    def record(self, x: FrameInput, prepared: Any) -> None:
        """Add the frame; frame-level metrics override this (a 3D-only metric keeps the no-op)."""

    def update_3d(self, sid: str, gt3d: GT3D, pred3d: Pred3D) -> None:
        """Add one scene's 3D volumes; only 3D metrics override this."""

    def report(self, r: ReportParts) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def section(self, report: dict[str, Any]) -> None:
        """Add a top-level section of the report (after ``report``); most metrics have none."""


class MaskAPMetric(ProtocolMetric):
    """COCO mask AP of the thing segments; also the report's ``mask_ap`` section."""

    name = "mask_ap"
    acc: MaskAP

    def new(self) -> MaskAP:
        self.result: dict[str, Any] = {}  # the last report's COCOeval numbers: it runs once per report
        return MaskAP(spec.THING_CLASSES)

    def prepare(self, x: FrameInput) -> dict[str, Any]:
        return self.acc.encode(x.gt.panoptic, x.gt.segments, x.pred.panoptic, x.pred.segments)

    def record(self, x: FrameInput, prepared: dict[str, Any]) -> None:
        self.acc.add(x.sid, x.frame, prepared)

    def report(self, r: ReportParts) -> None:
        mask = self.result = self.acc.compute()
        r.summary["mask_ap"] = mask["ap"]
        for c, row in mask["per_class"].items():
            r.per_class[spec.CLASS_NAMES[c]]["mask_ap"] = row["ap"]
        for sid, row in mask["per_scene"].items():
            r.scene(sid)["mask_ap"] = row["ap"]

    def section(self, report: dict[str, Any]) -> None:
        m = self.result
        report["mask_ap"] = {
            **{k: m[k] for k in MASK_AP_KEYS},
            "per_class": {spec.CLASS_NAMES[c]: v for c, v in m["per_class"].items()},
            "per_scene": m["per_scene"],
            **{k: m[k] for k in ("num_images", "num_gt", "num_dt", "backend")},
            "iou_type": "segm",
            "max_dets": 100,
        }


class ConfusionMetric(ProtocolMetric):
    """mIoU: per-scene confusion matrices, their nanmean, the dataset-level mIoU, per class."""

    name = "confusion"
    acc: ConfusionMIoU

    def new(self) -> ConfusionMIoU:
        return ConfusionMIoU(spec.NUM_CLASSES)

    def record(self, x: FrameInput, prepared: Any) -> None:
        self.acc.update_matrix(x.sid, x.confusion)

    def report(self, r: ReportParts) -> None:
        conf = self.acc.compute()
        r.summary["miou"], r.summary["miou_dataset"] = conf["miou"], conf["miou_dataset"]
        for c, name in enumerate(spec.CLASS_NAMES):
            r.per_class[name]["iou"] = conf["per_class_iou"][c]
            r.per_class[name]["iou_scene_mean"] = conf["per_class_iou_scene_mean"][c]
        for sid, row in conf["per_scene"].items():
            r.scene(sid)["miou"] = row["miou"]


class PQByScene(Accumulator):
    """Per-frame PQ counts kept per scene (for the per-scene breakdown); their sum is the dataset PQ."""

    def __init__(self) -> None:
        self.scenes: dict[str, PanopticQuality]
        self.add_state(
            "scenes",
            dict,
            _merge_pq_scenes,
            dump=lambda v: {sid: pq.state_dict() for sid, pq in v.items()},
            load=lambda v: {str(sid): PanopticQuality.from_state(s) for sid, s in v.items()},
        )

    def add(self, sid: str, counts: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]) -> None:
        pq = self.scenes.get(sid)
        if pq is None:
            pq = self.scenes[sid] = PanopticQuality(CATEGORIES)
        pq.add_counts(*counts)
        pq.num_frames += 1

    def total(self) -> PanopticQuality:
        total = PanopticQuality(CATEGORIES)
        for pq in self.scenes.values():
            total.merge(pq)
        return total

    def compute(self) -> dict[str, Any]:
        return self.total().compute()


def _merge_pq_scenes(mine: dict[str, PanopticQuality], theirs: dict[str, PanopticQuality]) -> dict[str, PanopticQuality]:
    for sid, pq in theirs.items():
        if sid in mine:
            mine[sid].merge(pq)
        else:
            mine[sid] = PanopticQuality.from_state(pq.state_dict())
    return mine


class FramePQMetric(ProtocolMetric):
    """Per-frame PQ/SQ/RQ (panopticapi): Things = the paper's column, Stuff, All; per class and per scene."""

    name = "pq"
    acc: PQByScene

    def new(self) -> PQByScene:
        self.cats = CategoryTable(CATEGORIES)
        return PQByScene()

    def prepare(self, x: FrameInput) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        return frame_pq_counts(x.stats, self.cats, x.source)

    def record(self, x: FrameInput, prepared: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]) -> None:
        self.acc.add(x.sid, prepared)

    def report(self, r: ReportParts) -> None:
        pq = self.acc.compute()
        for split, suffix in (("things", "_things"), ("stuff", "_stuff")):
            for k in ("pq", "sq", "rq"):
                r.summary[k + suffix] = pq[split][k]
        for k in ("pq", "sq", "rq"):
            r.summary[k] = pq["things"][k]  # the paper's column
        for c, name in enumerate(spec.CLASS_NAMES):
            r.per_class[name].update(pq["per_class"][c])
        for sid in sorted(self.acc.scenes):
            s = self.acc.scenes[sid].compute()
            slot = r.scene(sid)
            slot["pq"], slot["pq_things"], slot["pq_stuff"] = s["all"]["pq"], s["things"]["pq"], s["stuff"]["pq"]
        r.details["pq_n"] = {k: pq[k]["n"] for k in ("all", "things", "stuff")}
        r.details["pq_all"] = {k: pq["all"][k] for k in ("pq", "sq", "rq")}


class ScenePQMetric(ProtocolMetric):
    """PQ^scene: PQ over each scene's joined test views, then the mean over scenes."""

    name = "scene_pq"
    acc: ScenePanopticQuality

    def new(self) -> ScenePanopticQuality:
        return ScenePanopticQuality(CATEGORIES)

    def prepare(self, x: FrameInput) -> None:
        self.acc.check_stats(x.stats, x.source)

    def record(self, x: FrameInput, prepared: Any) -> None:
        self.acc.update_stats(x.sid, x.stats, x.source)

    def report(self, r: ReportParts) -> None:
        scene_pq = self.acc.compute()
        r.summary["pq_scene"] = scene_pq["all"]["pq"]
        r.summary["pq_scene_things"] = scene_pq["things"]["pq"]
        for sid, sp in scene_pq["per_scene"].items():
            slot = r.scene(sid)
            slot["pq_scene"], slot["pq_scene_things"] = sp["all"]["pq"], sp["things"]["pq"]
        r.details["pq_scene_n_scenes"] = {k: scene_pq[k]["n"] for k in ("all", "things", "stuff")}


class BinaryMetric(ProtocolMetric):
    """Foreground vs background pixel accuracy and 2-class mIoU (the paper's Table 3)."""

    name = "binary"
    acc: BinaryForeground

    def new(self) -> BinaryForeground:
        return BinaryForeground(spec.NUM_CLASSES)

    def record(self, x: FrameInput, prepared: Any) -> None:
        self.acc.update_confusion(x.sid, x.confusion)

    def report(self, r: ReportParts) -> None:
        binary = self.acc.compute()
        r.summary["binary_acc"], r.summary["binary_miou"] = binary["acc"], binary["miou"]
        for sid, row in binary["per_scene"].items():
            slot = r.scene(sid)
            slot["binary_acc"], slot["binary_miou"] = row["acc"], row["miou"]
        r.details["binary_iou"] = {"background": binary["iou_background"], "foreground": binary["iou_foreground"]}


class VoxelMetric(ProtocolMetric):
    """The 3D metrics (voxel mIoU, AP25/AP50) from instances3d.h5; frames do not feed it."""

    name = "voxel"
    acc: Voxel3D

    def new(self) -> Voxel3D:
        return Voxel3D(spec.NUM_CLASSES)

    def update_3d(self, sid: str, gt3d: GT3D, pred3d: Pred3D) -> None:
        self.acc.update(sid, gt3d, pred3d)

    def report(self, r: ReportParts) -> None:
        _report_3d(self.acc, r.summary, r.per_class, r.per_scene, r.details)


class ListProtocol(ProtocolAccumulator):
    """A protocol whose metrics are the list ``METRICS``: adding a metric is one more item there.

    Each metric's accumulator is also this object's attribute of the metric's name (``acc.mask_ap``).
    """

    METRICS: tuple[type[ProtocolMetric], ...] = ()

    def _reset_metrics(self) -> None:
        self.parts = [m() for m in self.METRICS]
        for part in self.parts:
            setattr(self, part.name, part.acc)

    def _metrics(self) -> dict[str, Accumulator]:
        return {part.name: part.acc for part in self.parts}

    def _update(self, sid: str, frame: str, gt: FrameGT, pred: FramePred) -> None:
        x = FrameInput(sid, frame, gt, pred, _stats(sid, frame, gt, pred))
        prepared = [part.prepare(x) for part in self.parts]  # everything that can reject the frame
        for part, p in zip(self.parts, prepared):
            part.record(x, p)

    def _update_3d(self, sid: str, gt3d: GT3D, pred3d: Pred3D) -> None:
        if not self.has_3d_metrics:
            super()._update_3d(sid, gt3d, pred3d)
        for part in self.parts:
            part.update_3d(sid, gt3d, pred3d)

    def compute(self) -> dict[str, Any]:
        report = super().compute()
        for part in self.parts:
            part.section(report)
        return report

    def _report(self, summary: dict, per_class: dict, per_scene: dict, details: dict) -> None:
        r = ReportParts(summary, per_class, per_scene, details)
        for part in self.parts:
            part.report(r)


# ---------------------------------------------------------------------------------------------
# nerfseg-v1


class NerfsegV1(ListProtocol):
    """The benchmark's own protocol (SPEC 5): one pixel pass per frame feeds every 2D metric."""

    has_3d_metrics = True
    METRICS = (MaskAPMetric, ConfusionMetric, FramePQMetric, ScenePQMetric, BinaryMetric, VoxelMetric)


# ---------------------------------------------------------------------------------------------
# instance-nerf


class InstanceNerfCompat(ProtocolAccumulator):
    """Instance-NeRF's eval.py (SPEC 5.1). Void does not exist there: GT and predicted void count as
    background, on both sides, for mIoU and the binary metric."""

    has_3d_metrics = True

    def _reset_metrics(self) -> None:
        self.confusion = ConfusionMIoU(spec.NUM_CLASSES)
        self.binary = BinaryForeground(spec.NUM_CLASSES)
        self.pq = InstanceNerfPQ(spec.THING_CLASSES)
        self.voxel = Voxel3D(spec.NUM_CLASSES)

    def _metrics(self) -> dict[str, Accumulator]:
        return {"confusion": self.confusion, "binary": self.binary, "pq": self.pq, "voxel": self.voxel}

    def _update(self, sid: str, frame: str, gt: FrameGT, pred: FramePred) -> None:
        stats = _stats(sid, frame, gt, pred)
        cm = confusion_from_stats(stats, spec.NUM_CLASSES, gt_void_as=spec.BACKGROUND, pred_void_as=spec.BACKGROUND)
        self.confusion.update_matrix(sid, cm)
        self.binary.update_confusion(sid, cm)
        self.pq.update_stats(sid, stats, gt.scene_instances)

    def _update_3d(self, sid: str, gt3d: GT3D, pred3d: Pred3D) -> None:
        self.voxel.update(sid, gt3d, pred3d)

    def _report(self, summary: dict, per_class: dict, per_scene: dict, details: dict) -> None:
        conf = self.confusion.compute()
        class_means = conf["per_class_iou_scene_mean"]
        summary["miou"] = nanmean(class_means)  # per class over scenes where defined, then over classes
        pq = self.pq.compute()
        for k in ("pq", "sq", "rq"):
            summary[k] = summary[k + "_things"] = pq[k]
        binary = self.binary.compute()
        summary["binary_acc"], summary["binary_miou"] = binary["acc"], binary["miou"]
        for c, name in enumerate(spec.CLASS_NAMES):
            per_class[name]["iou"] = class_means[c]
        for sid in set(self.frames) | set(conf["per_scene"]):
            slot = _scene_slot(per_scene, sid)
            if sid in conf["per_scene"]:
                slot["miou"] = conf["per_scene"][sid]["miou"]
            if sid in pq["per_scene"]:
                s = pq["per_scene"][sid]
                slot["pq_things"] = s["pq"]
                slot.update({k: s[k] for k in ("tp", "fp", "fn", "iou_sum")})
            if sid in binary["per_scene"]:
                slot["binary_acc"], slot["binary_miou"] = binary["per_scene"][sid]["acc"], binary["per_scene"][sid]["miou"]
        _report_3d(self.voxel, summary, per_class, per_scene, details)
        details["pq_totals"] = {k: pq[k] for k in ("tp", "fp", "fn", "iou_sum")}
        details["miou_note"] = "mean over classes of the per-class IoU averaged over the scenes where the class is defined"


# ---------------------------------------------------------------------------------------------
# panoptic-lifting


class PanopticLiftingCompat(ProtocolAccumulator):
    """Panoptic Lifting / Contrastive Lift evaluate.py (SPEC 5.1). Our GT void (no hit) is dropped with GT
    class 0; predicted void is outside every class (PL's void colour; masked out of the mIoU matrix)."""

    def _reset_metrics(self) -> None:
        self.pl = PanopticLiftingScene(CATEGORIES)

    def _metrics(self) -> dict[str, Accumulator]:
        return {"pl": self.pl}

    def _update(self, sid: str, frame: str, gt: FrameGT, pred: FramePred) -> None:
        gt_small = resize_nearest(np.asarray(gt.panoptic))
        pred_small = resize_nearest(np.asarray(pred.panoptic))
        gt_segments = {k: {"category_id": v["category_id"]} for k, v in gt.segments.items()}  # pixels, not JSON areas
        stats = frame_stats(gt_small, gt_segments, pred_small, pred.segments, source=f"{sid}/{frame}", strict=False)
        self.pl.update_stats(sid, stats)

    def _report(self, summary: dict, per_class: dict, per_scene: dict, details: dict) -> None:
        r = self.pl.compute()
        for k in ("pq", "sq", "rq"):
            summary[k] = r[k]
        summary["pq_scene"] = r["pq"]
        summary["miou"] = r["miou"]
        for c, name in enumerate(spec.CLASS_NAMES):
            per_class[name]["iou"] = r["per_class_iou_scene_mean"][c]
        for sid, s in r["per_scene"].items():
            slot = _scene_slot(per_scene, sid)
            slot["miou"] = s["miou"]
            slot["pq_scene"] = s["pq"]
            slot["pq"], slot["sq"], slot["rq"] = s["pq"], s["sq"], s["rq"]
            slot["classes"] = [spec.CLASS_NAMES[c] for c in s["classes"]]
            slot["per_class"] = {spec.CLASS_NAMES[c]: v for c, v in s["per_class"].items()}
        details["resize"] = [512, 512]
        details["note"] = "sq/rq are reported correctly (PL's evaluate.py prints them swapped)"


# ---------------------------------------------------------------------------------------------
# registry

PROTOCOLS: dict[str, Protocol] = {
    p.name: p
    for p in (
        Protocol(
            "nerfseg-v1", PROTOCOL_VERSION, "nerfseg's own metrics (SPEC 5): mIoU, PQ Things/Stuff/All, PQ^scene, binary, 3D", NerfsegV1
        ),
        Protocol(
            "instance-nerf",
            PROTOCOL_VERSION,
            "Instance-NeRF eval.py: scene-pooled mIoU, things-only PQ with its quirks",
            InstanceNerfCompat,
        ),
        Protocol(
            "panoptic-lifting",
            PROTOCOL_VERSION,
            "Panoptic Lifting evaluate.py: 512x512, class filters, PQ^scene and mIoU per scene",
            PanopticLiftingCompat,
        ),
    )
}


def list_protocols() -> list[str]:
    return sorted(PROTOCOLS)


def get_protocol(name: str = spec.DEFAULT_PROTOCOL) -> Protocol:
    """The protocol called ``name``; an unknown name is an error listing the known ones."""
    try:
        return PROTOCOLS[name]
    except KeyError:
        raise InputError(None, f"unknown protocol {name!r}; known protocols: {', '.join(list_protocols())}") from None


def accumulator_from_state(state: Mapping[str, Any]) -> ProtocolAccumulator:
    """Rebuild a protocol accumulator from ``state_dict()`` (e.g. sent back by a worker process)."""
    protocol = get_protocol(state["config"]["protocol"])
    if state["config"]["version"] != protocol.version:
        raise ValueError(f"state is from {protocol.name} version {state['config']['version']}, this is version {protocol.version}")
    acc = protocol.new_accumulator()
    acc._load(state)
    return acc
