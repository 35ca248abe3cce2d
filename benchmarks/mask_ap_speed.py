"""Speed of the mask AP path: RLE encoding of a view, and COCOeval(segm) with pycocotools against hotcoco.

Makes ``--frames`` synthetic 480x640 views in memory (a stuff background, 10-40 elliptic objects; the
prediction shifts boundaries, misses some objects, swaps some classes, adds spurious segments, scores all),
then measures, each the best of ``--repeat`` rounds so a shared machine's load hits both sides alike:

* encoding: nerfseg's one-pass RLE from the id map (``encode_segments``) against one binary mask per
  segment through ``pycocotools.mask.encode`` (the output bytes are checked equal);
* evaluation: the same GT dataset and results through pycocotools' COCOeval and hotcoco's (evaluate +
  accumulate), and the largest difference of the 12 summary numbers between the two.

Prints numbers and ratios measured in this run only (never pass/fail).

    python benchmarks/mask_ap_speed.py [--frames 200] [--repeat 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nerfseg.evaluation.metrics.mask_ap import MaskAP, encode_segments, evaluate_coco_segm  # noqa: E402

H, W = 480, 640
BACKGROUND = 1 << 16


def _ellipse(cy: float, cx: float, ry: float, rx: float) -> np.ndarray:
    yy, xx = np.ogrid[:H, :W]
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0


def make_frames(n: int, seed: int = 0) -> list[tuple[np.ndarray, dict, np.ndarray, dict]]:
    """``n`` (gt ids, gt segments, pred ids, pred segments) views."""
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(n):
        gt = np.full((H, W), BACKGROUND, np.uint32)
        pred = np.full((H, W), BACKGROUND, np.uint32)
        gt_seg = {BACKGROUND: {"category_id": 0}}
        pred_seg = {BACKGROUND: {"category_id": 0}}
        for k in range(int(rng.integers(10, 41))):
            cy, cx = rng.uniform(0, H), rng.uniform(0, W)
            ry, rx = rng.uniform(6, 90), rng.uniform(6, 120)
            cls = int(rng.integers(1, 11))
            gt[_ellipse(cy, cx, ry, rx)] = k + 1
            gt_seg[k + 1] = {"category_id": cls, "iscrowd": 0}
            if rng.random() < 0.15:
                continue  # missed
            pid = 1000 + k
            pred[_ellipse(cy + rng.normal(0, 3), cx + rng.normal(0, 3), ry * rng.uniform(0.85, 1.15), rx * rng.uniform(0.85, 1.15))] = pid
            pred_seg[pid] = {"category_id": cls if rng.random() > 0.1 else int(rng.integers(1, 11)), "score": float(rng.random())}
        for j in range(int(rng.integers(0, 4))):  # spurious
            pid = 5000 + j
            pred[_ellipse(rng.uniform(0, H), rng.uniform(0, W), rng.uniform(5, 30), rng.uniform(5, 30))] = pid
            pred_seg[pid] = {"category_id": int(rng.integers(1, 11)), "score": float(rng.random() * 0.5)}
        gt_seg = {k: v for k, v in gt_seg.items() if (gt == k).any()}
        pred_seg = {k: v for k, v in pred_seg.items() if (pred == k).any()}
        frames.append((gt, gt_seg, pred, pred_seg))
    return frames


def _best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    from pycocotools import mask as mask_utils

    frames = make_frames(args.frames)
    n_seg = sum(len(g) + len(p) - 2 for g_ids, g, p_ids, p in frames)
    print(f"{args.frames} views of {H}x{W}, {n_seg} thing segments (GT + predicted)")

    def ours() -> None:
        for g_ids, g, p_ids, p in frames:
            encode_segments(g_ids, sorted(g))
            encode_segments(p_ids, sorted(p))

    def per_mask() -> None:
        for g_ids, g, p_ids, p in frames:
            for ids, segs in ((g_ids, g), (p_ids, p)):
                for k in sorted(segs):
                    mask_utils.encode(np.asfortranarray((ids == k).astype(np.uint8)))

    g_ids, g, _, _ = frames[0]
    for k, enc in zip(sorted(g), encode_segments(g_ids, sorted(g))):
        assert enc["segmentation"]["counts"] == mask_utils.encode(np.asfortranarray((g_ids == k).astype(np.uint8)))["counts"].decode()
    t_ours, t_ref = 0.0, 0.0
    t_ours = _best(ours, args.repeat)
    t_ref = _best(per_mask, args.repeat)
    print(f"encoding: one-pass RLE {1000 * t_ours / args.frames:.1f} ms/view, binary mask + mask.encode per segment "
          f"{1000 * t_ref / args.frames:.1f} ms/view ({t_ref / t_ours:.1f}x)")

    acc = MaskAP()
    for i, (g_ids, g, p_ids, p) in enumerate(frames):
        acc.update("synthetic", f"{i:04d}", g_ids, g, p_ids, p)
    gt_data, results = acc.coco()
    print(f"COCOeval(segm) on {len(gt_data['images'])} images, {len(gt_data['annotations'])} GT, {len(results)} detections:")
    out = {}
    timing = {}
    try:
        import hotcoco  # noqa: F401

        backends = ("pycocotools", "hotcoco")
    except ImportError:
        backends = ("pycocotools",)
        print("  hotcoco is not installed (dev extra): pycocotools only")
    for backend in backends:
        timing[backend] = _best(lambda b=backend: out.__setitem__(b, evaluate_coco_segm(gt_data, results, b)), args.repeat)
        print(f"  {backend:12s} {timing[backend]:.3f} s  AP {100 * out[backend]['stats'][0]:.2f}")
    if len(backends) == 2:
        diff = max(abs(a - b) for a, b in zip(out["pycocotools"]["stats"], out["hotcoco"]["stats"]))
        print(f"  hotcoco is {timing['pycocotools'] / timing['hotcoco']:.1f}x faster; largest difference of the 12 numbers: {diff:.2e}")


if __name__ == "__main__":
    main()
