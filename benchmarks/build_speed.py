"""Build speed: seconds per mini scene (about 100 views at 256x192 + a 128-voxel grid), per-stage times,
and ray-cast throughput of the label/depth path at the paper resolution (640x480).

Goals (issue 2): a mini scene in under 10 s on 2 cores; paper-resolution label maps under 50 ms a view.
Prints numbers only; run with ``python benchmarks/build_speed.py [--rooms 2] [--workers 2]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from dataset_tools.build import build_dataset, preset_config
from dataset_tools.cameras import sample_cameras
from dataset_tools.demo import write_demo_dataset
from dataset_tools.front3d import iter_houses, load_house
from dataset_tools.raycast import SceneRaycaster
from nerfseg.cameras import Intrinsics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rooms", type=int, default=2)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--priors", default="", help="comma-separated priors to include (default none)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        src = write_demo_dataset(Path(tmp) / "src", num_rooms=args.rooms, seed=0)
        config = preset_config("mini", priors=tuple(p for p in args.priors.split(",") if p))
        t0 = time.perf_counter()
        bench = build_dataset(Path(tmp) / "out", src.front3d_dir, src.future_dir, src.texture_dir, config, workers=args.workers, show_progress=False)
        wall = time.perf_counter() - t0
        n = len(bench["scenes"])
        print(f"mini preset: {n} scenes, {config.num_views} views at {config.width}x{config.height}, grid {config.grid_resolution}, workers {args.workers}")
        print(f"  wall clock: {wall:.1f} s total, {wall / n:.2f} s per scene (throughput)")
        stages: dict[str, list[float]] = {}
        for rec in bench["scenes"].values():
            for k, v in rec["timings_s"].items():
                stages.setdefault(k, []).append(v)
        print("  per-scene stage times (mean s): " + json.dumps({k: round(float(np.mean(v)), 3) for k, v in stages.items()}))

        index, house = iter_houses(src.front3d_dir)[0]
        scene = load_house(house, src.future_dir, src.texture_dir, index).scenes[0]
        rc = SceneRaycaster(scene)
        poses = sample_cameras(scene, config.camera, np.random.default_rng(0), target_views=20, raycaster=rc)
        for name, intr in (("paper 640x480", Intrinsics(640, 480, 400, 400, 320, 240)), ("mini 256x192", config.intrinsics)):
            rc.render_depth_labels_only(poses[0], intr)  # warm up
            t = time.perf_counter()
            for c2w in poses:
                rc.render_depth_labels_only(c2w, intr)
            dt = (time.perf_counter() - t) / len(poses)
            print(f"  labels+depth {name}: {dt * 1e3:.1f} ms/view, {intr.width * intr.height / dt / 1e6:.2f} Mrays/s")
            t = time.perf_counter()
            for c2w in poses[:5]:
                rc.render(c2w, intr)
            dt = (time.perf_counter() - t) / 5
            print(f"  full RGB+labels {name}: {dt * 1e3:.1f} ms/view")


if __name__ == "__main__":
    main()
