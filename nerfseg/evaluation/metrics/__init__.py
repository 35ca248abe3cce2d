"""Metric accumulators (reset / update / compute / merge / state_dict / from_state), numpy only.

The pixel pass of a frame is done once (:func:`frame_stats`) and every 2D metric reads the resulting joint
segment histogram; see ``frame.py`` for why and how.
"""

from nerfseg.evaluation.metrics.base import Accumulator
from nerfseg.evaluation.metrics.compat import InstanceNerfPQ, PanopticLiftingScene, resize_nearest
from nerfseg.evaluation.metrics.confusion import BinaryForeground, ConfusionMIoU, confusion_from_maps, confusion_from_stats
from nerfseg.evaluation.metrics.frame import FrameStats, frame_stats, read_panoptic_ids
from nerfseg.evaluation.metrics.mask_ap import MaskAP
from nerfseg.evaluation.metrics.panoptic import PanopticQuality, SparsePairs, pq_match, pq_summary
from nerfseg.evaluation.metrics.scene_panoptic import ScenePanopticQuality
from nerfseg.evaluation.metrics.voxel3d import Voxel3D, voc_ap

__all__ = [
    "Accumulator",
    "BinaryForeground",
    "ConfusionMIoU",
    "FrameStats",
    "InstanceNerfPQ",
    "MaskAP",
    "PanopticLiftingScene",
    "PanopticQuality",
    "ScenePanopticQuality",
    "SparsePairs",
    "Voxel3D",
    "confusion_from_maps",
    "confusion_from_stats",
    "frame_stats",
    "pq_match",
    "pq_summary",
    "read_panoptic_ids",
    "resize_nearest",
    "voc_ap",
]
