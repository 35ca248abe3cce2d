"""Per-frame time of the evaluator's PNG counting kernel on clean and noisy predictions. Prints numbers only.

The kernel counts a row pair as pixel moves (row-differential: cheap when few pixels differ from the row
above) or, when either image changes in more than ``width / DENSE_WIDTH_DIVISOR`` pixels, as runs. This
times one 480x640 frame (GT: blocks of 40x40 pixels, written by Pillow, which picks each row's filter)
against predictions equal to the GT, with 1% and 10% of their pixels replaced by random ids, and pure
noise (random ids drawn from 200), for three settings of the switch: the default, every row as pixel moves (the row-differential
kernel alone) and every row as runs. The settings take turns within each of the ``--repeat`` rounds and
the best time of each is kept (a shared machine's load hits them alike); every setting's matrix is checked
against the default's.

    python benchmarks/eval_kernel_rows.py [--repeat 7] [--calls 20]
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nerfseg.evaluation.metrics import _fastpng, _kernel
from nerfseg.io import id2rgb

H, W = 480, 640


def _png(ids: np.ndarray) -> tuple[np.ndarray, int]:
    """(inflated scanlines, bytes per pixel) of ``ids`` saved by Pillow."""
    buf = io.BytesIO()
    Image.fromarray(id2rgb(ids)).save(buf, "PNG")
    raw = _fastpng.inflate_rgb8(buf.getvalue(), "benchmark")
    assert raw is not None
    return raw[0], raw[3]


def _cases(rng: np.random.Generator) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    gt = np.repeat(np.repeat(rng.integers(1, 1 << 24, (H // 40, W // 40)), 40, axis=0), 40, axis=1)
    pool = rng.integers(1, 1 << 24, 200)  # the random ids: a frame has a few hundred segments, not one per pixel
    preds = {"equal to GT": gt.copy()}
    for frac in (0.01, 0.10):
        pred = gt.copy()
        mask = rng.random(gt.shape) < frac
        pred[mask] = rng.choice(pool, int(mask.sum()))
        preds[f"{frac:.0%} random pixels"] = pred
    preds["pure noise"] = rng.choice(pool, gt.shape)
    return gt, preds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=7, help="rounds; the best round of each setting is kept")
    ap.add_argument("--calls", type=int, default=20, help="kernel calls timed together in one round")
    args = ap.parse_args()
    if not _kernel.enabled():
        sys.exit("the numba kernel is not available (numba missing or NERFSEG_EVAL_KERNEL=numpy)")
    rng = np.random.default_rng(0)
    gt, preds = _cases(rng)
    gt_raw, gt_bpp = _png(gt)
    gt_keys = np.unique(gt).astype(np.int64)
    settings = {"default": None, "pixel moves only": W, "runs only": -1}
    print(f"one {H}x{W} frame, ms per call (best of {args.repeat} rounds of {args.calls} calls); dense limit {W // _kernel.DENSE_WIDTH_DIVISOR} pixels")
    print(f"{'prediction':<20}" + "".join(f"{name:>18}" for name in settings) + f"{'default/moves':>15}{'default/runs':>14}")
    for label, pred in preds.items():
        pred_raw, pred_bpp = _png(pred)
        pred_keys = np.unique(pred).astype(np.int64)
        ref = _kernel.png_joint_counts(gt_raw, gt_bpp, pred_raw, pred_bpp, H, W, gt_keys, pred_keys)
        best = dict.fromkeys(settings, float("inf"))
        for _ in range(args.repeat):
            for name, limit in settings.items():
                got = _kernel.png_joint_counts(gt_raw, gt_bpp, pred_raw, pred_bpp, H, W, gt_keys, pred_keys, dense_limit=limit)
                assert got is not None and ref is not None and (got == ref).all(), (label, name)
                t0 = time.perf_counter()
                for _ in range(args.calls):
                    _kernel.png_joint_counts(gt_raw, gt_bpp, pred_raw, pred_bpp, H, W, gt_keys, pred_keys, dense_limit=limit)
                best[name] = min(best[name], (time.perf_counter() - t0) / args.calls * 1e3)
        row = "".join(f"{best[name]:>18.2f}" for name in settings)
        print(f"{label:<20}{row}{best['default'] / best['pixel moves only']:>15.2f}{best['default'] / best['runs only']:>14.2f}")


if __name__ == "__main__":
    main()
