"""Radiance-core speed: training rays/s and samples/s, and test PSNR over training wall-clock time.

    python3 benchmarks/radiance_speed.py                       # builds a synthetic 100-view 256x192 room
    python3 benchmarks/radiance_speed.py --scene /tmp/demo/scenes/<id> --minutes 10 --threads 2
    python3 benchmarks/radiance_speed.py --devices cpu,cuda --preset paper --minutes 5

For every device it trains ``--preset`` for ``--minutes`` of training time (evaluation excluded),
renders ``--eval-views`` test views every ``--eval-every`` seconds of training, and at the end all test
views. Rays/s and samples/s are measured over the steps after the occupancy warm-up (steady state);
"samples" are those that go through the full network with gradients, "probed" those that survive
empty-space skipping and get the density-only pass. It prints numbers; it passes or fails nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nerfseg.radiance.config import preset  # noqa: E402
from nerfseg.radiance.trainer import RadianceTrainer  # noqa: E402


def default_scene(path: Path) -> Path:
    """The synthetic room of the radiance tests at demo size (100 views, 256x192), built once."""
    from tests.radiance.synthetic import make_scene

    if not (path / "transforms.json").exists():
        print(f"building synthetic scene in {path} ...", flush=True)
        make_scene(path, num_views=100, width=256, height=192, seed=0)
    return path


def run(scene: Path, device: str, args: argparse.Namespace) -> dict:
    cfg = preset(args.preset)
    if args.steps:
        cfg = cfg.replace(steps=args.steps)
    overrides = json.loads(args.override) if args.override else {}
    cfg = cfg.replace(**overrides)
    t_load = time.perf_counter()
    trainer = RadianceTrainer(scene, cfg, device=device, progress=False)
    load_s = time.perf_counter() - t_load
    budget = args.minutes * 60.0
    curve: list[dict] = []
    steady = {"steps": 0, "seconds": 0.0, "rays": 0, "samples": 0.0, "probed": 0.0}
    next_eval = args.eval_every
    last: dict = {}
    while trainer.train_seconds < budget and trainer.step < cfg.steps:
        t0 = time.perf_counter()
        logs = trainer.train_step()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        trainer.train_seconds += dt
        last = logs
        if trainer.step > cfg.occ_warmup_steps + cfg.occ_update_every:
            steady["steps"] += 1
            steady["seconds"] += dt
            steady["rays"] += cfg.batch_rays
            steady["samples"] += logs["samples_per_ray"] * cfg.batch_rays
            steady["probed"] += logs["probed_per_ray"] * cfg.batch_rays
        if trainer.train_seconds >= next_eval:
            ev = trainer.evaluate("test", max_views=args.eval_views)
            curve.append({"train_s": round(trainer.train_seconds, 1), "step": trainer.step, "test_psnr": round(ev["psnr"], 2), "train_psnr": round(logs["psnr"], 2)})
            print(f"  [{device}] {curve[-1]}", flush=True)
            next_eval += args.eval_every
    final = trainer.evaluate("test")
    curve.append({"train_s": round(trainer.train_seconds, 1), "step": trainer.step, "test_psnr": round(final["psnr"], 2), "train_psnr": round(last.get("psnr", float("nan")), 2), "all_views": final["num_views"]})
    s = max(steady["seconds"], 1e-9)
    return {
        "device": device,
        "threads": torch.get_num_threads(),
        "preset": cfg.preset,
        "overrides": overrides,
        "scene": str(scene),
        "train_views": trainer.rays.num_frames,
        "resolution": [trainer.rays.width, trainer.rays.height],
        "load_s": round(load_s, 1),
        "steps": trainer.step,
        "rays_per_s": round(steady["rays"] / s),
        "samples_per_s": round(steady["samples"] / s),
        "probed_per_s": round(steady["probed"] / s),
        "samples_per_ray": round(steady["samples"] / max(steady["rays"], 1), 1),
        "steady_step_s": round(s / max(steady["steps"], 1), 4),
        "curve": curve,
        "final_test_psnr": round(final["psnr"], 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scene", type=Path, default=None, help="scene folder (transforms.json + images/); default: synthetic room")
    ap.add_argument("--preset", default="mini")
    ap.add_argument("--override", default="", help='JSON dict of RadianceConfig overrides, e.g. \'{"batch_rays": 4096}\'')
    ap.add_argument("--devices", default="", help="comma list; default: cpu, plus cuda when available")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    ap.add_argument("--minutes", type=float, default=10.0, help="training time per device (evaluation excluded)")
    ap.add_argument("--steps", type=int, default=0, help="override the preset's step count (also ends the run)")
    ap.add_argument("--eval-every", type=float, default=60.0, help="seconds of training between test evaluations")
    ap.add_argument("--eval-views", type=int, default=4)
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    scene = args.scene or default_scene(Path("/tmp/nerfseg_radiance_bench_scene"))
    devices = [d for d in args.devices.split(",") if d] or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    results = []
    for device in devices:
        print(f"== {device} ({args.preset}, {args.minutes} min) on {scene}", flush=True)
        res = run(scene, device, args)
        results.append(res)
        print(
            f"   {device}: {res['rays_per_s']} rays/s, {res['samples_per_s']} samples/s ({res['probed_per_s']} probed/s), "
            f"{res['samples_per_ray']} samples/ray, {res['steady_step_s']} s/step, {res['steps']} steps, final test PSNR {res['final_test_psnr']} dB",
            flush=True,
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
