"""Turning a report dict into what a person reads: pasteable tables (pictures: ``nerfseg.evaluation.plots``)."""

from __future__ import annotations

import math
from typing import Any

from nerfseg import spec

#: (report summary key, column title) in the paper's Table 1 order, then our additions. PQ and PQ^scene
#: are both over the 10 thing classes (the paper's PQ; the leaderboard shows the same two numbers); the
#: All/Stuff variants stay in the JSON report. Mask AP is COCO's (AP@[.5:.95], segm) of the thing segments,
#: its AP50/AP75/size variants are in the report's ``mask_ap`` section
TABLE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("miou", "mIoU"),
    ("pq", "PQ"),
    ("sq", "SQ"),
    ("rq", "RQ"),
    ("pq_scene_things", "PQ^scene"),
    ("binary_acc", "Bin. acc."),
    ("binary_miou", "Bin. mIoU"),
    ("mask_ap", "Mask AP"),
)
COLUMNS_3D: tuple[tuple[str, str], ...] = (("voxel_miou", "3D mIoU"), ("ap25", "AP@25"), ("ap50", "AP@50"))

def fmt(value: Any) -> str:
    """x100 with one decimal, '-' for a metric the method does not produce (None/NaN)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{100.0 * float(value):.1f}"

def summary_table(report: dict[str, Any], method: str | None = None) -> str:
    """A markdown table of the headline numbers (the paper's columns plus PQ^scene and binary)."""
    summary = report.get("summary", {})
    cols = list(TABLE_COLUMNS) + [c for c in COLUMNS_3D if summary.get(c[0]) is not None]
    head = "| Method | " + " | ".join(t for _, t in cols) + " |"
    sep = "|---|" + "---:|" * len(cols)
    row = f"| {method or report.get('method') or '?'} | " + " | ".join(fmt(summary.get(k)) for k, _ in cols) + " |"
    return "\n".join([head, sep, row])

def per_class_table(report: dict[str, Any]) -> str:
    per_class = report.get("per_class", {})
    lines = ["| Class | IoU | PQ | SQ | RQ | TP | FP | FN |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name in spec.CLASS_NAMES:
        c = per_class.get(name, {})
        counts = [str(c.get(k)) if c.get(k) is not None else "-" for k in ("tp", "fp", "fn")]
        lines.append(f"| {name} | {fmt(c.get('iou'))} | {fmt(c.get('pq'))} | {fmt(c.get('sq'))} | {fmt(c.get('rq'))} | " + " | ".join(counts) + " |")
    return "\n".join(lines)

def per_scene_table(report: dict[str, Any]) -> str:
    per_scene = report.get("per_scene", {})
    keys = [("miou", "mIoU"), ("pq_things", "PQ"), ("pq_scene_things", "PQ^scene"), ("binary_acc", "Bin. acc.")]
    lines = ["| Scene | frames | " + " | ".join(t for _, t in keys) + " |", "|---|---:|" + "---:|" * len(keys)]
    for sid in sorted(per_scene):
        s = per_scene[sid]
        lines.append(f"| {sid} | {s.get('num_frames', '-')} | " + " | ".join(fmt(s.get(k)) for k, _ in keys) + " |")
    return "\n".join(lines)
