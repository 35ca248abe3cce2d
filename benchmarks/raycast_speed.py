"""Speed of the ray-cast renderer, camera sampling and voxelisation on hand-built test rooms.

Prints, per room, resolution and thread count, all measured in the same run with the three taking turns
on every view: bare embreex intersection of the view's camera rays (rays prepared outside the clock), the
depth + label maps (``render_depth_labels_only``, ray generation included) with their time ratio to bare
embree, and full RGB shading (secondary rays included) with its rays per pixel and its ray rate against
bare embree's, for the compiled shading (numba) and the numpy reference shading (``shade_kernel="numpy"``)
side by side, with the PSNR between their images (labels and depth checked identical). Run from the
repository root::

    python3 benchmarks/raycast_speed.py [--views 8] [--no-voxels] [--no-reference]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
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


def _bare_embree(rc: SceneRaycaster, threads: int):
    """Bare embreex: the same camera rays, prepared outside the clock, intersected by one
    ``EmbreeScene.run(..., output=1)`` per view (split in ``threads`` parts on a thread pool, as the
    raycaster does): the floor that label rendering is compared against."""
    pool = ThreadPoolExecutor(threads) if threads > 1 else None

    def prepare(c2w: np.ndarray, intr: Intrinsics):
        o, d = rc._camera_rays(c2w, intr)
        return np.ascontiguousarray(o, dtype=np.float32), np.ascontiguousarray(d, dtype=np.float32)

    def run(rays) -> float:
        o, d = rays
        n = len(o)
        t0 = time.perf_counter()
        if pool is None:
            rc._embree.run(o, d, dists=np.full(n, 1e37, np.float32), output=1)
        else:
            b = np.linspace(0, n, threads + 1).astype(int)
            list(pool.map(lambda i: rc._embree.run(o[b[i] : b[i + 1]], d[b[i] : b[i + 1]], dists=np.full(b[i + 1] - b[i], 1e37, np.float32), output=1), range(threads)))
        return time.perf_counter() - t0

    return prepare, run


def _interleaved(fns: dict, poses: np.ndarray, intr: Intrinsics, repeat: int = 2) -> dict[str, float]:
    """Seconds per view of each function: per view the fastest of ``repeat`` runs (the one least disturbed by
    the shared machine's other jobs; a long call is preempted more often than a short one, so a median
    penalises the slow paths), averaged over the views. The functions take turns on every view, so that
    load changes hit them alike."""
    times: dict[str, np.ndarray] = {k: np.full((repeat, len(poses)), np.inf) for k in fns}
    for k, fn in fns.items():  # warm-up (cached camera directions, thread pools, compiled kernels)
        fn(poses[0], intr)
    for r in range(repeat):
        for v, c2w in enumerate(poses):
            for k, fn in fns.items():
                times[k][r, v] = fn(c2w, intr)
    return {k: float(t.min(axis=0).mean()) for k, t in times.items()}


def _clock(fn):
    def timed(c2w: np.ndarray, intr: Intrinsics) -> float:
        t0 = time.perf_counter()
        fn(c2w, intr)
        return time.perf_counter() - t0

    return timed


def _psnr_u8(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two 8-bit images (inf when identical)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * float(np.log10(255.0**2 / mse))


def _agreement(rc: SceneRaycaster, ref: SceneRaycaster, poses: np.ndarray, intr: Intrinsics) -> str:
    """PSNR (min over views) and largest difference between the compiled and the reference shading's images;
    raises if a label or depth map differs (they never depend on the shading)."""
    psnrs, worst = [], 0
    for c2w in poses:
        a, b = rc.render(c2w, intr), ref.render(c2w, intr)
        for field in ("depth", "instance", "semantic", "hit"):
            if not np.array_equal(getattr(a, field), getattr(b, field)):
                raise AssertionError(f"{field} differs between the compiled and the numpy shading")
        psnrs.append(_psnr_u8(a.rgb, b.rgb))
        worst = max(worst, int(np.abs(a.rgb.astype(np.int16) - b.rgb.astype(np.int16)).max()))
    return f"PSNR min {min(psnrs):.1f} dB over {len(poses)} views, max |diff| {worst} levels, labels/depth identical"


def _speed_line(res: str, threads: int, rc: SceneRaycaster, ref: SceneRaycaster | None, poses: np.ndarray, intr: Intrinsics, repeat: int) -> None:
    """Times bare embree, labels, compiled RGB (and the numpy reference RGB) taking turns; prints the ratios."""
    n = intr.width * intr.height
    prepare, bare_run = _bare_embree(rc, threads)
    rays: dict[bytes, tuple[np.ndarray, np.ndarray]] = {}

    def bare(c2w: np.ndarray, intr: Intrinsics) -> float:
        key = c2w.tobytes()
        if key not in rays:
            rays[key] = prepare(c2w, intr)
        return bare_run(rays[key])

    fns = {"bare": bare, "labels": _clock(rc.render_depth_labels_only), "rgb": _clock(rc.render)}
    if ref is not None:
        fns["ref"] = _clock(ref.render)
    before, ref_before = rc.rays_cast, ref.rays_cast if ref is not None else 0
    t = _interleaved(fns, poses, intr, repeat)
    views = repeat * len(poses) + 1
    per_view_rays = (rc.rays_cast - before) / views - n  # rays cast by render and labels, less labels' primaries
    bare_rate = n / t["bare"]
    rgb_rate = per_view_rays / t["rgb"]
    line = (
        f"   {res} threads={threads}: bare embree {t['bare'] * 1e3:6.1f} ms/view ({bare_rate / 1e6:5.2f} Mrays/s) | "
        f"labels+depth {t['labels'] * 1e3:6.1f} ms/view, ratio to bare {t['labels'] / t['bare']:.2f} | "
        f"RGB+labels {t['rgb'] * 1e3:7.1f} ms/view, {per_view_rays / n:4.1f} rays/px, {rgb_rate / 1e6:5.2f} Mrays/s, "
        f"ray-rate ratio bare/RGB {bare_rate / rgb_rate:.2f}"
    )
    if ref is not None:
        ref_rate = (ref.rays_cast - ref_before) / views / t["ref"]
        line += f" | numpy-shading RGB {t['ref'] * 1e3:7.1f} ms/view, ray-rate ratio bare/RGB {bare_rate / ref_rate:.2f}, compiled {t['ref'] / t['rgb']:.2f}x faster"
    print(line)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--views", type=int, default=8, help="views timed per setting")
    ap.add_argument("--no-voxels", action="store_true", help="skip the voxelisation timings")
    ap.add_argument("--repeat", type=int, default=2, help="runs per view (the fastest counts)")
    ap.add_argument("--no-reference", action="store_true", help="skip the numpy reference shading (compiled shading only)")
    args = ap.parse_args()
    print(f"cpu cores: {os.cpu_count()}, load average at start: {os.getloadavg()[0]:.2f} (absolute numbers scale with it; compare the ratios)")
    resolutions = {"256x192": Intrinsics(256, 192, 160.0, 160.0, 128.0, 96.0), "640x480": Intrinsics(640, 480, 400.0, 400.0, 320.0, 240.0)}
    for name, scene in (("test room (5 box objects)", make_box_room()), ("dense room (15 objects, 5132 tris each)", dense_room())):
        t0 = time.perf_counter()
        rc1 = SceneRaycaster(scene)
        t_build = time.perf_counter() - t0
        rc2 = SceneRaycaster(scene, num_threads=2)
        refs = {} if args.no_reference else {1: SceneRaycaster(scene, shade_kernel="numpy"), 2: SceneRaycaster(scene, num_threads=2, shade_kernel="numpy")}
        t0 = time.perf_counter()
        poses = sample_cameras(scene, CameraConfig(), np.random.default_rng(0), target_views=100, raycaster=rc1)
        t_cams = time.perf_counter() - t0
        print(f"\n== {name}: {len(rc1.faces)} triangles, BVH build {t_build * 1e3:.1f} ms, 100 cameras sampled in {t_cams * 1e3:.0f} ms")
        L = rc1.lighting
        print(f"   RGB: 1 primary + up to {L.light_samples} shadow + {L.ao_samples} AO rays per pixel (secondary rays only where they can change the image)")
        sel = poses[np.linspace(0, len(poses) - 1, args.views).astype(int)]
        for res, intr in resolutions.items():
            if refs:
                print(f"   {res} compiled vs numpy shading: {_agreement(rc1, refs[1], sel, intr)}")
            for threads, rc in ((1, rc1), (2, rc2)):
                _speed_line(res, threads, rc, refs.get(threads), sel, intr, args.repeat)
        if args.no_voxels:
            continue
        for res_vox in (128, 256):
            for mode in ("solid", "surface"):
                t0 = time.perf_counter()
                grid = voxelize_scene(scene, res_vox, mode=mode)
                dt = time.perf_counter() - t0
                print(f"   voxelize {mode:7s} grid {res_vox} {grid.shape}: {dt * 1e3:7.1f} ms, {len(grid.instance_counts())} instances")
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
