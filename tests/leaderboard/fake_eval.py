"""A stand-in evaluator for leaderboard tests: the REAL validator, with scores read from meta.json.

Why: the leaderboard tests are about the store, the queue, the server and the tables, so they need reports
whose numbers they control (``meta.json["fake_scores"]``) and an evaluation that can be made slow
(``NERFSEG_FAKE_EVAL_DELAY`` seconds, so a worker can be killed mid-evaluation). Validation is the real
``nerfseg.evaluation.submission.require_valid``, so rejected submissions carry the validator's own messages.
The report has the shape of nerfseg.evaluation.api.evaluate_submission's (see leaderboard/README in the report).
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Any

from nerfseg.evaluation.submission import require_valid
from nerfseg.identity import benchmark_identity
from nerfseg.spec import CLASS_NAMES, SPEC_VERSION, scenes_in_split

SUMMARY_KEYS = (
    "miou", "miou_dataset", "pq", "sq", "rq", "pq_things", "sq_things", "rq_things", "pq_stuff", "sq_stuff",
    "rq_stuff", "pq_scene", "pq_scene_things", "binary_acc", "binary_miou", "voxel_miou", "ap25", "ap50",
)


def _default_score(path: Path, key: str) -> float:
    digest = hashlib.sha256(f"{path.name}:{key}".encode()).hexdigest()
    return 0.2 + (int(digest[:6], 16) % 600) / 1000.0


def evaluate(data_root: str | Path, submission_path: str | Path, split: str = "test",
             protocol: str = "nerfseg-v1", workers: int = 1) -> dict[str, Any]:
    delay = float(os.environ.get("NERFSEG_FAKE_EVAL_DELAY", "0") or 0)
    if delay > 0:
        time.sleep(delay)
    result = require_valid(submission_path, data_root, split)  # raises SubmissionError with every problem
    meta = result.meta or {}
    if meta.get("fake_crash"):
        raise RuntimeError("fake evaluator crash (a bug, not the submitter's fault)")
    scores = dict(meta.get("fake_scores") or {})
    summary = {k: scores.get(k, _default_score(Path(submission_path), k)) for k in SUMMARY_KEYS}
    if meta.get("semantic_only"):
        for k in SUMMARY_KEYS:
            if k.startswith(("pq", "sq", "rq", "ap")):
                summary[k] = None
    scenes = scenes_in_split(data_root, split)
    per_scene = {s: {"miou": summary["miou"], "pq_things": summary["pq_things"], "pq_scene": summary["pq_scene"],
                     "pq_scene_things": summary["pq_scene_things"], "binary_acc": summary["binary_acc"],
                     "num_frames": 2} for s in scenes}
    per_class = {}
    for i, name in enumerate(CLASS_NAMES):
        iou = None if summary["miou"] is None else max(0.0, min(1.0, summary["miou"] + 0.01 * (i - 5)))
        pq = summary["pq_things"] if i > 0 else summary["pq_stuff"]
        per_class[name] = {"iou": iou, "pq": pq, "sq": summary["sq"], "rq": summary["rq"], "tp": 3, "fp": 1,
                           "fn": 1, "iou_sum": 2.1}
    return {"protocol": protocol, "protocol_version": "1", "spec_version": SPEC_VERSION, "summary": summary,
            "meta": meta,  # what validation read, as nerfseg.evaluation.api.evaluate_submission reports it
            "per_class": per_class, "per_scene": per_scene,
            "counts": {"num_scenes": len(scenes), "num_frames": 2 * len(scenes)},
            "benchmark": benchmark_identity(data_root).to_json()}
