"""A tiny synthetic indoor scene in the SPEC layout, rendered by exact ray-box intersection (numpy).

The radiance core must be testable before the dataset builder exists, and a scene whose geometry is
known exactly (axis-aligned boxes in a box-shaped room) makes rendered depth checkable. Surfaces are
diffuse (view-independent), textured with smooth random texture maps plus a coarse checker, lit by one
fixed directional light, so the scene resembles the demo rooms: textured diffuse, no view dependence.

``make_scene(out_dir, ...)`` writes ``transforms.json`` (w, h, fl_x, fl_y, cx, cy, room_bbox,
frames[file_path, depth_file_path, transform_matrix, split], *_filenames), ``images/<frame>.png`` and
``depth/<frame>.png`` (uint16 millimetres along the optical axis) and returns the scene folder.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nerfseg.cameras import Intrinsics, look_at, world_rays
from nerfseg.io import write_json_atomic, write_png
from nerfseg.spec import DEPTH_SCALE, TEST_EVERY, frame_name

ROOM = np.array([[0.0, 0.0, 0.0], [5.0, 4.0, 2.8]])
BOXES = np.array(
    [
        [[0.4, 0.4, 0.0], [1.6, 1.2, 0.75]],  # table
        [[3.2, 2.6, 0.0], [4.6, 3.7, 0.5]],  # bed
        [[3.9, 0.3, 0.0], [4.7, 0.9, 1.8]],  # cabinet
        [[2.0, 2.0, 0.0], [2.5, 2.5, 0.45]],  # stool
        [[0.3, 3.2, 0.0], [1.0, 3.8, 1.1]],  # shelf
    ]
)
LIGHT = np.array([0.3, 0.5, 0.81])
TEXEL = 0.05  # metres per texel


def _textures(rng: np.random.Generator, count: int, size: int = 64) -> np.ndarray:
    """(count, size, size, 3) smooth random colour textures in [0.1, 0.9] (value noise + a checker)."""
    base = rng.uniform(0.2, 0.8, size=(count, 1, 1, 3))
    coarse = rng.uniform(-1, 1, size=(count, size // 8, size // 8, 3))
    coarse = np.repeat(np.repeat(coarse, 8, axis=1), 8, axis=2)
    # box-blur the blocky noise once so the texture is smooth but detailed
    k = 5
    pad = np.pad(coarse, ((0, 0), (k, k), (k, k), (0, 0)), mode="wrap")
    c = np.cumsum(np.cumsum(pad, axis=1), axis=2)
    blur = (c[:, 2 * k :, 2 * k :] - c[:, : -2 * k, 2 * k :] - c[:, 2 * k :, : -2 * k] + c[:, : -2 * k, : -2 * k]) / (2 * k) ** 2
    blur = blur[:, :size, :size]
    fine = rng.uniform(-1, 1, size=(count, size, size, 1))
    yy, xx = np.mgrid[0:size, 0:size]
    checker = (((xx // 8) + (yy // 8)) % 2)[None, :, :, None] * 2.0 - 1.0
    tex = base + 0.25 * blur + 0.06 * fine + 0.08 * checker
    return np.clip(tex, 0.1, 0.9)


def _bilinear(tex: np.ndarray, s: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Sample textures ``tex[s]`` at texel coordinates (a, b) bilinearly with wrap-around."""
    size = tex.shape[1]
    a0, b0 = np.floor(a), np.floor(b)
    fa, fb = (a - a0)[:, None], (b - b0)[:, None]
    a0, b0 = a0.astype(np.int64) % size, b0.astype(np.int64) % size
    a1, b1 = (a0 + 1) % size, (b0 + 1) % size
    return (tex[s, a0, b0] * (1 - fa) * (1 - fb) + tex[s, a1, b0] * fa * (1 - fb) + tex[s, a0, b1] * (1 - fa) * fb + tex[s, a1, b1] * fa * fb)


def trace(origins: np.ndarray, dirs: np.ndarray, textures: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Colour (N,3) and hit parameter t (N,) of rays (origin inside the room, outside the boxes)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / dirs
        # room: the ray leaves through the face where the max slab parameter is smallest
        r0 = (ROOM[0] - origins) * inv
        r1 = (ROOM[1] - origins) * inv
        rmax = np.maximum(r0, r1)
        t_room = rmax.min(axis=1)
        axis_room = rmax.argmin(axis=1)
        face_room = axis_room * 2 + (dirs[np.arange(len(dirs)), axis_room] > 0)
        # boxes: entry parameter where the ray hits
        b0 = (BOXES[None, :, 0] - origins[:, None]) * inv[:, None]
        b1 = (BOXES[None, :, 1] - origins[:, None]) * inv[:, None]
        bmin = np.minimum(b0, b1)
        tnear = bmin.max(axis=2)
        tfar = np.maximum(b0, b1).min(axis=2)
    hit = (tnear <= tfar) & (tnear > 1e-6)
    tnear = np.where(hit, tnear, np.inf)
    best = tnear.argmin(axis=1)
    t_box = tnear[np.arange(len(dirs)), best]
    use_box = t_box < t_room
    t = np.where(use_box, t_box, t_room)
    axis_box = bmin[np.arange(len(dirs)), best].argmax(axis=1)
    axis = np.where(use_box, axis_box, axis_room)
    surface = np.where(use_box, 6 + best, face_room)
    p = origins + t[:, None] * dirs
    normal = np.zeros_like(p)
    sign = -np.sign(dirs[np.arange(len(dirs)), axis])
    normal[np.arange(len(dirs)), axis] = sign
    other = np.array([[1, 2], [0, 2], [0, 1]])[axis]
    ua = p[np.arange(len(dirs)), other[:, 0]] / TEXEL
    ub = p[np.arange(len(dirs)), other[:, 1]] / TEXEL
    albedo = _bilinear(textures, surface, ua, ub)
    shade = 0.55 + 0.45 * np.clip(normal @ (LIGHT / np.linalg.norm(LIGHT)), 0, 1)
    return albedo * shade[:, None], t


def _inside_box(p: np.ndarray, margin: float) -> bool:
    return bool(((p >= BOXES[:, 0] - margin) & (p <= BOXES[:, 1] + margin)).all(axis=1).any())


def camera_poses(num_views: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Cameras inside the room, at least 0.3 m from furniture (the dataset's ``min_surface_distance``),
    looking at random points at least 1 m away."""
    poses = []
    while len(poses) < num_views:
        eye = rng.uniform(ROOM[0] + [0.4, 0.4, 0.9], ROOM[1] - [0.4, 0.4, 0.6])
        target = rng.uniform(ROOM[0] + 0.2, ROOM[1] - 0.2)
        target[2] = rng.uniform(0.2, 1.6)
        d = target - eye
        if _inside_box(eye, 0.3) or np.linalg.norm(d) < 1.0 or abs(d[2]) > 0.8 * np.linalg.norm(d):
            continue
        poses.append(look_at(eye, target))
    return poses


def render(c2w: np.ndarray, intr: Intrinsics, textures: np.ndarray, supersample: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """uint8 RGB (H,W,3) (``supersample``^2 rays per pixel, box-averaged) and depth in metres (H,W)."""
    fine = intr.scaled(supersample)
    o, d = world_rays(c2w, fine)
    rgb, _ = trace(o, d, textures)
    h, w = intr.height, intr.width
    rgb = rgb.reshape(h, supersample, w, supersample, 3).mean(axis=(1, 3))
    o, d = world_rays(c2w, intr)
    _, depth = trace(o, d, textures)
    return (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8), depth.reshape(h, w)


def make_scene(
    out_dir: str | Path, num_views: int = 24, width: int = 64, height: int = 48, fov_deg: float = 75.0, seed: int = 0, supersample: int = 2
) -> Path:
    """Write a synthetic scene folder (SPEC 3 layout subset) and return it; every 8th view is a test view."""
    out = Path(out_dir)
    rng = np.random.default_rng(seed)
    textures = _textures(rng, 6 + len(BOXES))
    focal = 0.5 * width / np.tan(np.radians(fov_deg) / 2)
    intr = Intrinsics.from_fov(width, height, focal)
    frames, split_names = [], {"train": [], "test": []}
    for i, c2w in enumerate(camera_poses(num_views, rng)):
        rgb, depth = render(c2w, intr, textures, supersample)
        name = frame_name(i)
        write_png(out / "images" / f"{name}.png", rgb)
        write_png(out / "depth" / f"{name}.png", np.clip(depth * DEPTH_SCALE, 0, 65535).astype(np.uint16))
        split = "test" if i % TEST_EVERY == TEST_EVERY - 1 else "train"
        split_names[split].append(f"images/{name}.png")
        frames.append({"file_path": f"images/{name}.png", "depth_file_path": f"depth/{name}.png", "transform_matrix": c2w.tolist(), "split": split})
    meta = {
        **intr.to_json(),
        "room_bbox": ROOM.tolist(),
        "frames": frames,
        "train_filenames": split_names["train"],
        "val_filenames": split_names["test"],
        "test_filenames": split_names["test"],
    }
    write_json_atomic(out / "transforms.json", meta)
    return out
