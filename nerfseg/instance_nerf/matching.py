"""2D-3D mask matching (Instance-NeRF, paper section 3.3): project 3D instance masks into the train views
and relabel the per-view 2D panoptic prior with multi-view-consistent 3D instance ids.

Why: a 2D panoptic network labels each view independently, so "instance 3" in one view has nothing to do with
"instance 3" in the next. NeRF-RCNN's 3D masks are consistent across views by construction; projecting them gives
every view the same ids, and the 2D segments (sharper than a coarse voxel projection) inherit those ids by IoU.

Steps (each a public function, so the pipeline, the tests and the occlusion benchmark use the same code):

1. :func:`resolve_instance_masks`: keep detections with score > 0.5 and give a voxel claimed by several
   instances to the highest score (as the reference ``project_3d_masks.py``) -> one (X,Y,Z) label grid.
2. :func:`project_cloud` / :func:`project_instance_masks`: render the label grid into a view. Every voxel
   is splatted over the pixel footprint of its cube (the bounding box of its 8 projected corners by default, so
   a solid or surface voxel object projects without holes at any distance) and a z-buffer keeps the nearest
   voxel per pixel. With the radiance field's rendered ``depth`` of that view, samples lying behind the visible
   surface by more than a tolerance are dropped: that is the occlusion test the reference lacked (it splatted
   points with PyTorch3D and loaded, but never used, the NeRF density), so an instance hidden behind a wall,
   a banned object or any non-instance geometry no longer claims the pixels of its occluder.
3. :func:`match_prior_to_instances`: the reference ``match_seg.py`` rules: prior void -> -1 (ignored by the
   loss), background-class segments -> 0, every other segment takes the projected instance with the largest
   IoU if that IoU > 0.05, else -1. A view into which nothing projects keeps its background segments at 0 and
   marks every other segment -1 (the reference ``match_seg.py`` does the same: ``output[seg_map > 0] = -1``
   leaves background, 0, untouched).

Conventions: grid voxel (i,j,k) has its centre at ``bbox_min + (idx + 0.5) * (bbox_max - bbox_min) / shape``
(nerfseg.gt3d; the reference used ``idx / res`` without the half voxel, a half-voxel shift we do not copy);
pixels and cameras as nerfseg.cameras (pixel (u,v) covers [u,u+1) x [v,v+1), centre at +0.5, v down, OpenGL
camera looking along -z, depth along the optical axis). Label maps are int32: 0 = no instance, k+1 = instance k
of the input (the input index, also after the score filter drops some: ids are never renumbered here, so a
caller that wants contiguous ids filters its detections first, as the reference's rank-in-kept-list did).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from nerfseg.cameras import Intrinsics
from nerfseg.errors import InputError

#: reference (project_3d_masks.py / eval.py): NeRF-RCNN detections with score <= 0.5 are dropped
SCORE_THRESHOLD = 0.5
#: reference (match_seg.py iou_thresh): a 2D segment takes a 3D instance id when their IoU exceeds this
IOU_THRESHOLD = 0.05
#: default occlusion tolerance in voxel edges. A voxel is hidden when its nearest corner lies more than this
#: behind the rendered surface of the pixel. The nearest corner (not the centre) is used because the z-buffer
#: spreads one depth over the whole footprint while a grazing surface seen through that footprint is up to the
#: voxel's depth extent nearer; the tolerance then absorbs voxelisation (a centre-inside voxel pokes out of or
#: sinks into the true surface by up to half a diagonal) and depth noise of a rendered radiance field. Measured on
#: demo scenes (benchmarks/matching_occlusion.py): 0.5 edge loses ~3.5% of visible object pixels, 2 edges ~1.3%,
#: while occluders are hidden equally well from 0.5 to 3 edges
DEFAULT_TOLERANCE_VOXELS = 2.0
#: how a voxel covers pixels: "corners" = bounding box of its 8 projected corners (hole-free, slightly
#: dilated at silhouettes), "square" = a square of the cube's face-on size around the projected centre,
#: "point" = the one pixel under the projected centre (what a fixed-radius point splat degenerates to when
#: voxels are small)
SPLAT_MODES = ("corners", "square", "point")
#: nearest voxel depth that is still rendered (metres along the optical axis)
NEAR = 1e-3
#: (voxel, pixel) pairs processed per chunk: bounds memory when voxels near the camera cover many pixels
_CHUNK_PAIRS = 1 << 21


class MatchView(NamedTuple):
    """One train view for :func:`match_scene` (a plain 5-tuple in the same order works too)."""

    c2w: np.ndarray  # (4,4) camera-to-world, OpenGL axes
    intr: Intrinsics
    prior_ids: np.ndarray  # (H,W) uint32 panoptic segment ids of the 2D prior, 0 = void
    prior_segments: Any  # {segment id: {"category_id": c, ...}} or a COCO segments_info list
    depth: np.ndarray | None  # (H,W) rendered depth along the optical axis (metres), 0/inf/nan = no surface


# ---------------------------------------------------------------------------------------------
# 1. detections -> one label grid


def resolve_instance_masks(masks: np.ndarray, scores: np.ndarray | Sequence[float] | None = None, score_threshold: float = SCORE_THRESHOLD) -> np.ndarray:
    """(K,X,Y,Z) bool masks + (K,) scores -> (X,Y,Z) int32 label grid (0 = free, k+1 = instance k).

    Instances with score <= ``score_threshold`` are dropped; a voxel claimed by several kept instances goes to
    the highest score (ties: the lower index), as the reference resolves overlaps before projecting.
    ``scores=None`` treats every mask as a score-1 detection (GT masks, tests). The loop runs over instances,
    never voxels: each kept mask is written once, in ascending priority so the highest score writes last.
    """
    masks = np.asarray(masks)
    if masks.ndim != 4:
        raise InputError(None, f"3D instance masks must be (K,X,Y,Z), got shape {masks.shape}", key="masks")
    k = masks.shape[0]
    scores_arr = np.ones(k) if scores is None else np.asarray(scores, dtype=np.float64).reshape(-1)
    if scores_arr.shape != (k,):
        raise InputError(None, f"{scores_arr.size} scores for {k} masks", key="scores")
    if not np.all(np.isfinite(scores_arr)):
        raise InputError(None, "scores contain NaN or inf", key="scores")
    grid = np.zeros(masks.shape[1:], dtype=np.int32)
    kept = np.flatnonzero(scores_arr > score_threshold)
    # ascending score, and for equal scores the higher index first, so the lower index writes last and wins
    order = kept[np.lexsort((-kept, scores_arr[kept]))]
    for idx in order.tolist():
        grid[masks[idx].astype(bool, copy=False)] = idx + 1
    return grid


def _voxel_geometry(shape: tuple[int, ...], bbox_min: Any, bbox_max: Any) -> tuple[np.ndarray, np.ndarray]:
    lo = np.asarray(bbox_min, dtype=np.float64).reshape(-1)
    hi = np.asarray(bbox_max, dtype=np.float64).reshape(-1)
    if lo.shape != (3,) or hi.shape != (3,):
        raise InputError(None, f"bbox_min/bbox_max must be 3-vectors, got {lo.shape} and {hi.shape}", key="bbox")
    if not np.all(hi > lo):
        raise InputError(None, f"bbox_max {hi.tolist()} must exceed bbox_min {lo.tolist()} on every axis", key="bbox")
    return lo, (hi - lo) / np.asarray(shape, dtype=np.float64)


def visible_voxels(label_grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices (N,3) and labels (N,) of the labelled voxels that can be seen from outside.

    A voxel whose 6 face neighbours are all labelled (by any instance) is enclosed by their cubes and never
    wins a z-buffer, so dropping it changes no pixel while a solid grid shrinks to its shell (the bulk of the
    projection cost). Voxels on the grid border count as exposed.
    """
    occ = label_grid > 0
    interior = occ.copy()
    interior[0, :, :] = interior[-1, :, :] = False
    interior[:, 0, :] = interior[:, -1, :] = False
    interior[:, :, 0] = interior[:, :, -1] = False
    core = (slice(1, -1),) * 3
    for axis in range(3):
        lo = [slice(1, -1)] * 3
        hi = [slice(1, -1)] * 3
        lo[axis] = slice(0, -2)
        hi[axis] = slice(2, None)
        interior[core] &= occ[tuple(lo)] & occ[tuple(hi)]
    idx = np.argwhere(occ & ~interior)
    return idx, label_grid[idx[:, 0], idx[:, 1], idx[:, 2]].astype(np.int32)


class VoxelCloud:
    """The visible voxels of a label grid with their world geometry: built once per scene, projected per view."""

    def __init__(self, label_grid: np.ndarray, bbox_min: Any, bbox_max: Any):
        label_grid = np.asarray(label_grid)
        if label_grid.ndim != 3:
            raise InputError(None, f"label grid must be (X,Y,Z), got shape {label_grid.shape}", key="label_grid")
        if label_grid.size and label_grid.min() < 0:
            raise InputError(None, "label grid has negative ids", key="label_grid")
        self.shape = tuple(int(s) for s in label_grid.shape)
        self.bbox_min, self.voxel_size = _voxel_geometry(self.shape, bbox_min, bbox_max)
        idx, self.labels = visible_voxels(label_grid)
        self.centres = self.bbox_min + (idx + 0.5) * self.voxel_size

    @property
    def edge(self) -> float:
        """Mean voxel edge (metres): the unit of the occlusion tolerance."""
        return float(np.mean(self.voxel_size))


# ---------------------------------------------------------------------------------------------
# 2. label grid -> label map of one view


def _check_view(c2w: np.ndarray, intr: Intrinsics, depth: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    c2w = np.asarray(c2w, dtype=np.float64)
    if c2w.shape not in ((4, 4), (3, 4)) or not np.all(np.isfinite(c2w)):
        raise InputError(None, f"c2w must be a finite 4x4 (or 3x4) matrix, got shape {c2w.shape}", key="c2w")
    if c2w.shape == (3, 4):
        c2w = np.vstack([c2w, [0.0, 0.0, 0.0, 1.0]])
    if depth is not None:
        depth = np.asarray(depth, dtype=np.float64)
        if depth.shape != (intr.height, intr.width):
            raise InputError(None, f"depth map is {depth.shape}, the camera is {intr.height}x{intr.width}", key="depth")
    return c2w, depth


def _footprints(cam: np.ndarray, half: np.ndarray, offsets: np.ndarray, intr: Intrinsics, splat: str) -> tuple[np.ndarray, ...]:
    """Integer pixel boxes [u0,u1) x [v0,v1) of voxels with camera-space centres ``cam`` (N,3).

    A pixel belongs to a voxel when its centre (u+0.5, v+0.5) lies in the voxel's projected box; the pixel under
    the projected centre always does, so a voxel smaller than a pixel still lands somewhere.
    """
    z = -cam[:, 2]
    uc = intr.fx * cam[:, 0] / z + intr.cx
    vc = -intr.fy * cam[:, 1] / z + intr.cy
    if splat == "corners":
        corners = cam[:, None, :] + offsets[None, :, :]  # (N,8,3)
        zc = -corners[..., 2]
        uu = intr.fx * corners[..., 0] / zc + intr.cx
        vv = -intr.fy * corners[..., 1] / zc + intr.cy
        umin, umax, vmin, vmax = uu.min(1), uu.max(1), vv.min(1), vv.max(1)
    elif splat == "square":
        hu = intr.fx * half / z
        hv = intr.fy * half / z
        umin, umax, vmin, vmax = uc - hu, uc + hu, vc - hv, vc + hv
    else:  # point
        umin = umax = uc
        vmin = vmax = vc
    fu, fv = np.floor(uc), np.floor(vc)
    u0 = np.minimum(np.ceil(umin - 0.5), fu)
    u1 = np.maximum(np.floor(umax - 0.5) + 1, fu + 1)
    v0 = np.minimum(np.ceil(vmin - 0.5), fv)
    v1 = np.maximum(np.floor(vmax - 0.5) + 1, fv + 1)
    u0 = np.clip(u0, 0, intr.width).astype(np.int64)
    u1 = np.clip(u1, 0, intr.width).astype(np.int64)
    v0 = np.clip(v0, 0, intr.height).astype(np.int64)
    v1 = np.clip(v1, 0, intr.height).astype(np.int64)
    return u0, u1, v0, v1, z


def project_cloud(
    cloud: VoxelCloud,
    c2w: np.ndarray,
    intr: Intrinsics,
    depth: np.ndarray | None = None,
    occlusion_tolerance: float | None = None,
    splat: str = "corners",
) -> tuple[np.ndarray, np.ndarray]:
    """Render ``cloud`` into a view: (H,W) int32 labels and (H,W) float64 z-buffer (inf where empty).

    Vectorised: every voxel expands into the (voxel, pixel) pairs of its footprint (np.repeat over footprint
    areas), pairs behind the visible surface are dropped, and a lexsort on (pixel, depth) keeps the nearest pair
    per pixel. Chunks of at most ``_CHUNK_PAIRS`` pairs bound the memory; their winners merge into the buffers.
    ``occlusion_tolerance`` is in metres (None: ``DEFAULT_TOLERANCE_VOXELS`` mean voxel edges): a voxel sample is
    dropped when the voxel's nearest corner lies more than that behind ``depth`` at the pixel; depth values <= 0 or
    not finite mean "no surface" and hide nothing.
    """
    if splat not in SPLAT_MODES:
        raise InputError(None, f"unknown splat mode {splat!r}; expected one of {SPLAT_MODES}", key="splat")
    c2w, depth = _check_view(c2w, intr, depth)
    h, w = intr.height, intr.width
    labels = np.zeros(h * w, dtype=np.int32)
    zbuf = np.full(h * w, np.inf)
    if cloud.labels.size == 0:
        return labels.reshape(h, w), zbuf.reshape(h, w)
    tol = DEFAULT_TOLERANCE_VOXELS * cloud.edge if occlusion_tolerance is None else float(occlusion_tolerance)
    if tol < 0:
        raise InputError(None, f"occlusion tolerance must be >= 0, got {tol}", key="occlusion_tolerance")
    surf = None
    if depth is not None:
        surf = depth.reshape(-1).copy()
        surf[~np.isfinite(surf) | (surf <= 0)] = np.inf  # no surface: nothing occludes

    w2c = np.linalg.inv(c2w)
    rot, trans = w2c[:3, :3], w2c[:3, 3]
    cam = cloud.centres @ rot.T + trans
    signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], dtype=np.float64)
    offsets = (signs * cloud.voxel_size / 2) @ rot.T  # corner offsets in camera space (8,3)
    # a voxel is drawn only when its nearest corner is in front of the camera (one straddling the image plane
    # sits at the eye and would cover the whole view)
    near_z = -cam[:, 2] - np.abs(offsets[:, 2]).max()
    front = near_z > NEAR
    cam, labs = cam[front], cloud.labels[front]
    if labs.size == 0:
        return labels.reshape(h, w), zbuf.reshape(h, w)
    u0, u1, v0, v1, z = _footprints(cam, cloud.edge / 2, offsets, intr, splat)
    # the occlusion test compares the voxel's nearest corner (not its centre) with the surface: the z-buffer
    # spreads the centre depth over the whole footprint, and on a grazing surface the pixels of that footprint
    # see the surface up to the voxel's depth extent nearer than the centre
    slack = tol + float(np.abs(offsets[:, 2]).max())
    bw, bh = u1 - u0, v1 - v0
    area = np.where((bw > 0) & (bh > 0), bw * bh, 0)
    keep = np.flatnonzero(area)
    if keep.size == 0:
        return labels.reshape(h, w), zbuf.reshape(h, w)
    _splat_nearest(u0[keep], v0[keep], bw[keep], area[keep], z[keep], labs[keep], w, surf, slack, labels, zbuf)
    return labels.reshape(h, w), zbuf.reshape(h, w)


def _splat_nearest(u0: np.ndarray, v0: np.ndarray, bw: np.ndarray, area: np.ndarray, z: np.ndarray, labs: np.ndarray, w: int,
                   surf: np.ndarray | None, slack: float, labels: np.ndarray, zbuf: np.ndarray) -> None:
    """Expand each voxel's footprint box (u0, v0, width bw, ``area`` pixels) into (voxel, pixel) pairs, drop the
    pairs deeper than ``surf + slack`` and write the nearest pair per pixel into the flat ``labels``/``zbuf``."""
    ends = np.cumsum(area)
    start = 0
    while start < area.size:
        # voxels [start, stop) hold at most _CHUNK_PAIRS pairs (a single huge voxel gets a chunk of its own)
        base = ends[start - 1] if start else 0
        stop = max(int(np.searchsorted(ends, base + _CHUNK_PAIRS, side="right")), start + 1)
        sl = slice(start, stop)
        n_pairs = int(ends[stop - 1] - base)
        vox = np.repeat(np.arange(stop - start), area[sl])
        local = np.arange(n_pairs, dtype=np.int64) - np.repeat(ends[sl] - area[sl] - base, area[sl])
        bw_rep = bw[sl][vox]
        pu = u0[sl][vox] + local % bw_rep
        pv = v0[sl][vox] + local // bw_rep
        pix = pv * w + pu
        pz = z[sl][vox]
        if surf is not None:
            vis = pz <= surf[pix] + slack
            pix, pz, vox = pix[vis], pz[vis], vox[vis]
        if pix.size:
            order = np.lexsort((pz, pix))
            ps = pix[order]
            first = np.empty(ps.size, dtype=bool)
            first[0] = True
            np.not_equal(ps[1:], ps[:-1], out=first[1:])
            win = order[first]
            wp, wz = pix[win], pz[win]
            better = wz < zbuf[wp]
            zbuf[wp[better]] = wz[better]
            labels[wp[better]] = labs[sl][vox[win[better]]]
        start = stop


def project_instance_masks(
    masks: np.ndarray,
    bbox_min: Any,
    bbox_max: Any,
    c2w: np.ndarray,
    intr: Intrinsics,
    depth: np.ndarray | None = None,
    occlusion_tolerance: float | None = None,
    *,
    scores: np.ndarray | Sequence[float] | None = None,
    score_threshold: float = SCORE_THRESHOLD,
    splat: str = "corners",
) -> np.ndarray:
    """Render (K,X,Y,Z) bool 3D instance masks into one view -> (H,W) int32 (0 = none, k+1 = instance k).

    Detections with score <= ``score_threshold`` are dropped and overlaps go to the highest score
    (:func:`resolve_instance_masks`; ``scores=None`` = all 1). ``depth``: the rendered depth of this view
    (metres along the optical axis); with it, voxels whose nearest corner lies more than ``occlusion_tolerance``
    metres (default 2 mean voxel edges) behind the visible surface are hidden. Without it only the z-buffer among instance voxels hides
    anything (the reference behaviour). For many views of one scene use :func:`match_scene` or a
    :class:`VoxelCloud` with :func:`project_cloud`, which resolve the grid once.
    """
    grid = resolve_instance_masks(masks, scores, score_threshold)
    return project_cloud(VoxelCloud(grid, bbox_min, bbox_max), c2w, intr, depth, occlusion_tolerance, splat)[0]


# ---------------------------------------------------------------------------------------------
# 3. 2D prior segments -> 3D instance ids


def _segment_categories(prior_segments: Any, source: str | Path | None) -> dict[int, int]:
    """{segment id: category_id} from a {id: {category_id}} mapping or a COCO segments_info list."""
    out: dict[int, int] = {}
    try:
        if isinstance(prior_segments, Mapping):
            for seg_id, seg in prior_segments.items():
                cat = seg["category_id"] if isinstance(seg, Mapping) else seg
                out[int(seg_id)] = int(cat)
        else:
            for seg in prior_segments:
                out[int(seg["id"])] = int(seg["category_id"])
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(source, f"segments must map id -> {{'category_id': c}} or be a segments_info list ({exc!r})", key="segments_info") from None
    return out


def match_prior_to_instances(
    prior_ids: np.ndarray,
    prior_segments: Any,
    projected: np.ndarray,
    iou_threshold: float = IOU_THRESHOLD,
    *,
    unlabel_empty_views: bool = False,
    unlabel_background_under_instances: bool = False,
    source: str | Path | None = None,
) -> np.ndarray:
    """Relabel a 2D panoptic prior with 3D instance ids -> (H,W) int32 training labels.

    Rules (reference ``match_seg.py``): prior void (id 0) -> -1 (unlabelled, ignored by the loss); a segment
    whose category is background (0) -> 0; any other segment -> the projected instance k+1 with the largest IoU
    (segment mask vs the whole projected mask of k+1; ties -> lower id) when that IoU > ``iou_threshold``,
    else -1. A view without any projection therefore labels all non-background segments -1 and keeps background
    0, exactly as the reference (its empty-view branch sets only segments > 0 to -1; background is 0 there);
    ``unlabel_empty_views=True`` instead marks the whole view -1, a departure from the reference for callers
    that want such a view to give no supervision at all. ``unlabel_background_under_instances=True`` (a departure
    from the reference, off by default) marks -1 every background pixel onto which a kept instance projects: the
    prior's "background" there contradicts a 3D detection that survived the occlusion test, and left at 0 it
    outvotes the object in the instance field (docs/instance-nerf.md, "What limits it"); unlabelled, the
    field learns those cells from the views whose prior did see the object. All IoUs come from one joint
    histogram (np.bincount over packed (segment, label)).
    ``prior_segments``: {segment id: {"category_id": c}} or a COCO ``segments_info`` list; ``source`` names the
    prior file in errors.
    """
    prior_ids = np.asarray(prior_ids)
    projected = np.asarray(projected)
    if prior_ids.ndim != 2 or prior_ids.shape != projected.shape:
        raise InputError(source, f"prior ids {prior_ids.shape} and projected labels {projected.shape} must be equal 2D shapes")
    if projected.size and projected.min() < 0:
        raise InputError(source, "projected label map has negative ids", key="projected")
    categories = _segment_categories(prior_segments, source)
    seg_ids, inverse = np.unique(prior_ids.reshape(-1), return_inverse=True)
    n_proj = int(projected.max()) + 1 if projected.size else 1
    lab = projected.reshape(-1).astype(np.int64)
    joint = np.bincount(inverse.astype(np.int64) * n_proj + lab, minlength=seg_ids.size * n_proj).reshape(seg_ids.size, n_proj)
    seg_area = joint.sum(axis=1)
    proj_area = np.bincount(lab, minlength=n_proj)

    seg_label = np.full(seg_ids.size, -1, dtype=np.int32)
    if n_proj > 1:
        inter = joint[:, 1:].astype(np.float64)
        union = seg_area[:, None] + proj_area[None, 1:] - inter
        iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        best = np.argmax(iou, axis=1)
        best_iou = iou[np.arange(seg_ids.size), best]
        seg_label = np.where(best_iou > iou_threshold, best + 1, -1).astype(np.int32)
    missing = [int(s) for s in seg_ids.tolist() if s != 0 and int(s) not in categories]
    if missing:
        raise InputError(source, f"segment ids {missing[:5]} of the prior map have no segments_info entry", key="segments_info")
    is_background = np.array([s != 0 and categories[int(s)] == 0 for s in seg_ids.tolist()], dtype=bool)
    seg_label[is_background] = 0
    seg_label[seg_ids == 0] = -1
    if unlabel_empty_views and not proj_area[1:].any():
        seg_label[:] = -1
    labels = seg_label[inverse].reshape(prior_ids.shape)
    if unlabel_background_under_instances:
        labels[(labels == 0) & (projected > 0)] = -1
    return labels


# ---------------------------------------------------------------------------------------------
# convenience: a whole scene


def match_scene(
    masks: np.ndarray,
    scores: np.ndarray | Sequence[float] | None,
    bbox_min: Any,
    bbox_max: Any,
    views: Sequence[MatchView | tuple],
    *,
    occlusion_tolerance: float | None = None,
    iou_threshold: float = IOU_THRESHOLD,
    score_threshold: float = SCORE_THRESHOLD,
    splat: str = "corners",
    unlabel_background_under_instances: bool = False,
) -> list[np.ndarray]:
    """Matched training labels (H,W) int32 (-1 / 0 / k+1) for every view; the grid is resolved and reduced to
    its visible voxels once. Each view: (c2w, intr, prior_ids, prior_segments, depth or None).
    ``unlabel_background_under_instances``: as :func:`match_prior_to_instances`."""
    cloud = VoxelCloud(resolve_instance_masks(masks, scores, score_threshold), bbox_min, bbox_max)
    out = []
    for i, view in enumerate(views):
        if len(view) != 5:
            raise InputError(None, f"view {i} must be (c2w, intr, prior_ids, prior_segments, depth), got {len(view)} items", key="views")
        c2w, intr, prior_ids, prior_segments, depth = view
        projected, _ = project_cloud(cloud, c2w, intr, depth, occlusion_tolerance, splat)
        out.append(match_prior_to_instances(prior_ids, prior_segments, projected, iou_threshold,
                                            unlabel_background_under_instances=unlabel_background_under_instances))
    return out
