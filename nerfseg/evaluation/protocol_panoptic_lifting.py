"""The ``panoptic-lifting`` compatibility protocol (SPEC 5.1): Panoptic Lifting's ``evaluate.py``.

Every map is resized to 512x512 (nearest), GT class 0 is dropped, classes are filtered, and PQ^scene and
mIoU are computed per scene, then averaged over scenes
(:class:`~nerfseg.evaluation.metrics.compat.PanopticLiftingScene`). Its one metric is one item of
:attr:`PanopticLiftingCompat.METRICS`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from nerfseg import spec
from nerfseg.evaluation.metrics.compat import PanopticLiftingScene, resize_nearest
from nerfseg.evaluation.metrics.frame import frame_stats
from nerfseg.evaluation.protocol_core import CATEGORIES, PROTOCOL_VERSION, FrameInput, Protocol, ProtocolAccumulator, ProtocolMetric, ReportParts
from nerfseg.evaluation.protocol_core import register_protocol
from nerfseg.evaluation.types import FrameGT, FramePred


class PanopticLiftingMetric(ProtocolMetric):
    """PL's scene PQ and mIoU per scene, their means over scenes, the classes each scene kept."""

    name = "pl"
    acc: PanopticLiftingScene

    def new(self) -> PanopticLiftingScene:
        return PanopticLiftingScene(CATEGORIES)

    def record(self, x: FrameInput, prepared: Any) -> None:
        self.acc.update_stats(x.sid, x.stats)

    def report(self, r: ReportParts) -> None:
        pl = self.acc.compute()
        for k in ("pq", "sq", "rq"):
            r.summary[k] = pl[k]
        r.summary["pq_scene"] = pl["pq"]
        r.summary["miou"] = pl["miou"]
        for c, name in enumerate(spec.CLASS_NAMES):
            r.per_class[name]["iou"] = pl["per_class_iou_scene_mean"][c]
        for sid, s in pl["per_scene"].items():
            slot = r.scene(sid)
            slot["miou"] = s["miou"]
            slot["pq_scene"] = s["pq"]
            slot["pq"], slot["sq"], slot["rq"] = s["pq"], s["sq"], s["rq"]
            slot["classes"] = [spec.CLASS_NAMES[c] for c in s["classes"]]
            slot["per_class"] = {spec.CLASS_NAMES[c]: v for c, v in s["per_class"].items()}
        r.details["resize"] = [512, 512]
        r.details["note"] = "sq/rq are reported correctly (PL's evaluate.py prints them swapped)"


class PanopticLiftingCompat(ProtocolAccumulator):
    """Panoptic Lifting / Contrastive Lift evaluate.py (SPEC 5.1). Our GT void (no hit) is dropped with GT
    class 0; predicted void is outside every class (PL's void colour; masked out of the mIoU matrix)."""

    METRICS = (PanopticLiftingMetric,)

    def frame_input(self, sid: str, frame: str, gt: FrameGT, pred: FramePred) -> FrameInput:
        """The pixel pass on the 512x512 maps; not strict, as small segments vanish in the resize."""
        gt_small = resize_nearest(np.asarray(gt.panoptic))
        pred_small = resize_nearest(np.asarray(pred.panoptic))
        gt_segments = {k: {"category_id": v["category_id"]} for k, v in gt.segments.items()}  # pixels, not JSON areas
        stats = frame_stats(gt_small, gt_segments, pred_small, pred.segments, source=f"{sid}/{frame}", strict=False)
        return FrameInput(sid, frame, gt, pred, stats)


PANOPTIC_LIFTING = register_protocol(
    Protocol(
        "panoptic-lifting",
        PROTOCOL_VERSION,
        "Panoptic Lifting evaluate.py: 512x512, class filters, PQ^scene and mIoU per scene",
        PanopticLiftingCompat,
    )
)
