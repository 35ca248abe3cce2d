"""What the depth-based occlusion test of the 2D-3D mask matching buys (nerfseg.instance_nerf.matching).

The reference Instance-NeRF splatted NeRF-RCNN's 3D masks into the views without any occlusion test (only a
z-buffer among the instance points). Here the GT 3D instance grid of demo scenes stands in for perfect
detections (score 1; ``--drop F`` gives a seeded random fraction F of the instances score 0, i.e. missed detections
that the score filter removes, so they become non-instance occluders the z-buffer knows nothing about; ``--dilate N``
grows every mask by N voxels to mimic coarse NeRF-RCNN masks). Each train view is projected without depth and with the GT depth map at several tolerances,
and for every splat mode:

* projection vs GT instance map: pixel accuracy on the pixels of detected instances, false-positive rate on the
  other pixels (background and missed instances: what occlusion should protect), mean over detected instances of the IoU pooled over all views of a scene;
* matching of the ``sim-m2f`` prior (nerfseg.instance_nerf.matching.match_prior_to_instances): every non-void,
  non-background prior segment is judged against the GT instance that covers most of it: correct (labelled
  with it), wrong (labelled with another instance), unlabelled (-1); segments lying mostly over background or a
  missed instance must stay unlabelled (-1), any id there is wrong; plus pixel-level label accuracy on the
  pixels of detected instances and the error rate among pixels given an id.

``--refine`` also refines the projected label maps (default splat and tolerance, with depth) with
nerfseg.instance_nerf.refine.EdgeAwareRefiner guided by the view's RGB image and depth, and reports the projection metrics
before and after.

Prints numbers, asserts nothing. Run from the repository root::

    python3 benchmarks/matching_occlusion.py [--root /tmp/match_demo] [--demo 1] [--dilate 0]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nerfseg.dataset_tools.priors import load_prior_json, read_prior_frame
from nerfseg.instance_nerf.matching import (
    SPLAT_MODES,
    VoxelCloud,
    match_prior_to_instances,
    project_cloud,
    resolve_instance_masks,
)
from nerfseg.instance_nerf.refine import EdgeAwareRefiner, refine_instance_map
from nerfseg import spec
from nerfseg.cameras import Intrinsics
from nerfseg.gt3d import read_gt3d
from nerfseg.io import read_png


class Tally:
    """Counts of one (splat, depth mode) setting, summed over views and scenes."""

    def __init__(self) -> None:
        self.obj_px = self.obj_ok = self.bg_px = self.bg_fp = 0
        self.inter: dict[tuple[str, int], int] = defaultdict(int)
        self.union: dict[tuple[str, int], int] = defaultdict(int)
        self.seg = {"correct": 0, "wrong": 0, "unlabelled": 0}
        self.seg_bg_majority = {"unlabelled/0": 0, "wrongly labelled": 0}  # majority: background or missed instance
        self.lab_obj_px = self.lab_obj_ok = self.lab_px = self.lab_wrong = 0
        self.seconds = 0.0
        self.views = 0

    def add_projection(self, scene: str, proj: np.ndarray, gt: np.ndarray) -> None:
        """``gt``: GT instance map with missed (undetected) instances already set to 0."""
        obj = gt > 0
        self.obj_px += int(obj.sum())
        self.obj_ok += int((proj[obj] == gt[obj]).sum())
        self.bg_px += int((~obj).sum())
        self.bg_fp += int((proj[~obj] > 0).sum())
        n = int(max(proj.max(), gt.max())) + 1
        joint = np.bincount(proj.ravel().astype(np.int64) * n + gt.ravel(), minlength=n * n).reshape(n, n)
        area_p, area_g = joint.sum(1), joint.sum(0)
        for k in np.flatnonzero((area_p + area_g)[1:]) + 1:
            self.inter[(scene, int(k))] += int(joint[k, k])
            self.union[(scene, int(k))] += int(area_p[k] + area_g[k] - joint[k, k])

    def add_matching(self, labels: np.ndarray, prior_ids: np.ndarray, categories: dict[int, int], gt: np.ndarray) -> None:
        seg_ids, inv = np.unique(prior_ids.ravel(), return_inverse=True)
        n_gt = int(gt.max()) + 1
        joint = np.bincount(inv.astype(np.int64) * n_gt + gt.ravel(), minlength=seg_ids.size * n_gt).reshape(seg_ids.size, n_gt)
        majority = joint.argmax(1)
        first_pixel = np.zeros(seg_ids.size, dtype=np.int64)
        first_pixel[inv[::-1]] = np.arange(inv.size)[::-1]  # any pixel of the segment: all carry its label
        seg_label = labels.ravel()[first_pixel]
        for s, sid in enumerate(seg_ids.tolist()):
            if sid == 0 or categories[sid] == 0:
                continue
            if majority[s] == 0:
                self.seg_bg_majority["unlabelled/0" if seg_label[s] <= 0 else "wrongly labelled"] += 1
            elif seg_label[s] == majority[s]:
                self.seg["correct"] += 1
            elif seg_label[s] == -1:
                self.seg["unlabelled"] += 1
            else:
                self.seg["wrong"] += 1
        obj = gt > 0
        self.lab_obj_px += int(obj.sum())
        self.lab_obj_ok += int((labels[obj] == gt[obj]).sum())
        lab = labels > 0
        self.lab_px += int(lab.sum())
        self.lab_wrong += int((labels[lab] != gt[lab]).sum())

    def row(self) -> dict[str, float]:
        ious = [self.inter[k] / self.union[k] for k in self.union if self.union[k] > 0]
        n_seg = max(sum(self.seg.values()), 1)
        return {
            "obj_acc": self.obj_ok / max(self.obj_px, 1),
            "bg_fp": self.bg_fp / max(self.bg_px, 1),
            "mIoU": float(np.mean(ious)) if ious else float("nan"),
            "seg_correct": self.seg["correct"] / n_seg,
            "seg_wrong": self.seg["wrong"] / n_seg,
            "seg_unlab": self.seg["unlabelled"] / n_seg,
            "n_seg": n_seg,
            "bgmaj_wrong": self.seg_bg_majority["wrongly labelled"],
            "bgmaj_total": sum(self.seg_bg_majority.values()),
            "px_label_acc": self.lab_obj_ok / max(self.lab_obj_px, 1),
            "px_label_wrong": self.lab_wrong / max(self.lab_px, 1),
            "ms_per_view": 1000 * self.seconds / max(self.views, 1),
        }


def ensure_demo(root: Path, n: int) -> None:
    if (root / spec.BENCHMARK_JSON).exists():
        return
    print(f"building {n} demo scene(s) in {root} ...", flush=True)
    subprocess.run([sys.executable, "-m", "nerfseg.cli", "build-dataset", "--demo", str(n), "--out", str(root), "--quiet"], check=True)


def detections(scene_dir: Path, dilate: int, drop: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """GT grid as (K,X,Y,Z) masks (mask k = GT id k+1), optionally dilated by ``dilate`` voxels; scores 1, except
    round(drop * K) random instances (at least one when drop > 0) that get score 0 (missed detections)."""
    gt = read_gt3d(scene_dir / spec.GT3D_H5)
    k = int(gt.instance.max())
    masks = np.stack([gt.instance == i + 1 for i in range(k)]) if k else np.zeros((0,) + gt.instance.shape, bool)
    if dilate:
        masks = np.stack([ndimage.binary_dilation(m, iterations=dilate) for m in masks])
    scores = np.ones(k)
    if drop > 0 and k:
        scores[rng.choice(k, size=min(k, max(1, round(drop * k))), replace=False)] = 0.0
    return masks, scores, gt.bbox_min, gt.bbox_max


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=Path("/tmp/match_demo"))
    ap.add_argument("--demo", type=int, default=1, help="scenes to build when --root does not exist")
    ap.add_argument("--prior", default="sim-m2f")
    ap.add_argument("--drop", type=float, default=0.0, help="fraction of instances given score 0 (missed detections)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dilate", type=int, default=0, help="grow every GT mask by this many voxels (coarse detections)")
    ap.add_argument("--tolerances", type=float, nargs="+", default=[1.0, 1.5, 2.0, 3.0], help="occlusion tolerances in voxel edges")
    ap.add_argument("--splat", nargs="+", default=list(SPLAT_MODES), choices=SPLAT_MODES)
    ap.add_argument("--refine", action="store_true", help="also measure EdgeAwareRefiner on the projected maps")
    args = ap.parse_args()
    ensure_demo(args.root, args.demo)
    scene_dirs = sorted(p for p in (args.root / spec.SCENES_DIR).iterdir() if (p / spec.TRANSFORMS_JSON).exists())
    modes = [("no depth", None)] + [(f"depth tol {t:g}", t) for t in args.tolerances]
    tallies = {(s, m): Tally() for s in args.splat for m, _ in modes}
    refine_tallies = {"projected": Tally(), "refined": Tally()}
    refiner = EdgeAwareRefiner()
    n_views = 0
    rng = np.random.default_rng(args.seed)
    n_inst = n_missed = 0
    for scene_dir in scene_dirs:
        info = spec.load_scene_info(scene_dir)
        intr = Intrinsics(info.width, info.height, info.fl_x, info.fl_y, info.cx, info.cy)
        masks, scores, lo, hi = detections(scene_dir, args.dilate, args.drop, rng)
        detected = np.concatenate([[0], np.arange(1, scores.size + 1) * (scores > 0.5)])  # GT id -> itself or 0
        n_inst += scores.size
        n_missed += int((scores <= 0.5).sum())
        cloud = VoxelCloud(resolve_instance_masks(masks, scores), lo, hi)
        doc = load_prior_json(scene_dir, args.prior)
        for fr in info.frames_in("train"):
            n_views += 1
            c2w = np.array(fr.transform_matrix)
            depth = read_png(scene_dir / spec.DEPTH_DIR / f"{fr.name}.png", expect="gray16").astype(np.float64) / spec.DEPTH_SCALE
            gt = read_png(scene_dir / spec.INSTANCE_DIR / f"{fr.name}.png", expect="gray16").astype(np.int64)
            lut = np.zeros(max(int(gt.max()), scores.size) + 1, dtype=np.int64)
            lut[: detected.size] = detected
            gt = lut[gt]  # missed instances (and ids without a 3D mask) count as background
            prior_ids, segs = read_prior_frame(scene_dir, args.prior, fr.name, doc)
            categories = {int(s["id"]): int(s["category_id"]) for s in segs}
            for splat in args.splat:
                for mode, tol in modes:
                    t0 = time.perf_counter()
                    proj, _ = project_cloud(cloud, c2w, intr, None if tol is None else depth, None if tol is None else tol * cloud.edge, splat)
                    labels = match_prior_to_instances(prior_ids, segs, proj)
                    tally = tallies[(splat, mode)]
                    tally.seconds += time.perf_counter() - t0
                    tally.views += 1
                    tally.add_projection(info.scene_id, proj, gt)
                    tally.add_matching(labels, prior_ids, categories, gt)
            if args.refine:
                proj, _ = project_cloud(cloud, c2w, intr, depth)
                image = read_png(scene_dir / spec.IMAGES_DIR / f"{fr.name}.png", expect="rgb")
                t0 = time.perf_counter()
                refined = refine_instance_map(proj, image, depth, refiner)
                refine_tallies["refined"].seconds += time.perf_counter() - t0
                for name, lab in (("projected", proj), ("refined", refined)):
                    refine_tallies[name].views += 1
                    refine_tallies[name].add_projection(info.scene_id, lab, gt)
                    refine_tallies[name].add_matching(match_prior_to_instances(prior_ids, segs, lab), prior_ids, categories, gt)
    print(
        f"\n{len(scene_dirs)} scene(s), {n_views} train views, prior {args.prior}, detections = GT grid"
        + (f" dilated by {args.dilate} voxel(s)" if args.dilate else "")
        + f", {n_missed}/{n_inst} instances missed (--drop {args.drop:g}, seed {args.seed})"
    )
    head = (
        f"{'splat':8s} {'mode':14s} | {'objAcc':>6s} {'bgFP':>6s} {'mIoU':>6s} | {'segOK':>6s} {'segBad':>6s} {'segUnl':>6s} {'nSeg':>5s}"
        f" {'bgMajBad':>8s} | {'pxAcc':>6s} {'pxBad':>6s} | {'ms/view':>7s}"
    )
    print(head)
    print("-" * len(head))
    for splat in args.splat:
        for mode, _ in modes:
            r = tallies[(splat, mode)].row()
            print(
                f"{splat:8s} {mode:14s} | {r['obj_acc']:6.3f} {r['bg_fp']:6.4f} {r['mIoU']:6.3f} | {r['seg_correct']:6.3f} {r['seg_wrong']:6.3f}"
                f" {r['seg_unlab']:6.3f} {r['n_seg']:5d} {r['bgmaj_wrong']:>3d}/{r['bgmaj_total']:<4d} | {r['px_label_acc']:6.3f}"
                f" {r['px_label_wrong']:6.4f} | {r['ms_per_view']:7.1f}"
            )
    if args.refine:
        print("\nEdgeAwareRefiner on the projected maps (corners splat, depth, default tolerance):")
        for name, tally in refine_tallies.items():
            r = tally.row()
            print(
                f"  {name:9s} objAcc {r['obj_acc']:6.3f}  bgFP {r['bg_fp']:6.4f}  mIoU {r['mIoU']:6.3f}  |  segOK {r['seg_correct']:6.3f}"
                f"  segBad {r['seg_wrong']:6.3f}  segUnl {r['seg_unlab']:6.3f}  |  {r['ms_per_view']:7.1f} ms/view refining"
            )
    print(
        "\nobjAcc: projected id == GT id on pixels of detected instances; bgFP: projected id > 0 on background and missed-instance"
        " pixels; mIoU: mean over detected instances of the view-pooled IoU;\nsegOK/segBad/segUnl: prior thing segments whose"
        " GT-majority is a detected instance, labelled with it / another id / -1; bgMajBad: segments over mostly background or a"
        " missed instance wrongly given an id;\npxAcc: matched label == GT id on pixels of detected instances; pxBad: matched label"
        " != GT id among pixels given an id > 0."
    )


if __name__ == "__main__":
    main()
