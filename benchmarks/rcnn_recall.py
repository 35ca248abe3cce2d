"""NeRF-RCNN recall on a split: the fraction of GT instances a detection with score > 0.5 / 0.3 / 0.1 finds
(3D mask IoU >= 0.25), with any class and with the correct class, per scene and pooled. Instance-NeRF keeps
the detections with score > 0.5, so recall at 0.5 with the correct class bounds what it can segment::

    python3 benchmarks/rcnn_recall.py --checkpoint runs/rcnn/checkpoint_best.pt --data demo8 --split test
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nerfseg.instance_nerf.rcnn.train import detection_recall, load_rcnn
from nerfseg import spec


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", type=Path, required=True)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--split", default="test")
    ap.add_argument("--iou", type=float, default=0.25)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", type=Path, default=None, help="also write the full result (per scene) here")
    args = ap.parse_args()
    model = load_rcnn(args.checkpoint, args.device)
    res = detection_recall(model, args.data, spec.scenes_in_split(args.data, args.split), iou_threshold=args.iou, device=args.device)
    print(f"{len(res['scenes'])} {args.split} scenes, {res['instances']} GT instances, mask IoU >= {args.iou}")
    for t in (0.5, 0.3, 0.1):
        print(f"score > {t}: recall {res[f'recall_any@{t:g}']:.3f} (any class), {res[f'recall_class@{t:g}']:.3f} (correct class)")
    if args.json:
        args.json.write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
