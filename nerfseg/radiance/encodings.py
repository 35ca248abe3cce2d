"""Position and direction encodings: multi-resolution hash grid, dense feature grid, spherical harmonics.

Both grids share one trilinear-interpolation path: the 8 corner indices and weights of every point are
computed in one vectorised pass per level, then gathered and summed (``index_select``) with a scatter-add
backward (``index_add_``). On a 2-core CPU that is about 4x faster than ``F.grid_sample`` on a
(1,C,Z,Y,X) tensor in forward + backward, which is why the dense grid uses it too; it is the path CUDA
takes. On the CPU, float32 points and tables go through the compiled kernels of ``_grid_kernel`` instead
(same indices, weights and sums, several times faster); the torch ops stay their tested reference.

Coordinates: every encoding takes points in the normalised scene box and maps its own ``aabb`` onto the
unit cube; level ``l`` has ``res_l`` cells per axis and vertices at integer positions ``0..res_l`` of
``u * res_l``, so interpolation is exact at vertices and continuous everywhere (the upper face uses the
last cell with weight 1 instead of reading past the table).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nerfseg.radiance import _grid_kernel

#: Instant-NGP's spatial-hash primes (the first is 1 so that the x coordinate keeps its cache locality).
HASH_PRIMES = (1, 2654435761, 805459861)



class GridEncoding(nn.Module):
    """Trilinearly interpolated feature grids at one or more resolutions (the engine of both grid kinds).

    ``level_resolutions`` is an (L, 3) list of cells per axis. A level whose (res+1)^3 vertices fit in
    ``table_size`` entries is stored densely (no collisions); a finer level is hashed into ``table_size``
    entries with the Instant-NGP spatial hash. Output: (N, L * features) with levels concatenated
    coarse to fine.
    """

    def __init__(
        self,
        level_resolutions: Sequence[Sequence[int]],
        features: int,
        table_size: int | None,
        aabb: torch.Tensor,
        init_scale: float = 1e-4,
    ) -> None:
        super().__init__()
        res = torch.as_tensor(level_resolutions, dtype=torch.long).reshape(-1, 3)
        if (res < 1).any():
            raise ValueError(f"grid resolutions must be >= 1, got {res.tolist()}")
        self.num_levels = int(res.shape[0])
        self.features = int(features)
        self.output_dim = self.num_levels * self.features
        self.register_buffer("aabb", torch.as_tensor(aabb, dtype=torch.float32).reshape(2, 3).clone(), persistent=True)
        self.register_buffer("level_res", res, persistent=True)
        # device-side constants, so that no level needs a host round trip on CUDA
        self.register_buffer("_res_f", res.float(), persistent=False)
        self.register_buffer("_pair", torch.tensor([0, 1], dtype=torch.long), persistent=False)
        self._res: list[tuple[int, int, int]] = [tuple(r) for r in res.tolist()]  # type: ignore[misc]
        offsets = [[i + (r[0] + 1) * (j + (r[1] + 1) * k) for k in (0, 1) for j in (0, 1) for i in (0, 1)] for r in self._res]
        self.register_buffer("_dense_offsets", torch.tensor(offsets, dtype=torch.long), persistent=False)
        self.hashed: list[bool] = []
        tables = []
        for r in res.tolist():
            dense_size = (r[0] + 1) * (r[1] + 1) * (r[2] + 1)
            hashed = table_size is not None and dense_size > table_size
            size = int(table_size) if hashed else dense_size
            self.hashed.append(hashed)
            # tiny uniform init as Instant-NGP: the MLP first sees ~0 features, grids grow where needed
            tables.append(nn.Parameter(torch.empty(size, self.features).uniform_(-init_scale, init_scale)))
        self.tables = nn.ParameterList(tables)
        # the compiled kernel's view of the levels (host arrays, built once)
        self._res_np = np.ascontiguousarray(np.array(self._res, dtype=np.int64).reshape(-1, 3))
        self._hashed_np = np.array(self.hashed, dtype=np.bool_)
        #: "auto": the compiled CPU kernel where it applies (see _use_kernel); "torch": always the torch ops
        self.kernel = "auto"

    @property
    def level_table_sizes(self) -> list[int]:
        return [int(t.shape[0]) for t in self.tables]

    def _level_indices(self, u: torch.Tensor, level: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Corner indices (N, 8) and trilinear weights (N, 8) of points ``u`` in [0,1]^3 at one level.

        Corner k = i + 2j + 4l is offset (i, j, l) along (x, y, z). Per-axis terms are built once per
        point and combined by broadcasting, which is ~3x cheaper than materialising (N, 8, 3) corners.
        """
        res = self._res_f[level]
        pos = u * res
        cell = torch.minimum(pos.floor().clamp_min(0), res - 1)
        frac = (pos - cell).clamp(0.0, 1.0)  # points outside the box are clamped onto its faces
        c = cell.long()
        n = u.shape[0]
        if self.hashed[level]:
            hx = c[:, 0:1] + self._pair
            hy = (c[:, 1:2] + self._pair) * HASH_PRIMES[1]
            hz = (c[:, 2:3] + self._pair) * HASH_PRIMES[2]
            hyx = (hy[:, :, None] ^ hx[:, None, :]).reshape(n, 1, 4)
            idx = (hz[:, :, None] ^ hyx).reshape(n, 8)
            size = self.tables[level].shape[0]
            idx = idx & (size - 1) if _is_pow2(size) else idx % size
        else:
            rx, ry, _ = self._res[level]
            base = c[:, 0] + (rx + 1) * (c[:, 1] + (ry + 1) * c[:, 2])
            idx = base[:, None] + self._dense_offsets[level]
        w0 = torch.stack([1.0 - frac, frac], dim=-1)  # (N, 3, 2)
        wyx = (w0[:, 1, :, None] * w0[:, 0, None, :]).reshape(n, 1, 4)
        w = (w0[:, 2, :, None] * wyx).reshape(n, 8)
        return idx, w

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """Map points from the normalised scene box to this grid's unit cube."""
        lo, hi = self.aabb[0], self.aabb[1]
        return (x - lo) / (hi - lo)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = self.normalise(x.reshape(-1, 3).float())
        if self._use_kernel(u):
            # CPU: every level in one compiled pass (see _grid_kernel), points split over torch's threads
            return _KernelGrid.apply(u.detach().contiguous(), self._res_np, self._hashed_np, *self.tables).reshape(*x.shape[:-1], self.output_dim)
        outs = []
        for level in range(self.num_levels):
            idx, w = self._level_indices(u, level)
            outs.append(_TrilinearGather.apply(self.tables[level], idx, w.to(self.tables[level].dtype)))
        return torch.cat(outs, dim=-1).reshape(*x.shape[:-1], self.output_dim)

    def _use_kernel(self, u: torch.Tensor) -> bool:
        """The compiled CPU path applies: numba present and on, float32 CPU points and tables."""
        return (
            self.kernel != "torch"
            and _grid_kernel.enabled()
            and u.device.type == "cpu"
            and u.dtype == torch.float32
            and all(t.device.type == "cpu" and t.dtype == torch.float32 for t in self.tables)
        )

    def tv_loss(self, num_samples: int | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """Total variation (mean squared difference of neighbouring vertices) over the dense levels.

        With ``num_samples`` the squared differences are averaged over that many random vertices per level
        (an unbiased, much cheaper estimate); hashed levels have no neighbourhood and are skipped.
        """
        terms = []
        for level, table in enumerate(self.tables):
            if self.hashed[level]:
                continue
            rx, ry, rz = (v + 1 for v in self._res[level])
            grid = table.view(rz, ry, rx, self.features)
            if num_samples is None:
                d = [grid[1:] - grid[:-1], grid[:, 1:] - grid[:, :-1], grid[:, :, 1:] - grid[:, :, :-1]]
                terms.append(sum(v.pow(2).mean() for v in d if v.numel()) / 3.0)
            else:
                # random cells; each contributes its three forward differences (x, y, z neighbours)
                r = torch.rand(num_samples, 3, generator=generator)
                top = torch.tensor([rx - 1, ry - 1, rz - 1])  # >= 1: every level has >= 2 vertices per axis
                c = torch.minimum((r * top).long(), top - 1).to(table.device)
                base = c[:, 0] + rx * (c[:, 1] + ry * c[:, 2])
                val = table[base]
                tv = sum((table[base + stride] - val).pow(2).mean() for stride in (1, rx, rx * ry))
                terms.append(tv / 3.0)
        if not terms:
            return self.tables[0].sum() * 0.0
        return sum(terms) / len(terms)


class _TrilinearGather(torch.autograd.Function):
    """sum_k w[n,k] * table[idx[n,k]] with a scatter-add backward.

    ``F.embedding_bag`` computes the same forward, but its CPU backward sorts all N*8 indices, which
    made it ~10x slower than ``index_add_`` for the 2-feature tables of a hash grid.
    """

    @staticmethod
    def forward(ctx, table: torch.Tensor, idx: torch.Tensor, w: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(idx, w)
        ctx.table_shape = table.shape
        n, k = idx.shape
        gathered = table.index_select(0, idx.reshape(-1)).view(n, k, table.shape[1])
        return torch.einsum("nk,nkf->nf", w, gathered) if table.shape[1] > 4 else (gathered * w.unsqueeze(-1)).sum(1)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, None, None]:  # type: ignore[override]
        idx, w = ctx.saved_tensors
        if not ctx.needs_input_grad[0]:
            return None, None, None
        g = torch.zeros(ctx.table_shape, dtype=grad.dtype, device=grad.device)
        g.index_add_(0, idx.reshape(-1), (w.unsqueeze(-1) * grad.unsqueeze(1)).reshape(-1, grad.shape[1]))
        return g, None, None


class _KernelGrid(torch.autograd.Function):
    """All levels by the compiled CPU kernels: the forward saves only the points, the backward recomputes
    their corners and scatter-adds into the tables (same gradients as :class:`_TrilinearGather`)."""

    @staticmethod
    def forward(ctx, u: torch.Tensor, res: np.ndarray, hashed: np.ndarray, *tables: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        threads = torch.get_num_threads()
        out = _grid_kernel.grid_forward(u.numpy(), [t.detach().numpy() for t in tables], res, hashed, threads)
        ctx.save_for_backward(u)
        ctx.res, ctx.hashed, ctx.threads = res, hashed, threads
        ctx.shapes = [tuple(t.shape) for t in tables]
        return torch.from_numpy(out)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        (u,) = ctx.saved_tensors
        needed = ctx.needs_input_grad[3:]
        grads = _grid_kernel.grid_backward(u.numpy(), grad.float().contiguous().numpy(), ctx.shapes, ctx.res, ctx.hashed, needed, ctx.threads)
        return (None, None, None, *(None if g is None else torch.from_numpy(g) for g in grads))


def _is_pow2(n: int) -> bool:
    return n > 0 and (n & (n - 1)) == 0


def hash_grid(
    aabb: torch.Tensor,
    num_levels: int = 16,
    features_per_level: int = 2,
    log2_table_size: int = 19,
    base_resolution: int = 16,
    max_resolution: int = 2048,
) -> GridEncoding:
    """Instant-NGP multi-resolution hash grid over the cube circumscribing ``aabb`` (normalised coords).

    Level l has ``floor(base * b**l)`` cells per axis with ``b = exp(ln(max/base)/(L-1))`` (the
    Instant-NGP growth factor); coarse levels that fit the table are dense, fine ones hashed.
    """
    aabb = torch.as_tensor(aabb, dtype=torch.float32).reshape(2, 3)
    centre, half = aabb.mean(0), (aabb[1] - aabb[0]).max() / 2
    cube = torch.stack([centre - half, centre + half])
    growth = math.exp((math.log(max_resolution) - math.log(base_resolution)) / max(num_levels - 1, 1))
    res = [[int(math.floor(base_resolution * growth**level))] * 3 for level in range(num_levels)]
    return GridEncoding(res, features_per_level, 2**log2_table_size, cube)


def dense_grid(aabb: torch.Tensor, resolution: int, features: int, levels: int = 1) -> GridEncoding:
    """Dense feature grid(s) over exactly ``aabb``: the longest side has ``resolution`` cells and the
    others keep the box's aspect; ``levels > 1`` adds coarser copies (res/2, res/4, ...) that make the
    grid fill in unseen or weakly observed cells faster (a cheap stand-in for the hash pyramid on CPU).
    """
    aabb = torch.as_tensor(aabb, dtype=torch.float32).reshape(2, 3)
    extent = aabb[1] - aabb[0]
    res = []
    for level in reversed(range(levels)):
        r = max(2, resolution // (2**level))
        res.append([max(1, int(round(float(e / extent.max()) * r))) for e in extent])
    return GridEncoding(res, features, None, aabb)


# ---------------------------------------------------------------------------------------------
# Spherical harmonics (real, orthonormal up to the usual sign convention), degree 1..5 i.e. l = 0..4


def sh_encoding_dim(degree: int) -> int:
    """Number of SH coefficients for ``degree`` bands (degree 4 = l 0..3 = 16, as torch-ngp's ``degree=4``)."""
    return degree * degree


def spherical_harmonics(dirs: torch.Tensor, degree: int) -> torch.Tensor:
    """Real SH basis of unit directions (N,3) with ``degree`` bands (1..5), as in tiny-cuda-nn/torch-ngp.

    Directions are normalised here, so callers may pass the camera-z = -1 ray directions directly.
    """
    if not 1 <= degree <= 5:
        raise ValueError(f"SH degree must be in 1..5, got {degree}")
    d = F.normalize(dirs.float(), dim=-1)
    x, y, z = d.unbind(-1)
    out = [torch.full_like(x, 0.28209479177387814)]
    if degree > 1:
        out += [-0.48860251190291987 * y, 0.48860251190291987 * z, -0.48860251190291987 * x]
    if degree > 2:
        xx, yy, zz, xy, yz, xz = x * x, y * y, z * z, x * y, y * z, x * z
        out += [
            1.0925484305920792 * xy,
            -1.0925484305920792 * yz,
            0.94617469575755997 * zz - 0.31539156525251999,
            -1.0925484305920792 * xz,
            0.54627421529603959 * (xx - yy),
        ]
    if degree > 3:
        out += [
            0.59004358992664352 * y * (-3.0 * xx + yy),
            2.8906114426405538 * xy * z,
            0.45704579946446572 * y * (1.0 - 5.0 * zz),
            0.3731763325901154 * z * (5.0 * zz - 3.0),
            0.45704579946446572 * x * (1.0 - 5.0 * zz),
            1.4453057213202769 * z * (xx - yy),
            0.59004358992664352 * x * (-xx + 3.0 * yy),
        ]
    if degree > 4:
        x4, y4, z4 = xx * xx, yy * yy, zz * zz
        out += [
            2.5033429417967046 * xy * (xx - yy),
            1.7701307697799304 * yz * (-3.0 * xx + yy),
            0.94617469575756008 * xy * (7.0 * zz - 1.0),
            0.66904654355728921 * yz * (3.0 - 7.0 * zz),
            -3.1735664074561294 * zz + 3.7024941420321507 * z4 + 0.31735664074561293,
            0.66904654355728921 * xz * (3.0 - 7.0 * zz),
            0.47308734787878004 * (xx - yy) * (7.0 * zz - 1.0),
            1.7701307697799304 * xz * (-xx + 3.0 * yy),
            -3.7550144126950569 * xx * yy + 0.62583573544917614 * x4 + 0.62583573544917614 * y4,
        ]
    return torch.stack(out, dim=-1)
