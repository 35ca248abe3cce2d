"""Top-down picture of NeRF-RCNN's detections on one radiance grid, next to the GT it should find.

Recall numbers say how many objects the detector found; the picture says which, and why the others were
missed (no proposal at all, a box on the wrong object, the right box with a low score or the wrong class).
Everything is drawn in grid voxels, seen from above (x right, y up): the grid's opacity in grey (the
maximum over the furniture's height band, without the floor and the ceiling, which would cover everything), each GT instance's voxel extent as a green box with its class, each detection above the lowest score
threshold as a box whose colour and line style say which threshold it passes (red solid > 0.5, orange dashed
> 0.3, yellow dotted > 0.1), labelled with its class and score.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from nerfseg import spec
from nerfseg.io import atomic_path

#: (score threshold, colour, line style) from the highest; a detection takes the first one it passes
SCORE_STYLES = ((0.5, "red", "-"), (0.3, "orange", "--"), (0.1, "yellow", ":"))


def _extent_xy(mask: np.ndarray) -> tuple[float, float, float, float] | None:
    """(x0, y0, x1, y1) in voxel units of a 3D mask's occupied voxels, None when empty."""
    xs = np.flatnonzero(mask.any(axis=(1, 2)))
    ys = np.flatnonzero(mask.any(axis=(0, 2)))
    if not len(xs) or not len(ys):
        return None
    return float(xs[0]), float(ys[0]), float(xs[-1] + 1), float(ys[-1] + 1)


def draw_detections(
    out_file: str | Path,
    grid: np.ndarray,
    gt_ids: np.ndarray,
    gt_masks: np.ndarray,
    gt_classes: dict[int, int],
    boxes: np.ndarray,
    labels: np.ndarray,
    scores: np.ndarray,
    title: str = "",
    found: dict[int, bool] | None = None,
) -> Path:
    """Write the top-down PNG of one scene (atomically) and return its path.

    ``grid`` is the (X, Y, Z, 4) RGB + alpha grid the detector saw; ``gt_ids`` / ``gt_masks`` the GT instances at
    the grid's resolution (:func:`nerfseg.instance_nerf.rcnn.data.resample_gt_instances`); ``boxes`` (K, 6) the
    detections as x1 y1 z1 x2 y2 z2 in voxels. ``found`` (GT id -> found at score > 0.5 with its class) draws
    a missed instance's box in magenta instead of green.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    height = grid.shape[2]
    band = slice(min(height - 1, max(1, round(0.05 * height))), max(2, round(0.75 * height)))  # off the floor, below the ceiling
    alpha = np.asarray(grid[:, :, band, 3], dtype=np.float32).max(axis=2)
    fig, ax = plt.subplots(figsize=(7.0, 7.0 * alpha.shape[1] / max(alpha.shape[0], 1) + 0.6))
    ax.imshow(alpha.T, origin="lower", cmap="gray", vmin=0.0, vmax=1.0, extent=(0, alpha.shape[0], 0, alpha.shape[1]))
    for gid, mask in zip(np.asarray(gt_ids).tolist(), gt_masks):
        ext = _extent_xy(np.asarray(mask, dtype=bool))
        if ext is None:
            continue
        missed = found is not None and not found.get(int(gid), False)
        colour = "magenta" if missed else "lime"
        x0, y0, x1, y1 = ext
        ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ec=colour, lw=2.0))
        ax.text(x0 + 0.3, y0 + 0.3, spec.CLASS_NAMES[int(gt_classes.get(int(gid), 0))], fontsize=7, color=colour,
                va="bottom", ha="left", clip_on=True)
    order = np.argsort(np.asarray(scores))  # highest drawn last, on top
    for k in order.tolist():
        score = float(scores[k])
        style = next(((c, ls) for t, c, ls in SCORE_STYLES if score > t), None)
        if style is None:
            continue
        x0, y0, _, x1, y1, _ = (float(v) for v in boxes[k])
        ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ec=style[0], ls=style[1], lw=1.2))
        ax.text(x1 - 0.3, y1 - 0.3, f"{spec.CLASS_NAMES[int(labels[k])]} {score:.2f}", fontsize=6, color=style[0],
                va="top", ha="right", clip_on=True)
    handles = [Rectangle((0, 0), 1, 1, fill=False, ec="lime", lw=2, label="GT (found, score > 0.5, right class)"),
               Rectangle((0, 0), 1, 1, fill=False, ec="magenta", lw=2, label="GT missed")]
    handles += [Rectangle((0, 0), 1, 1, fill=False, ec=c, ls=ls, label=f"detection, score > {t:g}") for t, c, ls in SCORE_STYLES]
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.04), ncol=3, fontsize=7, frameon=False)
    ax.set_xlim(0, alpha.shape[0])
    ax.set_ylim(0, alpha.shape[1])
    ax.set_aspect("equal")
    ax.set_title(title or "NeRF-RCNN detections, top-down (voxels)", fontsize=9)
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_file) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    plt.close(fig)
    return out_file


def scene_found(recall_row: dict[str, Any], score: float = 0.5) -> dict[int, bool]:
    """GT id -> found (a detection with score > ``score`` and the right class hits it) from a scene row of
    :func:`nerfseg.instance_nerf.rcnn.train.detection_recall`."""
    return {int(g["id"]): float(g["score_class"]) > score for g in recall_row.get("gt", [])}


__all__ = ["SCORE_STYLES", "draw_detections", "scene_found"]
