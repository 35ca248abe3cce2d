"""Axis-aligned 3D boxes: IoU, the delta coder, greedy NMS and clipping.

Boxes are ``(x1, y1, z1, x2, y2, z2)`` in **voxel units** of the grid the detector sees: voxel ``i`` spans
``[i, i + 1)`` along its axis, so a grid of shape ``(X, Y, Z)`` spans ``[0, X] x [0, Y] x [0, Z]`` (the
NeRF-RPN convention ``(p - min) / (max - min) * shape``). Sizes are ``x2 - x1`` (continuous coordinates, no
"+1" as in pixel-index detectors).

Everything is vectorised over boxes; NMS is the usual greedy algorithm over a thresholded IoU matrix (see
``nms_3d`` for why the greedy pass runs on the host).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor


def box_volume(boxes: Tensor) -> Tensor:
    """(N,) volumes of (N, 6) boxes; an inverted box has volume 0."""
    size = (boxes[..., 3:] - boxes[..., :3]).clamp(min=0)
    return size.prod(dim=-1)


def box_iou_3d(a: Tensor, b: Tensor) -> Tensor:
    """(N, M) IoU between (N, 6) and (M, 6) axis-aligned boxes (0 where the union is empty)."""
    lo = torch.maximum(a[:, None, :3], b[None, :, :3])
    hi = torch.minimum(a[:, None, 3:], b[None, :, 3:])
    inter = (hi - lo).clamp(min=0).prod(dim=-1)
    union = box_volume(a)[:, None] + box_volume(b)[None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=torch.finfo(inter.dtype).tiny), torch.zeros_like(inter))


def box_iou_3d_aligned(a: Tensor, b: Tensor) -> Tensor:
    """(N,) IoU between row i of ``a`` and row i of ``b`` (both (N, 6))."""
    lo = torch.maximum(a[:, :3], b[:, :3])
    hi = torch.minimum(a[:, 3:], b[:, 3:])
    inter = (hi - lo).clamp(min=0).prod(dim=-1)
    union = box_volume(a) + box_volume(b) - inter
    return torch.where(union > 0, inter / union.clamp(min=torch.finfo(inter.dtype).tiny), torch.zeros_like(inter))


def clip_boxes(boxes: Tensor, shape: Sequence[int]) -> Tensor:
    """Clamp (..., 6) boxes into the grid ``[0, X] x [0, Y] x [0, Z]``."""
    hi = torch.tensor([float(s) for s in shape], dtype=boxes.dtype, device=boxes.device)
    lo = torch.zeros_like(hi)
    mins = torch.maximum(torch.minimum(boxes[..., :3], hi), lo)
    maxs = torch.maximum(torch.minimum(boxes[..., 3:], hi), lo)
    return torch.cat([mins, maxs], dim=-1)


def remove_small_boxes(boxes: Tensor, min_size: float) -> Tensor:
    """Indices of boxes whose every side is at least ``min_size`` voxels."""
    size = boxes[:, 3:] - boxes[:, :3]
    return torch.nonzero((size >= min_size).all(dim=1)).flatten()


class BoxCoder:
    """Faster R-CNN deltas for 3D AABBs: ``(dx/w, dy/l, dz/h, log w'/w, log l'/l, log h'/h)`` times weights.

    The weights scale the regression targets to a similar spread as the classification loss (torchvision's
    ``(10, 10, 5, 5)`` for 2D, extended to 3D); ``clip`` bounds the predicted log-size so an untrained head
    cannot produce an overflowing box (log(1000/16), as in torchvision).
    """

    def __init__(self, weights: Sequence[float] = (10.0, 10.0, 10.0, 5.0, 5.0, 5.0), clip: float = math.log(1000.0 / 16)):
        if len(weights) != 6:
            raise ValueError(f"box coder needs 6 weights, got {len(weights)}")
        self.weights = tuple(float(w) for w in weights)
        self.clip = float(clip)

    def _w(self, ref: Tensor) -> Tensor:
        return torch.tensor(self.weights, dtype=ref.dtype, device=ref.device)

    def encode(self, reference: Tensor, target: Tensor) -> Tensor:
        """(N, 6) deltas that turn ``reference`` boxes into ``target`` boxes (both (N, 6), positive sizes)."""
        r_size = (reference[:, 3:] - reference[:, :3]).clamp(min=1e-6)
        r_ctr = (reference[:, 3:] + reference[:, :3]) * 0.5
        t_size = (target[:, 3:] - target[:, :3]).clamp(min=1e-6)
        t_ctr = (target[:, 3:] + target[:, :3]) * 0.5
        deltas = torch.cat([(t_ctr - r_ctr) / r_size, torch.log(t_size / r_size)], dim=1)
        return deltas * self._w(reference)

    def decode(self, deltas: Tensor, reference: Tensor) -> Tensor:
        """Boxes from (N, 6k) deltas (k boxes per reference, e.g. one per class) and (N, 6) references -> (N, 6k)."""
        n = reference.shape[0]
        d = deltas.reshape(n, -1, 6) / self._w(reference)
        r_size = (reference[:, 3:] - reference[:, :3])[:, None, :]
        r_ctr = ((reference[:, 3:] + reference[:, :3]) * 0.5)[:, None, :]
        ctr = r_ctr + d[..., :3] * r_size
        size = torch.exp(d[..., 3:].clamp(max=self.clip)) * r_size
        boxes = torch.cat([ctr - 0.5 * size, ctr + 0.5 * size], dim=-1)
        return boxes.reshape(n, -1)


#: above this many boxes NMS switches from one thresholded IoU matrix to the step-by-step variant
MATRIX_NMS_MAX = 8192


def nms_3d(boxes: Tensor, scores: Tensor, iou_threshold: float, max_keep: int | None = None) -> Tensor:
    """Greedy NMS: indices of kept boxes in descending score order.

    A box is dropped when its IoU with an already kept, higher-scoring box is **greater than** the
    threshold (torchvision's rule). Ties in score keep the lower index first (stable sort).

    Up to ``MATRIX_NMS_MAX`` boxes, the "IoU > threshold" matrix is computed on the boxes' device in row
    blocks and the greedy pass runs over its rows on the host (one device sync instead of one per kept
    box, which matters on a GPU with thousands of proposals); above, each step compares the kept box with
    the remaining ones.
    """
    if boxes.numel() == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    order = torch.sort(scores, descending=True, stable=True).indices
    limit = boxes.shape[0] if max_keep is None else int(max_keep)
    b = boxes[order]
    k = b.shape[0]
    if k <= MATRIX_NMS_MAX:
        rows = [(box_iou_3d(b[i : i + 1024], b) > iou_threshold).cpu() for i in range(0, k, 1024)]
        over = torch.cat(rows).numpy()
        removed = np.zeros(k, dtype=bool)
        kept: list[int] = []
        for i in range(k):
            if removed[i]:
                continue
            kept.append(i)
            if len(kept) >= limit:
                break
            removed[i + 1 :] |= over[i, i + 1 :]
        return order[torch.tensor(kept, dtype=torch.long, device=boxes.device)]
    keep: list[Tensor] = []
    remaining = torch.arange(k, device=boxes.device)
    while remaining.numel() > 0 and len(keep) < limit:
        best = remaining[0]
        keep.append(best)
        rest = remaining[1:]
        if rest.numel() == 0:
            break
        iou = box_iou_3d(b[best][None], b[rest])[0]
        remaining = rest[iou <= iou_threshold]
    return order[torch.stack(keep)]


def batched_nms_3d(boxes: Tensor, scores: Tensor, groups: Tensor, iou_threshold: float, max_keep: int | None = None) -> Tensor:
    """NMS run independently per group (e.g. class): boxes of different groups never suppress each other.

    Implemented by shifting every group to its own region of space (larger than any box), then one NMS.
    """
    if boxes.numel() == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    span = boxes.max() - boxes.min() + 1
    offset = groups.to(boxes.dtype)[:, None] * span
    return nms_3d(boxes + offset, scores, iou_threshold, max_keep)
