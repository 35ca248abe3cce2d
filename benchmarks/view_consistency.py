"""Multi-view colour consistency of built benchmarks: a cheap proxy for what a radiance field can fit.

Every pixel of every view is lifted to 3D with the exact (Embree) depth, projected into each other view,
kept where it is visible there (depth agrees within 2 cm), and its colour compared with the nearest pixel.
The PSNR of those differences is high when the images agree across views (view-independent shading, little
noise or aliasing) and drops with view-dependent effects, noise and aliasing. It is not a NeRF's test PSNR.

Usage: ``python benchmarks/view_consistency.py BENCH_ROOT [BENCH_ROOT ...] [--scene ID]`` (e.g. the same demo
built with ``--renderer raycast`` and ``--renderer cycles``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from nerfseg import spec
from nerfseg.cameras import Intrinsics, project_points, world_rays
from nerfseg.io import read_png


def reprojection_psnr(scene_dir: Path, depth_tolerance_m: float = 0.02) -> tuple[float, int]:
    """(PSNR in dB, number of visible pixel pairs) over all ordered view pairs of one scene."""
    info = spec.load_scene_info(scene_dir)
    intr = Intrinsics(info.width, info.height, info.fl_x, info.fl_y, info.cx, info.cy)
    rgb = [read_png(scene_dir / spec.IMAGES_DIR / f"{f.name}.png", expect="rgb").astype(np.float64) / 255.0 for f in info.frames]
    depth = [read_png(scene_dir / spec.DEPTH_DIR / f"{f.name}.png", expect="gray16") / spec.DEPTH_SCALE for f in info.frames]
    poses = [np.asarray(f.transform_matrix, dtype=np.float64) for f in info.frames]
    sq_err, count = 0.0, 0
    for i, c2w in enumerate(poses):
        origins, dirs = world_rays(c2w, intr)
        z = depth[i].reshape(-1)
        hit = z > 0
        points = origins[hit] + dirs[hit] * z[hit, None]  # camera-z = -1 directions: t is the depth
        colours = rgb[i].reshape(-1, 3)[hit]
        for j, other in enumerate(poses):
            if j == i:
                continue
            uv, zj = project_points(points, other, intr)
            ok = (zj > 0) & np.all(np.isfinite(uv), axis=1)
            ok[ok] &= (uv[ok, 0] >= 0) & (uv[ok, 1] >= 0) & (uv[ok, 0] < intr.width) & (uv[ok, 1] < intr.height)
            u = np.floor(uv[ok, 0]).astype(np.int64)
            v = np.floor(uv[ok, 1]).astype(np.int64)
            visible = np.abs(depth[j][v, u] - zj[ok]) < depth_tolerance_m
            diff = rgb[j][v[visible], u[visible]] - colours[ok][visible]
            sq_err += float((diff**2).sum())
            count += int(visible.sum())
    if count == 0:
        return float("nan"), 0
    return float(10.0 * np.log10(1.0 / (sq_err / (3 * count)))), count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("roots", nargs="+", type=Path)
    parser.add_argument("--scene", default=None, help="scene id (default: the first of each benchmark)")
    args = parser.parse_args()
    for root in args.roots:
        bench = json.loads((root / spec.BENCHMARK_JSON).read_text())
        sid = args.scene or sorted(bench["scenes"])[0]
        psnr, n = reprojection_psnr(spec.scene_dir(root, sid))
        renderer = bench["build_settings"].get("renderer", "raycast")
        print(f"{root} [{renderer}] {sid}: reprojection PSNR {psnr:.2f} dB over {n} visible pixel pairs")


if __name__ == "__main__":
    main()
