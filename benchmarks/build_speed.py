"""Build speed: seconds per mini scene (about 100 views at 256x192 + a 128-voxel grid), per-stage times,
and ray-cast throughput of the label/depth path at the paper resolution (640x480).

Goals (issue 2): a mini scene in under 10 s on 2 cores; paper-resolution label maps under 50 ms a view.
Prints numbers only; run with ``python benchmarks/build_speed.py [--rooms 2] [--workers 2]``.

``--renderer cycles`` (needs the render extra) instead times the Cycles RGB path per view at the mini and
paper resolutions for 16 and 64 samples (``--samples``), against the Embree shader's RGB+labels on the same
views in the same run, plus the one-off scene translation into Blender.
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

from nerfseg.dataset_tools.build import build_dataset, preset_config
from nerfseg.dataset_tools.cameras import sample_cameras
from nerfseg.dataset_tools.demo import write_demo_dataset
from nerfseg.dataset_tools.front3d import iter_houses, load_house
from nerfseg.dataset_tools.raycast import SceneRaycaster
from nerfseg.cameras import Intrinsics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rooms", type=int, default=2)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--priors", default="", help="comma-separated priors to include (default none)")
    parser.add_argument("--renderer", choices=["raycast", "cycles"], default="raycast")
    parser.add_argument("--samples", default="16,64", help="cycles: comma-separated sample counts")
    parser.add_argument("--views", type=int, default=2, help="cycles: views timed per setting")
    args = parser.parse_args()
    if args.renderer == "cycles":
        cycles_speed([int(x) for x in args.samples.split(",")], args.views)
        return
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


def cycles_speed(samples: list[int], num_views: int) -> None:
    """Seconds per view of Cycles (default denoiser, adaptive sampling) vs the Embree shader, same views."""
    from nerfseg.dataset_tools.cycles import CyclesScene, CyclesSettings, require_bpy

    bpy = require_bpy()
    config = preset_config("mini")
    with tempfile.TemporaryDirectory() as tmp:
        src = write_demo_dataset(Path(tmp) / "src", num_rooms=1, seed=0)
        index, house = iter_houses(src.front3d_dir)[0]
        scene = load_house(house, src.future_dir, src.texture_dir, index).scenes[0]
        rc = SceneRaycaster(scene, lighting=config.lighting)
        poses = sample_cameras(scene, config.camera, np.random.default_rng(0), target_views=num_views, raycaster=rc)
        resolutions = (("mini 256x192", config.intrinsics), ("paper 640x480", Intrinsics(640, 480, 400, 400, 320, 240)))
        print(f"Cycles (bpy {bpy.app.version_string}) vs Embree shader, demo room {scene.scene_id}, {len(poses)} views per setting")
        t = time.perf_counter()
        cs = CyclesScene(scene, CyclesSettings(samples=samples[0]))
        print(f"  scene translation into Blender (once per scene): {time.perf_counter() - t:.2f} s on {cs.device}")
        for name, intr in resolutions:
            rc.render(poses[0], intr)  # warm up
            t, c = time.perf_counter(), time.process_time()
            for c2w in poses:
                rc.render(c2w, intr)
            embree, embree_cpu = (time.perf_counter() - t) / len(poses), (time.process_time() - c) / len(poses)
            print(f"  {name}: Embree shader RGB+labels {embree:.3f} s/view wall, {embree_cpu:.3f} CPU-s/view")
            for n in samples:
                cs.bscene.cycles.samples = n
                if n == samples[0]:
                    cs.render_rgb(poses[0], intr)  # first render at a size builds the kernels / BVH
                t, c = time.perf_counter(), time.process_time()
                for c2w in poses:
                    cs.render_rgb(c2w, intr)
                dt, cpu = (time.perf_counter() - t) / len(poses), (time.process_time() - c) / len(poses)
                # CPU seconds (all render threads) stay meaningful on a shared machine, where wall time is not
                print(f"  {name}: Cycles {n:3d} samples {dt:.2f} s/view wall ({dt / embree:.0f}x the Embree shader), "
                      f"{cpu:.2f} CPU-s/view ({cpu / embree_cpu:.0f}x)")


if __name__ == "__main__":
    main()
