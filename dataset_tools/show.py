"""``nerfseg show``: one picture of a built scene that a person can check at a glance.

Rows of views (RGB, instance overlay, semantic overlay, depth) and a top-down plan of the voxel
ground truth with every instance's AABB and OBB and the camera positions (test views marked).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Polygon, Rectangle  # noqa: E402

from nerfseg import spec  # noqa: E402
from nerfseg.errors import InputError  # noqa: E402
from nerfseg.gt3d import read_gt3d  # noqa: E402
from nerfseg.io import atomic_path, read_panoptic_png, read_png  # noqa: E402

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


def draw_scene_overview(scene_dir: Path, out_file: Path, num_views: int = 3, frames: list[str] | None = None) -> None:
    """Write the overview PNG; ``frames`` names the views to draw (default: ``num_views`` evenly spaced)."""
    scene_dir = Path(scene_dir)
    info = spec.load_scene_info(scene_dir)
    gt = read_gt3d(scene_dir / spec.GT3D_H5)
    names = [f.name for f in info.frames]
    if frames:
        unknown = sorted(set(frames) - set(names))
        if unknown:
            raise InputError(scene_dir / spec.TRANSFORMS_JSON, f"no such frames: {', '.join(unknown)}")
        picks, num_views = list(frames), len(frames)
    else:
        picks = [names[i] for i in np.linspace(0, len(names) - 1, num_views).round().astype(int)] if names else []
    n_inst = int(gt.instances["id"].max(initial=0)) + 1
    inst_pal = label_palette(n_inst)
    sem_pal = plt.get_cmap("tab20")(np.arange(spec.NUM_CLASSES) % 20)[:, :3]
    sem_pal[0] = 0.0

    fig = plt.figure(figsize=(17, 2.6 * max(num_views, 2)))
    grid = fig.add_gridspec(max(num_views, 2), 6)
    for row, name in enumerate(picks):
        rgb = read_png(scene_dir / spec.IMAGES_DIR / f"{name}.png", expect="rgb")
        inst = read_png(scene_dir / spec.INSTANCE_DIR / f"{name}.png", expect="gray16")
        sem = read_png(scene_dir / spec.SEMANTIC_DIR / f"{name}.png", expect="gray8")
        depth = read_png(scene_dir / spec.DEPTH_DIR / f"{name}.png", expect="gray16").astype(np.float64) / spec.DEPTH_SCALE
        split = next(f.split for f in info.frames if f.name == name)
        # void on geometry: furniture the GT does not count (other rooms seen through openings, unknown categories)
        void = (read_panoptic_png(scene_dir / spec.PANOPTIC_DIR / f"{name}.png") == spec.VOID_ID) & (depth > 0)
        inst_view = overlay(rgb, inst, inst_pal)
        inst_view[void] = 0.5 * inst_view[void] + 0.5 * np.array(VOID_COLOUR)
        panels = [
            (rgb, f"{name} RGB ({split})"),
            (inst_view, "instances (magenta: void)" if void.any() else "instances"),
            (overlay(rgb, sem, sem_pal), "semantics"),
            (np.where(depth > 0, depth, np.nan), "depth (m)"),
        ]
        for col, (img, title) in enumerate(panels):
            ax = fig.add_subplot(grid[row, col])
            im = ax.imshow(img, cmap="viridis" if img.ndim == 2 else None)
            if img.ndim == 2:
                fig.colorbar(im, ax=ax, fraction=0.035)
            ax.set_title(title, fontsize=9)
            ax.axis("off")
        for iid in np.unique(inst):
            if iid == 0:
                continue
            ys, xs = np.nonzero(inst == iid)
            cls = gt.class_of().get(int(iid), 0)
            fig.axes[-3].text(xs.mean(), ys.mean(), f"{iid}:{spec.CLASS_NAMES[cls]}", fontsize=6, color="white", ha="center")

    ax = fig.add_subplot(grid[:, 4:])
    occupied = gt.instance > 0
    top = np.where(occupied.any(axis=2), gt.instance.shape[2] - 1 - np.argmax(occupied[:, :, ::-1], axis=2), -1)
    top_ids = np.where(top >= 0, np.take_along_axis(gt.instance, np.clip(top, 0, None)[..., None], axis=2)[..., 0], 0)
    lo, hi = gt.bbox_min, gt.bbox_max
    ax.imshow(inst_pal[top_ids].transpose(1, 0, 2), origin="lower", extent=(lo[0], hi[0], lo[1], hi[1]), alpha=0.6)
    for row in gt.instances:
        a = row["aabb"]
        ax.add_patch(Rectangle((a[0], a[1]), a[3] - a[0], a[4] - a[1], fill=False, ec="white", lw=0.8, ls="--"))
        ax.add_patch(Polygon(_obb_corners(row["obb"]), closed=True, fill=False, ec=inst_pal[int(row["id"]) % len(inst_pal)], lw=1.5))
        ax.text(row["obb"][0], row["obb"][1], f"{int(row['id'])} {spec.CLASS_NAMES[int(row['class_index'])]}", fontsize=7, ha="center")
    cams = np.array([np.asarray(f.transform_matrix)[:3, 3] for f in info.frames]) if info.frames else np.zeros((0, 3))
    test = np.array([f.split == "test" for f in info.frames], dtype=bool)
    if len(cams):
        ax.scatter(cams[~test, 0], cams[~test, 1], s=6, c="k", label="train views")
        ax.scatter(cams[test, 0], cams[test, 1], s=14, c="r", marker="x", label="test views")
        ax.legend(loc="upper right", fontsize=7)
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[1], hi[1])
    ax.set_aspect("equal")
    ax.set_facecolor("0.15")
    ax.set_title(f"{info.scene_id}: top-down voxel GT ({gt.mode}, {'x'.join(map(str, gt.instance.shape))})\nAABB dashed, OBB solid, cameras as dots", fontsize=9)
    fig.tight_layout()
    out_file = Path(out_file)
    with atomic_path(out_file.with_suffix(".png") if out_file.suffix == "" else out_file) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
