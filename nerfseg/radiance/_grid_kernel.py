"""CPU kernel of one grid-encoding level: corner indices, trilinear weights and the gathered features of
every point in one compiled pass (numba), instead of ~20 full-size torch ops per level.

Why: profiling a ``mini`` training step on 2 cores put ~55% of its time in the encoding's forward
(``GridEncoding._level_indices`` and the gather), which is pure elementwise integer/float work over
(points x 8 corners): a single loop per point keeps it in registers. The arithmetic is the torch path's,
in the same float32 order (cell = min(max(floor(u res), 0), res - 1), frac clamped to [0, 1], weight of
corner i + 2j + 4l = wz[l] (wy[j] wx[i]), the Instant-NGP hash or the dense vertex index), so indices and
weights are identical and the features equal to float32 rounding (the torch path's 8-term sum may be
reduced in another order). The backward stays torch's ``index_add_`` on the saved indices and weights.

Used only for float32 CPU tensors when numba is importable, the field's ``grid_kernel`` is ``auto`` and
``NERFSEG_RADIANCE_KERNEL`` is not ``torch``; CUDA and everything else take the torch path, which the tests
compare this one against. The loop is serial (``nogil``): measured on the shared 2-core machine it was as
fast as numba's ``parallel=True`` (whose thread pool is neither fork- nor thread-reentrancy-safe in the
default layer, and the trainers run in process pools and threads).
"""

from __future__ import annotations

import os

import numpy as np

try:
    import numba
except ImportError:  # pragma: no cover - depends on the environment
    numba = None

PRIME_Y = 2654435761
PRIME_Z = 805459861


def enabled() -> bool:
    """numba importable and not switched off with ``NERFSEG_RADIANCE_KERNEL=torch``."""
    return numba is not None and os.environ.get("NERFSEG_RADIANCE_KERNEL", "").lower() != "torch"


if numba is not None:

    @numba.njit(nogil=True, cache=True, boundscheck=False)
    def _level(
        u: np.ndarray,
        table: np.ndarray,
        rx: int,
        ry: int,
        rz: int,
        hashed: bool,
        size: int,
        out: np.ndarray,
        idx_out: np.ndarray,
        w_out: np.ndarray,
        keep: bool,
    ) -> None:
        """out[n] = sum_k w[n,k] table[idx[n,k]]; with ``keep``, idx/w are stored for the backward."""
        n = u.shape[0]
        feats = table.shape[1]
        one = np.float32(1.0)
        zero = np.float32(0.0)
        fres_x = np.float32(rx)
        fres_y = np.float32(ry)
        fres_z = np.float32(rz)
        mask = size - 1
        pow2 = size > 0 and (size & (size - 1)) == 0
        for p in range(n):
            px = u[p, 0] * fres_x
            py = u[p, 1] * fres_y
            pz = u[p, 2] * fres_z
            cx = min(max(np.floor(px), zero), fres_x - one)
            cy = min(max(np.floor(py), zero), fres_y - one)
            cz = min(max(np.floor(pz), zero), fres_z - one)
            fx = min(max(px - cx, zero), one)
            fy = min(max(py - cy, zero), one)
            fz = min(max(pz - cz, zero), one)
            ix = np.int64(cx)
            iy = np.int64(cy)
            iz = np.int64(cz)
            wx0 = one - fx
            wy0 = one - fy
            wz0 = one - fz
            for f in range(feats):
                out[p, f] = zero
            for k in range(8):
                i = k & 1
                j = (k >> 1) & 1
                l = k >> 2
                wxv = fx if i else wx0
                wyv = fy if j else wy0
                wzv = fz if l else wz0
                w = wzv * (wyv * wxv)
                if hashed:
                    h = (ix + i) ^ ((iy + j) * PRIME_Y) ^ ((iz + l) * PRIME_Z)
                    idx = h & mask if pow2 else h % size
                else:
                    idx = (ix + i) + (rx + 1) * ((iy + j) + (ry + 1) * (iz + l))
                if keep:
                    idx_out[p, k] = idx
                    w_out[p, k] = w
                for f in range(feats):
                    out[p, f] += w * table[idx, f]


def level_forward(u: np.ndarray, table: np.ndarray, res: tuple[int, int, int], hashed: bool, keep: bool) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """(features (N, F) float32, indices (N, 8) int64 or None, weights (N, 8) float32 or None) of one level
    for float32 points ``u`` (N, 3) in the unit cube and a float32 table (T, F)."""
    assert numba is not None
    n = u.shape[0]
    out = np.empty((n, table.shape[1]), dtype=np.float32)
    idx = np.empty((n, 8), dtype=np.int64) if keep else np.empty((0, 8), dtype=np.int64)
    w = np.empty((n, 8), dtype=np.float32) if keep else np.empty((0, 8), dtype=np.float32)
    _level(u, table, int(res[0]), int(res[1]), int(res[2]), bool(hashed), int(table.shape[0]), out, idx, w, keep)
    return out, (idx if keep else None), (w if keep else None)


__all__ = ["enabled", "level_forward"]
