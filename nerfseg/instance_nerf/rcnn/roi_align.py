"""3D RoIAlign as TF-style crop-and-resize, the binary-mask crop for mask targets, and mask pasting.

Why crop-and-resize: the reference "RoIAlign3D" (Instance-NeRF's fork of RoIAlign.pytorch) samples ``n``
points per axis from ``x1`` to ``x2`` *inclusive* (``x1 + i (x2 - x1) / (n - 1)``), one trilinear sample per
output bin, and returns 0 for a sample outside the grid. We keep that sampling and state the one convention
the reference leaves implicit:

* **coordinate -> feature index**: a box coordinate ``x`` (voxel units, voxel ``i`` spans ``[i, i + 1)``)
  maps to the feature index ``x / stride - 0.5`` on a level of stride ``stride``: feature cell ``k`` summarises
  input voxels ``[k s, (k + 1) s)`` and its value sits at the centre ``(k + 0.5) s``. The reference multiplies
  by ``1 / stride`` only, a half-cell shift; the FCOS locations in ``rpn.py`` use the same centres, so boxes,
  locations and samples agree.
* **outside**: a sample whose index lies outside ``[0, size - 1]`` on any axis is 0 (TF's extrapolation value);
  inside, the trilinear weights only touch real cells (so no zero padding bleeds into border samples).
* ``n == 1`` samples the box centre (TF's rule for a crop size of 1).

The sampling is one ``grid_sample`` call per scene of the batch, vectorised over all of its RoIs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from nerfseg.instance_nerf.rcnn.box_ops import box_volume


def crop_sample_positions(boxes: Tensor, n: int, spatial_scale: float) -> Tensor:
    """(K, 3, n) feature-index coordinates of the crop samples of (K, 6) boxes on a level of scale 1/stride."""
    if n < 1:
        raise ValueError(f"crop size must be >= 1, got {n}")
    if n == 1:
        t = torch.full((1,), 0.5, dtype=boxes.dtype, device=boxes.device)
    else:
        t = torch.linspace(0.0, 1.0, n, dtype=boxes.dtype, device=boxes.device)
    lo = boxes[:, :3, None]
    hi = boxes[:, 3:, None]
    return (lo + (hi - lo) * t) * spatial_scale - 0.5


def _normalise(pos: Tensor, sizes: Sequence[int]) -> tuple[Tensor, Tensor]:
    """grid_sample coordinates (align_corners=True) of (K, 3, n) indices, and the (K, 3, n) inside flags."""
    size = torch.tensor([float(s) for s in sizes], dtype=pos.dtype, device=pos.device)[None, :, None]
    inside = (pos >= 0) & (pos <= size - 1)
    denom = (size - 1).clamp(min=1.0)
    norm = torch.where(size > 1, pos * 2.0 / denom - 1.0, torch.zeros_like(pos))
    return norm, inside


def _grid_of(norm: Tensor) -> Tensor:
    """(1, K n, n, n, 3) grid_sample grid from (K, 3, n) normalised coordinates (grid order is z, y, x)."""
    k, _, n = norm.shape
    gx = norm[:, 0, :, None, None].expand(k, n, n, n)
    gy = norm[:, 1, None, :, None].expand(k, n, n, n)
    gz = norm[:, 2, None, None, :].expand(k, n, n, n)
    return torch.stack([gz, gy, gx], dim=-1).reshape(1, k * n, n, n, 3)


def _inside_mask(inside: Tensor) -> Tensor:
    """(K, n, n, n) product of the per-axis inside flags."""
    return inside[:, 0, :, None, None] & inside[:, 1, None, :, None] & inside[:, 2, None, None, :]


def roi_align_3d(features: Tensor, boxes: Tensor, batch_index: Tensor, output_size: int, spatial_scale: float) -> Tensor:
    """Crop-and-resize (K, 6) boxes out of (B, C, X, Y, Z) features -> (K, C, n, n, n).

    ``batch_index[k]`` names the scene of box ``k``; ``spatial_scale`` is 1 / stride of the level.
    """
    if features.dim() != 5:
        raise ValueError(f"features must be (B, C, X, Y, Z), got {tuple(features.shape)}")
    n = int(output_size)
    k = boxes.shape[0]
    c = features.shape[1]
    if k == 0:
        return features.new_zeros((0, c, n, n, n))
    pos = crop_sample_positions(boxes.to(features.dtype), n, spatial_scale)
    norm, inside = _normalise(pos, features.shape[2:])
    out = features.new_zeros((k, c, n, n, n))
    for b in torch.unique(batch_index).tolist():
        sel = torch.nonzero(batch_index == b).flatten()
        grid = _grid_of(norm[sel])
        sampled = F.grid_sample(features[b : b + 1], grid, mode="bilinear", padding_mode="zeros", align_corners=True)
        sampled = sampled.view(c, sel.numel(), n, n, n).transpose(0, 1)
        out = out.index_copy(0, sel, sampled)
    return out * _inside_mask(inside)[:, None].to(out.dtype)


def assign_levels(boxes: Tensor, num_levels: int, canonical_size: float, canonical_level: int = 4, min_level: int = 2) -> Tensor:
    """FPN level (0-based index into the level list) of each box.

    ``k = floor(canonical_level + log2(cbrt(volume) / canonical_size))`` clamped to the available levels
    ``min_level .. min_level + num_levels - 1`` (level ``k`` has stride ``2**k``), the 3D version of Mask
    R-CNN's rule used by the reference. ``canonical_size`` is the box edge that lands on ``canonical_level``:
    the reference uses 160 (its grid resolution); we use the model's input resolution so the rule scales
    with the grid.
    """
    edge = box_volume(boxes).clamp(min=1e-6).pow(1.0 / 3.0)
    k = torch.floor(canonical_level + torch.log2(edge / float(canonical_size)) + 1e-6)
    k = k.clamp(min=min_level, max=min_level + num_levels - 1)
    return (k - min_level).to(torch.long)


def multilevel_roi_align(
    features: Sequence[Tensor],
    strides: Sequence[int],
    boxes: Tensor,
    batch_index: Tensor,
    output_size: int,
    canonical_size: float,
    canonical_level: int = 4,
) -> Tensor:
    """RoIAlign where each box reads the FPN level chosen by ``assign_levels`` -> (K, C, n, n, n)."""
    n = int(output_size)
    c = features[0].shape[1]
    min_level = int(round(math.log2(strides[0])))
    levels = assign_levels(boxes, len(features), canonical_size, canonical_level, min_level)
    out = features[0].new_zeros((boxes.shape[0], c, n, n, n))
    for lvl, (feat, stride) in enumerate(zip(features, strides)):
        sel = torch.nonzero(levels == lvl).flatten()
        if sel.numel() == 0:
            continue
        crops = roi_align_3d(feat, boxes[sel], batch_index[sel], n, 1.0 / float(stride))
        out = out.index_copy(0, sel, crops)
    return out


def crop_and_resize_binary(labels: Tensor, boxes: Tensor, ids: Tensor, output_size: int) -> Tensor:
    """Crop-and-resize the binary masks ``labels == ids[k]`` inside ``boxes[k]`` -> (K, n, n, n) in [0, 1].

    The mask-head target: exactly ``roi_align_3d`` of the float mask at stride 1 (same sample positions,
    same trilinear weights, 0 outside), computed by gathering the 8 corner labels of every sample, so no
    (G, X, Y, Z) stack of per-instance masks is ever built.
    """
    return _crop_gather(labels, boxes, ids, output_size, stack=False)


def crop_and_resize_masks(masks: Tensor, boxes: Tensor, index: Tensor, output_size: int) -> Tensor:
    """As :func:`crop_and_resize_binary` for a (G, X, Y, Z) stack of possibly overlapping binary masks:
    crop k reads ``masks[index[k]]`` (the pooled GT masks of :func:`nerfseg.instance_nerf.rcnn.data.pool_instance_masks`)."""
    return _crop_gather(masks, boxes, index, output_size, stack=True)


def _crop_gather(labels: Tensor, boxes: Tensor, ids: Tensor, output_size: int, stack: bool) -> Tensor:
    n = int(output_size)
    k = boxes.shape[0]
    if k == 0:
        return torch.zeros((0, n, n, n), dtype=torch.float32, device=labels.device)
    pos = crop_sample_positions(boxes.to(torch.float32), n, 1.0)  # (K, 3, n)
    sizes = labels.shape[1:] if stack else labels.shape
    _, inside = _normalise(pos, sizes)
    size = torch.tensor(sizes, dtype=pos.dtype, device=pos.device)[None, :, None]
    p = torch.minimum(pos.clamp(min=0), size - 1)
    i0 = torch.floor(p)
    w1 = p - i0
    i0 = i0.to(torch.long)
    i1 = torch.minimum(i0 + 1, (size - 1).to(torch.long))
    strides = (sizes[1] * sizes[2], sizes[2], 1)
    if stack:
        flat = labels.reshape(labels.shape[0], -1)
        rows = ids.to(torch.long)[:, None, None, None]
    else:
        flat = labels.reshape(-1)
        target = ids.to(flat.dtype)[:, None, None, None]
    acc = torch.zeros((k, n, n, n), dtype=torch.float32, device=labels.device)
    corners = ((i0, 1.0 - w1), (i1, w1))
    for ix, wx in corners:
        for iy, wy in corners:
            for iz, wz in corners:
                idx = (
                    ix[:, 0, :, None, None] * strides[0]
                    + iy[:, 1, None, :, None] * strides[1]
                    + iz[:, 2, None, None, :] * strides[2]
                )
                w = wx[:, 0, :, None, None] * wy[:, 1, None, :, None] * wz[:, 2, None, None, :]
                hit = flat[rows, idx] if stack else flat[idx] == target
                acc = acc + w * hit.to(torch.float32)
    return acc * _inside_mask(inside).to(torch.float32)


def paste_masks_3d(mask_probs: Tensor, boxes: Tensor, shape: Sequence[int], threshold: float = 0.5) -> Tensor:
    """Paste (K, n, n, n) box-relative mask probabilities into full (K, X, Y, Z) boolean grids.

    The inverse of the crop: a voxel whose centre ``c = v + 0.5`` lies in ``[x1, x2]`` on every axis reads
    the mask trilinearly at ``(c - x1) / (x2 - x1) * (n - 1)``; voxels outside the box are False. One
    ``grid_sample`` per detection over the voxels of its box (a loop over at most ~100 detections).
    """
    k = mask_probs.shape[0]
    sx, sy, sz = (int(s) for s in shape)
    out = torch.zeros((k, sx, sy, sz), dtype=torch.bool, device=mask_probs.device)
    if k == 0:
        return out
    boxes = boxes.to(torch.float32)
    dims = torch.tensor([sx, sy, sz], device=boxes.device)
    first = torch.ceil(boxes[:, :3] - 0.5).to(torch.long).clamp(min=0)
    last = torch.minimum(torch.floor(boxes[:, 3:] - 0.5).to(torch.long), dims - 1)
    first_l, last_l, boxes_l = first.tolist(), last.tolist(), boxes
    for i in range(k):
        lo, hi = first_l[i], last_l[i]
        if any(h < l for l, h in zip(lo, hi)):
            continue
        x1 = boxes_l[i, :3]
        ext = boxes_l[i, 3:] - x1
        if bool((ext <= 0).any()):
            continue
        axes = []
        for a in range(3):
            c = torch.arange(lo[a], hi[a] + 1, device=boxes.device, dtype=torch.float32) + 0.5
            axes.append((c - x1[a]) / ext[a] * 2.0 - 1.0)
        gx, gy, gz = torch.meshgrid(axes[0], axes[1], axes[2], indexing="ij")
        grid = torch.stack([gz, gy, gx], dim=-1)[None]
        vals = F.grid_sample(mask_probs[i][None, None].to(torch.float32), grid, mode="bilinear", padding_mode="border", align_corners=True)[0, 0]
        out[i, lo[0] : hi[0] + 1, lo[1] : hi[1] + 1, lo[2] : hi[2] + 1] = vals >= threshold
    return out
