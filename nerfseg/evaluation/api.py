"""One function to evaluate a submission against a built benchmark: validate, accumulate, merge, report.

Work is split by scene over a process pool; each worker fills its own protocol accumulator and returns
its state, and the states are merged (the accumulators are mergeable by design), so the result does not
depend on the number of workers. Nothing here imports torch.
"""

from __future__ import annotations

import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Callable

from nerfseg.evaluation.gt import load_gt3d_for_eval, load_gt_scene
from nerfseg.evaluation.metrics.mask_ap import STAT_KEYS as MASK_AP_KEYS
from nerfseg.evaluation.protocols import accumulator_from_state, get_protocol
from nerfseg.evaluation.submission import Limits, open_submission
from nerfseg import spec
from nerfseg.identity import benchmark_identity

ProgressFn = Callable[[int], None]


def _evaluate_scenes(args: tuple[str, str, list[str], str, str, bool]) -> dict[str, Any]:
    """Worker: evaluate some scenes of an (already validated, extracted) submission; return accumulator state."""
    data_root, submission_root, scenes, protocol, split, with_3d = args
    acc = get_protocol(protocol).new_accumulator()
    with open_submission(submission_root, validate=False) as sub:
        for sid in scenes:
            gt = load_gt_scene(data_root, sid, "test")
            for name in gt.frame_names:
                acc.update_frame(sid, name, gt.frame_gt(name), sub.frame_pred(sid, name))
            if with_3d and acc.has_3d_metrics:
                pred3d = sub.pred3d(sid)
                if pred3d is not None:
                    acc.update_scene_3d(sid, load_gt3d_for_eval(spec.scene_dir(data_root, sid)), pred3d)
    return acc.state_dict()


def evaluate_submission(
    data_root: str | Path,
    submission_path: str | Path,
    split: str = "test",
    protocol: str = spec.DEFAULT_PROTOCOL,
    workers: int = 1,
    limits: Limits = Limits(),
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Validate ``submission_path`` (folder, .zip or .tar.gz) and evaluate it on ``split``'s scenes.

    Raises :class:`nerfseg.evaluation.submission.SubmissionError` (every problem listed) for an invalid submission;
    returns the protocol's report dict with ``method``, ``meta``, ``split``, ``benchmark`` (the name and GT
    fingerprint of :mod:`nerfseg.identity`: which ground truth these numbers belong to) and timing added.
    """
    t0 = time.perf_counter()
    data_root = Path(data_root)
    scenes = spec.scenes_in_split(data_root, split)
    get_protocol(protocol)  # unknown protocol: fail before the (possibly long) validation
    benchmark = benchmark_identity(data_root).to_json()
    with open_submission(submission_path, data_root, split, limits) as sub:
        meta = dict(sub.meta or {})
        root = str(sub.root)
        chunks: list[list[str]] = [scenes[i::max(1, workers)] for i in range(max(1, workers))]
        jobs = [(str(data_root), root, chunk, protocol, split, True) for chunk in chunks if chunk]
        acc = get_protocol(protocol).new_accumulator()
        if workers <= 1 or len(jobs) <= 1:
            for job in jobs:
                for sid in job[2]:
                    acc.merge(accumulator_from_state(_evaluate_scenes((job[0], job[1], [sid], job[3], job[4], job[5]))))
                    if progress:
                        progress(sid)
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                for job, state in zip(jobs, pool.map(_evaluate_scenes, jobs)):
                    acc.merge(accumulator_from_state(state))
                    if progress:
                        for sid in job[2]:
                            progress(sid)
    report = acc.compute()
    report["method"] = meta.get("method")
    report["meta"] = meta
    report["split"] = split
    report["benchmark"] = benchmark
    report["semantic_only"] = bool(meta.get("semantic_only", False))
    if report["semantic_only"]:
        blank_instance_metrics(report)
    report["seconds"] = time.perf_counter() - t0
    return report


#: every report key that describes instances (segment matching, PQ^scene, 3D instance AP, 2D mask AP)
INSTANCE_METRIC_KEYS: frozenset[str] = frozenset({
    "pq", "sq", "rq", "pq_things", "sq_things", "rq_things", "pq_stuff", "sq_stuff", "rq_stuff",
    "pq_scene", "pq_scene_things", "ap25", "ap50", "tp", "fp", "fn", "iou_sum", "mask_ap",
})


def blank_instance_metrics(report: dict[str, Any]) -> None:
    """Set the instance metrics of a semantic-only report to None everywhere (summary, per class, per scene).

    A semantic-only method does not claim instances: its class regions are not instance segments, so
    PQ computed on them would be a number about nothing the method promised; every table shows "-".
    """
    for key in INSTANCE_METRIC_KEYS & set(report.get("summary", {})):
        report["summary"][key] = None
    for table in ("per_class", "per_scene"):
        for row in report.get(table, {}).values():
            for key in INSTANCE_METRIC_KEYS & set(row):
                row[key] = None
    pq_all = report.get("details", {}).get("pq_all")
    if isinstance(pq_all, dict):
        report["details"]["pq_all"] = dict.fromkeys(pq_all)
    mask = report.get("mask_ap")
    if isinstance(mask, dict):  # the section: every AP/AR number, overall, per class and per scene
        for key in MASK_AP_KEYS:
            mask[key] = None
        for table in ("per_class", "per_scene"):
            for row in mask.get(table, {}).values():
                row["ap"] = row["ap50"] = None
