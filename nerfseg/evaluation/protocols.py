"""Named, versioned evaluation protocols: each a list of metrics over the accumulators in ``metrics/``.

* ``nerfseg-v1`` (default, SPEC 5; ``protocol_nerfseg_v1.py``): mIoU (per-scene confusion, nanmean;
  dataset-level too), per-frame PQ/SQ/RQ with panopticapi semantics (Things = the paper's column, Stuff,
  All), PQ^scene (Things, All), binary foreground accuracy / mIoU, COCO mask AP of the thing segments
  (``mask_ap`` section, see ``metrics/mask_ap.py``), and the 3D metrics when 3D predictions are given.
* ``instance-nerf`` (SPEC 5.1; ``protocol_instance_nerf.py``): Instance-NeRF's ``eval.py``: no void
  (everything that is not an object is background), mIoU pooled per scene then per class over scenes,
  pooled things-only PQ with its quirks.
* ``panoptic-lifting`` (SPEC 5.1; ``protocol_panoptic_lifting.py``): Panoptic Lifting's ``evaluate.py``:
  512x512 nearest, GT class 0 dropped, class filters, scene PQ and mIoU per scene, means over scenes.

What they share (the list-composed accumulator, :class:`ProtocolMetric`, the registry) is in
``protocol_core.py``; this module imports every protocol so that all are registered, and is the place to
import from.

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

from nerfseg.evaluation.protocol_core import CATEGORIES, PER_CLASS_KEYS, PROTOCOL_VERSION, PROTOCOLS, SUMMARY_KEYS, FrameInput, Protocol
from nerfseg.evaluation.protocol_core import ProtocolAccumulator, ProtocolMetric, ReportParts, accumulator_from_state, get_protocol, list_protocols
from nerfseg.evaluation.protocol_core import register_protocol
from nerfseg.evaluation.protocol_instance_nerf import InstanceNerfCompat
from nerfseg.evaluation.protocol_nerfseg_v1 import NerfsegV1
from nerfseg.evaluation.protocol_panoptic_lifting import PanopticLiftingCompat

__all__ = [
    "CATEGORIES",
    "PER_CLASS_KEYS",
    "PROTOCOLS",
    "PROTOCOL_VERSION",
    "SUMMARY_KEYS",
    "FrameInput",
    "InstanceNerfCompat",
    "NerfsegV1",
    "PanopticLiftingCompat",
    "Protocol",
    "ProtocolAccumulator",
    "ProtocolMetric",
    "ReportParts",
    "accumulator_from_state",
    "get_protocol",
    "list_protocols",
    "register_protocol",
]
