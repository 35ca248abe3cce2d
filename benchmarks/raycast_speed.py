"""Speed of the ray-cast renderer, camera sampling and voxelisation on hand-built test rooms.

Prints, per room and resolution: ms per view and primary Mrays/s for depth + labels only and for full
RGB shading (which also casts ``light_samples`` shadow rays and ``ao_samples`` ambient-occlusion rays per
pixel), with one thread and with two. Run from the repository root::

    python3 benchmarks/raycast_speed.py [--views 8]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import trimesh

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nerfseg.dataset_tools.cameras import CameraConfig, sample_cameras
from nerfseg.dataset_tools.raycast import SceneRaycaster
from nerfseg.dataset_tools.scene import MeshPart, ObjectInstance, Scene
from nerfseg.dataset_tools.voxelize import voxelize_scene
from nerfseg.cameras import Intrinsics
from tests.dataset_tools.scenes import make_box_room


def dense_room(n_objects: int = 15, subdivisions: int = 4, seed: int = 0) -> Scene:
    """The test room with ``n_objects`` extra high-poly objects (icospheres of 5120 triangles on boxes):
    closer to 3D-FUTURE furniture triangle counts than the boxes of the test room."""
    scene = make_box_room(objects=[])
    rng = np.random.default_rng(seed)
    lo, hi = scene.room_bbox
    for k in range(n_objects):
        inst_id = k + 1
        centre = np.array([rng.uniform(lo[0] + 0.6, hi[0] - 0.6), rng.uniform(lo[1] + 0.6, hi[1] - 0.6), 0.0])
        base = trimesh.creation.box(extents=(0.5, 0.4, 0.5))
        ball = trimesh.creation.icosphere(subdivisions=subdivisions, radius=0.25)
        parts = [(base.vertices + centre + [0, 0, 0.25], base.faces), (ball.vertices + centre + [0, 0, 0.7], ball.faces)]
        pts = []
        for j, (v, f) in enumerate(parts):
            scene.parts.append(MeshPart(f"obj{k}_{j}", v, np.asarray(f), color=tuple(rng.uniform(0.2, 0.9, 3)), instance_id=inst_id, class_index=1 + k % 10))
            pts.append(v)
        p = np.concatenate(pts)
        aabb = np.concatenate([p.min(0), p.max(0)])
        ext = aabb[3:] - aabb[:3]
        obb = np.array([*(aabb[:3] + aabb[3:]) / 2, max(ext[:2]), min(ext[:2]), ext[2], 0.0])
        scene.instances.append(ObjectInstance(inst_id, 1 + k % 10, 39, "bench", None, f"j{k}", f"u{k}", aabb, obb))
    return scene


def _time_views(fn, poses: np.ndarray, intr: Intrinsics) -> float:
    """Median seconds per view (the median resists other processes' bursts on a shared machine)."""
    fn(poses[0], intr)  # warm-up (BVH commit, cached camera directions)
    times = []
    for c2w in poses:
        t0 = time.perf_counter()
        fn(c2w, intr)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--views", type=int, default=8, help="views timed per setting")
    args = ap.parse_args()
    print(f"cpu cores: {os.cpu_count()}, load average at start: {os.getloadavg()[0]:.2f} (numbers scale with it)")
    resolutions = {"256x192": Intrinsics(256, 192, 160.0, 160.0, 128.0, 96.0), "640x480": Intrinsics(640, 480, 400.0, 400.0, 320.0, 240.0)}
    for name, scene in (("test room (5 box objects)", make_box_room()), ("dense room (15 objects, 5132 tris each)", dense_room())):
        t0 = time.perf_counter()
        rc1 = SceneRaycaster(scene)
        t_build = time.perf_counter() - t0
        rc2 = SceneRaycaster(scene, num_threads=2)
        t0 = time.perf_counter()
        poses = sample_cameras(scene, CameraConfig(), np.random.default_rng(0), target_views=100, raycaster=rc1)
        t_cams = time.perf_counter() - t0
        print(f"\n== {name}: {len(rc1.faces)} triangles, BVH build {t_build * 1e3:.1f} ms, 100 cameras sampled in {t_cams * 1e3:.0f} ms")
        L = rc1.lighting
        print(f"   RGB casts 1 + {L.light_samples} shadow + {L.ao_samples} AO rays per pixel (secondary rays only where needed)")
        sel = poses[np.linspace(0, len(poses) - 1, args.views).astype(int)]
        for res, intr in resolutions.items():
            n = intr.width * intr.height
            for threads, rc in ((1, rc1), (2, rc2)):
                t_lab = _time_views(rc.render_depth_labels_only, sel, intr)
                before = rc.rays_cast
                t_rgb = _time_views(rc.render, sel, intr)
                per_view = (rc.rays_cast - before) / (len(sel) + 1)
                print(
                    f"   {res} threads={threads}: labels+depth {t_lab * 1e3:7.1f} ms/view ({n / t_lab / 1e6:5.2f} Mrays/s) | "
                    f"RGB+labels {t_rgb * 1e3:7.1f} ms/view ({n / t_rgb / 1e6:5.2f} Mpx/s, "
                    f"{per_view / n:4.1f} rays/px, {per_view / t_rgb / 1e6:5.2f} Mrays/s)"
                )
        for res_vox in (128, 256):
            for mode in ("solid", "surface"):
                t0 = time.perf_counter()
                grid = voxelize_scene(scene, res_vox, mode=mode)
                dt = time.perf_counter() - t0
                print(f"   voxelize {mode:7s} grid {res_vox} {grid.shape}: {dt * 1e3:7.1f} ms, {len(grid.instance_counts())} instances")


if __name__ == "__main__":
    main()
