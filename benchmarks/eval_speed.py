"""Speed and memory of nerfseg's ``pq_compute`` against hotcoco's, PNG decoding included. Prints numbers only.

Writes ``--frames`` COCO panoptic GT/prediction pairs of 480x640 (a stuff background, 10-40 objects, void
patches; predictions with shifted boundaries, misses, class swaps, merges, spurious segments and void noise)
into a temporary folder, then times both evaluators on the same files and checks that they agree. The
evaluators take turns within each of the ``--repeat`` rounds and the best time of each is kept, so that a
shared machine's changing load hits them alike (compare only numbers from one run).

Memory, for the first third of the frames and for all of them (flat if memory does not grow with the
number of frames): the peak traced allocation of the in-process frame loop and of a whole in-process
``pq_compute`` (JSON included), each measured in a fresh thread so that both include the per-thread
scratch buffers; and the peak RSS of the worker processes of a ``pq_compute`` run, each run in a fresh
interpreter.

    python benchmarks/eval_speed.py [--frames 300] [--workers 2] [--repeat 3] [--no-pil] [--no-memory] [--data DIR]

nerfseg runs with the compiled pixel kernel (numba, the default) and with the numpy reference path
(``NERFSEG_EVAL_KERNEL=numpy``); ratios are printed for wall time (best and median) and for CPU time (the
work done, summed over threads and worker processes: on a shared machine the wall clock mostly measures
the other users).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nerfseg.evaluation.metrics import _fastpng, _kernel
from nerfseg.evaluation.metrics import frame as frame_mod
from nerfseg.evaluation.pq_compute import _evaluate_chunk, pq_compute
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


def _timed(fn) -> tuple[float, object]:
    t0 = time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, result


def _traced_peak(fn) -> int:
    """Peak bytes traced by tracemalloc while ``fn`` runs in a fresh thread (fresh scratch buffers)."""
    peak: list[int] = []

    def body() -> None:
        tracemalloc.start()
        try:
            fn()
            peak.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()

    thread = threading.Thread(target=body)
    thread.start()
    thread.join()
    return peak[0]


# ru_maxrss of RUSAGE_SELF survives exec on Linux (it would report this benchmark's own peak), so the
# parent's peak is read from /proc/self/status (VmHWM, per address space) where there is one
_RSS_PROBE = r"""
import re, resource, sys
sys.path.insert(0, sys.argv[1])
from nerfseg.evaluation.pq_compute import pq_compute
pq_compute(sys.argv[2], sys.argv[3], gt_folder=sys.argv[4], pred_folder=sys.argv[5], workers=int(sys.argv[6]))
try:
    with open("/proc/self/status") as f:
        own = int(re.search(r"VmHWM:\s+(\d+) kB", f.read()).group(1))
except (OSError, AttributeError):
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, own)
"""


def _worker_rss_mib(gt_json: Path, pred_json: Path, root: Path, workers: int) -> tuple[float, float]:
    """(largest worker's, parent's) peak RSS in MiB of one pq_compute run in a fresh interpreter."""
    repo = str(Path(__file__).resolve().parents[1])
    args = [str(gt_json), str(pred_json), str(root / "gt"), str(root / "pred"), str(workers)]
    out = subprocess.run([sys.executable, "-c", _RSS_PROBE, repo, *args], check=True, capture_output=True, text=True)
    child, parent = (int(v) / 1024 for v in out.stdout.split()[-2:])
    return child, parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-pil", action="store_true", help="skip the Pillow-decoder run")
    ap.add_argument("--data", type=Path, help="keep the generated frames in this folder and reuse them on later runs (same --frames)")
    ap.add_argument("--no-memory", action="store_true", help="skip the memory measurements")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="nerfseg_eval_speed_") as tmp:
        root = Path(tmp) if args.data is None else args.data
        t0 = time.perf_counter()
        stamp = root / "frames.json"
        info = json.loads(stamp.read_text()) if stamp.is_file() else {}
        if info.get("frames") != args.frames:  # generation is seeded: same count, same frames
            info = make_frames(root, args.frames)
            info["frames"] = args.frames
            if args.data is not None:
                stamp.write_text(json.dumps(info))
        gt_json, pred_json = root / "gt.json", root / "pred.json"
        png_mb = sum(p.stat().st_size for p in root.rglob("*.png")) / 2**20
        print(
            f"frames: {args.frames} ({H}x{W}), segments/frame: {info['segments_per_frame']:.1f}, PNGs: {png_mb:.1f} MiB, generated in {time.perf_counter() - t0:.1f} s"
        )
        print(f"cores: {os.cpu_count()}, nerfseg workers: {args.workers}, load average before timing: {os.getloadavg()[0]:.2f}")

        print(f"PNG decoding: {frame_mod.png_decoder()} (inflate: {_fastpng.inflater() if _fastpng.available() else 'n/a'})")
        print(f"pixel kernel: {_kernel.kernel_name()} (numba {'installed' if _kernel.available() else 'missing'})")
        if _kernel.enabled():
            t0 = time.perf_counter()
            _kernel.warm()
            print(f"kernel compile or cache load (once per process, before the timed runs): {time.perf_counter() - t0:.2f} s")

        def run_ours(decoder: str, kernel: str):
            def run():
                os.environ["NERFSEG_EVAL_KERNEL"] = kernel
                if decoder == "pil":
                    os.environ["NERFSEG_PNG_DECODER"] = "pil"
                try:
                    return pq_compute(gt_json, pred_json, workers=args.workers)
                finally:
                    os.environ.pop("NERFSEG_PNG_DECODER", None)
                    os.environ.pop("NERFSEG_EVAL_KERNEL", None)

            return run

        runs = {}
        decoders = ["pyspng", "pil"] if frame_mod.png_decoder() == "pyspng" else ["pil"]
        if args.no_pil and len(decoders) > 1:
            decoders = decoders[:1]
        if _kernel.available():
            runs[f"nerfseg pq_compute ({args.workers} workers, numba kernel)"] = run_ours(decoders[0], "numba")
        for dec in decoders:
            runs[f"nerfseg pq_compute ({args.workers} workers, numpy reference, {dec} decoder)"] = run_ours(dec, "numpy")
        hot_label = "hotcoco pq_compute (rayon threads, all cores)"
        try:
            from hotcoco.panoptic import pq_compute as hot_pq

            def run_hot():
                with contextlib.redirect_stdout(io.StringIO()):
                    return hot_pq(str(gt_json), str(pred_json))

            runs[hot_label] = run_hot
        except ImportError:
            pass
        times: dict[str, list[float]] = {label: [] for label in runs}
        cpu: dict[str, list[float]] = {label: [] for label in runs}
        results: dict[str, object] = {}
        for _ in range(args.repeat):  # take turns, so that load changes hit every evaluator alike
            for label, fn in runs.items():
                c0, k0 = time.process_time(), os.times()
                t, results[label] = _timed(fn)
                k1 = os.times()
                times[label].append(t)
                # CPU seconds of this process's threads and of its (waited-for) worker processes: the work
                # done, which a loaded machine inflates less than the wall clock
                cpu[label].append(time.process_time() - c0 + (k1.children_user - k0.children_user) + (k1.children_system - k0.children_system))
        best = {label: min(ts) for label, ts in times.items()}
        median = {label: float(np.median(ts)) for label, ts in times.items()}
        best_cpu = {label: min(ts) for label, ts in cpu.items()}
        for label, t in best.items():
            print(f"{label}: {t:.3f} s, {args.frames / t:.1f} frames/s (best of {args.repeat}; median {median[label]:.3f} s; CPU {best_cpu[label]:.3f} s)")
        if hot_label in best:
            hot = results[hot_label]
            for label, t in best.items():
                if label != hot_label:
                    name = label.split("(")[1].rstrip(")")
                    print(
                        f"speed ratio nerfseg/hotcoco [{name}]: {best[hot_label] / t:.2f} (best times), {median[hot_label] / median[label]:.2f} (medians),"
                        f" {best_cpu[hot_label] / best_cpu[label]:.2f} (CPU time)"
                    )
            for label in runs:
                if label != hot_label:
                    ours = results[label]
                    diff = max(abs(ours[s][k] - hot[s][k]) for s in ("All", "Things", "Stuff") for k in ("pq", "sq", "rq"))
                    print(f"max |PQ/SQ/RQ difference| vs hotcoco [{label.split('(')[1].rstrip(')')}]: {diff:.2e}")
        print(f"load average after timing: {os.getloadavg()[0]:.2f}")

        if args.no_memory:
            return
        # memory over a third of the frames and over all of them: must not grow with the frames, except
        # pq_compute's parsed JSON (which grows with the annotations, as in panopticapi)
        third = max(1, args.frames // 3)
        gt_data = json.loads(gt_json.read_text())
        pred_data = {a["image_id"]: a for a in json.loads(pred_json.read_text())["annotations"]}
        categories = {int(c["id"]): bool(c["isthing"]) for c in gt_data["categories"]}
        pairs = [(a, pred_data[a["image_id"]]) for a in gt_data["annotations"]]
        for n in (third, args.frames):
            g, p = _subset(root, n) if n != args.frames else (gt_json, pred_json)
            loop_peak = _traced_peak(lambda n=n: _evaluate_chunk(pairs[:n], str(root / "gt"), str(root / "pred"), categories))
            peak = _traced_peak(lambda g=g, p=p: pq_compute(g, p, gt_folder=root / "gt", pred_folder=root / "pred", workers=1))
            child_rss, parent_rss = _worker_rss_mib(g, p, root, args.workers)
            workers = f"largest worker RSS {child_rss:.0f} MiB, parent" if child_rss > 0 else "worker threads (no worker processes), process"
            print(
                f"{n} frames: peak traced {loop_peak / 2**20:.1f} MiB for the frame loop, {peak / 2**20:.1f} MiB for pq_compute"
                f" (JSON included); pq_compute with {args.workers} workers in a fresh interpreter: {workers} RSS {parent_rss:.0f} MiB"
            )
        self_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak RSS of this process (hotcoco runs here too): {self_rss:.0f} MiB")

if __name__ == "__main__":
    main()
