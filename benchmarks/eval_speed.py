"""Speed and memory of nerfseg's ``pq_compute`` against hotcoco's, PNG decoding included. Prints numbers only.

Writes ``--frames`` COCO panoptic GT/prediction pairs of 480x640 (a stuff background, 10-40 objects, void
patches; predictions with shifted boundaries, misses, class swaps, merges, spurious segments and void noise)
into a temporary folder, then times both evaluators on the same files (best of ``--repeat``), checks that
they agree, and measures memory: the peak traced allocation of one in-process evaluation over the first
third of the frames and over all of them (flat if memory does not grow with the number of frames), plus
the peak RSS of this process and of its worker processes.

    python benchmarks/eval_speed.py [--frames 300] [--workers 2] [--repeat 3]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import resource
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evaluation.metrics import frame as frame_mod
from evaluation.metrics.frame import read_panoptic_ids
from evaluation.metrics.panoptic import PanopticQuality
from evaluation.pq_compute import pq_compute
from nerfseg.io import id2rgb

H, W = 480, 640
BACKGROUND = 1 << 16


def _ellipse(h: int, w: int, cy: float, cx: float, ry: float, rx: float) -> np.ndarray:
    yy, xx = np.ogrid[:h, :w]
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0


def make_frames(root: Path, n: int, seed: int = 0) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    for sub in ("gt", "pred"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    images, gt_anns, pred_anns, n_segments = [], [], [], []
    for k in range(n):
        gt = np.full((H, W), BACKGROUND, dtype=np.int64)
        cls: dict[int, int] = {BACKGROUND: 0}
        for oid in range(1, int(rng.integers(10, 41)) + 1):
            cy, cx = rng.uniform(0, H), rng.uniform(0, W)
            ry, rx = rng.uniform(10, 120), rng.uniform(10, 160)
            if rng.random() < 0.5:
                mask = _ellipse(H, W, cy, cx, ry, rx)
            else:
                mask = np.zeros((H, W), dtype=bool)
                mask[int(max(cy - ry, 0)) : int(cy + ry), int(max(cx - rx, 0)) : int(cx + rx)] = True
            gt[mask] = oid
            cls[oid] = int(rng.integers(1, 11))
        for _ in range(int(rng.integers(0, 3))):  # void: rays that hit nothing (e.g. through a window)
            y, x = int(rng.integers(0, H - 60)), int(rng.integers(0, W - 80))
            gt[y : y + int(rng.integers(20, 60)), x : x + int(rng.integers(20, 80))] = 0
        present, areas = np.unique(gt, return_counts=True)

        pred = np.zeros_like(gt)
        pcls: dict[int, int] = {}
        new_id = {int(i): int(v) for i, v in zip(present, rng.choice(np.arange(1, 1 << 24), present.size, replace=False))}
        prev = None
        for sid in present.tolist():
            if sid == 0:
                continue
            mask = gt == sid
            r = rng.random()
            pid, c = new_id[sid], cls[sid]
            if sid != BACKGROUND and r < 0.1:
                pid, c = new_id[BACKGROUND], 0  # missed: predicted as background
            elif sid != BACKGROUND and r < 0.2:
                c = int(rng.integers(1, 11))  # class swap
            elif sid != BACKGROUND and r < 0.27 and prev is not None:
                pid, c = prev  # merged with the previous object
            if sid != BACKGROUND and rng.random() < 0.5:
                mask = np.roll(mask, int(rng.integers(-3, 4)), axis=int(rng.integers(0, 2)))  # boundary error
            pred[mask] = pid
            pcls[pid] = c
            if sid != BACKGROUND:
                prev = (pid, c)
        for _ in range(int(rng.integers(0, 4))):  # spurious
            pid = int(rng.integers(1 << 23, 1 << 24))
            y, x = int(rng.integers(0, H - 40)), int(rng.integers(0, W - 40))
            pred[y : y + 30, x : x + 30] = pid
            pcls[pid] = int(rng.integers(1, 11))
        pred[rng.random((H, W)) < 0.002] = 0  # speckles of unknown prediction
        pred_present = [int(i) for i in np.unique(pred) if i]
        name = f"{k:06d}.png"
        Image.fromarray(id2rgb(gt)).save(root / "gt" / name)
        Image.fromarray(id2rgb(pred)).save(root / "pred" / name)
        images.append({"id": k, "file_name": name.replace(".png", ".jpg"), "height": H, "width": W})
        gt_anns.append({"image_id": k, "file_name": name, "segments_info": [
            {"id": int(i), "category_id": cls[int(i)], "iscrowd": 0, "area": int(a), "bbox": [0, 0, 1, 1]} for i, a in zip(present, areas) if i
        ]})  # fmt: skip
        pred_anns.append({"image_id": k, "file_name": name, "segments_info": [{"id": i, "category_id": pcls[i]} for i in pred_present]})
        n_segments.append(present.size - (present[0] == 0))
    cats = [{"id": c, "name": str(c), "isthing": int(c > 0), "supercategory": "x", "color": [0, 0, 0]} for c in range(11)]
    for name, anns in (("gt", gt_anns), ("pred", pred_anns)):
        (root / f"{name}.json").write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return {"segments_per_frame": float(np.mean(n_segments))}


def _subset(root: Path, n: int) -> tuple[Path, Path]:
    out = []
    for name in ("gt", "pred"):
        data = json.loads((root / f"{name}.json").read_text())
        data["annotations"] = data["annotations"][:n]
        path = root / f"{name}_{n}.json"
        path.write_text(json.dumps(data))
        out.append(path)
    return out[0], out[1]


def _best_time(fn, repeat: int) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="nerfseg_eval_speed_") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        info = make_frames(root, args.frames)
        gt_json, pred_json = root / "gt.json", root / "pred.json"
        png_mb = sum(p.stat().st_size for p in root.rglob("*.png")) / 2**20
        print(
            f"frames: {args.frames} ({H}x{W}), segments/frame: {info['segments_per_frame']:.1f}, PNGs: {png_mb:.1f} MiB, generated in {time.perf_counter() - t0:.1f} s"
        )
        print(f"cores: {os.cpu_count()}, nerfseg workers: {args.workers}, load average before timing: {os.getloadavg()[0]:.2f}")

        rows = []
        decoders = ["pyspng", "pil"] if frame_mod.png_decoder() == "pyspng" else ["pil"]
        ours = None
        for dec in decoders:
            if dec == "pil":
                os.environ["NERFSEG_PNG_DECODER"] = "pil"
            t, ours = _best_time(lambda: pq_compute(gt_json, pred_json, workers=args.workers), args.repeat)
            os.environ.pop("NERFSEG_PNG_DECODER", None)
            rows.append((f"nerfseg pq_compute ({args.workers} workers, {dec} decoder)", t))
        try:
            from hotcoco.panoptic import pq_compute as hot_pq

            def run_hot():
                with contextlib.redirect_stdout(io.StringIO()):
                    return hot_pq(str(gt_json), str(pred_json))

            t_hot, hot = _best_time(run_hot, args.repeat)
            rows.append(("hotcoco pq_compute (rayon threads, all cores)", t_hot))
        except ImportError:
            t_hot, hot = None, None
        for label, t in rows:
            print(f"{label}: {t:.3f} s, {args.frames / t:.1f} frames/s")
        if t_hot is not None:
            for label, t in rows[:-1]:
                print(f"speed ratio nerfseg/hotcoco [{label.split('(')[1].rstrip(')')}]: {t_hot / t:.2f}")
            diff = max(abs(ours[s][k] - hot[s][k]) for s in ("All", "Things", "Stuff") for k in ("pq", "sq", "rq"))
            print(f"max |PQ/SQ/RQ difference| nerfseg vs hotcoco: {diff:.2e}")

        # memory: one in-process evaluation (workers=1) over a third of the frames and over all of them.
        # pq_compute's peak includes the parsed JSON (which grows with the frames, as in panopticapi);
        # the frame loop alone (JSON parsed before tracing starts) must stay flat.
        third = max(1, args.frames // 3)
        gt_data = json.loads(gt_json.read_text())
        pred_data = {a["image_id"]: a for a in json.loads(pred_json.read_text())["annotations"]}
        categories = {c["id"]: bool(c["isthing"]) for c in gt_data["categories"]}
        for n in (third, args.frames):
            g, p = _subset(root, n) if n != args.frames else (gt_json, pred_json)
            tracemalloc.start()
            pq_compute(g, p, gt_folder=root / "gt", pred_folder=root / "pred", workers=1)
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            tracemalloc.start()
            acc = PanopticQuality(categories)
            for ann in gt_data["annotations"][:n]:
                pann = pred_data[ann["image_id"]]
                acc.update(
                    read_panoptic_ids(root / "gt" / ann["file_name"]),
                    {s["id"]: s for s in ann["segments_info"]},
                    read_panoptic_ids(root / "pred" / pann["file_name"]),
                    {s["id"]: s for s in pann["segments_info"]},
                )
            _, loop_peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            print(
                f"{n} frames, nerfseg in-process: peak traced {peak / 2**20:.1f} MiB for pq_compute (JSON included), {loop_peak / 2**20:.1f} MiB for the frame loop"
            )
        self_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        child_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(f"peak RSS: this process {self_rss:.0f} MiB (hotcoco runs here too), largest worker process {child_rss:.0f} MiB")


if __name__ == "__main__":
    main()
