"""The ``instance-nerf`` compatibility protocol (SPEC 5.1): Instance-NeRF's ``eval.py``, quirks included.

Void does not exist there: everything that is not an object is background, on both sides, for mIoU and the
binary metric; mIoU is pooled per scene, then per class over scenes; PQ is its pooled things-only PQ
(:class:`~nerfseg.evaluation.metrics.compat.InstanceNerfPQ`). Each metric is one item of
:attr:`InstanceNerfCompat.METRICS`, the same declaration as ``nerfseg-v1``'s.
"""

from __future__ import annotations

from typing import Any

from nerfseg import spec
from nerfseg.evaluation.metrics.base import nanmean
from nerfseg.evaluation.metrics.compat import InstanceNerfPQ
from nerfseg.evaluation.protocol_core import PROTOCOL_VERSION, FrameInput, Protocol, ProtocolAccumulator, ProtocolMetric, ReportParts
from nerfseg.evaluation.protocol_core import register_protocol
from nerfseg.evaluation.protocol_nerfseg_v1 import BinaryMetric, ConfusionMetric, VoxelMetric
from nerfseg.evaluation.types import FrameGT, FramePred


class InstanceNerfPQMetric(ProtocolMetric):
    """Instance-NeRF's pooled things-only PQ; the pooled counts go to ``details.pq_totals``."""

    name = "pq"
    acc: InstanceNerfPQ

    def new(self) -> InstanceNerfPQ:
        self.totals: dict[str, Any] = {}  # the last report's pooled counts, for the closing details
        return InstanceNerfPQ(spec.THING_CLASSES)

    def record(self, x: FrameInput, prepared: Any) -> None:
        self.acc.update_stats(x.sid, x.stats, x.gt.scene_instances)

    def report(self, r: ReportParts) -> None:
        pq = self.acc.compute()
        for k in ("pq", "sq", "rq"):
            r.summary[k] = r.summary[k + "_things"] = pq[k]
        for sid, s in pq["per_scene"].items():
            slot = r.scene(sid)
            slot["pq_things"] = s["pq"]
            slot.update({k: s[k] for k in ("tp", "fp", "fn", "iou_sum")})
        self.totals = {k: pq[k] for k in ("tp", "fp", "fn", "iou_sum")}

    def section(self, report: dict[str, Any]) -> None:
        report["details"]["pq_totals"] = self.totals


class InstanceNerfMIoUMetric(ConfusionMetric):
    """mIoU as eval.py pools it: per class over the scenes where it is defined, then over classes."""

    def report(self, r: ReportParts) -> None:
        conf = self.acc.compute()
        class_means = conf["per_class_iou_scene_mean"]
        r.summary["miou"] = nanmean(class_means)
        for c, name in enumerate(spec.CLASS_NAMES):
            r.per_class[name]["iou"] = class_means[c]
        self.report_scenes(r, conf)

    def section(self, report: dict[str, Any]) -> None:
        report["details"]["miou_note"] = "mean over classes of the per-class IoU averaged over the scenes where the class is defined"


class InstanceNerfBinaryMetric(BinaryMetric):
    """The binary metric of ``nerfseg-v1`` on eval.py's void-free confusion, without its IoU details."""

    iou_details = False


class InstanceNerfCompat(ProtocolAccumulator):
    """Instance-NeRF's eval.py (SPEC 5.1). Void does not exist there: GT and predicted void count as
    background, on both sides, for mIoU and the binary metric."""

    has_3d_metrics = True
    # PQ reports before the binary metric and the notes come last, the key order of the reports so far
    METRICS = (InstanceNerfPQMetric, InstanceNerfMIoUMetric, InstanceNerfBinaryMetric, VoxelMetric)

    def frame_input(self, sid: str, frame: str, gt: FrameGT, pred: FramePred) -> FrameInput:
        x = super().frame_input(sid, frame, gt, pred)
        x.void_as = spec.BACKGROUND
        return x


INSTANCE_NERF = register_protocol(
    Protocol(
        "instance-nerf",
        PROTOCOL_VERSION,
        "Instance-NeRF eval.py: scene-pooled mIoU, things-only PQ with its quirks",
        InstanceNerfCompat,
    )
)
