"""How NeRF-RCNN's 3D mask AP depends on the radiance budget of the grids it is shown.

`nerfseg grids` trains one radiance field per scene for a number of steps (``--set steps=N``) and samples it
into the feature grid; fewer steps are cheaper but give blurrier colour and noisier alpha. This script takes one
NeRF-RCNN checkpoint and evaluates it (the evaluator's 3D mask AP25/AP50 and voxel mIoU, as `train-rcnn`
validates) on the same scenes in several benchmark roots whose grids were built at different budgets, next to
each grid's own training steps, seconds and test PSNR (from ``radiance/<scene>/grid.json``).

Prints numbers, asserts nothing. Roots can share their ``scenes/`` (symlinks) and differ only in ``features/``::

    python3 benchmarks/rcnn_grid_budget.py --checkpoint runs/rcnn/checkpoint_best.pt \
        --data bench_100steps --data bench_200steps --data bench_500steps --split val
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nerfseg.instance_nerf.rcnn.train import evaluate_rcnn, load_rcnn  # noqa: E402
from nerfseg import spec  # noqa: E402


def grid_budget(root: Path, scene_ids: list[str]) -> dict[str, float]:
    """Mean radiance steps, wall training seconds and test PSNR of the scenes' grids (NaN where unrecorded)."""
    steps, seconds, psnr = [], [], []
    for sid in scene_ids:
        path = root / "radiance" / sid / "grid.json"
        info = json.loads(path.read_text()) if path.exists() else {}
        rad = info.get("settings", {}).get("radiance", {})
        steps.append(float(info.get("radiance_steps", rad.get("steps", np.nan))))
        seconds.append(float(info.get("wall_train_seconds", np.nan)))
        psnr.append(float(info.get("test_psnr", np.nan)))
    return {"steps": float(np.mean(steps)), "seconds": float(np.mean(seconds)), "psnr": float(np.mean(psnr))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, type=Path)
    parser.add_argument("--data", action="append", required=True, type=Path, help="benchmark root (repeatable)")
    parser.add_argument("--split", default="val")
    parser.add_argument("--scenes", nargs="*", default=None, help="scene ids (default: the split's scenes with a grid in every root)")
    args = parser.parse_args()

    model = load_rcnn(args.checkpoint, "cpu")
    ids = args.scenes or spec.scenes_in_split(args.data[0], args.split)
    ids = [s for s in ids if all((root / model.config.features_dir / f"{s}.npz").exists() for root in args.data)]
    if not ids:
        raise SystemExit(f"no {args.split} scene has a grid in every root")
    print(f"checkpoint {args.checkpoint}; {len(ids)} scenes: {' '.join(ids)}")
    print(f"{'root':40s} {'steps':>6s} {'train s':>8s} {'PSNR':>6s} {'AP25':>6s} {'AP50':>6s} {'mIoU':>6s}")
    for root in args.data:
        budget = grid_budget(root, ids)
        res = evaluate_rcnn(model, root, ids)
        print(f"{str(root):40s} {budget['steps']:6.0f} {budget['seconds']:8.0f} {budget['psnr']:6.2f} "
              f"{100 * res['ap25']:6.1f} {100 * res['ap50']:6.1f} {100 * res['voxel_miou']:6.1f}")


if __name__ == "__main__":
    main()
