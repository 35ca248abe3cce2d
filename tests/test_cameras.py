"""Pixel <-> ray convention: a point on a pixel's ray projects back onto that pixel's centre."""

from __future__ import annotations

import numpy as np
import pytest

from nerfseg.cameras import Intrinsics, look_at, project_points, world_rays


def test_rays_and_projection_agree(rng: np.random.Generator) -> None:
    intr = Intrinsics(64, 48, 40.0, 42.0, 31.0, 25.0)
    c2w = look_at(np.array([1.0, -2.0, 1.5]), np.array([0.3, 0.4, 0.8]))
    origins, dirs = world_rays(c2w, intr)
    idx = rng.integers(0, intr.width * intr.height, size=50)
    t = rng.uniform(0.5, 4.0, size=50)
    pts = origins[idx] + dirs[idx] * t[:, None]
    uv, depth = project_points(pts, c2w, intr)
    np.testing.assert_allclose(depth, t, rtol=1e-9)
    np.testing.assert_allclose(uv[:, 0], idx % intr.width + 0.5, atol=1e-9)
    np.testing.assert_allclose(uv[:, 1], idx // intr.width + 0.5, atol=1e-9)


def test_look_at_points_camera_at_target() -> None:
    eye, target = np.array([0.0, 0.0, 1.0]), np.array([2.0, 0.0, 1.0])
    c2w = look_at(eye, target)
    np.testing.assert_allclose(-c2w[:3, 2], [1, 0, 0], atol=1e-12)  # looks along -z
    np.testing.assert_allclose(c2w[:3, 1], [0, 0, 1], atol=1e-12)  # image up is world up
    with pytest.raises(ValueError):
        look_at(eye, np.array([0.0, 0.0, 3.0]))
