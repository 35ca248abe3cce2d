"""Occupancy grid: which cells of the scene box can hold visible matter, so empty space costs nothing.

Most of an indoor room is air; a ray crosses a few centimetres of surface and metres of nothing. The
grid keeps an exponential moving maximum of the field's density per cell (Instant-NGP's rule:
``ema = max(ema * decay, new)`` with one jittered density probe per cell per update) and marks a cell
occupied when its value exceeds ``min(threshold, mean)``. The ``mean`` term matters early on, when the
untrained field has a uniform density: then only the denser half survives instead of everything or
nothing. Until the first update every cell counts as occupied.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn


class OccupancyGrid(nn.Module):
    """Boolean cell mask over a normalised AABB with ``resolution`` cells on its longest side."""

    def __init__(self, aabb: torch.Tensor, resolution: int, decay: float = 0.95, threshold: float = 0.01) -> None:
        super().__init__()
        aabb = torch.as_tensor(aabb, dtype=torch.float32).reshape(2, 3)
        extent = aabb[1] - aabb[0]
        shape = [max(1, int(round(float(e / extent.max()) * resolution))) for e in extent]
        self.decay = float(decay)
        self.threshold = float(threshold)  # density (per metre) above which a cell is surely occupied
        self.register_buffer("aabb", aabb.clone())
        self.register_buffer("shape", torch.tensor(shape, dtype=torch.long))
        self.register_buffer("density", torch.zeros(shape))
        self.register_buffer("mask", torch.ones(shape, dtype=torch.bool))
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))

    @property
    def occupied_fraction(self) -> float:
        return float(self.mask.float().mean())

    def cell_index(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Flat cell index (N,) of normalised points and whether they lie inside the box."""
        u = (x - self.aabb[0]) / (self.aabb[1] - self.aabb[0])
        inside = ((u >= 0) & (u <= 1)).all(-1)
        shape = self.shape.to(x.device)
        ijk = torch.minimum((u.clamp(0, 1) * shape).long(), shape - 1)
        return (ijk[:, 0] * shape[1] + ijk[:, 1]) * shape[2] + ijk[:, 2], inside

    def occupied(self, x: torch.Tensor) -> torch.Tensor:
        """(N,) bool: points inside the box whose cell is occupied."""
        idx, inside = self.cell_index(x)
        return self.mask.reshape(-1)[idx] & inside

    @torch.no_grad()
    def update(self, density_fn: Callable[[torch.Tensor], torch.Tensor], generator: torch.Generator | None = None, chunk: int = 1 << 18) -> None:
        """Probe the density once per cell at a random point inside it and refresh the mask."""
        sx, sy, sz = (int(v) for v in self.shape)
        dev = self.density.device
        ii, jj, kk = torch.meshgrid(torch.arange(sx), torch.arange(sy), torch.arange(sz), indexing="ij")
        cells = torch.stack([ii, jj, kk], -1).reshape(-1, 3).float()
        jitter = torch.rand(cells.shape, generator=generator)
        u = (cells + jitter) / self.shape.float().cpu()
        lo, hi = self.aabb[0].cpu(), self.aabb[1].cpu()
        x = lo + u * (hi - lo)
        new = torch.cat([density_fn(x[i : i + chunk].to(dev)).float().reshape(-1) for i in range(0, x.shape[0], chunk)])
        new = new.reshape(sx, sy, sz)
        if int(self.updates) == 0:
            self.density.copy_(new)
        else:
            torch.maximum(self.density * self.decay, new, out=self.density)
        thresh = min(self.threshold, float(self.density.mean()))
        self.mask.copy_(self.density > thresh)
        self.updates += 1
