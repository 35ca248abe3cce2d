"""Grid-encoding speed on the CPU: the compiled kernels against the torch ops they replace, same points.

    python3 benchmarks/grid_kernel_speed.py                  # the mini hash grid, 2048 rays x 64 samples
    python3 benchmarks/grid_kernel_speed.py --points 50000 --threads 1,2 --repeats 15

Points are samples along random rays through the unit box (neighbouring samples fall into neighbouring
cells, as in training). For each path and thread count it times, best of ``--repeats`` (the paths
interleaved so that a shared machine's load hits them alike): the forward without gradients (the
empty-space-skipping pass), the forward with gradients, and its backward into the tables; then prints
the ratios torch / compiled. It checks the two paths' outputs agree (1e-6) and prints numbers; it passes
or fails nothing.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Callable

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nerfseg.radiance import _grid_kernel  # noqa: E402
from nerfseg.radiance.config import preset  # noqa: E402
from nerfseg.radiance.encodings import hash_grid  # noqa: E402


def ray_points(rays: int, samples: int, seed: int = 0) -> torch.Tensor:
    """``rays`` x ``samples`` points along random rays inside [-1, 1]^3, ray by ray."""
    g = torch.Generator().manual_seed(seed)
    origins = torch.rand(rays, 3, generator=g) * 2.0 - 1.0
    dirs = torch.nn.functional.normalize(torch.randn(rays, 3, generator=g), dim=-1)
    t = torch.linspace(0.0, 1.6, samples)
    return (origins[:, None] + dirs[:, None] * t[None, :, None]).reshape(-1, 3).clamp(-1.0, 1.0)


def best_of(repeats: int, jobs: dict[str, Callable[[], object]]) -> dict[str, float]:
    """Best wall-clock seconds of each job over ``repeats`` rounds, the jobs interleaved within a round."""
    best = {name: float("inf") for name in jobs}
    for job in jobs.values():
        job()  # compile / warm up
    for _ in range(repeats):
        for name, job in jobs.items():
            t0 = time.perf_counter()
            job()
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--points", type=int, default=2048 * 64, help="points (default: a mini batch, 2048 rays x 64 samples)")
    ap.add_argument("--threads", default="1,2", help="torch thread counts to time, comma-separated")
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args()
    if not _grid_kernel.enabled():
        sys.exit("numba is not installed (or NERFSEG_RADIANCE_KERNEL=torch): nothing to compare")
    cfg = preset("mini")
    enc = hash_grid(torch.tensor([[-1.0] * 3, [1.0] * 3]), cfg.num_levels, cfg.features_per_level, cfg.log2_table_size, cfg.base_resolution, cfg.max_resolution)
    torch.manual_seed(0)
    for table in enc.tables:
        table.data.uniform_(-1.0, 1.0)
    samples = 64
    x = ray_points(max(1, args.points // samples), samples)
    upstream = torch.randn(x.shape[0], enc.output_dim)
    levels = ", ".join(f"{r[0]}{'h' if h else 'd'}" for r, h in zip(enc._res, enc.hashed))
    print(f"mini hash grid: {enc.num_levels} levels ({levels}; h = hashed into 2^{cfg.log2_table_size}), {x.shape[0]:,} points, load average {os.getloadavg()[0]:.2f}")

    def with_path(kernel: str, fn: Callable[[], object]) -> Callable[[], object]:
        def run() -> object:
            enc.kernel = kernel
            return fn()

        return run

    def forward_nograd() -> torch.Tensor:
        with torch.no_grad():
            return enc(x)

    def forward_backward() -> None:
        out = enc(x)
        torch.autograd.backward(out, upstream, inputs=list(enc.tables))

    before = torch.get_num_threads()
    try:
        with torch.no_grad():
            enc.kernel = "torch"
            ref = enc(x)
            enc.kernel = "auto"
            got = enc(x)
        print(f"max |compiled - torch| feature difference: {float((got - ref).abs().max()):.2e}")
        print(f"{'threads':>7}  {'pass':<22} {'torch ops':>10} {'compiled':>10} {'ratio':>7}")
        for threads in [int(t) for t in args.threads.split(",") if t]:
            torch.set_num_threads(threads)
            jobs = {}
            for kernel in ("torch", "auto"):
                jobs[f"nograd:{kernel}"] = with_path(kernel, forward_nograd)
                jobs[f"fwdbwd:{kernel}"] = with_path(kernel, forward_backward)
            best = best_of(args.repeats, jobs)
            for label, key in (("forward, no gradients", "nograd"), ("forward + backward", "fwdbwd")):
                old, new = best[f"{key}:torch"], best[f"{key}:auto"]
                print(f"{threads:>7}  {label:<22} {old * 1e3:8.1f}ms {new * 1e3:8.1f}ms {old / new:6.2f}x")
    finally:
        torch.set_num_threads(before)
        enc.kernel = "auto"
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
