"""A drop-in for panopticapi's ``pq_compute``: COCO panoptic JSON + PNG folders in, PQ/SQ/RQ out.

Same arguments, same pairing (GT and prediction annotations by ``image_id``; a GT image without a
prediction is an error; extra predictions are ignored), same folder defaults (the JSON path without
``.json``), same rules (GT ``area`` and ``iscrowd`` from the JSON) and the same return shape
(``All``/``Things``/``Stuff`` with ``pq, sq, rq, n``; ``per_class`` with ``pq, sq, rq``, plus ``tp, fp,
fn, iou_sum``). Two deliberate differences: an empty split gives ``None`` values instead of panopticapi's
ZeroDivisionError, and errors are :class:`InputError` naming the file.

It runs the benchmark's own :class:`PanopticQuality` (one code path for both), over a pool: each worker
evaluates a share of the images and returns its state (a few small arrays), and the states are merged.
With the compiled pixel kernel the pool is threads (the kernel and libdeflate release the GIL);
``NERFSEG_PQ_POOL=process`` or the numpy path use a process pool. The image list reaches the workers once, as the pool's initializer arguments (inherited, not
pickled, under ``fork``); tasks are index ranges into it. A worker inflates each pair of PNGs into reused
scratch buffers and one compiled loop unfilters and counts them (``frame_stats_png``; without numba, the
numpy path on decoded colour bytes), so its memory does not grow with the number of images.
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from itertools import pairwise
from pathlib import Path
from typing import Any

from nerfseg.evaluation.metrics import _kernel
from nerfseg.evaluation.metrics.frame import frame_stats_png
from nerfseg.evaluation.metrics.panoptic import PanopticQuality
from nerfseg.errors import InputError
from nerfseg.spec import read_json

logger = logging.getLogger(__name__)


def _default_folder(json_file: str | Path) -> Path:
    return Path(str(json_file).replace(".json", ""))  # panopticapi: gt_json_file.replace('.json', '')


def _segments(ann: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {int(seg["id"]): seg for seg in ann.get("segments_info", [])}


def _evaluate_chunk(
    pairs: Sequence[tuple[dict[str, Any], dict[str, Any]]], gt_folder: str, pred_folder: str, categories: dict[int, bool]
) -> tuple[str, Any]:
    """Worker: PanopticQuality over some images; returns ("ok", state) or ("error", (path, problem, key)).

    InputError does not survive pickling (its constructor takes three arguments), so it travels as a tuple.
    """
    pq = PanopticQuality(categories)
    gt_root, pred_root = Path(gt_folder), Path(pred_folder)
    compiled = _kernel.enabled()
    try:
        for gt_ann, pred_ann in pairs:
            pred_path = pred_root / pred_ann["file_name"]
            stats = frame_stats_png(gt_root / gt_ann["file_name"], _segments(gt_ann), pred_path, _segments(pred_ann), source=pred_path)
            counts = _kernel.pq_counts(stats.matrix, pq.cats.ids, stats.gt_cat, stats.gt_crowd, stats.gt_area, stats.gt_order, stats.pred_cat) if compiled else None
            if counts is None:
                pq.update_stats(stats, source=pred_path)
            else:  # the same counts as update_stats, compiled (tests/evaluation/test_kernel.py)
                pq.add_counts(*counts)
                pq.num_frames += 1
    except InputError as exc:
        return "error", (None if exc.path is None else str(exc.path), exc.problem, exc.key)
    except (KeyError, TypeError, ValueError) as exc:
        return "error", (pred_folder, f"malformed annotation ({type(exc).__name__}: {exc})", None)
    return "ok", pq.state_dict()


#: images per task of the process pool (see :func:`pq_compute`)
_CHUNK = 8

#: the job of this worker process, set once by the pool initializer (see :func:`_init_worker`)
_JOB: tuple[Sequence[tuple[dict[str, Any], dict[str, Any]]], str, str, dict[int, bool]] | None = None


def _init_worker(pairs: Sequence[tuple[dict[str, Any], dict[str, Any]]], gt_folder: str, pred_folder: str, categories: dict[int, bool]) -> None:
    global _JOB
    _JOB = (pairs, gt_folder, pred_folder, categories)


def _evaluate_range(start: int, stop: int) -> tuple[str, Any]:
    """Worker task: :func:`_evaluate_chunk` over images ``start:stop`` of the job set by the initializer."""
    assert _JOB is not None, "worker started without _init_worker"
    pairs, gt_folder, pred_folder, categories = _JOB
    return _evaluate_chunk(pairs[start:stop], gt_folder, pred_folder, categories)


def _pool_context() -> multiprocessing.context.BaseContext:
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


def pq_compute(
    gt_json_file: str | Path,
    pred_json_file: str | Path,
    gt_folder: str | Path | None = None,
    pred_folder: str | Path | None = None,
    workers: int | None = None,
    verbose: bool = False,
) -> dict[str, Any]:
    """panopticapi's ``pq_compute`` on ``workers`` processes (default: all cores); ``verbose`` logs its table.

    panopticapi prints the table; here it goes to this module's logger at INFO (the caller decides where logs
    go); ``nerfseg pq-compute`` prints it as its command output.
    """
    gt_json = read_json(gt_json_file)
    pred_json = read_json(pred_json_file)
    gt_folder = Path(gt_folder) if gt_folder is not None else _default_folder(gt_json_file)
    pred_folder = Path(pred_folder) if pred_folder is not None else _default_folder(pred_json_file)
    for folder, json_file in ((gt_folder, gt_json_file), (pred_folder, pred_json_file)):
        if not folder.is_dir():
            raise InputError(folder, f"PNG folder of {json_file} not found")
    try:
        categories = {int(c["id"]): bool(c.get("isthing", 0)) for c in gt_json["categories"]}
        pred_by_image = {ann["image_id"]: ann for ann in pred_json["annotations"]}
        gt_annotations = gt_json["annotations"]
    except (KeyError, TypeError) as exc:
        raise InputError(gt_json_file, f"not a COCO panoptic JSON (missing {exc})") from None
    pairs = []
    for gt_ann in gt_annotations:
        image_id = gt_ann.get("image_id")
        if image_id not in pred_by_image:
            raise InputError(pred_json_file, f"no prediction for the image with id {image_id!r}")
        pairs.append((gt_ann, pred_by_image[image_id]))

    n_workers = max(1, min(int(workers or os.cpu_count() or 1), len(pairs) or 1))
    if n_workers == 1:
        results = [_evaluate_chunk(pairs, str(gt_folder), str(pred_folder), categories)]
    else:
        # ranges of ~_CHUNK images: small enough that a worker slowed down by other load does not hold
        # up the end (tasks are handed out as workers free up), large enough that a task's round trip
        # (~0.2 ms) stays negligible; each returns a small state, merged below
        n_chunks = max(n_workers, min(len(pairs) // _CHUNK, n_workers * 16))
        bounds = [round(i * len(pairs) / n_chunks) for i in range(n_chunks + 1)]
    if n_workers > 1 and _kernel.enabled() and os.environ.get("NERFSEG_PQ_POOL", "").lower() != "process":
        # the compiled kernel and libdeflate release the GIL for the pixel work (~85% of a frame), so
        # threads share the cores without a process pool's fork, pickling and per-worker memory
        _kernel.warm()
        with ThreadPoolExecutor(max_workers=n_workers) as threads:
            results = list(threads.map(lambda ab: _evaluate_chunk(pairs[ab[0] : ab[1]], str(gt_folder), str(pred_folder), categories), pairwise(bounds)))
    elif n_workers > 1:
        _kernel.warm()  # compile (or load) the pixel kernel once, before the workers fork
        context = _pool_context()
        if context.get_start_method() == "fork":
            gc.freeze()  # children inherit the parsed JSON: keep their GC from touching (copying) its pages
        try:
            with ProcessPoolExecutor(
                max_workers=n_workers,
                mp_context=context,
                initializer=_init_worker,
                initargs=(pairs, str(gt_folder), str(pred_folder), categories),
            ) as pool:
                futures = [pool.submit(_evaluate_range, a, b) for a, b in pairwise(bounds)]
                results = [f.result() for f in futures]
        finally:
            if context.get_start_method() == "fork":
                gc.unfreeze()

    total = PanopticQuality(categories)
    for status, payload in results:
        if status == "error":
            path, problem, key = payload
            raise InputError(path, problem, key=key)
        total.merge(PanopticQuality.from_state(payload))
    out = to_panopticapi(total.compute())
    if verbose:
        logger.info("%s", format_table(out))
    return out


def to_panopticapi(result: dict[str, Any]) -> dict[str, Any]:
    """PanopticQuality.compute() -> panopticapi's dict (skipped categories as 0.0, as panopticapi has them)."""
    out: dict[str, Any] = {name: dict(result[key]) for name, key in (("All", "all"), ("Things", "things"), ("Stuff", "stuff"))}
    per_class = {}
    for cat, row in result["per_class"].items():
        entry = {k: (0.0 if row[k] is None else row[k]) for k in ("pq", "sq", "rq")}
        entry.update({k: row[k] for k in ("tp", "fp", "fn", "iou_sum")})
        per_class[cat] = entry
    out["per_class"] = per_class
    return out


def format_table(results: dict[str, Any]) -> str:
    """panopticapi's printed summary (percent, one decimal); an empty split shows '-'."""
    lines = ["{:10s}| {:>5s}  {:>5s}  {:>5s} {:>5s}".format("", "PQ", "SQ", "RQ", "N"), "-" * (10 + 7 * 4)]
    for name in ("All", "Things", "Stuff"):
        r = results[name]
        if r["pq"] is None:
            lines.append("{:10s}| {:>5s}  {:>5s}  {:>5s} {:5d}".format(name, "-", "-", "-", r["n"]))
        else:
            lines.append("{:10s}| {:5.1f}  {:5.1f}  {:5.1f} {:5d}".format(name, 100 * r["pq"], 100 * r["sq"], 100 * r["rq"], r["n"]))
    return "\n".join(lines)


__all__ = ["format_table", "pq_compute", "to_panopticapi"]
