"""``nerfseg show``: one picture of a built scene that a person can check at a glance.

Rows of views (RGB, instance overlay, semantic overlay, depth) and a top-down plan of the voxel
ground truth with every instance's AABB and OBB and the camera positions (test views marked).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Polygon, Rectangle  # noqa: E402

from nerfseg import spec  # noqa: E402
from nerfseg.errors import InputError  # noqa: E402
from nerfseg.gt3d import GT3D, read_gt3d  # noqa: E402
from nerfseg.io import atomic_path, read_depth_metres, read_panoptic_png, read_png  # noqa: E402

VOID_COLOUR = (1.0, 0.0, 1.0)  # pixels on geometry that the GT marks void


def label_palette(n: int, seed: int = 3) -> np.ndarray:
    """(n,3) float colours, 0 = black; deterministic so the same id gets the same colour in every figure."""
    rng = np.random.default_rng(seed)
    pal = rng.uniform(0.25, 1.0, size=(max(n, 1), 3))
    pal[0] = 0.0
    return pal


def overlay(rgb: np.ndarray, labels: np.ndarray, palette: np.ndarray, alpha: float = 0.55) -> np.ndarray:
    """Blend label colours over an RGB image (label 0 left as is), vectorised with a palette lookup."""
    img = rgb.astype(np.float64) / 255.0
    col = palette[np.clip(labels, 0, len(palette) - 1)]
    mask = (labels > 0)[..., None]
    return np.where(mask, (1 - alpha) * img + alpha * col, img)


def _obb_corners(obb: np.ndarray) -> np.ndarray:
    x, y, _, w, l, _, yaw = obb
    c, s = np.cos(yaw), np.sin(yaw)
    local = np.array([[-w, -l], [w, -l], [w, l], [-w, l]]) / 2.0
    return local @ np.array([[c, s], [-s, c]]) + np.array([x, y])


def _label_anchor(mask: np.ndarray) -> tuple[float, float]:
    """A point inside a segment (the pixel nearest its centroid), so a concave segment's label sits on it."""
    ys, xs = np.nonzero(mask)
    cy, cx = ys.mean(), xs.mean()
    i = int(np.argmin((ys - cy) ** 2 + (xs - cx) ** 2))
    return float(xs[i]), float(ys[i])


def _edge_align(x: float, lo: float, hi: float) -> str:
    """Horizontal alignment that keeps a label near an edge inside the panel instead of cut by it."""
    span = hi - lo
    if x < lo + 0.2 * span:
        return "left"
    if x > hi - 0.2 * span:
        return "right"
    return "center"


_LABEL_BOX = {"boxstyle": "round,pad=0.15", "fc": "black", "alpha": 0.6, "lw": 0}


def pick_frames(info: spec.SceneInfo, num_views: int, frames: list[str] | None, split: str = "all") -> list[str]:
    """The views ``show`` draws: ``frames`` as given, else ``num_views`` evenly spaced views of ``split``
    ("all", "train" or "test"; a scene's test views are its held-out views, every 8th)."""
    names = [f.name for f in info.frames if split == "all" or f.split == split]
    if frames:
        unknown = sorted(set(frames) - {f.name for f in info.frames})
        if unknown:
            raise InputError(Path(info.scene_id) / spec.TRANSFORMS_JSON, f"no such frames: {', '.join(unknown)}")
        return list(frames)
    if not names:
        raise InputError(Path(info.scene_id) / spec.TRANSFORMS_JSON, f"the scene has no {split} views")
    if num_views >= len(names):
        return names
    return [names[i] for i in np.linspace(0, len(names) - 1, max(num_views, 1)).round().astype(int)]


def _draw_view_row(axes: np.ndarray, fig: Any, scene_dir: Path, name: str, split: str, width: int, inst_pal: np.ndarray, sem_pal: np.ndarray, classes: dict[int, int]) -> None:
    """One row of panels for view ``name``: RGB, instance overlay (void in magenta, ids labelled), semantic overlay, depth."""
    rgb = read_png(scene_dir / spec.IMAGES_DIR / f"{name}.png", expect="rgb")
    inst = read_png(scene_dir / spec.INSTANCE_DIR / f"{name}.png", expect="gray16")
    sem = read_png(scene_dir / spec.SEMANTIC_DIR / f"{name}.png", expect="gray8")
    depth = read_depth_metres(scene_dir / spec.DEPTH_DIR / f"{name}.png", np.float64)
    # void on geometry: furniture the GT does not count (other rooms seen through openings, unknown categories)
    void = (read_panoptic_png(scene_dir / spec.PANOPTIC_DIR / f"{name}.png") == spec.VOID_ID) & (depth > 0)
    inst_view = overlay(rgb, inst, inst_pal)
    inst_view[void] = 0.5 * inst_view[void] + 0.5 * np.array(VOID_COLOUR)
    panels = [
        (rgb, f"{name} RGB ({split} view)"),
        (inst_view, "instances (magenta: void)" if void.any() else "instances"),
        (overlay(rgb, sem, sem_pal), "semantics"),
        (np.where(depth > 0, depth, np.nan), "depth (m)"),
    ]
    for col, (img, title) in enumerate(panels):
        ax = axes[col]
        im = ax.imshow(img, cmap="viridis" if img.ndim == 2 else None)
        if img.ndim == 2:
            fig.colorbar(im, ax=ax, fraction=0.05, pad=0.02)
        ax.set_title(title, fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    for iid in np.unique(inst):
        if iid == 0:
            continue
        x, y = _label_anchor(inst == iid)
        cls = spec.CLASS_NAMES[classes.get(int(iid), 0)]
        axes[1].text(x, y, f"{iid}:{cls}", fontsize=6, color="white", ha=_edge_align(x, 0, width),
                     va="center", bbox=_LABEL_BOX, clip_on=True)
    present = sorted(set(np.unique(sem).tolist()) - {0})
    for k, c in enumerate(present):  # the semantic panel's classes, listed inside its top-left corner
        axes[2].text(0.02, 0.97 - 0.11 * k, spec.CLASS_NAMES[c], transform=axes[2].transAxes, fontsize=6,
                     color="black", va="top", bbox={**_LABEL_BOX, "fc": sem_pal[c], "alpha": 0.9})


def _draw_plan(ax: Any, info: spec.SceneInfo, gt: GT3D, inst_pal: np.ndarray) -> None:
    """Top-down plan: the highest voxel's instance per column, every AABB (dashed) and OBB (solid), the cameras."""
    lo, hi = gt.bbox_min, gt.bbox_max
    occupied = gt.instance > 0
    top = np.where(occupied.any(axis=2), gt.instance.shape[2] - 1 - np.argmax(occupied[:, :, ::-1], axis=2), -1)
    top_ids = np.where(top >= 0, np.take_along_axis(gt.instance, np.clip(top, 0, None)[..., None], axis=2)[..., 0], 0)
    ax.imshow(inst_pal[top_ids].transpose(1, 0, 2), origin="lower", extent=(lo[0], hi[0], lo[1], hi[1]), alpha=0.6)
    for row in gt.instances:
        a = row["aabb"]
        ax.add_patch(Rectangle((a[0], a[1]), a[3] - a[0], a[4] - a[1], fill=False, ec="white", lw=0.8, ls="--"))
        ax.add_patch(Polygon(_obb_corners(row["obb"]), closed=True, fill=False, ec=inst_pal[int(row["id"]) % len(inst_pal)], lw=1.5))
        x = float(row["obb"][0])
        ax.text(x, row["obb"][1], f"{int(row['id'])} {spec.CLASS_NAMES[int(row['class_index'])]}", fontsize=7, color="white",
                ha=_edge_align(x, lo[0], hi[0]), va="center", bbox=_LABEL_BOX, clip_on=True)
    cams = np.array([np.asarray(f.transform_matrix)[:3, 3] for f in info.frames]) if info.frames else np.zeros((0, 3))
    test = np.array([f.split == "test" for f in info.frames], dtype=bool)
    if len(cams):
        ax.scatter(cams[~test, 0], cams[~test, 1], s=6, c="k", label="train views")
        ax.scatter(cams[test, 0], cams[test, 1], s=14, c="r", marker="x", label="test views")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.06), ncol=2, fontsize=7, frameon=False)
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[1], hi[1])
    ax.set_aspect("equal")
    ax.set_facecolor("0.15")
    ax.tick_params(labelsize=7)
    ax.set_title(f"{info.scene_id}: top-down voxel GT ({gt.mode}, {'x'.join(map(str, gt.instance.shape))})\n"
                 "AABB dashed, OBB solid, cameras as dots (m)", fontsize=8)


def draw_scene_overview(
    scene_dir: Path, out_file: Path, num_views: int = 3, frames: list[str] | None = None, split: str = "all"
) -> list[str]:
    """Write the overview PNG and return the views drawn.

    ``frames`` names the views to draw; otherwise ``num_views`` evenly spaced views of ``split`` ("all",
    "train" or "test"). The figure is sized from the image aspect and saved with a tight bounding box, and
    labels near a panel's edge are aligned inwards, so nothing is cut off and no wide margin is left.
    """
    scene_dir = Path(scene_dir)
    info = spec.load_scene_info(scene_dir)
    gt = read_gt3d(scene_dir / spec.GT3D_H5)
    try:
        picks = pick_frames(info, num_views, frames, split)
    except InputError as exc:
        raise InputError(scene_dir / spec.TRANSFORMS_JSON, exc.problem) from None
    n_inst = int(gt.instances["id"].max(initial=0)) + 1
    inst_pal = label_palette(n_inst)
    sem_pal = plt.get_cmap("tab20")(np.arange(spec.NUM_CLASSES) % 20)[:, :3]
    sem_pal[0] = 0.0
    classes = gt.class_of()
    split_of = {f.name: f.split for f in info.frames}

    rows = max(len(picks), 1)
    panel_w = 2.6
    panel_h = panel_w * info.height / info.width
    lo, hi = gt.bbox_min, gt.bbox_max
    plan_h = max(rows * (panel_h + 0.35), 3.0)
    plan_w = min(max(plan_h * (hi[0] - lo[0]) / max(hi[1] - lo[1], 1e-6), 2.5), 9.0)
    fig = plt.figure(figsize=(4 * panel_w + 0.5 + plan_w, plan_h + 0.6), layout="constrained")
    left, right = fig.subfigures(1, 2, width_ratios=[4 * panel_w + 0.5, plan_w])
    axes = left.subplots(rows, 4, squeeze=False)
    for row, name in enumerate(picks):
        _draw_view_row(axes[row], fig, scene_dir, name, split_of[name], info.width, inst_pal, sem_pal, classes)
    for ax in axes.ravel()[len(picks) * 4:]:
        ax.axis("off")
    _draw_plan(right.subplots(), info, gt, inst_pal)
    out_file = Path(out_file)
    with atomic_path(out_file.with_suffix(".png") if out_file.suffix == "" else out_file) as tmp:
        fig.savefig(tmp, dpi=100, format="png", bbox_inches="tight", pad_inches=0.05)
    plt.close(fig)
    return picks
