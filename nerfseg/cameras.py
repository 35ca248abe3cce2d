"""Pinhole cameras in the one convention of SPEC section 1 (camera-to-world, OpenGL axes).

The renderer that makes the dataset and the radiance field that learns it both take their rays from
here (the radiance core has a torch twin tested against this), so a pixel means the same thing to both:
pixel (u, v) has its centre at (u + 0.5, v + 0.5); v grows downwards; the camera looks along -z.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics as transforms.json stores them (``fl_x, fl_y, cx, cy, w, h``)."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float

    @classmethod
    def from_fov(cls, width: int, height: int, focal: float) -> "Intrinsics":
        return cls(width, height, focal, focal, width / 2.0, height / 2.0)

    def scaled(self, factor: float) -> "Intrinsics":
        """The same camera at another resolution (used by the mini preset and by evaluation resizes)."""
        return Intrinsics(
            int(round(self.width * factor)), int(round(self.height * factor)), self.fx * factor, self.fy * factor, self.cx * factor, self.cy * factor
        )

    def to_json(self) -> dict[str, float | int]:
        return {
            "w": self.width,
            "h": self.height,
            "fl_x": self.fx,
            "fl_y": self.fy,
            "cx": self.cx,
            "cy": self.cy,
            "camera_angle_x": float(2 * np.arctan(self.width / (2 * self.fx))),
            "camera_angle_y": float(2 * np.arctan(self.height / (2 * self.fy))),
            "k1": 0.0,
            "k2": 0.0,
            "p1": 0.0,
            "p2": 0.0,
        }

    def matrix(self) -> np.ndarray:
        return np.array([[self.fx, 0, self.cx], [0, self.fy, self.cy], [0, 0, 1.0]])


def look_at(eye: np.ndarray, target: np.ndarray, up: np.ndarray = np.array([0.0, 0.0, 1.0])) -> np.ndarray:
    """Camera-to-world 4x4 (OpenGL axes) at ``eye`` looking at ``target`` with world ``up`` (z-up).

    Camera z = normalise(eye - target) (the camera looks along -z), x = up x z, y = z x x, as the
    reference BlenderProc scripts build their poses. Fails loudly when looking straight up or down.
    """
    eye = np.asarray(eye, dtype=np.float64)
    z = eye - np.asarray(target, dtype=np.float64)
    z /= np.linalg.norm(z)
    x = np.cross(up, z)
    norm = np.linalg.norm(x)
    if norm < 1e-8:
        raise ValueError("look_at: view direction is parallel to the up vector")
    x /= norm
    y = np.cross(z, x)
    c2w = np.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = x, y, z, eye
    return c2w


def camera_directions(intr: Intrinsics) -> np.ndarray:
    """(H, W, 3) ray directions in camera space (OpenGL), with z = -1 (so depth along -z equals t)."""
    u = np.arange(intr.width, dtype=np.float64) + 0.5
    v = np.arange(intr.height, dtype=np.float64) + 0.5
    uu, vv = np.meshgrid(u, v)
    return np.stack([(uu - intr.cx) / intr.fx, -(vv - intr.cy) / intr.fy, -np.ones_like(uu)], axis=-1)


def world_rays(c2w: np.ndarray, intr: Intrinsics) -> tuple[np.ndarray, np.ndarray]:
    """Origins and (unnormalised, camera-z = -1) directions of every pixel, each (H*W, 3), row-major.

    With these directions the ray parameter t of a hit equals its depth along the optical axis,
    which is what the depth maps store.
    """
    dirs_cam = camera_directions(intr).reshape(-1, 3)
    dirs = dirs_cam @ c2w[:3, :3].T
    origins = np.broadcast_to(c2w[:3, 3], dirs.shape).copy()
    return origins, dirs


def project_points(points: np.ndarray, c2w: np.ndarray, intr: Intrinsics) -> tuple[np.ndarray, np.ndarray]:
    """Project world points (N,3) to pixel coordinates (N,2) (u right, v down) and depths (N,) along -z.

    A point with depth <= 0 is behind the camera; callers mask it.
    """
    w2c = np.linalg.inv(c2w)
    pc = points @ w2c[:3, :3].T + w2c[:3, 3]
    depth = -pc[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        u = intr.fx * pc[:, 0] / depth + intr.cx
        v = -intr.fy * pc[:, 1] / depth + intr.cy
    return np.stack([u, v], axis=1), depth
