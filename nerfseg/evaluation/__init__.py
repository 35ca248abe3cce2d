"""nerfseg evaluation: metric accumulators, named protocols, panopticapi-compatible ``pq_compute``.

numpy only (no torch), so a leaderboard server or a user checking a submission needs numpy/pillow/h5py.
"""

from nerfseg.evaluation.pq_compute import pq_compute
from nerfseg.evaluation.protocols import get_protocol, list_protocols
from nerfseg.evaluation.types import GT3D, VOID, FrameGT, FramePred, Pred3D

__all__ = ["GT3D", "VOID", "FrameGT", "FramePred", "Pred3D", "get_protocol", "list_protocols", "pq_compute"]
