"""Cross-view consistency of a 2D prior: how often two views of the same object get the same class.

Why: a real 2D network repeats its mistakes across similar views; a prior whose errors are independent per
view is too easy for methods that fuse views (issue 18). This statistic makes the difference measurable for
any prior on disk (``gt``, ``sim-m2f``, ``sim-m2f-indep``, ``mask2former``):

* For every view and every GT object with at least ``min_pixels`` visible pixels, the prior's *label* of the
  object is the majority over the object's GT pixels of the prior's per-pixel class (void and background count
  as "missed"), so splits into same-class parts do not count as disagreement.
* For every pair of views of the same object, the *view-angle difference* is the angle at the object's centre
  (gt3d.h5 AABB centre) between the two camera positions (transforms.json).
* Per angle bin: ``p_same_class`` = P(both views give the same class | both detected it),
  ``p_same_detection`` = P(both detected or both missed), and ``chance`` = the same-class probability if every
  view drew its label independently from the prior's label distribution for the object's true class (pooled
  over all views of all objects of that class in the report's scenes): sum_c p(c | true class)^2, averaged over
  the pairs. ``kappa = (p_same_class - chance) / (1 - chance)`` is about 0 for independent per-view errors and 1
  for errors repeated in every view (None when the prior never changes a label, as for ``gt``).

Deterministic: no random draws, scenes and frames in sorted order.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nerfseg import spec
from nerfseg.dataset_tools.prior_io import iter_scene_gt, load_prior_json, read_prior_frame, scene_id_of
from nerfseg.dataset_tools.prior_params import default_params
from nerfseg.dataset_tools.sim_m2f import read_object_table
from nerfseg.dataset_tools.sim_m2f_view import scene_context, simulate_frame
from nerfseg.errors import InputError
from nerfseg.io import read_depth_metres, read_panoptic_png, read_png

#: Angle-difference bins (degrees, [lo, hi)); the last one is closed.
ANGLE_BINS_DEG: tuple[float, ...] = (0.0, 15.0, 30.0, 60.0, 90.0, 180.0)
MISSED = -1


def _prior_class_map(ids: np.ndarray, segs: list[dict[str, Any]]) -> np.ndarray:
    """Per-pixel predicted class (void -> MISSED, background stuff -> MISSED when computing object labels)."""
    uniq, inv = np.unique(ids, return_inverse=True)
    cat = {int(s["id"]): int(s["category_id"]) for s in segs}
    lut = np.array([MISSED if u == 0 else cat[int(u)] for u in uniq.tolist()], np.int64)
    return lut[inv.reshape(ids.shape)]


def object_labels(instance: np.ndarray, pred_class: np.ndarray, min_pixels: int) -> dict[int, int]:
    """GT object id -> prior label in one view (majority predicted class over its pixels; MISSED for background
    or void); objects with fewer than ``min_pixels`` pixels are not counted as seen."""
    inst = instance.ravel().astype(np.int64)
    pred = pred_class.ravel().copy()
    pred[pred == spec.BACKGROUND] = MISSED
    uniq, inv = np.unique(inst, return_inverse=True)
    k = spec.NUM_CLASSES + 1  # column 0 = MISSED, column c + 1 = class c
    joint = np.bincount(inv * k + (pred + 1), minlength=uniq.size * k).reshape(uniq.size, k)
    out = {}
    for row, oid in zip(joint, uniq.tolist()):
        if oid == 0 or row.sum() < min_pixels:
            continue
        out[int(oid)] = int(row.argmax()) - 1
    return out


def _objects(scene_dir: Path) -> dict[int, tuple[np.ndarray, int]]:
    """Object id -> (AABB centre, class index) from gt3d.h5's instance table."""
    path = scene_dir / spec.GT3D_H5
    if not path.exists():
        raise InputError(path, "file not found: the consistency statistic needs object centres (gt3d.h5)")
    return {k: (0.5 * (box[:3] + box[3:]), cls) for k, (box, cls) in read_object_table(path).items()}


def scene_pairs(scene_dir: str | Path, prior_name: str, min_pixels: int = 100) -> dict[int, tuple[np.ndarray, np.ndarray, int]]:
    """Object id -> (unit directions centre -> camera (m, 3), labels (m,), true class) over the views that see it."""
    scene_dir = Path(scene_dir)
    info = spec.load_scene_info(scene_dir)
    objects = _objects(scene_dir)
    doc = load_prior_json(scene_dir, prior_name)
    per_obj: dict[int, list[tuple[np.ndarray, int]]] = {}
    for fr in sorted(info.frames, key=lambda f: f.name):
        inst = read_png(scene_dir / spec.INSTANCE_DIR / f"{fr.name}.png", expect="gray16")
        ids, segs = read_prior_frame(scene_dir, prior_name, fr.name, doc)
        if ids.shape != inst.shape:
            raise InputError(scene_dir / spec.PRIORS_DIR / prior_name / spec.PANOPTIC_DIR / f"{fr.name}.png", f"size {ids.shape} differs from the GT {inst.shape}")
        cam = np.asarray(fr.transform_matrix, np.float64)[:3, 3]
        for oid, lab in object_labels(inst, _prior_class_map(ids, segs), min_pixels).items():
            if oid not in objects:
                continue
            c = objects[oid][0]
            d = cam - c
            n = float(np.linalg.norm(d))
            if n > 1e-9:
                per_obj.setdefault(oid, []).append((d / n, lab))
    return {oid: (np.array([v[0] for v in views]), np.array([v[1] for v in views], np.int64), objects[oid][1]) for oid, views in sorted(per_obj.items())}


def consistency_stats(
    scene_dirs: Iterable[str | Path], prior_name: str, min_pixels: int = 100, bins_deg: Sequence[float] = ANGLE_BINS_DEG
) -> dict[str, Any]:
    """The cross-view consistency report of a written prior over the given scenes (see the module doc)."""
    edges = np.asarray(bins_deg, np.float64)
    nb = edges.size - 1
    pairs_det = np.zeros(nb)
    same_cls = np.zeros(nb)
    chance = np.zeros(nb)
    pairs_all = np.zeros(nb)
    same_det = np.zeros(nb)
    n_obj = n_views = 0
    scenes = []
    seeds = set()
    label_counts = np.zeros((spec.NUM_CLASSES, spec.NUM_CLASSES))  # true class -> detected label histogram
    both_by_class = np.zeros((spec.NUM_CLASSES, nb))  # pairs both detected, by true class and bin
    for sdir in sorted((Path(d) for d in scene_dirs), key=lambda p: p.name):
        seeds.add(load_prior_json(sdir, prior_name).get("seed"))
        scenes.append(sdir.name)
        for _oid, (dirs, labs, true_cls) in scene_pairs(sdir, prior_name, min_pixels).items():
            m = len(labs)
            n_obj += 1
            n_views += m
            det = labs != MISSED
            label_counts[true_cls] += np.bincount(labs[det], minlength=spec.NUM_CLASSES)
            if m < 2:
                continue
            iu, ju = np.triu_indices(m, 1)
            ang = np.degrees(np.arccos(np.clip(np.sum(dirs[iu] * dirs[ju], axis=1), -1.0, 1.0)))
            b = np.clip(np.searchsorted(edges, ang, side="right") - 1, 0, nb - 1)
            pairs_all += np.bincount(b, minlength=nb)
            same_det += np.bincount(b, weights=(det[iu] == det[ju]).astype(float), minlength=nb)
            both = det[iu] & det[ju]
            both_n = np.bincount(b, weights=both.astype(float), minlength=nb)
            pairs_det += both_n
            both_by_class[true_cls] += both_n
            same_cls += np.bincount(b, weights=(both & (labs[iu] == labs[ju])).astype(float), minlength=nb)
    totals = label_counts.sum(axis=1, keepdims=True)
    p_label = np.divide(label_counts, totals, out=np.zeros_like(label_counts), where=totals > 0)
    chance = (p_label**2).sum(axis=1) @ both_by_class  # independent draws from each class's label distribution

    def row(lo: float, hi: float, pd: float, sc: float, ch: float, pa: float, sd: float) -> dict[str, Any]:
        p = sc / pd if pd else None
        c = ch / pd if pd else None
        kappa = None if (p is None or c is None or c >= 1.0 - 1e-12) else (p - c) / (1.0 - c)
        return {
            "angle_lo_deg": lo, "angle_hi_deg": hi, "pairs": int(pa), "pairs_both_detected": int(pd),
            "p_same_class": _r(p), "chance": _r(c), "kappa": _r(kappa), "p_same_detection": _r(sd / pa if pa else None),
        }  # fmt: skip

    seed_list = sorted({int(x) for x in seeds if x is not None})
    bins = [row(float(edges[i]), float(edges[i + 1]), pairs_det[i], same_cls[i], chance[i], pairs_all[i], same_det[i]) for i in range(nb)]
    overall = row(float(edges[0]), float(edges[-1]), pairs_det.sum(), same_cls.sum(), chance.sum(), pairs_all.sum(), same_det.sum())
    return {
        "prior": prior_name,
        "seed": seed_list[0] if len(seed_list) == 1 else seed_list,
        "scenes": scenes,
        "min_pixels": int(min_pixels),
        "num_objects": n_obj,
        "num_object_views": n_views,
        "bins": bins,
        "overall": overall,
    }


def _r(v: float | None) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else round(float(v), 6)


# ---------------------------------------------------------------------------------------------
# Multi-view fusion gain of a prior (a cheap, geometry-exact stand-in for Semantic-NeRF)

#: (scene folder, frame stem) -> (H, W) predicted class per pixel, MISSED (-1) for void
LabelSource = Callable[[Path, str], np.ndarray]


def prior_labels(prior_name: str) -> LabelSource:
    """Per-pixel classes of a prior written on disk (void -> MISSED)."""
    docs: dict[Path, dict[str, Any]] = {}

    def labels(scene_dir: Path, frame: str) -> np.ndarray:
        if scene_dir not in docs:
            docs[scene_dir] = load_prior_json(scene_dir, prior_name)
        ids, segs = read_prior_frame(scene_dir, prior_name, frame, docs[scene_dir])
        return _prior_class_map(ids, segs)

    return labels


def _miou(conf: np.ndarray) -> float | None:
    """Mean IoU of an (11, 12) confusion (rows GT, column 11 = unlabelled) over the classes present in the GT or
    the prediction, as the evaluator's mIoU (a class predicted but absent from the GT scores 0)."""
    tp = np.diag(conf[:, : spec.NUM_CLASSES]).astype(np.float64)
    union = conf.sum(axis=1) + conf[:, : spec.NUM_CLASSES].sum(axis=0) - tp
    present = union > 0
    if not present.any():
        return None
    return float(np.mean(tp[present] / union[present]))


def fusion_gain(scene_dirs: Iterable[str | Path], labels: LabelSource, train_stride: int = 3) -> dict[str, Any]:
    """mIoU on the test views of the prior itself and of its multi-view vote, per scene and averaged.

    The vote: every valid pixel of a test view is lifted to 3D with the GT depth and projected into every
    ``train_stride``-th train view; where that view sees the same surface (its depth agrees) its prior class is a
    vote; the test pixel takes the majority class (background when no train view sees it). This is what a
    semantic field fitted to the train views' prior can at best do with exact geometry, at a tiny fraction of
    the cost of training one: independent per-view errors are voted away, errors repeated across views stay.
    Both mIoUs are computed by the same function (classes present in the GT, mean over scenes), so the gain is
    comparable between priors; like the evaluator's mIoU, GT void is left out and a class predicted but
    absent from the GT counts as 0. It is a proxy for Semantic-NeRF's gain, not the same number.
    """
    from nerfseg.cameras import Intrinsics, project_points, world_rays

    k = spec.NUM_CLASSES
    per_scene = {}
    for sdir in sorted((Path(d) for d in scene_dirs), key=lambda p: p.name):
        info = spec.load_scene_info(sdir)
        intr = Intrinsics(info.width, info.height, info.fl_x, info.fl_y, info.cx, info.cy)
        tests = [f for f in info.frames if f.split == "test"]
        trains = [f for f in info.frames if f.split == "train"][:: max(1, int(train_stride))]

        def depth(name: str) -> np.ndarray:
            return read_depth_metres(sdir / spec.DEPTH_DIR / f"{name}.png", np.float64)

        src = [(np.asarray(f.transform_matrix, np.float64), depth(f.name), labels(sdir, f.name)) for f in trains]
        conf_prior = np.zeros((k, k + 1), np.int64)
        conf_fused = np.zeros((k, k + 1), np.int64)
        for fr in tests:
            gt = read_png(sdir / spec.SEMANTIC_DIR / f"{fr.name}.png", expect="gray8").ravel().astype(np.int64)
            valid = read_panoptic_png(sdir / spec.PANOPTIC_DIR / f"{fr.name}.png").ravel() != 0  # GT void is not scored
            d = depth(fr.name).ravel()
            valid &= d > 0
            own = labels(sdir, fr.name).ravel()
            o, dirs = world_rays(np.asarray(fr.transform_matrix, np.float64), intr)
            pts = (o + dirs * d[:, None])[valid]
            votes = np.zeros(pts.shape[0] * k, np.int64)
            for c2w, dep, lab in src:
                uv, z = project_points(pts, c2w, intr)
                uv = np.nan_to_num(uv, nan=-1.0, posinf=-1.0, neginf=-1.0)  # points behind / on the camera plane
                u = np.floor(uv[:, 0]).astype(np.int64)
                v = np.floor(uv[:, 1]).astype(np.int64)
                ok = (z > 0.05) & (u >= 0) & (u < intr.width) & (v >= 0) & (v < intr.height)
                idx = np.flatnonzero(ok)
                dz = dep[v[idx], u[idx]]
                seen = (dz > 0) & (np.abs(dz - z[idx]) < 0.02 + 0.02 * z[idx])
                idx = idx[seen]
                cls = lab[v[idx], u[idx]]
                keep = cls >= 0
                votes += np.bincount(idx[keep] * k + cls[keep], minlength=votes.size)
            votes = votes.reshape(-1, k)
            fused = np.where(votes.sum(axis=1) > 0, votes.argmax(axis=1), spec.BACKGROUND)
            g = gt[valid]
            p_own = np.where(own[valid] >= 0, own[valid], k)  # void -> unlabelled column
            conf_prior += np.bincount(g * (k + 1) + p_own, minlength=k * (k + 1)).reshape(k, k + 1)
            conf_fused += np.bincount(g * (k + 1) + fused, minlength=k * (k + 1)).reshape(k, k + 1)
        mp, mf = _miou(conf_prior), _miou(conf_fused)
        per_scene[sdir.name] = {"prior_miou": _r(mp), "fused_miou": _r(mf), "gain": _r(None if mp is None or mf is None else mf - mp)}
    rows = [r for r in per_scene.values() if r["gain"] is not None]
    mean = {key: _r(float(np.mean([r[key] for r in rows]))) if rows else None for key in ("prior_miou", "fused_miou", "gain")}
    return {"train_stride": int(train_stride), "per_scene": per_scene, "mean": mean}


def simulated_fusion_gain(
    scene_dirs: Iterable[str | Path], params: Any = None, seeds: Iterable[int] = (0,), prior: str = "sim-m2f", train_stride: int = 3
) -> dict[str, Any]:
    """:func:`fusion_gain` of a simulated prior for several seeds, simulated in memory (nothing is written).

    The screen for the correlation parameters (docs/priors.md): only the test views and the train views the vote
    reads are simulated, each exactly as :func:`nerfseg.dataset_tools.priors.write_priors` would write it for that seed.
    Returns ``{"per_seed": [{seed, prior_miou, fused_miou, gain, per_scene}], "mean": {...}}``.
    """
    params = params or default_params(prior)
    scenes = sorted((Path(d) for d in scene_dirs), key=lambda p: p.name)
    frames: dict[Path, dict[str, Any]] = {}
    for sdir in scenes:
        info = spec.load_scene_info(sdir)
        need = {f.name for f in info.frames if f.split == "test"} | {f.name for f in [f for f in info.frames if f.split == "train"][:: max(1, int(train_stride))]}
        frames[sdir] = {fr.name: fr for fr in iter_scene_gt(sdir, info) if fr.name in need}
    per_seed = []
    for seed in seeds:
        ctxs = {sdir: scene_context(sdir, params, int(seed), scene_id_of(sdir), prior) for sdir in scenes}
        cache: dict[tuple[Path, str], np.ndarray] = {}

        def labels(sdir: Path, name: str, seed: int = int(seed), ctxs: dict = ctxs, cache: dict = cache) -> np.ndarray:
            if (sdir, name) not in cache:
                rgb_path = sdir / spec.IMAGES_DIR / f"{name}.png"
                ids, segs = simulate_frame(frames[sdir][name], params, seed, scene_id_of(sdir), prior, ctxs[sdir], lambda: read_png(rgb_path, expect="rgb"))
                cache[(sdir, name)] = _prior_class_map(ids, segs)
            return cache[(sdir, name)]

        rep = fusion_gain(scenes, labels, train_stride)
        per_seed.append({"seed": int(seed), **rep["mean"], "per_scene": rep["per_scene"]})
    keys = ("prior_miou", "fused_miou", "gain")
    mean = {k: _r(float(np.mean([r[k] for r in per_seed if r[k] is not None]))) if any(r[k] is not None for r in per_seed) else None for k in keys}
    return {"prior": prior, "params": params.to_dict(), "train_stride": int(train_stride), "per_seed": per_seed, "mean": mean}
