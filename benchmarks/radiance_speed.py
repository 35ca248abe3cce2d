"""Radiance-core speed: training rays/s and samples/s, and test PSNR over training wall-clock time.

    python3 benchmarks/radiance_speed.py                       # builds a synthetic 100-view 256x192 room
    python3 benchmarks/radiance_speed.py --scene /tmp/demo/scenes/<id> --minutes 10 --threads 2
    python3 benchmarks/radiance_speed.py --devices cpu,cuda --preset paper --minutes 5
    python3 benchmarks/radiance_speed.py --override '{"grid_kernel": "torch"}' --compare mini --minutes 10 --marks 2,5,10

For every device it trains ``--preset`` (and every ``--compare`` configuration, their steps alternating
so that a shared machine's load hits them alike) for ``--minutes`` of training time each (evaluation
excluded), renders all test views at the ``--marks`` (minutes), ``--eval-views`` test views every
``--eval-every`` seconds, and all test views at the end. Rays/s and samples/s are measured over the steps after the occupancy warm-up (steady state);
"samples" are those that go through the full network with gradients, "probed" those that survive
empty-space skipping and get the density-only pass. It prints numbers; it passes or fails nothing.
"""

from __future__ import annotations

import argparse
import json
import os
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


class _Run:
    """One configuration being trained for the benchmark: its trainer, clock and measurements."""

    def __init__(self, label: str, scene: Path, device: str, cfg, args: argparse.Namespace) -> None:
        self.label, self.device, self.cfg, self.args = label, device, cfg, args
        t_load = time.perf_counter()
        self.trainer = RadianceTrainer(scene, cfg, device=device, progress=False)
        self.load_s = time.perf_counter() - t_load
        self.budget = args.minutes * 60.0
        self.curve: list[dict] = []
        self.marks = sorted(float(m) * 60.0 for m in args.marks.split(",") if m) if args.marks else []
        self.at_marks: dict[str, float] = {}
        self.steady = {"steps": 0, "seconds": 0.0, "rays": 0, "samples": 0.0, "probed": 0.0}
        self.next_eval = args.eval_every
        self.last: dict = {}

    @property
    def done(self) -> bool:
        return self.trainer.train_seconds >= self.budget or self.trainer.step >= self.cfg.steps

    def step(self) -> None:
        trainer, cfg = self.trainer, self.cfg
        t0 = time.perf_counter()
        logs = trainer.train_step()
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        trainer.train_seconds += dt
        self.last = logs
        if trainer.step > cfg.occ_warmup_steps + cfg.occ_update_every:
            self.steady["steps"] += 1
            self.steady["seconds"] += dt
            self.steady["rays"] += cfg.batch_rays
            self.steady["samples"] += logs["samples_per_ray"] * cfg.batch_rays
            self.steady["probed"] += logs["probed_per_ray"] * cfg.batch_rays
        while self.marks and trainer.train_seconds >= self.marks[0]:
            mark = self.marks.pop(0)
            ev = trainer.evaluate("test")
            self.at_marks[f"{mark / 60:g} min"] = round(ev["psnr"], 2)
            print(f"  [{self.label}] {mark / 60:g} min: test PSNR {ev['psnr']:.2f} dB (all {ev['num_views']} test views, step {trainer.step})", flush=True)
        if self.args.eval_every and trainer.train_seconds >= self.next_eval:
            ev = trainer.evaluate("test", max_views=self.args.eval_views)
            self.curve.append({"train_s": round(trainer.train_seconds, 1), "step": trainer.step, "test_psnr": round(ev["psnr"], 2), "train_psnr": round(logs["psnr"], 2)})
            print(f"  [{self.label}] {self.curve[-1]}", flush=True)
            self.next_eval += self.args.eval_every

    def result(self, scene: Path) -> dict:
        trainer, cfg, steady = self.trainer, self.cfg, self.steady
        final = trainer.evaluate("test")
        self.curve.append({"train_s": round(trainer.train_seconds, 1), "step": trainer.step, "test_psnr": round(final["psnr"], 2), "train_psnr": round(self.last.get("psnr", float("nan")), 2), "all_views": final["num_views"]})
        sec = max(steady["seconds"], 1e-9)
        return {
            "label": self.label,
            "device": self.device,
            "threads": torch.get_num_threads(),
            "preset": cfg.preset,
            "scene": str(scene),
            "train_views": trainer.rays.num_frames,
            "resolution": [trainer.rays.width, trainer.rays.height],
            "load_s": round(self.load_s, 1),
            "steps": trainer.step,
            "rays_per_s": round(steady["rays"] / sec),
            "samples_per_s": round(steady["samples"] / sec),
            "probed_per_s": round(steady["probed"] / sec),
            "samples_per_ray": round(steady["samples"] / max(steady["rays"], 1), 1),
            "steady_step_s": round(sec / max(steady["steps"], 1), 4),
            "test_psnr_at": self.at_marks,
            "curve": self.curve,
            "final_test_psnr": round(final["psnr"], 2),
        }


def _config(spec: str, args: argparse.Namespace):
    """A configuration from ``preset`` or ``preset:{json overrides}`` (or bare ``{json}`` on --preset)."""
    name, _, extra = spec.partition(":") if not spec.startswith("{") else (args.preset, "", spec)
    cfg = preset(name or args.preset)
    if args.steps:
        cfg = cfg.replace(steps=args.steps)
    return cfg.replace(**(json.loads(extra) if extra else {}))


def run_all(scene: Path, device: str, args: argparse.Namespace) -> list[dict]:
    """Train every configuration on ``device``; with several, their steps alternate (one step each in
    turn, each on its own clock), so that the shared machine's load changes hit them alike."""
    specs = [args.preset + (":" + args.override if args.override else "")] + list(args.compare)
    runs = [_Run(spec, scene, device, _config(spec, args), args) for spec in specs]
    while not all(r.done for r in runs):
        for r in runs:
            if not r.done:
                r.step()
    return [r.result(scene) for r in runs]


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
    ap.add_argument(
        "--compare",
        action="append",
        default=[],
        help='another configuration trained in the same run, steps alternating: "preset" or "preset:{json overrides}" (repeatable)',
    )
    ap.add_argument("--marks", default="2,5,10", help="minutes of training at which all test views are rendered (comma list)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    scene = args.scene or default_scene(Path("/tmp/nerfseg_radiance_bench_scene"))
    devices = [d for d in args.devices.split(",") if d] or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    results = []
    for device in devices:
        print(f"== {device} ({args.minutes} min each) on {scene}, load average {os.getloadavg()[0]:.2f}", flush=True)
        for res in run_all(scene, device, args):
            results.append(res)
            rates = (
                f"{res['rays_per_s']} rays/s, {res['samples_per_s']} samples/s ({res['probed_per_s']} probed/s), "
                f"{res['samples_per_ray']} samples/ray, {res['steady_step_s']} s/step"
                if res["rays_per_s"]
                else "steady-state rates n/a (the run ended inside the occupancy warm-up)"
            )
            print(
                f"   [{res['label']}] {device}: {rates}, {res['steps']} steps, test PSNR at {res['test_psnr_at']}, final {res['final_test_psnr']} dB",
                flush=True,
            )
        print(f"   load average at the end: {os.getloadavg()[0]:.2f}", flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
