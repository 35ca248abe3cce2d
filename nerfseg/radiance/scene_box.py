"""Scene normalisation: the room box (world metres, z-up) mapped into the cube [-1, 1]^3, aspect kept.

Why this particular map: positions are normalised, but ray *parameters* are not. A world ray
``o + t d`` (``d`` with camera z = -1, so ``t`` is depth along the optical axis) becomes
``o' + t d'`` with ``o' = (o - centre) * scale`` and ``d' = d * scale``; the same ``t`` addresses both.
So sample spacings, densities (per metre) and rendered depths stay in world metres and can be compared
with the dataset's depth maps directly, while the grids see well-conditioned coordinates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch


@dataclass(frozen=True)
class SceneBox:
    """The world AABB the field covers (room box plus ``margin`` metres) and its map to normalised space."""

    bbox_min: tuple[float, float, float]
    bbox_max: tuple[float, float, float]

    @classmethod
    def from_room_bbox(cls, room_bbox: Sequence[Sequence[float]], margin: float = 0.0) -> "SceneBox":
        lo = [float(v) - margin for v in room_bbox[0]]
        hi = [float(v) + margin for v in room_bbox[1]]
        if any(h <= l for l, h in zip(lo, hi)):
            raise ValueError(f"degenerate room_bbox {room_bbox}")
        return cls(tuple(lo), tuple(hi))  # type: ignore[arg-type]

    @property
    def centre(self) -> torch.Tensor:
        return (torch.tensor(self.bbox_min) + torch.tensor(self.bbox_max)) / 2

    @property
    def scale(self) -> float:
        """Metres -> normalised units: the longest side spans 2."""
        return 2.0 / max(h - l for l, h in zip(self.bbox_min, self.bbox_max))

    @property
    def longest_side(self) -> float:
        return max(h - l for l, h in zip(self.bbox_min, self.bbox_max))

    def aabb_normalised(self) -> torch.Tensor:
        """(2, 3) normalised box; the longest axis is [-1, 1], the others shorter and centred."""
        world = torch.tensor([self.bbox_min, self.bbox_max], dtype=torch.float32)
        return (world - self.centre) * self.scale

    def normalise_points(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.centre.to(x)) * self.scale

    def normalise_rays(self, origins: torch.Tensor, dirs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """World rays -> normalised rays with the same parameter ``t`` (see module docstring)."""
        return self.normalise_points(origins), dirs * self.scale


def ray_aabb(origins: torch.Tensor, dirs: torch.Tensor, aabb: torch.Tensor, min_near: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Entry and exit parameters (R,) of rays against an AABB (slab method), entry clamped to ``min_near``.

    Rays that miss the box get ``far <= near``; callers treat those as empty. Zero direction components
    are handled by IEEE infinities (the slab then spans the whole line or nothing).
    """
    inv = 1.0 / torch.where(dirs == 0, torch.full_like(dirs, 1e-12), dirs)
    t0 = (aabb[0].to(origins) - origins) * inv
    t1 = (aabb[1].to(origins) - origins) * inv
    near = torch.minimum(t0, t1).amax(-1).clamp_min(min_near)
    far = torch.maximum(t0, t1).amin(-1)
    return near, far
