"""The ``nerfseg-v1`` protocol (SPEC 5) and its metrics, each one item of :attr:`NerfsegV1.METRICS`.

mIoU (per-scene confusion, nanmean; dataset-level too), per-frame PQ/SQ/RQ with panopticapi semantics
(Things = the paper's column, Stuff, All), PQ^scene (Things, All), binary foreground accuracy / mIoU, COCO
mask AP of the thing segments (``mask_ap`` section, see ``metrics/mask_ap.py``), and the 3D metrics when
3D predictions are given. One pixel pass per frame (:class:`FrameInput`) feeds every 2D metric.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from nerfseg import spec
from nerfseg.evaluation.metrics.base import Accumulator, merge_by_key
from nerfseg.evaluation.metrics.confusion import BinaryForeground, ConfusionMIoU
from nerfseg.evaluation.metrics.mask_ap import STAT_KEYS as MASK_AP_KEYS
from nerfseg.evaluation.metrics.mask_ap import MaskAP
from nerfseg.evaluation.metrics.panoptic import CategoryTable, PanopticQuality, frame_pq_counts
from nerfseg.evaluation.metrics.scene_panoptic import ScenePanopticQuality
from nerfseg.evaluation.metrics.voxel3d import Voxel3D
from nerfseg.evaluation.protocol_core import CATEGORIES, PROTOCOL_VERSION, FrameInput, Protocol, ProtocolAccumulator, ProtocolMetric, ReportParts
from nerfseg.evaluation.protocol_core import register_protocol
from nerfseg.evaluation.types import GT3D, Pred3D


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
        self.report_scenes(r, conf)

    @staticmethod
    def report_scenes(r: ReportParts, conf: dict[str, Any]) -> None:
        """Each scene's mIoU into its row."""
        for sid, row in conf["per_scene"].items():
            r.scene(sid)["miou"] = row["miou"]


class PQByScene(Accumulator):
    """Per-frame PQ counts kept per scene (for the per-scene breakdown); their sum is the dataset PQ."""

    def __init__(self) -> None:
        self.scenes: dict[str, PanopticQuality]
        self.add_state(
            "scenes",
            dict,
            lambda mine, theirs: merge_by_key(mine, theirs, lambda pq: PanopticQuality.from_state(pq.state_dict())),
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
    #: whether ``details`` gets the two classes' IoUs (protocols that copy another script's report do not)
    iou_details = True

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
        if self.iou_details:
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
        if not self.acc.scenes:
            return
        v = self.acc.compute()
        r.summary["voxel_miou"], r.summary["ap25"], r.summary["ap50"] = v["voxel_miou"], v["ap25"], v["ap50"]
        for c, name in enumerate(spec.CLASS_NAMES):
            r.per_class[name]["voxel_iou"] = v["per_class_iou"][c]
            for thr, key in (("0.25", "ap25"), ("0.5", "ap50")):
                r.per_class[name][key] = v["ap"][thr]["per_class"].get(c) if thr in v["ap"] else None
        for sid, s in v["per_scene"].items():
            r.scene(sid)["voxel_miou"] = s["voxel_miou"]
        r.details["voxel_miou_dataset"] = v["voxel_miou_dataset"]
        r.details["num_gt_3d"] = v["num_gt"]


class NerfsegV1(ProtocolAccumulator):
    """The benchmark's own protocol (SPEC 5): one pixel pass per frame feeds every 2D metric."""

    has_3d_metrics = True
    METRICS = (MaskAPMetric, ConfusionMetric, FramePQMetric, ScenePQMetric, BinaryMetric, VoxelMetric)


NERFSEG_V1 = register_protocol(
    Protocol("nerfseg-v1", PROTOCOL_VERSION, "nerfseg's own metrics (SPEC 5): mIoU, PQ Things/Stuff/All, PQ^scene, binary, 3D", NerfsegV1)
)
