"""What the GT resampling keeps: per thin-object class, GT voxels kept by nearest sampling vs the max-pooling of
``nerfseg.instance_nerf.rcnn.data.pool_instance_masks`` at NeRF-RCNN's working resolution, instances lost, and how many
cells of the finest FPN level an object spans at each backbone stride. Needs only gt3d.h5 (build the rooms with
few views and no prior to measure quickly)::

    nerfseg build-dataset --demo 12 --test-rooms 8 --views 8 --prior none --out /tmp/demo8_gt
    python3 benchmarks/gt_resampling.py --data /tmp/demo8_gt --split test --resolution 64 --resolution 32
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nerfseg.instance_nerf.rcnn.data import resample_gt_instances, resample_labels_nearest, working_shape
from nerfseg import spec
from nerfseg.gt3d import read_gt3d


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--split", default="test")
    ap.add_argument("--resolution", type=int, action="append", default=[])
    args = ap.parse_args()
    scenes = spec.scenes_in_split(args.data, args.split)
    for res in args.resolution or [64]:
        per_class: dict[str, list[tuple[int, int, float]]] = defaultdict(list)
        lost_nearest = lost_pooled = total = 0
        for sid in scenes:
            gt = read_gt3d(spec.scene_dir(args.data, sid) / spec.GT3D_H5)
            shape = working_shape(gt.instance.shape, res)
            near = resample_labels_nearest(gt.instance, shape)
            ids, masks, _ = resample_gt_instances(gt, shape)
            classes = gt.class_of()
            for k, iid in enumerate(ids.tolist()):
                n_near = int((near == iid).sum())
                nz = np.nonzero(masks[k])
                width = float(min(nz[0].max() - nz[0].min() + 1, nz[1].max() - nz[1].min() + 1))  # narrower floor side
                per_class[spec.CLASS_NAMES[classes[iid]]].append((n_near, int(masks[k].sum()), width))
                lost_nearest += n_near == 0
                lost_pooled += not masks[k].any()
                total += 1
        print(f"\n{len(scenes)} {args.split} scenes at {res} voxels: {total} instances; lost by nearest sampling {lost_nearest}, by max-pooling {lost_pooled}")
        print(f"{'class':14s} {'n':>3s} {'nearest vox':>12s} {'pooled vox':>11s} {'width vox':>10s} {'cells@s4':>9s} {'cells@s2':>9s}")
        for name, rows in sorted(per_class.items()):
            a = np.asarray(rows, dtype=np.float64)
            print(f"{name:14s} {len(rows):3d} {a[:, 0].mean():12.1f} {a[:, 1].mean():11.1f} {a[:, 2].mean():10.1f} {a[:, 2].mean() / 4:9.1f} {a[:, 2].mean() / 2:9.1f}")


if __name__ == "__main__":
    main()
