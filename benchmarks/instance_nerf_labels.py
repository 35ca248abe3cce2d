"""Why Instance-NeRF instances vanish: how consistent the matched 2D labels are in 3D, and what stage 1 kept.

Instance-NeRF's stage 1 fits an instance field to the matched labels of every train view by cross-entropy, so
where views disagree about a surface the majority wins. This script reads a finished ``instance-nerf`` run
folder and, per scene and matched instance k, prints:

- the pixels labelled k and the share of ALL labels (0 = background, other instances) that the train views
  put on the same 3D cells (10 cm voxels of the GT depth's surface points): k's share is what stage 1 sees;
- the fraction of k's labelled pixels that stage 1 rendered as k (``refined.npz`` ``rendered``);
- per GT object, the prior's classes over its pixels in the train views (does the prior call it background?).

GT depth and GT instance maps are read: a diagnostic, not a method. Prints numbers, asserts nothing::

    python3 benchmarks/instance_nerf_labels.py --run runs/reproduce/instance-nerf --data demo8 [--prior sim-m2f]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nerfseg import io, spec  # noqa: E402
from nerfseg.cameras import Intrinsics, world_rays  # noqa: E402
from nerfseg.methods import SceneData  # noqa: E402

VOXEL = 0.1  # metres


def surface_cells(depth: np.ndarray, c2w: np.ndarray, intr: Intrinsics, origin: np.ndarray, voxel: float = VOXEL) -> np.ndarray:
    """(H*W,) int64 cell key of each pixel's surface point (-1 where the depth map has no hit)."""
    o, d = world_rays(np.asarray(c2w, dtype=np.float64), intr)
    z = depth.reshape(-1).astype(np.float64)
    cell = np.floor((o + d * z[:, None] - origin) / voxel).astype(np.int64)
    cell = np.clip(cell, 0, (1 << 20) - 1)
    key = (cell[:, 0] << 40) | (cell[:, 1] << 20) | cell[:, 2]
    return np.where(z > 0, key, -1)


def label_shares(cells: np.ndarray, labels: np.ndarray) -> dict[int, dict[str, object]]:
    """For each label k > 0: its pixel count, its cells, and the share of every label voted on those cells.

    ``cells`` and ``labels`` are flat and aligned (one entry per labelled pixel of every view; -1 cells and
    negative labels are left out). Shares below 2 % are dropped from the listing.
    """
    ok = (cells >= 0) & (labels >= 0)
    cells, labels = cells[ok], labels[ok]
    out: dict[int, dict[str, object]] = {}
    for k in np.unique(labels):
        if k <= 0:
            continue
        mine = np.unique(cells[labels == k])
        seen = labels[np.isin(cells, mine)]
        values, counts = np.unique(seen, return_counts=True)
        share = counts / counts.sum()
        out[int(k)] = {"pixels": int((labels == k).sum()), "cells": int(mine.size),
                       "shares": {int(v): round(float(s), 3) for v, s in zip(values, share) if s >= 0.02}}
    return out


def kept_by_stage1(matched: np.ndarray, rendered: np.ndarray) -> dict[int, float]:
    """Fraction of each instance's matched pixels that stage 1 rendered with the same instance."""
    return {int(k): float(np.mean(rendered[matched == k] == k)) for k in np.unique(matched) if k > 0}


def scene_report(data: Path, run: Path, scene_id: str, prior: str) -> dict[str, object]:
    scene = SceneData(spec.scene_dir(data, scene_id), prior)
    info = scene.info
    work = run / "scenes" / scene_id
    matched = np.load(work / "matched.npz")["labels"].astype(np.int64)
    rendered = np.load(work / "refined.npz")["rendered"].astype(np.int64) if (work / "refined.npz").exists() else None
    frames = info.frames_in("train")
    if len(frames) != matched.shape[0]:
        raise SystemExit(f"{work / 'matched.npz'}: {matched.shape[0]} views, the scene has {len(frames)} train views")
    intr = Intrinsics(info.width, info.height, info.fl_x, info.fl_y, info.cx, info.cy)
    origin = np.asarray(info.room_bbox[0], dtype=np.float64)
    cells, gt_objects, prior_classes = [], [], []
    for i, fr in enumerate(frames):
        depth = io.read_depth_metres(scene.path / spec.DEPTH_DIR / f"{fr.name}.png")
        cells.append(surface_cells(depth, np.asarray(fr.transform_matrix), intr, origin))
        gt_objects.append(io.read_png(scene.path / spec.INSTANCE_DIR / f"{fr.name}.png").reshape(-1).astype(np.int64))
        prior_classes.append(scene.prior_semantic(fr.name).reshape(-1))
    cells_a, gt_a, prior_a = np.concatenate(cells), np.concatenate(gt_objects), np.concatenate(prior_classes)
    shares = label_shares(cells_a, matched.reshape(-1))
    kept = kept_by_stage1(matched, rendered) if rendered is not None else {}
    thing = gt_a > 0
    prior_on_gt: dict[int, dict[int, float]] = {}
    for gid in np.unique(gt_a):
        if gid == 0:
            continue
        values, counts = np.unique(prior_a[gt_a == gid], return_counts=True)
        order = np.argsort(-counts)[:3]
        prior_on_gt[int(gid)] = {int(values[j]): round(float(counts[j] / counts.sum()), 2) for j in order}
    return {"instances": {k: {**v, "stage1_kept": kept.get(k)} for k, v in shares.items()}, "prior_on_gt": prior_on_gt,
            "gt_pixels": int(thing.sum()), "gt_pixels_prior_background": int((thing & (prior_a == 0)).sum())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, required=True, help="an instance-nerf run folder (with scenes/<id>/matched.npz)")
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--prior", default="sim-m2f")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    scenes = sorted(p.name for p in (args.run / "scenes").iterdir() if (p / "matched.npz").exists())
    names = dict(enumerate(spec.CLASS_NAMES)) if hasattr(spec, "CLASS_NAMES") else {}
    report, lost, total = {}, 0, 0
    bg_share: dict[bool, list[float]] = {True: [], False: []}  # lost? -> background share on the instance's cells
    for sid in scenes:
        rep = scene_report(args.data, args.run, sid, args.prior)
        report[sid] = rep
        print(sid)
        for k, v in rep["instances"].items():
            total += 1
            kept = v["stage1_kept"]
            lost += kept is not None and kept < 0.1
            if kept is not None:
                bg_share[kept < 0.1].append(float(v["shares"].get(0, 0.0)))
            print(f"  instance {k}: {v['pixels']} px on {v['cells']} cells; labels there {v['shares']}; "
                  f"stage 1 kept {'-' if kept is None else f'{kept:.2f}'}")
        for gid, cls in rep["prior_on_gt"].items():
            print(f"  GT object {gid}: prior classes {{{', '.join(f'{names.get(c, c)}: {s}' for c, s in cls.items())}}}")
    print(f"{total} matched instances, {lost} rendered on < 10 % of their labelled pixels by stage 1")
    for is_lost, values in bg_share.items():
        if values:
            print(f"  {'lost' if is_lost else 'kept'}: background share of the labels on their cells {np.mean(values):.2f} (mean of {len(values)})")
    px = sum(r["gt_pixels"] for r in report.values())
    bg = sum(r["gt_pixels_prior_background"] for r in report.values())
    print(f"the prior labels {bg / max(px, 1):.1%} of the GT objects' train-view pixels background")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
