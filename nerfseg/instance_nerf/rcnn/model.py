"""``NeRFRCNN``: backbone + FCOS proposals + box head + mask head, with training losses and inference.

Training (one forward returns the loss dict): the proposal losses (focal, -log IoU, centerness) plus the RoI
losses with equal weights, as the reference: cross-entropy over the 11 classes, smooth-L1 (beta 1/9, summed over
the positives' GT-class deltas, divided by the number of sampled RoIs) and the mask BCE of the GT-class channel
against the GT mask crop-resized to 20^3 with the same crop-and-resize as the features (soft targets: the
trilinear crop of the binary mask). Proposals are detached; GT boxes are appended to them and ``rois_per_scene``
RoIs are sampled with ``positive_fraction`` positives (IoU >= ``fg_iou_thresh``).

Unlike the reference (which precomputes RoIs with a separately trained and then frozen RPN), proposals and RoI
heads train jointly in one network; GT boxes appended to the proposals give the heads positives from step one.

Inference: softmax, background dropped, score > threshold, per-class NMS (0.15), top 100; the mask head runs
on the final boxes and ``predict_scene`` pastes the predicted class's 20^3 sigmoid mask into the full grid.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nerfseg.instance_nerf.rcnn.backbone import VGGFPN3D
from nerfseg.instance_nerf.rcnn.box_ops import (
    BoxCoder,
    batched_nms_3d,
    box_iou_3d,
    clip_boxes,
    remove_small_boxes,
)
from nerfseg.instance_nerf.rcnn.config import RCNNConfig
from nerfseg.instance_nerf.rcnn.data import grid_to_tensor, resize_grid, working_shape
from nerfseg.instance_nerf.rcnn.heads import BoxHead, MaskHead
from nerfseg.instance_nerf.rcnn.roi_align import (
    crop_and_resize_binary,
    crop_and_resize_masks,
    multilevel_roi_align,
    paste_masks_3d,
)
from nerfseg.instance_nerf.rcnn.rpn import FCOSProposals

PAD_MULTIPLE = 32


@dataclass
class RCNNTarget:
    """Training targets of one scene, in the voxel units of its (working) grid."""

    boxes: Tensor  # (G, 6) float32
    labels: Tensor  # (G,) int64 class index 1..num_classes-1
    ids: Tensor  # (G,) int64 instance id of each box in ``instance``
    instance: Tensor  # (X, Y, Z) integer instance-id grid (0 = background)
    #: (G, X, Y, Z) bool mask of box g (pooled GT, may overlap); None: mask targets are ``instance == ids[g]``
    masks: Tensor | None = None

    def to(self, device: torch.device | str) -> RCNNTarget:
        masks = None if self.masks is None else self.masks.to(device)
        return RCNNTarget(self.boxes.to(device), self.labels.to(device), self.ids.to(device), self.instance.to(device), masks)


@dataclass
class Detections:
    """NeRF-RCNN output for one scene, in the voxel units of the grid that was given to ``predict_scene``."""

    boxes: np.ndarray  # (K, 6) float32 x1 y1 z1 x2 y2 z2
    labels: np.ndarray  # (K,) int64 class index 1..10
    scores: np.ndarray  # (K,) float32, descending
    masks: np.ndarray  # (K, X, Y, Z) bool

    def __len__(self) -> int:
        return int(self.scores.shape[0])


def pad_grids(grids: Sequence[Tensor], multiple: int = PAD_MULTIPLE) -> tuple[Tensor, list[tuple[int, int, int]]]:
    """Zero-pad (C, X, Y, Z) grids at the high end to one (B, C, X', Y', Z') batch, X' a multiple of ``multiple``.

    Zero is empty space (alpha 0, black), so padding adds no objects; boxes need no shift.
    """
    shapes = [tuple(int(s) for s in g.shape[1:]) for g in grids]
    full = [int(-(-max(s[a] for s in shapes) // multiple) * multiple) for a in range(3)]
    out = grids[0].new_zeros((len(grids), grids[0].shape[0], *full))
    for i, g in enumerate(grids):
        out[i, :, : g.shape[1], : g.shape[2], : g.shape[3]] = g
    return out, shapes  # type: ignore[return-value]


class NeRFRCNN(nn.Module):
    """The detector. ``forward(grids, shapes, targets)`` returns losses; without targets, per-scene detections."""

    def __init__(self, config: RCNNConfig):
        super().__init__()
        self.config = config
        c = config
        self.backbone = VGGFPN3D(c.in_channels, c.stem, c.stem_channels, c.backbone_channels, c.backbone_depths, c.fpn_channels, c.backbone_norm, c.base_stride)
        self.strides = self.backbone.strides
        self.rpn = FCOSProposals(
            c.fpn_channels,
            self.strides,
            num_convs=c.rpn_num_convs,
            size_ranges=c.rpn_size_ranges,
            center_radius=c.rpn_center_radius,
            focal_alpha=c.rpn_focal_alpha,
            focal_gamma=c.rpn_focal_gamma,
            pre_nms_top_n=(c.rpn_pre_nms_top_n_train, c.rpn_pre_nms_top_n_test),
            post_nms_top_n=(c.rpn_post_nms_top_n_train, c.rpn_post_nms_top_n_test),
            nms_thresh=c.rpn_nms_thresh,
            min_size=c.rpn_min_size,
        )
        self.box_head = BoxHead(c.fpn_channels, c.box_roi_size, c.box_fc_dim, c.num_classes)
        self.mask_head = MaskHead(c.fpn_channels, c.mask_channels, c.mask_num_convs, c.num_classes)
        self.box_coder = BoxCoder(c.box_coder_weights)

    # ------------------------------------------------------------------------------------------------ RoIs
    def _roi_align(self, feats: Sequence[Tensor], boxes: Tensor, batch_index: Tensor, size: int) -> Tensor:
        return multilevel_roi_align(feats, self.strides, boxes, batch_index, size, self.config.roi_canonical_size, self.config.roi_canonical_level)

    def sample_rois(self, proposals: Sequence[Tensor], targets: Sequence[RCNNTarget]) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """Sampled RoIs (R, 6), their scene index (R,), class labels (R,), regression targets (R, 6) and GT ids (R,)."""
        c = self.config
        rois, batch, labels, reg, ids = [], [], [], [], []
        for b, (props, tgt) in enumerate(zip(proposals, targets)):
            props = props.detach()
            gt = tgt.boxes.to(props.dtype)
            if c.append_gt_boxes and gt.shape[0]:
                props = torch.cat([props, gt])
            if gt.shape[0]:
                iou = box_iou_3d(props, gt)
                best, match = iou.max(dim=1)
                fg = best >= c.fg_iou_thresh
            else:
                match = torch.zeros(props.shape[0], dtype=torch.long, device=props.device)
                fg = torch.zeros(props.shape[0], dtype=torch.bool, device=props.device)
            fg_idx = torch.nonzero(fg).flatten()
            bg_idx = torch.nonzero(~fg).flatten()
            n_pos = min(int(c.rois_per_scene * c.positive_fraction), fg_idx.numel())
            n_neg = min(c.rois_per_scene - n_pos, bg_idx.numel())
            fg_idx = fg_idx[torch.randperm(fg_idx.numel(), device=props.device)[:n_pos]]
            bg_idx = bg_idx[torch.randperm(bg_idx.numel(), device=props.device)[:n_neg]]
            sel = torch.cat([fg_idx, bg_idx])
            r = props[sel]
            lab = torch.zeros(sel.numel(), dtype=torch.long, device=props.device)
            target_boxes = torch.zeros_like(r)
            gid = torch.zeros(sel.numel(), dtype=torch.long, device=props.device)
            if gt.shape[0]:
                m = match[sel]
                lab[:n_pos] = tgt.labels[m[:n_pos]]
                target_boxes = gt[m]
                gid[:n_pos] = tgt.ids[m[:n_pos]]
            rois.append(r)
            batch.append(torch.full((sel.numel(),), b, dtype=torch.long, device=props.device))
            labels.append(lab)
            reg.append(self.box_coder.encode(r, target_boxes) if gt.shape[0] else torch.zeros_like(r))
            ids.append(gid)
        return torch.cat(rois), torch.cat(batch), torch.cat(labels), torch.cat(reg), torch.cat(ids)

    def roi_losses(self, feats: Sequence[Tensor], proposals: Sequence[Tensor], targets: Sequence[RCNNTarget]) -> dict[str, Tensor]:
        c = self.config
        rois, batch, labels, reg_t, gids = self.sample_rois(proposals, targets)
        n = max(rois.shape[0], 1)
        cls_logits, deltas = self.box_head(self._roi_align(feats, rois, batch, c.box_roi_size))
        loss_cls = F.cross_entropy(cls_logits, labels) if rois.shape[0] else cls_logits.sum() * 0.0
        pos = torch.nonzero(labels > 0).flatten()
        if pos.numel() == 0:
            zero = deltas.sum() * 0.0
            return {"roi_cls": loss_cls, "roi_box": zero, "roi_mask": zero}
        d = deltas.view(deltas.shape[0], -1, 6)[pos, labels[pos]]
        loss_box = F.smooth_l1_loss(d, reg_t[pos], beta=1.0 / 9.0, reduction="sum") / n
        mask_logits = self.mask_head(self._roi_align(feats, rois[pos], batch[pos], c.mask_roi_size))
        mask_logits = mask_logits[torch.arange(pos.numel(), device=mask_logits.device), labels[pos]]
        size = mask_logits.shape[-1]
        mask_t = torch.zeros_like(mask_logits)
        for b, tgt in enumerate(targets):
            sel = torch.nonzero(batch[pos] == b).flatten()
            if sel.numel():
                if tgt.masks is None:
                    mask_t[sel] = crop_and_resize_binary(tgt.instance, rois[pos][sel], gids[pos][sel], size).to(mask_t.dtype)
                else:  # the row of each RoI's GT id in the mask stack
                    rows = (gids[pos][sel][:, None] == tgt.ids[None, :]).to(torch.int8).argmax(dim=1)
                    mask_t[sel] = crop_and_resize_masks(tgt.masks, rois[pos][sel], rows, size).to(mask_t.dtype)
        loss_mask = F.binary_cross_entropy_with_logits(mask_logits, mask_t)
        return {"roi_cls": loss_cls, "roi_box": loss_box, "roi_mask": loss_mask}

    # ------------------------------------------------------------------------------------------- inference
    @torch.no_grad()
    def detect(self, feats: Sequence[Tensor], proposals: Sequence[Tensor], shapes: Sequence[Sequence[int]]) -> list[dict[str, Tensor]]:
        c = self.config
        k_cls = c.num_classes
        rois = torch.cat(list(proposals))
        batch = torch.cat([torch.full((p.shape[0],), b, dtype=torch.long, device=p.device) for b, p in enumerate(proposals)])
        cls_logits, deltas = self.box_head(self._roi_align(feats, rois, batch, c.box_roi_size))
        probs = F.softmax(cls_logits, dim=1)
        boxes_all = self.box_coder.decode(deltas, rois).view(-1, k_cls, 6)
        results: list[dict[str, Tensor]] = []
        for b, shape in enumerate(shapes):
            sel = torch.nonzero(batch == b).flatten()
            boxes = clip_boxes(boxes_all[sel][:, 1:], shape).reshape(-1, 6)
            scores = probs[sel][:, 1:].reshape(-1)
            labels = torch.arange(1, k_cls, device=rois.device).repeat(sel.numel())
            keep = torch.nonzero(scores > c.box_score_thresh).flatten()
            boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
            keep = remove_small_boxes(boxes, c.box_min_size)
            boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
            keep = batched_nms_3d(boxes, scores, labels, c.box_nms_thresh, c.detections_per_scene)
            results.append({"boxes": boxes[keep], "scores": scores[keep], "labels": labels[keep]})
        det_boxes = torch.cat([r["boxes"] for r in results])
        det_batch = torch.cat([torch.full((r["boxes"].shape[0],), b, dtype=torch.long, device=det_boxes.device) for b, r in enumerate(results)])
        det_labels = torch.cat([r["labels"] for r in results])
        if det_boxes.shape[0]:
            logits = self.mask_head(self._roi_align(feats, det_boxes, det_batch, c.mask_roi_size))
            probs_m = torch.sigmoid(logits[torch.arange(det_boxes.shape[0], device=logits.device), det_labels])
        else:
            n = 2 * c.mask_roi_size
            probs_m = det_boxes.new_zeros((0, n, n, n))
        for b, r in enumerate(results):
            r["mask_probs"] = probs_m[det_batch == b]
        return results

    def forward(self, grids: Tensor, shapes: Sequence[Sequence[int]], targets: Sequence[RCNNTarget] | None = None) -> dict[str, Tensor] | list[dict[str, Tensor]]:
        """Losses (dict) when ``targets`` are given, else per scene ``{boxes, labels, scores, mask_probs}``."""
        feats = self.backbone(grids)
        gt_boxes = [t.boxes for t in targets] if targets is not None else None
        proposals, _, rpn_losses = self.rpn(feats, shapes, gt_boxes)
        if targets is not None:
            return {**rpn_losses, **self.roi_losses(feats, proposals, targets)}
        return self.detect(feats, proposals, shapes)


def predict_scene(model: NeRFRCNN, grid: np.ndarray | Tensor, device: torch.device | str | None = None) -> Detections:
    """Detect and segment the objects of one (X, Y, Z, 4) RGB + alpha grid.

    The grid is resampled to the model's working resolution (``config.input_resolution``) when they differ;
    boxes come back in voxel units of the **given** grid and masks are pasted at its full shape.
    """
    cfg = model.config
    if device is None:
        device = next(model.parameters()).device
    x = grid_to_tensor(grid)  # (C, X, Y, Z) float32
    orig = tuple(int(s) for s in x.shape[1:])
    work = working_shape(orig, cfg.input_resolution)
    x = resize_grid(x, work).to(device)
    batch, shapes = pad_grids([x])
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            det = model(batch, shapes)[0]
    finally:
        model.train(was_training)
    scale = torch.tensor([o / w for o, w in zip(orig, work)] * 2, dtype=torch.float32, device=device)
    boxes = det["boxes"].to(torch.float32) * scale
    masks = paste_masks_3d(det["mask_probs"], boxes, orig, cfg.mask_threshold)
    return Detections(
        boxes=boxes.cpu().numpy().astype(np.float32),
        labels=det["labels"].cpu().numpy().astype(np.int64),
        scores=det["scores"].cpu().numpy().astype(np.float32),
        masks=masks.cpu().numpy(),
    )
