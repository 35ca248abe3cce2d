"""Turning a report dict into what a person reads: a pasteable table, per-class bars, overlays."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

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


def plot_per_class(report: dict[str, Any], out_file: Path) -> None:
    """Grouped bars of per-class IoU and PQ (x100)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nerfseg.io import atomic_path

    per_class = report.get("per_class", {})
    names = list(spec.CLASS_NAMES)
    iou = [100 * (per_class.get(n, {}).get("iou") or 0.0) for n in names]
    pq = [100 * (per_class.get(n, {}).get("pq") or 0.0) for n in names]
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(10, 3.6))
    ax.bar(x - 0.2, iou, 0.4, label="IoU")
    ax.bar(x + 0.2, pq, 0.4, label="PQ")
    ax.set_xticks(x, names, rotation=30, ha="right")
    ax.set_ylim(0, 100)
    ax.set_ylabel("%")
    ax.set_title(f"{report.get('method', '?')}: per-class IoU and PQ ({report.get('protocol')})")
    ax.legend()
    fig.tight_layout()
    with atomic_path(out_file) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


def plot_overlays(data_root: Path, submission_root: Path, out_dir: Path, max_frames: int = 4, split: str = "test") -> list[Path]:
    """Side-by-side RGB / GT / prediction for a few test views (segment colours hashed from ids)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from evaluation.gt import load_gt_scene
    from evaluation.submission import open_submission
    from nerfseg.io import atomic_path, read_png

    def colour(ids: np.ndarray) -> np.ndarray:
        h = (ids.astype(np.uint64) * np.uint64(2654435761)) & np.uint64(0xFFFFFF)
        rgb = np.stack([(h >> np.uint64(s)) & np.uint64(255) for s in (0, 8, 16)], -1).astype(np.float64) / 255.0
        rgb[ids == 0] = 0.0
        return rgb

    written = []
    with open_submission(submission_root, validate=False) as sub:
        for sid in spec.scenes_in_split(data_root, split):
            gt = load_gt_scene(data_root, sid, "test")
            names = list(gt.frame_names)[:max_frames]
            if not names:
                continue
            fig, axes = plt.subplots(len(names), 3, figsize=(10, 2.6 * len(names)), squeeze=False)
            for r, name in enumerate(names):
                rgb = read_png(gt.root / spec.IMAGES_DIR / f"{name}.png", expect="rgb")
                gt_ids, _ = gt.frame(name)
                pred_ids, _ = sub.frame(sid, name)
                for c, (img, title) in enumerate(((rgb, f"{name} RGB"), (colour(gt_ids), "GT"), (colour(pred_ids), "prediction"))):
                    axes[r, c].imshow(img)
                    axes[r, c].set_title(title, fontsize=8)
                    axes[r, c].axis("off")
            fig.tight_layout()
            out = Path(out_dir) / f"overlay_{sid}.png"
            with atomic_path(out) as tmp:
                fig.savefig(tmp, dpi=80, format="png")
            plt.close(fig)
            written.append(out)
    return written
