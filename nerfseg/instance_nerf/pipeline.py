"""The steps of Instance-NeRF between the trained radiance field and the instance field, as plain functions.

:class:`nerfseg.instance_nerf.method.InstanceNeRF` strings them together with caching and resume; tests and
benchmarks call them one by one. Everything works at the radiance trainer's training resolution (its
``downscale``), where the ray bank holds the train images and where the matched labels become targets.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from nerfseg.instance_nerf.matching import MatchView, match_scene
from nerfseg.instance_nerf.refine import (
    CascadePSPRefiner,
    EdgeAwareRefiner,
    Refiner,
    refine_instance_map,
)
from nerfseg import spec
from nerfseg.errors import InputError
from nerfseg.io import write_npz_atomic
from nerfseg.methods import SceneData
from nerfseg.radiance.trainer import RadianceTrainer
from nerfseg.runs import downsample_labels, read_npz

logger = logging.getLogger(__name__)


@dataclass
class KeptDetections:
    """NeRF-RCNN detections kept for the instance field, in descending score: instance id = index + 1."""

    boxes: np.ndarray  # (K, 6) voxel units of the grid
    labels: np.ndarray  # (K,) class index 1..10
    scores: np.ndarray  # (K,)
    masks: np.ndarray  # (K, X, Y, Z) bool on the grid
    bbox_min: np.ndarray  # (3,) world metres of the grid box
    bbox_max: np.ndarray

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    def save(self, path: Path) -> None:
        write_npz_atomic(path, {"boxes": self.boxes, "labels": self.labels, "scores": self.scores, "masks": self.masks,
                                "bbox_min": self.bbox_min, "bbox_max": self.bbox_max})

    @classmethod
    def load(cls, path: Path) -> KeptDetections:
        d = read_npz(path)
        try:
            return cls(d["boxes"], d["labels"], d["scores"], d["masks"].astype(bool), d["bbox_min"], d["bbox_max"])
        except KeyError as exc:
            raise InputError(path, f"unreadable detections file (no array {exc})") from None


def keep_detections(det: Any, bbox_min: np.ndarray, bbox_max: np.ndarray, score_threshold: float = 0.5, max_instances: int | None = None) -> KeptDetections:
    """Detections with score > ``score_threshold`` (the reference's filter for projection and evaluation),
    best first, at most ``max_instances``; empty masks are dropped (they could never label a pixel)."""
    scores = np.asarray(det.scores, dtype=np.float32)
    order = np.argsort(-scores, kind="stable")
    order = order[scores[order] > score_threshold]
    masks = np.asarray(det.masks, dtype=bool)
    order = np.array([i for i in order.tolist() if masks[i].any()], dtype=np.int64)
    if max_instances is not None:
        order = order[: int(max_instances)]
    shape = masks.shape[1:] if masks.ndim == 4 else (0, 0, 0)
    return KeptDetections(
        boxes=np.asarray(det.boxes, dtype=np.float32).reshape(-1, 6)[order],
        labels=np.asarray(det.labels, dtype=np.int64)[order],
        scores=scores[order],
        masks=masks[order] if order.size else np.zeros((0, *shape), dtype=bool),
        bbox_min=np.asarray(bbox_min, dtype=np.float64),
        bbox_max=np.asarray(bbox_max, dtype=np.float64),
    )


def gt3d_detections(gt3d_path: Path, grid_shape: tuple[int, ...], bbox_min: np.ndarray, bbox_max: np.ndarray) -> Any:
    """ORACLE detections: the GT instances of ``gt3d.h5`` on a grid of ``grid_shape`` voxels over
    [bbox_min, bbox_max] (GT class, score 1, boxes in that grid's voxel units).

    The masks come from :func:`nerfseg.instance_nerf.rcnn.data.resample_gt_instances`, the same GT resampling that
    makes NeRF-RCNN's training targets and validation GT: a grid voxel belongs to every instance with a GT
    voxel inside it (max-pooling, so thin table tops survive a grid coarser than the GT) or under its centre.
    Masks may therefore overlap at boundaries, as NeRF-RCNN's do. Used to measure the stages after detection
    (matching, instance field, refinement) separately from the detector; never for a submission that claims
    to be the method (the method marks it ``uses_gt_masks``).
    """
    from nerfseg.instance_nerf.rcnn.data import resample_gt_instances
    from nerfseg.instance_nerf.rcnn.model import Detections
    from nerfseg.gt3d import read_gt3d

    gt = read_gt3d(gt3d_path)
    shape = tuple(int(s) for s in grid_shape[:3])
    ids, masks, _ = resample_gt_instances(gt, shape, (bbox_min, bbox_max))
    classes = gt.class_of()
    boxes = np.zeros((len(ids), 6), dtype=np.float32)
    for k in range(len(ids)):
        occupied = np.nonzero(masks[k])
        boxes[k] = [*(a.min() for a in occupied), *(a.max() + 1 for a in occupied)]
    return Detections(boxes, np.array([classes[int(i)] for i in ids], dtype=np.int64), np.ones(len(ids), dtype=np.float32), masks)


def render_train_views(
    trainer: RadianceTrainer, heads: Iterable[str] = (), indices: Iterable[int] | None = None, downscale: int = 1
) -> Iterable[tuple[int, dict[str, np.ndarray]]]:
    """Render train views of the trainer's ray bank (rgb, depth, opacity, heads) at the training resolution.

    ``downscale`` > 1 renders 1/downscale of the pixels per side and upsamples back to the training resolution
    (depth and opacity nearest, so depth edges stay sharp; rgb and head logits bilinear). Matching and
    refinement render every train view, which at full resolution was most of a ``mini`` run's time on a CPU;
    the depth they need only gates occlusion with a tolerance of voxels, and refinement works on the
    upsampled logits with the full-resolution train image as its guide.
    """
    bank = trainer.rays
    intr = bank.intr if downscale == 1 else bank.intr.scaled(1.0 / downscale)
    for i in range(bank.num_frames) if indices is None else indices:
        out = trainer.render_view(bank.c2w[i], intr, heads=list(heads))
        yield i, out if downscale == 1 else upsample_render(out, (bank.height, bank.width))


def upsample_render(out: dict[str, np.ndarray], size: tuple[int, int]) -> dict[str, np.ndarray]:
    """A rendered view's arrays resized to ``size`` (H, W): depth/opacity nearest, everything else bilinear."""
    resized = {}
    for key, value in out.items():
        t = torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32))
        t = (t[None, None] if t.ndim == 2 else t.permute(2, 0, 1)[None])
        if key in ("depth", "opacity"):
            r = F.interpolate(t, size=size, mode="nearest")
        else:
            r = F.interpolate(t, size=size, mode="bilinear", align_corners=False)
        r = r[0, 0] if value.ndim == 2 else r[0].permute(1, 2, 0)
        resized[key] = r.numpy()
    return resized


def match_train_views(
    trainer: RadianceTrainer,
    scene: SceneData,
    kept: KeptDetections,
    depths: np.ndarray,
    occlusion_tolerance: float | None = None,
    iou_threshold: float = 0.05,
    unlabel_background_under_instances: bool = False,
) -> np.ndarray:
    """(F, H, W) int32 training labels of the train views: -1 unlabelled, 0 background, k+1 instance k.

    Each kept 3D mask is projected into the view with the radiance field's rendered ``depths`` (F, H, W)
    as occluder (:func:`nerfseg.instance_nerf.matching.match_scene`); every prior segment takes the projected
    instance of highest IoU above ``iou_threshold``; background-class segments become 0, void -1 (and
    background under a projected instance -1 with ``unlabel_background_under_instances``, a departure from
    the paper). The prior is read at full resolution and sampled to the training resolution.
    """
    bank = trainer.rays
    factor = trainer.config.downscale
    views = []
    for i, name in enumerate(bank.frame_names):
        ids, segments = scene.prior_frame(name)
        ids = downsample_labels(ids, factor)
        if ids.shape != (bank.height, bank.width):
            raise InputError(scene.prior_dir, f"prior of frame {name} is {ids.shape}, the training views are {(bank.height, bank.width)}")
        views.append(MatchView(bank.c2w[i].numpy().astype(np.float64), bank.intr, ids, segments, depths[i]))
    if len(kept) == 0:
        # nothing to project: background segments stay 0, everything else is unlabelled
        masks = np.zeros((0, 1, 1, 1), dtype=bool)
        return np.stack(match_scene(masks, np.zeros(0), kept.bbox_min, kept.bbox_max, views, iou_threshold=iou_threshold))
    return np.stack(
        match_scene(kept.masks, kept.scores, kept.bbox_min, kept.bbox_max, views, occlusion_tolerance=occlusion_tolerance, iou_threshold=iou_threshold,
                    score_threshold=-np.inf, unlabel_background_under_instances=unlabel_background_under_instances)
    ).astype(np.int32)


def stage2_targets(refined: np.ndarray, matched: np.ndarray) -> np.ndarray:
    """Stage-2 training labels: the refined masks on the pixels the matching labelled; every pixel the
    matching left unlabelled (-1: prior void, or a segment no kept instance matched) stays -1, so the loss
    ignores it (the paper trains only on matched labels). Without this the argmax render of stage 1, which
    gives every pixel some label, would turn unmatched objects into background targets. Idempotent."""
    refined = np.asarray(refined)
    matched = np.asarray(matched)
    if refined.shape != matched.shape:
        raise InputError(None, f"refined labels {refined.shape} and matched labels {matched.shape} differ in shape")
    return np.where(matched < 0, -1, refined).astype(np.int64)


def backproject_pixels(c2w: np.ndarray, intr: Any, v: np.ndarray, u: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """World points (N, 3) of pixels (row ``v``, column ``u``) at ``depth`` along the optical axis (OpenGL camera
    looking along -z, v down, pixel centres at +0.5: the inverse of the matching's projection)."""
    x = (u + 0.5 - intr.cx) / intr.fx * depth
    y = -(v + 0.5 - intr.cy) / intr.fy * depth
    cam = np.stack([x, y, -depth, np.ones_like(depth)], axis=-1)
    return (cam @ np.asarray(c2w, dtype=np.float64).T)[:, :3]


def lift_unmatched_segments(
    trainer: RadianceTrainer,
    scene: SceneData,
    kept: KeptDetections,
    labels: np.ndarray,
    depths: np.ndarray,
    merge_overlap: float = 0.3,
    covered_fraction: float = 0.5,
    min_views: int = 2,
) -> tuple[KeptDetections, int]:
    """OPTIONAL (``keep_unmatched_segments``, off in the paper): prior segments of a thing class that the
    matching left unlabelled (no kept 3D instance matched them) become extra 3D instances instead of being
    dropped, so an object the detector missed can still be segmented.

    Each such segment is lifted into the detection grid with the rendered ``depths`` (its pixels' surface
    points -> voxels); segments of different views whose voxels overlap (> ``merge_overlap`` of the new
    segment's voxels) are one instance, so ids stay consistent across views. Segments whose voxels lie mostly
    (> ``covered_fraction``) inside a kept detection are skipped (fragments of a detected object), and an
    instance seen in fewer than ``min_views`` views is dropped (a one-view mistake of the prior). Class: the
    majority of its segments' prior classes; score: their mean prior score (1 without one), capped at the
    lowest detection score so that detections win overlapping voxels. -> (extended detections, number added);
    the extras come after the detections (ids len(kept)+1...). The caller matches again with them.
    """
    shape = np.asarray(kept.masks.shape[1:], dtype=np.int64)
    covered = kept.masks.any(0).reshape(-1) if len(kept) else np.zeros(int(np.prod(shape)), dtype=bool)
    extras: list[dict[str, Any]] = []  # voxels (set of flat indices), classes, scores, views
    for i, name in enumerate(trainer.rays.frame_names):
        ids, segments = scene.prior_frame(name)
        ids = downsample_labels(ids, trainer.config.downscale)
        for seg_id, seg in segments.items():
            cat = int(seg.get("category_id", 0))
            if not 1 <= cat < len(spec.CLASS_NAMES):
                continue
            vox = _segment_voxels(trainer, kept, i, (ids == seg_id) & (labels[i] < 0), depths[i])
            if vox is None or covered[vox].mean() > covered_fraction:
                continue
            _add_to_extras(extras, vox, cat, float(seg.get("score", 1.0)), i, merge_overlap)
    extras = [e for e in extras if len(e["views"]) >= min_views]
    if not extras:
        return kept, 0
    return _append_extras(kept, extras), len(extras)


def _segment_voxels(trainer: RadianceTrainer, kept: KeptDetections, view: int, pixels: np.ndarray, depth: np.ndarray) -> np.ndarray | None:
    """Flat indices of the detection-grid voxels that a segment's pixels (with rendered depth) land in; None
    when fewer than 4 pixels have a depth or none lands inside the grid."""
    bank = trainer.rays
    shape = np.asarray(kept.masks.shape[1:], dtype=np.int64)
    lo, hi = np.asarray(kept.bbox_min, dtype=np.float64), np.asarray(kept.bbox_max, dtype=np.float64)
    vv, uu = np.nonzero(pixels)
    d = depth[vv, uu].astype(np.float64)
    ok = np.isfinite(d) & (d > 0)
    if ok.sum() < 4:
        return None
    pts = backproject_pixels(bank.c2w[view].numpy(), bank.intr, vv[ok].astype(np.float64), uu[ok].astype(np.float64), d[ok])
    cell = np.floor((pts - lo) / (hi - lo) * shape).astype(np.int64)
    inside = np.all((cell >= 0) & (cell < shape), axis=1)
    if not inside.any():
        return None
    return np.unique((cell[inside, 0] * shape[1] + cell[inside, 1]) * shape[2] + cell[inside, 2])


def _add_to_extras(extras: list[dict[str, Any]], vox: np.ndarray, cat: int, score: float, view: int, merge_overlap: float) -> None:
    """Merge a lifted segment into the extra instance it overlaps most (> ``merge_overlap``), else start one."""
    best, best_overlap = None, merge_overlap
    for e in extras:
        overlap = len(e["voxels"].intersection(vox.tolist())) / vox.size
        if overlap > best_overlap:
            best, best_overlap = e, overlap
    if best is None:
        best = {"voxels": set(), "classes": [], "scores": [], "views": set()}
        extras.append(best)
    best["voxels"].update(vox.tolist())
    best["classes"].append(cat)
    best["scores"].append(score)
    best["views"].add(view)


def _append_extras(kept: KeptDetections, extras: list[dict[str, Any]]) -> KeptDetections:
    """The detections followed by the extra instances (majority class, mean score capped at the lowest detection's)."""
    shape = np.asarray(kept.masks.shape[1:], dtype=np.int64)
    cap = float(kept.scores.min()) if len(kept) else 1.0
    masks, boxes, labels_, scores = [], [], [], []
    for e in extras:
        m = np.zeros(int(np.prod(shape)), dtype=bool)
        m[np.fromiter(e["voxels"], dtype=np.int64)] = True
        m = m.reshape(tuple(shape))
        nz = np.nonzero(m)
        masks.append(m)
        boxes.append([*(a.min() for a in nz), *(a.max() + 1 for a in nz)])
        labels_.append(int(np.bincount(e["classes"]).argmax()))
        scores.append(min(float(np.mean(e["scores"])), cap))
    return KeptDetections(
        boxes=np.concatenate([kept.boxes.reshape(-1, 6), np.asarray(boxes, dtype=np.float32)]),
        labels=np.concatenate([kept.labels.astype(np.int64), np.asarray(labels_, dtype=np.int64)]),
        scores=np.concatenate([kept.scores.astype(np.float32), np.asarray(scores, dtype=np.float32)]),
        masks=np.concatenate([kept.masks.astype(bool), np.stack(masks)]),
        bbox_min=kept.bbox_min,
        bbox_max=kept.bbox_max,
    )


def make_refiner(weights: str | None, device: str = "cpu") -> Refiner:
    """CascadePSP when weights are given (the reference's refiner), else the edge-aware guided filter."""
    if weights:
        return CascadePSPRefiner(weights, device=device)
    return EdgeAwareRefiner()


def refine_train_views(
    trainer: RadianceTrainer, head: str, refiner: Refiner, downscale: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Render the instance field's preliminary masks of every train view (at 1/``downscale``, logits upsampled),
    refine each instance separately with the view's RGB image and rendered depth, recompose
    -> (refined (F,H,W) int32, rendered (F,H,W) int32)."""
    bank = trainer.rays
    refined = np.zeros((bank.num_frames, bank.height, bank.width), dtype=np.int32)
    rendered = np.zeros_like(refined)
    for i, out in render_train_views(trainer, [head], downscale=downscale):
        labels = out[head].argmax(-1).astype(np.int32)
        rendered[i] = labels
        refined[i] = refine_instance_map(labels, bank.images[i].numpy(), out["depth"], refiner)
    logger.info("refinement changed %.2f%% of the train pixels", 100 * float(np.mean(refined != rendered)))
    return refined, rendered
