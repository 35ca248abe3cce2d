"""Class-agnostic 3D proposals with an FCOS head (anchor-free), as the Instance-NeRF proposal stage.

Why FCOS: the Instance-NeRF release trained its proposals with NeRF-RPN's FCOS variant (VGG-EF backbone, AABB),
not the anchor RPN. Per FPN level the head predicts, at every cell centre ``(k + 0.5) * stride``:

* an objectness logit (sigmoid focal loss, alpha 0.25, gamma 2, prior 0.01),
* six distances to the box faces ``(l, t, f, r, b, k)`` = ``(x - x1, y - y1, z - z1, x2 - x, y2 - y, z2 - z)``
  in units of the level's stride, as ``exp(scale_l * t)`` (IoU loss ``-log IoU``),
* a centerness logit on the regression branch (BCE) with the 3D target
  ``cbrt(prod_axis min(l, r) / max(l, r))``.

Target assignment (FCOS rules, vectorised over locations x GT boxes): a location is positive for a GT box when
it lies inside the box, within ``center_radius * stride`` of the box centre on every axis, and the largest of
its six distances lies in its level's size range; among several such boxes the smallest one wins. A GT box
that gets no location this way (smaller than a cell of its level) takes the free location nearest to its centre
on the level its half-size selects, so every object yields training signal even on a coarse grid.

Proposals: per level the ``pre_nms_top_n`` locations by ``sqrt(sigmoid(cls) * sigmoid(ctr))``, decoded, clipped
to the scene, small boxes removed, then one NMS (IoU 0.3) over all levels keeping ``post_nms_top_n``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nerfseg.instance_nerf.rcnn.box_ops import (
    box_volume,
    clip_boxes,
    nms_3d,
    remove_small_boxes,
)


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm(32) as the reference when the width allows, else groups of 8 channels (mini widths)."""
    groups = 32 if channels % 32 == 0 and channels >= 128 else max(1, channels // 8)
    while channels % groups:
        groups -= 1
    return nn.GroupNorm(groups, channels)


def sigmoid_focal_loss(logits: Tensor, targets: Tensor, alpha: float = 0.25, gamma: float = 2.0) -> Tensor:
    """Element-wise focal loss (Lin et al.): down-weights the many easy negatives of a dense head."""
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = loss * (alpha * targets + (1 - alpha) * (1 - targets))
    return loss


def distance_iou(pred: Tensor, target: Tensor) -> Tensor:
    """IoU of boxes given as six face distances from a common location ((N, 6) each).

    Works when a target distance is negative (a fallback location just outside its small box): the
    per-axis overlap ``min(l_p, l_t) + min(r_p, r_t)`` is still the overlap of the two intervals.
    """
    p_size = pred[:, :3] + pred[:, 3:]
    t_size = target[:, :3] + target[:, 3:]
    overlap = (torch.minimum(pred[:, :3], target[:, :3]) + torch.minimum(pred[:, 3:], target[:, 3:])).clamp(min=0)
    inter = overlap.prod(dim=1)
    union = p_size.prod(dim=1) + t_size.clamp(min=0).prod(dim=1) - inter
    return inter / union.clamp(min=1e-9)


def centerness_target(dist: Tensor) -> Tensor:
    """(N,) FCOS centerness in 3D: cube root of the product over axes of min(l, r) / max(l, r), in [0, 1]."""
    lo = torch.minimum(dist[:, :3], dist[:, 3:])
    hi = torch.maximum(dist[:, :3], dist[:, 3:]).clamp(min=1e-9)
    return (lo / hi).clamp(min=0).prod(dim=1).pow(1.0 / 3.0)


def level_locations(shape: Sequence[int], stride: int, device: torch.device | str) -> Tensor:
    """(N, 3) centres ``(k + 0.5) * stride`` of a level's cells, in the C order of ``feature.flatten(2)``."""
    axes = [(torch.arange(int(s), device=device, dtype=torch.float32) + 0.5) * stride for s in shape]
    gx, gy, gz = torch.meshgrid(*axes, indexing="ij")
    return torch.stack([gx, gy, gz], dim=-1).reshape(-1, 3)


class Scale(nn.Module):
    """A learnable scalar per FPN level (FCOS), so one shared head can regress every level's distances."""

    def __init__(self, value: float = 1.0):
        super().__init__()
        self.value = nn.Parameter(torch.tensor(float(value)))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.value


class FCOSHead(nn.Module):
    """Shared FCOS head: classification tower and regression tower of ``num_convs`` (Conv 3^3 + GN + ReLU)."""

    def __init__(self, channels: int, num_convs: int, num_levels: int = 4, prior: float = 0.01):
        super().__init__()

        def tower() -> nn.Sequential:
            layers: list[nn.Module] = []
            for _ in range(num_convs):
                layers += [nn.Conv3d(channels, channels, 3, padding=1), group_norm(channels), nn.ReLU(inplace=True)]
            return nn.Sequential(*layers)

        self.cls_tower = tower()
        self.reg_tower = tower()
        self.cls_logits = nn.Conv3d(channels, 1, 3, padding=1)
        self.bbox_pred = nn.Conv3d(channels, 6, 3, padding=1)
        self.centerness = nn.Conv3d(channels, 1, 3, padding=1)
        self.scales = nn.ModuleList(Scale() for _ in range(num_levels))
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.normal_(m.weight, std=0.01)
                nn.init.zeros_(m.bias)
        nn.init.constant_(self.cls_logits.bias, -math.log((1 - prior) / prior))

    def forward(self, features: Sequence[Tensor]) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
        """Per level: (B, 1, ...) objectness logits, (B, 6, ...) distances in strides, (B, 1, ...) centerness."""
        cls, reg, ctr = [], [], []
        for lvl, f in enumerate(features):
            c = self.cls_tower(f)
            r = self.reg_tower(f)
            cls.append(self.cls_logits(c))
            reg.append(torch.exp(self.scales[lvl](self.bbox_pred(r)).clamp(max=8.0)))
            ctr.append(self.centerness(r))
        return cls, reg, ctr


class FCOSProposals(nn.Module):
    """FCOS proposal network: head, target assignment, losses and proposal extraction."""

    def __init__(
        self,
        channels: int,
        strides: Sequence[int],
        num_convs: int = 4,
        size_ranges: Sequence[float] = (-1.0, 16.0, 32.0, 64.0, 1e8),
        center_radius: float = 1.5,
        focal_alpha: float = 0.25,
        focal_gamma: float = 2.0,
        pre_nms_top_n: tuple[int, int] = (2500, 2500),
        post_nms_top_n: tuple[int, int] = (2500, 2500),
        nms_thresh: float = 0.3,
        min_size: float = 1e-3,
    ):
        super().__init__()
        self.strides = tuple(int(s) for s in strides)
        if len(size_ranges) != len(self.strides) + 1:
            raise ValueError("size_ranges needs one more bound than there are levels")
        self.size_ranges = tuple(float(r) for r in size_ranges)
        self.head = FCOSHead(channels, num_convs, len(self.strides))
        self.center_radius = float(center_radius)
        self.focal_alpha = float(focal_alpha)
        self.focal_gamma = float(focal_gamma)
        self.pre_nms_top_n = pre_nms_top_n  # (train, test)
        self.post_nms_top_n = post_nms_top_n
        self.nms_thresh = float(nms_thresh)
        self.min_size = float(min_size)

    # ---------------------------------------------------------------------------------------------- targets
    def _location_table(self, features: Sequence[Tensor]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """All levels' locations (L, 3), strides (L,), size range low (L,) and high (L,)."""
        locs, strides, lo, hi = [], [], [], []
        for lvl, (f, s) in enumerate(zip(features, self.strides)):
            loc = level_locations(f.shape[2:], s, f.device)
            n = loc.shape[0]
            locs.append(loc)
            strides.append(torch.full((n,), float(s), device=f.device))
            lo.append(torch.full((n,), self.size_ranges[lvl], device=f.device))
            hi.append(torch.full((n,), self.size_ranges[lvl + 1], device=f.device))
        return torch.cat(locs), torch.cat(strides), torch.cat(lo), torch.cat(hi)

    def assign(self, locs: Tensor, strides: Tensor, lo: Tensor, hi: Tensor, boxes: Tensor) -> tuple[Tensor, Tensor]:
        """Positive flags (L,) and regression targets (L, 6) in voxels for one scene's GT ``boxes`` (G, 6)."""
        n_loc = locs.shape[0]
        if boxes.shape[0] == 0:
            return torch.zeros(n_loc, dtype=torch.bool, device=locs.device), torch.zeros((n_loc, 6), device=locs.device)
        dist = torch.cat([locs[:, None, :] - boxes[None, :, :3], boxes[None, :, 3:] - locs[:, None, :]], dim=-1)
        inside = dist.min(dim=-1).values > 0
        centre = (boxes[:, :3] + boxes[:, 3:]) * 0.5
        radius = (strides * self.center_radius)[:, None, None]
        near = ((locs[:, None, :] - centre[None]).abs() < radius).all(dim=-1)
        far = dist.max(dim=-1).values
        in_range = (far >= lo[:, None]) & (far <= hi[:, None])
        cand = inside & near & in_range
        vol = box_volume(boxes)
        cost = torch.where(cand, vol[None, :].expand_as(cand), torch.full_like(far, float("inf")))
        best_cost, match = cost.min(dim=1)
        pos = torch.isfinite(best_cost)
        lonely = torch.nonzero(~cand.any(dim=0)).flatten().tolist()
        for g in lonely:  # loop over GT boxes without a location (few), never over voxels
            half = float((boxes[g, 3:] - boxes[g, :3]).max()) * 0.5
            level_ok = (half >= lo) & (half <= hi) & ~pos
            cheb = ((locs - centre[g]).abs() / strides[:, None]).max(dim=1).values
            cheb = torch.where(level_ok, cheb, torch.full_like(cheb, float("inf")))
            j = int(torch.argmin(cheb))
            if torch.isfinite(cheb[j]):
                pos[j] = True
                match[j] = g
        targets = dist[torch.arange(n_loc, device=locs.device), match]
        return pos, targets

    # ------------------------------------------------------------------------------------------------ loss
    def losses(self, cls: list[Tensor], reg: list[Tensor], ctr: list[Tensor], features: Sequence[Tensor], gt_boxes: Sequence[Tensor]) -> dict[str, Tensor]:
        locs, strides, lo, hi = self._location_table(features)
        b = cls[0].shape[0]
        cls_flat = torch.cat([c.flatten(2) for c in cls], dim=2)[:, 0]  # (B, L)
        reg_flat = torch.cat([r.flatten(2) for r in reg], dim=2).transpose(1, 2)  # (B, L, 6)
        ctr_flat = torch.cat([c.flatten(2) for c in ctr], dim=2)[:, 0]
        pos_all, tgt_all = zip(*(self.assign(locs, strides, lo, hi, gt_boxes[i].to(locs.dtype)) for i in range(b)))
        pos = torch.stack(pos_all)
        tgt = torch.stack(tgt_all) / strides[None, :, None]
        num_pos = max(int(pos.sum()), 1)
        loss_cls = sigmoid_focal_loss(cls_flat, pos.to(cls_flat.dtype), self.focal_alpha, self.focal_gamma).sum() / num_pos
        if bool(pos.any()):
            p_reg, t_reg = reg_flat[pos], tgt[pos]
            loss_iou = -torch.log(distance_iou(p_reg, t_reg).clamp(min=1e-6)).mean()
            loss_ctr = F.binary_cross_entropy_with_logits(ctr_flat[pos], centerness_target(t_reg))
        else:
            loss_iou = reg_flat.sum() * 0.0
            loss_ctr = ctr_flat.sum() * 0.0
        return {"rpn_cls": loss_cls, "rpn_iou": loss_iou, "rpn_ctr": loss_ctr}

    # ------------------------------------------------------------------------------------------- proposals
    @torch.no_grad()
    def proposals(self, cls: list[Tensor], reg: list[Tensor], ctr: list[Tensor], image_shapes: Sequence[Sequence[int]]) -> tuple[list[Tensor], list[Tensor]]:
        """Per scene: (K, 6) proposal boxes and (K,) scores after NMS."""
        mode = 0 if self.training else 1
        pre_n, post_n = self.pre_nms_top_n[mode], self.post_nms_top_n[mode]
        out_boxes, out_scores = [], []
        for i, shape in enumerate(image_shapes):
            boxes_l, scores_l = [], []
            lim = torch.tensor([float(s) for s in shape], device=cls[0].device)
            for c, r, t, s in zip(cls, reg, ctr, self.strides):
                locs = level_locations(c.shape[2:], s, c.device)
                score = torch.sqrt(torch.sigmoid(c[i, 0].flatten()) * torch.sigmoid(t[i, 0].flatten()))
                score = torch.where((locs < lim).all(dim=1), score, torch.zeros_like(score))
                k = min(pre_n, score.numel())
                top = score.topk(k).indices
                d = r[i].flatten(1)[:, top].T * s
                loc = locs[top]
                boxes_l.append(torch.cat([loc - d[:, :3], loc + d[:, 3:]], dim=1))
                scores_l.append(score[top])
            boxes = clip_boxes(torch.cat(boxes_l), shape)
            scores = torch.cat(scores_l)
            keep = remove_small_boxes(boxes, self.min_size)
            boxes, scores = boxes[keep], scores[keep]
            keep = nms_3d(boxes, scores, self.nms_thresh, post_n)
            out_boxes.append(boxes[keep])
            out_scores.append(scores[keep])
        return out_boxes, out_scores

    def forward(self, features: Sequence[Tensor], image_shapes: Sequence[Sequence[int]], gt_boxes: Sequence[Tensor] | None = None) -> tuple[list[Tensor], list[Tensor], dict[str, Tensor]]:
        cls, reg, ctr = self.head(features)
        losses = self.losses(cls, reg, ctr, features, gt_boxes) if gt_boxes is not None else {}
        boxes, scores = self.proposals(cls, reg, ctr, image_shapes)
        return boxes, scores, losses
