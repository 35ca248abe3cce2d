"""NeRF-RCNN speed: seconds per training step and per predicted scene, and FLOPs per step for a preset.

Timing runs on this machine's device (synthetic room-shaped grids, the preset's batch size). FLOPs are
counted without running anything (``FlopCounterMode`` on meta tensors) for the dense part (backbone + FCOS
head) plus the RoI heads at the preset's RoI counts, so the ``paper`` preset can be sized on a laptop.
Run from the repository root::

    python3 benchmarks/rcnn_speed.py --preset mini --steps 5
    python3 benchmarks/rcnn_speed.py --preset paper --flops-only
    python3 benchmarks/rcnn_speed.py --preset mini --set base_stride=4   # any RCNNConfig field (JSON value)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nerfseg.instance_nerf.rcnn.config import preset_config
from nerfseg.instance_nerf.rcnn.model import NeRFRCNN, pad_grids, predict_scene
from nerfseg.instance_nerf.rcnn.synthetic import make_scene
from nerfseg.instance_nerf.rcnn.train import one_cycle, sample_to_inputs


def step_flops(preset: str, shape: tuple[int, int, int], overrides: dict | None = None) -> dict[str, float]:
    """Forward FLOPs (multiply-add = 2) of one scene: dense part and RoI heads; a training step is ~3x forward."""
    cfg = preset_config(preset, **(overrides or {}))
    with torch.device("meta"):
        model = NeRFRCNN(cfg)
        x, _ = pad_grids([torch.zeros((cfg.in_channels, *shape))])
        n_pos = int(cfg.rois_per_scene * cfg.positive_fraction)
        with FlopCounterMode(display=False) as dense:
            feats = model.backbone(x)
            model.rpn.head(feats)
        with FlopCounterMode(display=False) as heads:
            model.box_head(torch.zeros((cfg.rois_per_scene, cfg.fpn_channels, *(cfg.box_roi_size,) * 3)))
            model.mask_head(torch.zeros((n_pos, cfg.fpn_channels, *(cfg.mask_roi_size,) * 3)))
    return {"dense_gflop": dense.get_total_flops() / 1e9, "heads_gflop": heads.get_total_flops() / 1e9,
            "params_m": sum(p.numel() for p in NeRFRCNN(cfg).parameters()) / 1e6}


def time_training(preset: str, shape: tuple[int, int, int], steps: int, device: torch.device, overrides: dict | None = None) -> tuple[float, float]:
    """Median seconds per training step (batch = preset batch size) and per ``predict_scene`` call."""
    cfg = preset_config(preset, **{**(overrides or {}), "input_resolution": None})
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    scenes = [make_scene(shape, rng=rng, num_objects=6, size_range=(max(3, min(shape) // 8), max(4, min(shape) // 3))) for _ in range(cfg.batch_size)]
    model = NeRFRCNN(cfg).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, one_cycle(cfg.onecycle_pct_start, steps + 1))
    grids, shapes, targets = sample_to_inputs(scenes, device)
    times = []
    for i in range(steps + 1):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        loss = sum(model(grids, shapes, targets).values())
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        sched.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i:  # the first step warms up allocators and kernels
            times.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    predict_scene(model, scenes[0].grid, device)
    return statistics.median(times), time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", choices=["mini", "paper"], default="mini")
    ap.add_argument("--shape", type=int, nargs=3, default=None, help="grid shape (default: 64x54x30 mini, 160x136x76 paper)")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 is fastest on a busy 2-core machine)")
    ap.add_argument("--flops-only", action="store_true")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE", help="RCNNConfig override (JSON value)")
    args = ap.parse_args()
    overrides = {k: json.loads(v) for k, v in (item.split("=", 1) for item in args.sets)}
    torch.set_num_threads(args.threads)
    shape = tuple(args.shape) if args.shape else ((64, 54, 30) if args.preset == "mini" else (160, 136, 76))
    f = step_flops(args.preset, shape, overrides)
    print(f"{args.preset} {overrides or ''} {shape}: {f['params_m']:.2f} M params; forward per scene {f['dense_gflop']:.1f} GFLOP dense "
          f"(backbone + FCOS head) + {f['heads_gflop']:.1f} GFLOP RoI heads; training step ~3x forward x batch "
          f"{preset_config(args.preset).batch_size} = {3 * (f['dense_gflop'] + f['heads_gflop']) * preset_config(args.preset).batch_size:.0f} GFLOP")
    if args.flops_only:
        return
    dev = torch.device(args.device)
    step, pred = time_training(args.preset, shape, args.steps, dev, overrides)
    print(f"{args.preset} {overrides or ''} on {dev} ({args.threads} thread(s)): {step:.3f} s per training step (median of {args.steps}), {pred:.3f} s per predicted scene")


if __name__ == "__main__":
    main()
