"""One view of the simulated priors (``sim-m2f`` and ``sim-m2f-indep``): GT maps in, a noisy panoptic prediction out.

:func:`simulate_sim_m2f` runs the noise model of :class:`nerfseg.dataset_tools.prior_params.SimM2FParams` as named
steps over one working state (:class:`_ViewState`): misses -> merges -> split-off parts -> class confusion ->
spurious segments -> boundary noise and edge snapping -> ids and scores. Without a
:class:`nerfseg.dataset_tools.sim_m2f.ViewContext` every decision is an independent draw (the ``sim-m2f-indep``
model); with one, decisions share the scene's per-object latents. The steps draw from the view's generator in a
fixed order, which is what makes a seed reproduce the same files: do not reorder draws when editing a step.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from nerfseg import spec
from nerfseg.dataset_tools.prior_io import GTViewMaps
from nerfseg.dataset_tools.prior_masks import (
    coco_segments_info,
    instance_classes,
    signed_distance,
    touching_pairs,
    unit_field,
)
from nerfseg.dataset_tools.prior_params import (
    OTHERFURNITURE,
    PRIOR_STREAMS,
    SimM2FParams,
    frame_rng,
    scene_key,
)
from nerfseg.dataset_tools.sim_m2f import (
    CONFUSE,
    HOLE,
    KEY_OBJECT,
    KEY_PAIR,
    MISS,
    PART,
    PART_CLASS,
    SPLIT,
    ObjectLatents,
    SceneContext,
    ViewContext,
    correlated_uniform,
    edge_map,
    site_blobs,
    snap_to_edges,
    split_part_3d,
)
from nerfseg.errors import InputError

# Segment kinds decide the score distribution.
_TRUE, _CONFUSED, _SPURIOUS, _STUFF = 0, 1, 2, 3
_VOID = -1  # GT void (rays that hit nothing) and final void
_MISSED_VOID = -2  # a missed instance that leaves a hole: noised like a segment, then set to void


def confusion_matrix(params: SimM2FParams) -> np.ndarray:
    """(11, 11) row-stochastic matrix P[true, pred] from the params' name table."""
    mat = np.eye(spec.NUM_CLASSES)
    for true_name, row in params.confusion.items():
        t = spec.CLASS_INDEX_BY_NAME[true_name]
        for pred_name, p in row.items():
            mat[t, spec.CLASS_INDEX_BY_NAME[pred_name]] += p
            mat[t, t] -= p
    return mat


@dataclass
class _ViewState:
    """Working state of one view's simulation, handed from step to step (index k of the per-instance arrays is
    the compact label of GT id ``uniq[k]``; 0 = the background stuff segment)."""

    params: SimM2FParams
    rng: np.random.Generator
    view: ViewContext | None
    scale: float  # image height / reference height: pixel lengths of the params scale with it
    void_mask: np.ndarray  # (H, W) GT void, stays void
    uniq: np.ndarray  # (n,) GT instance id per compact label
    cls: np.ndarray  # (n,) true class per compact label
    area: np.ndarray  # (n,) pixels per compact label
    lab: np.ndarray  # (H, W) compact label, _VOID for GT void
    rho: float  # consistency in effect (0 without a view context)
    dirs: np.ndarray | None  # object -> camera directions for the view-dependent latents
    conf_mat: np.ndarray = field(default_factory=lambda: np.eye(spec.NUM_CLASSES))
    seg: np.ndarray | None = None  # (H, W) index into seg_cls / seg_kind, negative = void kinds
    seg_cls: list[int] = field(default_factory=list)
    seg_kind: list[int] = field(default_factory=list)

    @property
    def n(self) -> int:
        return int(self.uniq.size)

    @property
    def min_area(self) -> float:
        """Smallest segment (pixels) at this image size."""
        return self.params.min_area_px * self.scale * self.scale

    def latent(self, purpose: int) -> np.ndarray | None:
        """Per-object latent of one decision, or None when draws are independent."""
        if self.view is None or self.rho <= 0:
            return None
        return self.view.latents.values(KEY_OBJECT, self.uniq, self.dirs, purpose)

    def add_segment(self, mask: np.ndarray, cls: int, kind: int) -> None:
        assert self.seg is not None
        self.seg[mask] = len(self.seg_cls)
        self.seg_cls.append(cls)
        self.seg_kind.append(kind)


def _prepare(
    instance: np.ndarray, semantic: np.ndarray, params: SimM2FParams, rng: np.random.Generator, void: np.ndarray | None, view: ViewContext | None
) -> _ViewState:
    """Check the GT maps and compact the instance ids (0 = background stuff, 1..n-1 = instances)."""
    instance = np.asarray(instance)
    semantic = np.asarray(semantic)
    if instance.ndim != 2 or instance.shape != semantic.shape:
        raise ValueError(f"instance {instance.shape} and semantic {semantic.shape} maps must be equal 2D shapes")
    if semantic.size and int(semantic.max()) >= spec.NUM_CLASSES:
        raise ValueError(f"semantic map has class {int(semantic.max())} >= {spec.NUM_CLASSES}")
    h, w = instance.shape
    void_mask = np.zeros((h, w), bool) if void is None else np.asarray(void, bool)
    uniq, inv = np.unique(instance, return_inverse=True)
    inv = inv.reshape(-1)
    if not (uniq.size > 0 and uniq[0] == 0):  # keep index 0 for stuff even when no pixel is background
        uniq = np.concatenate([[0], uniq])
        inv = inv + 1
    n = uniq.size
    cls = instance_classes(inv, semantic, n)
    cls[0] = spec.BACKGROUND
    bad = np.flatnonzero(cls[1:] == spec.BACKGROUND) + 1
    if bad.size:
        raise ValueError(f"instance id {int(uniq[bad[0]])} has no object class in the semantic map (majority class 0)")
    area = np.bincount(inv, minlength=n).astype(np.int64)
    lab = inv.reshape(h, w).astype(np.int32)
    lab[void_mask] = _VOID
    rho = params.consistency if view is not None else 0.0
    dirs = view.directions(uniq) if (view is not None and rho > 0) else None
    return _ViewState(params, rng, view, h / params.reference_height, void_mask, uniq, cls, area, lab, rho, dirs, confusion_matrix(params))


def _draw_misses(st: _ViewState, instance: np.ndarray) -> np.ndarray:
    """Step 1, misses: compact label -> itself, 0 (absorbed by the background) or _MISSED_VOID (a hole)."""
    p, n = st.params, st.n
    border = np.concatenate([instance[0], instance[-1], instance[:, 0], instance[:, -1]])
    touches = np.isin(st.uniq, border)
    frac = st.area / instance.size
    p_keep = (
        (1 - p.miss_base)
        * (1 - p.miss_small * np.exp(-frac / p.miss_small_area))
        * (1 - p.miss_truncated * touches)
    )
    u_miss = correlated_uniform(st.rng.random(n), st.latent(MISS), st.rho)
    u_void = correlated_uniform(st.rng.random(n), st.latent(HOLE), st.rho)
    missed = (u_miss >= p_keep) | (st.area < st.min_area)
    missed[0] = False
    remap = np.arange(n, dtype=np.int32)
    remap[missed] = np.where(u_void[missed] < p.missed_void_prob, _MISSED_VOID, 0)
    return remap


def _merge_touching(st: _ViewState, remap: np.ndarray) -> None:
    """Step 2, merges: union-find over touching kept instances; fills the segment map and table."""
    p, n, uniq, cls, area = st.params, st.n, st.uniq, st.cls, st.area
    parent = np.arange(n)

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = int(parent[i])
        return i

    kept_lab = np.where(st.lab >= 0, remap[np.maximum(st.lab, 0)], _VOID)
    pairs = touching_pairs(kept_lab, round(p.merge_min_contact_px * st.scale))
    u_merge = st.rng.random(len(pairs))
    if pairs and st.view is not None and st.rho > 0:  # a pair's merge persists (view-invariant pair latent)
        keys = np.sort(uniq[np.array(pairs)], axis=1)
        u_merge = correlated_uniform(u_merge, st.view.latents.values(KEY_PAIR, keys, None, 0), st.rho)
    for (a, b), u in zip(pairs, u_merge):
        ca, cb = cls[a], cls[b]
        if ca == cb:
            prob = p.merge_prob_same
        elif st.conf_mat[ca, cb] > 0 or st.conf_mat[cb, ca] > 0:
            prob = p.merge_prob_similar
        else:
            prob = 0.0
        if u < prob:
            ra, rb = find(a), find(b)
            if ra != rb:
                # the root is the larger member so the merged segment takes its class
                if area[ra] < area[rb] or (area[ra] == area[rb] and rb < ra):
                    ra, rb = rb, ra
                parent[rb] = ra
    roots = np.array([find(i) for i in range(n)], dtype=np.int32)
    remap = np.where(remap > 0, roots[np.maximum(remap, 0)], remap)
    st.seg = np.where(st.lab >= 0, remap[np.maximum(st.lab, 0)], _VOID).astype(np.int32)
    st.seg_cls = [int(c) for c in cls]
    st.seg_kind = [_STUFF] + [_TRUE] * (n - 1)


def _part_mask(st: _ViewState, s: int, sub: np.ndarray, sl: tuple[slice, slice], xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """The split-off part of segment ``s`` (within its box): a fixed 3D plane, else a line in the image."""
    theta = st.rng.uniform(0.0, math.pi)  # drawn even when unused, so later draws stay aligned
    q = st.rng.uniform(0.15, 0.45)
    part = split_part_3d(st.view, int(st.uniq[s]), sub, sl) if st.params.split_plane_3d else None
    if part is None:
        if st.rho > 0 and st.view is not None:  # the same cut of this object in every view (image-space fallback)
            obj = st.view.latents.object(int(st.uniq[s]))
            theta, q = obj.theta2d, obj.part_q
        proj = xs * math.cos(theta) + ys * math.sin(theta)
        part = proj < np.quantile(proj, q)
    return part


def _part_class(st: _ViewState, s: int, lat_part: np.ndarray | None, lat_part_cls: np.ndarray | None) -> int:
    """Class of a split-off part: the instance's own, else a draw from its confusion row."""
    u_same = st.rng.random()
    if lat_part is not None:
        u_same = float(correlated_uniform(np.array([u_same]), lat_part[s : s + 1], st.rho)[0])
    if u_same < st.params.split_same_class_prob:
        return st.seg_cls[s]
    row = st.conf_mat[st.seg_cls[s]].copy()
    row[st.seg_cls[s]] = 0.0
    if row.sum() <= 0:
        return OTHERFURNITURE
    if lat_part_cls is None:
        return int(st.rng.choice(spec.NUM_CLASSES, p=row / row.sum()))
    u_pc = correlated_uniform(np.array([st.rng.random()]), lat_part_cls[s : s + 1], st.rho)[0]
    return int(min(np.searchsorted(np.cumsum(row / row.sum()), u_pc, side="right"), spec.NUM_CLASSES - 1))


def _split_parts(st: _ViewState) -> None:
    """Step 3, split-off parts: some instances lose a part to a segment of its own."""
    seg = st.seg
    assert seg is not None
    live = sorted(int(i) for i in np.unique(seg) if i > 0)
    u_split = st.rng.random(len(live))
    lat_split, lat_part, lat_part_cls = st.latent(SPLIT), st.latent(PART), st.latent(PART_CLASS)
    if live and lat_split is not None:
        u_split = correlated_uniform(u_split, lat_split[live], st.rho)
    if not live:
        return
    objs = ndimage.find_objects(np.maximum(seg, 0))  # boxes before any split (parts stay inside them)
    for s, u in zip(live, u_split):
        if u >= st.params.split_prob:
            continue
        sl = objs[s - 1]
        sub = seg[sl] == s
        ys, xs = np.nonzero(sub)
        part = _part_mask(st, s, sub, sl, xs, ys)
        if part.sum() < st.min_area or part.all():
            continue
        new = len(st.seg_cls)
        st.seg_cls.append(_part_class(st, s, lat_part, lat_part_cls))
        st.seg_kind.append(_SPURIOUS)
        seg_box = seg[sl]
        seg_box[ys[part], xs[part]] = new


def _confuse_classes(st: _ViewState) -> None:
    """Step 4, class confusion of every true object segment (split-off parts keep their drawn class)."""
    cum = np.cumsum(st.conf_mat, axis=1)
    u_conf = st.rng.random(len(st.seg_cls))
    lat_conf = st.latent(CONFUSE)
    if lat_conf is not None:  # the confusion target persists per object (split-off parts are not _TRUE)
        u_conf[: st.n] = correlated_uniform(u_conf[: st.n], lat_conf, st.rho)
    for s in range(1, len(st.seg_cls)):
        if st.seg_kind[s] != _TRUE:
            continue
        pred = int(np.searchsorted(cum[st.seg_cls[s]], u_conf[s], side="right"))
        pred = min(pred, spec.NUM_CLASSES - 1)
        if pred != st.seg_cls[s]:
            st.seg_cls[s] = pred
            st.seg_kind[s] = _CONFUSED


def _add_spurious_blobs(st: _ViewState) -> None:
    """Step 5, per-view spurious blobs (random ellipses) on the background."""
    p, rng, seg = st.params, st.rng, st.seg
    assert seg is not None
    n_spur = int(rng.poisson(p.spurious_per_frame)) if p.spurious_per_frame > 0 else 0
    if not n_spur:
        return
    h, w = seg.shape
    npix = h * w
    names = sorted(p.spurious_classes)
    weights = np.array([p.spurious_classes[k] for k in names], float)
    yy, xx = np.mgrid[0:h, 0:w]
    for _ in range(n_spur):
        stuff_px = np.flatnonzero(seg.ravel() == 0)
        if stuff_px.size == 0:
            break
        centre = int(stuff_px[rng.integers(stuff_px.size)])
        cy, cx = divmod(centre, w)
        a = math.exp(rng.uniform(math.log(p.spurious_area_min), math.log(p.spurious_area_max))) * npix
        aspect = math.exp(rng.uniform(-0.7, 0.7))
        rx, ry = math.sqrt(a / math.pi * aspect), math.sqrt(a / math.pi / aspect)
        theta = rng.uniform(0.0, math.pi)
        c, s_ = math.cos(theta), math.sin(theta)
        dx, dy = xx - cx, yy - cy
        blob = ((dx * c + dy * s_) / rx) ** 2 + ((-dx * s_ + dy * c) / ry) ** 2 <= 1.0
        blob &= seg == 0
        cls_pick = spec.CLASS_INDEX_BY_NAME[names[int(rng.choice(len(names), p=weights / weights.sum()))]]
        if blob.sum() < max(1, st.min_area):
            continue
        st.add_segment(blob, cls_pick, _SPURIOUS)


def _add_site_segments(st: _ViewState) -> None:
    """Step 5b, spurious segments at the scene's fixed 3D sites (the same wall patch in every view)."""
    view, seg = st.view, st.seg
    assert seg is not None
    if view is None or view.sites is None or st.params.spurious_sites <= 0:
        return
    u_sites = st.rng.random(len(view.sites.points))
    for blob, cls_pick in site_blobs(view, seg == 0, u_sites, st.params):
        blob &= seg == 0
        if blob.sum() < max(1, st.min_area):
            continue
        st.add_segment(blob, cls_pick, _SPURIOUS)


def _perturb_boundaries(st: _ViewState) -> None:
    """Step 6, boundary noise of every segment, then snapping to image edges; GT void and holes become void."""
    p, scale = st.params, st.scale
    assert st.seg is not None
    amp = p.boundary_amplitude_px * scale
    sigma = p.boundary_sigma_px * scale
    smooth = p.mask_smooth_px * scale
    noisy = (amp > 0) or (p.bias_std_px > 0) or (p.thing_bias_px != 0) or (p.stuff_bias_px != 0) or (smooth > 0)
    if noisy:
        st.seg = _boundary_noise(st.seg, p, scale, amp, sigma, smooth, st.rng)
    if p.snap_band_px > 0 and st.view is not None:  # a mask head follows image edges
        edges = edge_map(st.view.rgb, st.view.depth, p.edge_depth_weight)
        if edges is not None:
            if edges.shape != st.seg.shape:
                raise ValueError(f"RGB/depth {edges.shape} and instance {st.seg.shape} maps differ in size")
            st.seg = snap_to_edges(st.seg, edges, p.snap_band_px * scale)
    st.seg[st.void_mask] = _VOID
    st.seg[st.seg == _MISSED_VOID] = _VOID


def _ids_and_scores(st: _ViewState) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Steps 7-8: drop tiny segments, draw random ids (1..id_max) and scores by segment kind."""
    p, rng, seg, seg_cls = st.params, st.rng, st.seg, st.seg_cls
    assert seg is not None
    counts = np.bincount(np.maximum(seg, -1).ravel() + 1, minlength=len(seg_cls) + 1)[1:]
    min_keep = max(1.0, st.min_area)
    present = [s for s in range(len(seg_cls)) if counts[s] > 0]
    tiny = [s for s in present if s > 0 and counts[s] < min_keep]
    if tiny:
        seg[np.isin(seg, tiny)] = _VOID
        present = [s for s in present if s not in set(tiny)]
    ids_for = np.zeros(len(seg_cls) + 1, np.uint32)  # index label + 1 (void -> 0)
    if present:
        new_ids = rng.choice(p.id_max, size=len(present), replace=False) + 1
        ids_for[np.array(present) + 1] = new_ids.astype(np.uint32)
    ids = ids_for[seg + 1]
    means = {_TRUE: p.score_true_mean, _STUFF: p.score_true_mean, _CONFUSED: p.score_confused_mean, _SPURIOUS: p.score_spurious_mean}
    u_score = rng.standard_normal(len(present))
    category_of, score_of = {}, {}
    for s, z in zip(present, u_score):
        sid = int(ids_for[s + 1])
        category_of[sid] = seg_cls[s]
        score_of[sid] = round(float(np.clip(means[st.seg_kind[s]] + p.score_std * z, p.score_threshold, 1.0)), 4)
    return ids, coco_segments_info(ids, category_of, score_of)


def simulate_sim_m2f(
    instance: np.ndarray,
    semantic: np.ndarray,
    params: SimM2FParams | None = None,
    rng: np.random.Generator | None = None,
    *,
    void: np.ndarray | None = None,
    view: ViewContext | None = None,
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """One view's ``sim-m2f`` prediction from its GT instance and semantic maps.

    Stages, in this order (each documented on :class:`SimM2FParams`): misses -> merges of touching instances ->
    split-off parts -> class confusion -> spurious blobs on the background (per view) and at the scene's
    spurious sites -> boundary noise of every segment (background stuff included) -> snapping of the
    boundaries to image edges -> drop of tiny segments -> random ids and scores.

    ``void`` (optional bool mask, GT panoptic id 0) stays void. ``view`` (:class:`nerfseg.dataset_tools.sim_m2f.ViewContext`)
    carries the scene's per-object latents and the view's geometry and pixels: without it every decision is
    an independent draw from ``rng`` (as ``sim-m2f-indep``), the sites and the edge snapping are skipped.
    With ``params.consistency = 0`` the draws consume ``rng`` exactly as without it. Returns the (H, W)
    uint32 panoptic id map (0 = void) and COCO ``segments_info`` (id, category_id, iscrowd, area, bbox, score).
    """
    params = params or SimM2FParams()
    rng = rng if rng is not None else np.random.default_rng(0)
    st = _prepare(instance, semantic, params, rng, void, view)
    remap = _draw_misses(st, np.asarray(instance))
    _merge_touching(st, remap)
    _split_parts(st)
    _confuse_classes(st)
    _add_spurious_blobs(st)
    _add_site_segments(st)
    _perturb_boundaries(st)
    return _ids_and_scores(st)


def _boundary_noise(
    seg: np.ndarray, params: SimM2FParams, scale: float, amp: float, sigma: float, smooth: float, rng: np.random.Generator
) -> np.ndarray:
    """Perturb every segment's edge: label = argmax_s [blur(sd_s) + growth_s + amp * field_s].

    Each segment gets its own field and growth, so a boundary shared by two segments moves by half the difference
    of their values (a shared field would cancel out). Work is done on each segment's bounding box padded by the
    largest possible displacement; the number of segments per view is small (tens), the pixels are vectorised.
    """
    h, w = seg.shape
    best = np.full((h, w), -np.inf, np.float32)
    out = seg.copy()
    shifted = seg + 3  # -2 -> 1, -1 -> 2, 0 -> 3, k -> k + 3: positive labels for find_objects
    objs = ndimage.find_objects(shifted)
    labels = [lv for lv in range(len(objs)) if objs[lv] is not None and lv + 1 != 2]  # skip GT void
    growth = rng.standard_normal(len(labels)) * params.bias_std_px * scale
    for li, sd_extra in zip(labels, growth):
        label = li + 1 - 3
        if label == 0:
            bias = params.stuff_bias_px * scale
        elif label == _MISSED_VOID:
            bias = sd_extra
        else:
            bias = params.thing_bias_px * scale + sd_extra
        pad = math.ceil(abs(bias) + 3.0 * amp + 2.0 * smooth + 2.0)
        sl = objs[li]
        y0, y1 = max(sl[0].start - pad, 0), min(sl[0].stop + pad, h)
        x0, x1 = max(sl[1].start - pad, 0), min(sl[1].stop + pad, w)
        mask = seg[y0:y1, x0:x1] == label
        val = signed_distance(mask)
        if smooth > 0:
            val = ndimage.gaussian_filter(val, smooth, mode="nearest")
        val += np.float32(bias)
        if amp > 0:
            val += np.float32(amp) * unit_field(val.shape, sigma, rng)
        win = val > best[y0:y1, x0:x1]
        best[y0:y1, x0:x1] = np.where(win, val, best[y0:y1, x0:x1])
        out[y0:y1, x0:x1] = np.where(win, label, out[y0:y1, x0:x1])
    return out


# ---------------------------------------------------------------------------------------------
# A view as the writer produces it (shared with the calibration tools)


def _uses_context(p: SimM2FParams) -> bool:
    return p.consistency > 0 or p.spurious_sites > 0 or p.snap_band_px > 0 or p.split_plane_3d


def scene_context(
    scene_dir: str | Path, params: SimM2FParams, seed: int, scene_id: str, prior_name: str = "sim-m2f", info: spec.SceneInfo | None = None
) -> SceneContext | None:
    """The per-scene state of a simulated prior (latents, 3D boxes, cameras, spurious sites); None when the
    parameters use none of it (then every view is simulated from its own maps and random stream alone)."""
    if not _uses_context(params):
        return None
    latents = ObjectLatents(seed, scene_key(scene_id), PRIOR_STREAMS[prior_name], params.view_corr_deg, params.view_invariance)
    return SceneContext(scene_dir, latents, params, info)


def simulate_frame(
    fr: GTViewMaps, params: SimM2FParams, seed: int, scene_id: str, prior_name: str, ctx: SceneContext | None, rgb: Callable[[], np.ndarray]
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """One view of a simulated prior exactly as :func:`nerfseg.dataset_tools.priors.write_priors` writes it (also
    used by the calibration)."""
    rng = frame_rng(seed, scene_id, fr.name, stream=PRIOR_STREAMS[prior_name])
    view = None
    if ctx is not None:
        view = ctx.view(fr.name, rgb() if params.snap_band_px > 0 else None, ctx.depth(fr.name))
    try:
        return simulate_sim_m2f(fr.instance, fr.semantic, params, rng, void=fr.panoptic == 0, view=view)
    except ValueError as exc:
        raise InputError(f"{scene_id}/{spec.INSTANCE_DIR}/{fr.name}.png", str(exc)) from None
