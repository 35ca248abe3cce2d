"""NeRF-RCNN recall on a split: the fraction of GT instances a detection with score > 0.5 / 0.3 / 0.1 finds
(3D mask IoU >= 0.25), with any class and with the correct class, per scene and pooled. Instance-NeRF keeps
the detections with score > 0.5, so recall at 0.5 with the correct class bounds what it can segment::

    python3 benchmarks/rcnn_recall.py --checkpoint runs/rcnn/checkpoint_best.pt --data demo8 --split test --plots plots/

It also says why each GT instance was missed at score 0.5 (right class with a lower score, hit only with a wrong
class, or no detection with mask IoU >= 0.25 at any score), per class, and ``--plots DIR`` draws each scene's
detections top-down next to its GT (:mod:`nerfseg.instance_nerf.rcnn.plot`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nerfseg.instance_nerf.rcnn.data import feature_path, load_feature_grid, resample_gt_instances  # noqa: E402
from nerfseg.instance_nerf.rcnn.model import predict_scene  # noqa: E402
from nerfseg.instance_nerf.rcnn.plot import draw_detections, scene_found  # noqa: E402
from nerfseg.instance_nerf.rcnn.train import detection_recall, load_rcnn  # noqa: E402
from nerfseg import spec  # noqa: E402
from nerfseg.gt3d import read_gt3d  # noqa: E402

WHY = ("found", "right class, score <= 0.5", "hit only with a wrong class", "no detection with IoU >= thr")


def why_missed(gt_row: dict, score: float = 0.5) -> str:
    """One of WHY for a GT row of detection_recall."""
    if gt_row["score_class"] > score:
        return WHY[0]
    if gt_row["score_class"] > 0:
        return WHY[1]
    if gt_row["score_any"] > 0:
        return WHY[2]
    return WHY[3]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", type=Path, required=True)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--split", default="test")
    ap.add_argument("--iou", type=float, default=0.25)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", type=Path, default=None, help="also write the full result (per scene) here")
    ap.add_argument("--plots", type=Path, default=None, help="write <scene>.png, the top-down detections, here")
    args = ap.parse_args()
    model = load_rcnn(args.checkpoint, args.device)
    res = detection_recall(model, args.data, spec.scenes_in_split(args.data, args.split), iou_threshold=args.iou, device=args.device)
    print(f"{len(res['scenes'])} {args.split} scenes, {res['instances']} GT instances, mask IoU >= {args.iou}")
    for t in (0.5, 0.3, 0.1):
        print(f"score > {t}: recall {res[f'recall_any@{t:g}']:.3f} (any class), {res[f'recall_class@{t:g}']:.3f} (correct class)")
    table: dict[str, dict[str, int]] = {}
    for row in res["scenes"].values():
        for g in row["gt"]:
            counts = table.setdefault(spec.CLASS_NAMES[g["class"]], dict.fromkeys(WHY, 0))
            counts[why_missed(g)] += 1
    print(f"\nper class at score > 0.5 (counts of GT instances): {' | '.join(WHY)}")
    for name, counts in sorted(table.items()):
        print(f"  {name:12s} " + " ".join(f"{counts[w]:4d}" for w in WHY))
    if args.plots:
        for sid, row in res["scenes"].items():
            grid = load_feature_grid(feature_path(args.data, sid, model.config.features_dir))
            gt = read_gt3d(spec.scene_dir(args.data, sid) / spec.GT3D_H5)
            ids, masks, _ = resample_gt_instances(gt, grid.shape[:3])
            det = predict_scene(model, grid, args.device)
            title = f"{sid}: recall at 0.5 {row['recall_class@0.5']:.2f} (right class), {row['recall_any@0.5']:.2f} (any)"
            draw_detections(args.plots / f"{sid}.png", grid, ids, masks, gt.class_of(), det.boxes, det.labels,
                            det.scores, title=title, found=scene_found(row))
        print(f"plots in {args.plots}")
    if args.json:
        args.json.write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
