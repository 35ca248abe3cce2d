"""CPU kernels of the grid encoding: all levels of every point in one compiled pass (numba), forward and
backward, split over threads.

Why: profiling a ``mini`` training step on 2 cores put ~55% of its time in the encoding's forward (corner
indices and the gather, pure elementwise integer/float work over points x levels x 8 corners) and ~25% in
its backward (``index_add_`` over N x 8 saved indices per level). Here the forward computes a point's
corners, weights and features in registers and writes them straight into the (N, L*F) output; nothing is
saved but the points. The backward recomputes the same corners and weights from the points (cheaper than
storing and re-reading 96 bytes per point and level) and scatter-adds into the tables.

Exactness: the arithmetic is the torch path's, in the same float32 order (cell = min(max(floor(u res), 0),
res - 1), frac clamped to [0, 1], weight of corner i + 2j + 4l = wz[l] (wy[j] wx[i]), the Instant-NGP hash
or the dense vertex index), so indices and weights are identical and the features equal to float32
rounding (the torch path's 8-term sum may be reduced in another order). Threads change nothing: the
forward splits the points (each row is computed alone), the backward splits the levels (each table gets
its points' contributions in point order, as in one thread), so results are bit-identical for every
thread count.

Threads are plain ``threading.Thread``s started per call (about 0.1 ms, against the 10+ ms of a training
step's pass): the compiled loops release the GIL (``nogil``), and unlike numba's own ``parallel=True``
thread pool nothing here breaks in forked worker processes or when trainers run in threads. Used only for
float32 CPU tensors when numba is importable, the field's ``grid_kernel`` is ``auto`` and
``NERFSEG_RADIANCE_KERNEL`` is not ``torch``; CUDA and everything else take the torch path, which the tests
compare this one against.
"""

from __future__ import annotations

import os
import threading
from typing import Callable, Sequence

import numpy as np

try:
    import numba
except ImportError:  # pragma: no cover - depends on the environment
    numba = None

PRIME_Y = 2654435761
PRIME_Z = 805459861
#: fewer points than this per thread are not worth a thread
MIN_POINTS_PER_THREAD = 16384


def enabled() -> bool:
    """numba importable and not switched off with ``NERFSEG_RADIANCE_KERNEL=torch``."""
    return numba is not None and os.environ.get("NERFSEG_RADIANCE_KERNEL", "").lower() != "torch"


if numba is not None:

    @numba.njit(nogil=True, cache=True, boundscheck=False, inline="always")
    def _cell(u: np.ndarray, p: int, rx: int, ry: int, rz: int) -> tuple:
        """Integer cell (ix, iy, iz) and clamped fractions (fx, fy, fz) of point ``p`` at resolution (rx, ry, rz)."""
        one = np.float32(1.0)
        zero = np.float32(0.0)
        px = u[p, 0] * np.float32(rx)
        py = u[p, 1] * np.float32(ry)
        pz = u[p, 2] * np.float32(rz)
        cx = min(max(np.floor(px), zero), np.float32(rx) - one)
        cy = min(max(np.floor(py), zero), np.float32(ry) - one)
        cz = min(max(np.floor(pz), zero), np.float32(rz) - one)
        fx = min(max(px - cx, zero), one)
        fy = min(max(py - cy, zero), one)
        fz = min(max(pz - cz, zero), one)
        return np.int64(cx), np.int64(cy), np.int64(cz), fx, fy, fz

    @numba.njit(nogil=True, cache=True, boundscheck=False, inline="always")
    def _corner(k: int, ix: int, iy: int, iz: int, fx: float, fy: float, fz: float, rx: int, ry: int, hashed: bool, size: int) -> tuple:
        """Table row and trilinear weight of corner k = i + 2j + 4l (offset (i, j, l) along x, y, z)."""
        one = np.float32(1.0)
        i = k & 1
        j = (k >> 1) & 1
        l = k >> 2
        w = (fz if l else one - fz) * ((fy if j else one - fy) * (fx if i else one - fx))
        if hashed:
            h = (ix + i) ^ ((iy + j) * PRIME_Y) ^ ((iz + l) * PRIME_Z)
            row = h & (size - 1) if (size & (size - 1)) == 0 else h % size
        else:
            row = (ix + i) + (rx + 1) * ((iy + j) + (ry + 1) * (iz + l))
        return row, w

    @numba.njit(nogil=True, cache=True, boundscheck=False)
    def _forward_level(u: np.ndarray, table: np.ndarray, rx: int, ry: int, rz: int, is_hashed: bool, out: np.ndarray, col: int, p0: int, p1: int) -> None:
        """One level: out[p, col + f] = sum_k w[p,k] table[row[p,k], f] for points p0 <= p < p1."""
        feats = table.shape[1]
        size = table.shape[0]
        if feats == 2:  # the hash grid's width: both features accumulate in registers (~1.5x faster)
            for p in range(p0, p1):
                ix, iy, iz, fx, fy, fz = _cell(u, p, rx, ry, rz)
                a0 = np.float32(0.0)
                a1 = np.float32(0.0)
                for k in range(8):
                    row, w = _corner(k, ix, iy, iz, fx, fy, fz, rx, ry, is_hashed, size)
                    a0 += w * table[row, 0]
                    a1 += w * table[row, 1]
                out[p, col] = a0
                out[p, col + 1] = a1
            return
        rows = np.empty(8, np.int64)
        weights = np.empty(8, np.float32)
        for p in range(p0, p1):
            ix, iy, iz, fx, fy, fz = _cell(u, p, rx, ry, rz)
            for k in range(8):
                rows[k], weights[k] = _corner(k, ix, iy, iz, fx, fy, fz, rx, ry, is_hashed, size)
            for f in range(feats):
                acc = np.float32(0.0)
                for k in range(8):
                    acc += weights[k] * table[rows[k], f]
                out[p, col + f] = acc

    @numba.njit(nogil=True, cache=True, boundscheck=False)
    def _forward(u: np.ndarray, tables: tuple, res: np.ndarray, hashed: np.ndarray, out: np.ndarray, p0: int, p1: int) -> None:
        """out[p, l*F + f] for every level l and points p0 <= p < p1. Levels outer, points inner: one table
        at a time stays in cache (a 2^17 x 2 hash table is the L2 of one core)."""
        for level in range(len(tables)):
            table = tables[level]
            _forward_level(u, table, res[level, 0], res[level, 1], res[level, 2], hashed[level], out, level * table.shape[1], p0, p1)

    @numba.njit(nogil=True, cache=True, boundscheck=False)
    def _backward_level(u: np.ndarray, grad: np.ndarray, col: int, g: np.ndarray, rx: int, ry: int, rz: int, is_hashed: bool) -> None:
        """One level: g[row[p,k], f] += w[p,k] grad[p, col + f], in (p, k) order per table entry, as
        ``index_add_`` on the flattened (N*8) indices adds them."""
        feats = g.shape[1]
        size = g.shape[0]
        if feats == 2:
            for p in range(u.shape[0]):
                ix, iy, iz, fx, fy, fz = _cell(u, p, rx, ry, rz)
                g0 = grad[p, col]
                g1 = grad[p, col + 1]
                for k in range(8):
                    row, w = _corner(k, ix, iy, iz, fx, fy, fz, rx, ry, is_hashed, size)
                    g[row, 0] += w * g0
                    g[row, 1] += w * g1
            return
        rows = np.empty(8, np.int64)
        weights = np.empty(8, np.float32)
        for p in range(u.shape[0]):
            ix, iy, iz, fx, fy, fz = _cell(u, p, rx, ry, rz)
            for k in range(8):
                rows[k], weights[k] = _corner(k, ix, iy, iz, fx, fy, fz, rx, ry, is_hashed, size)
            for f in range(feats):
                gf = grad[p, col + f]
                for k in range(8):
                    g[rows[k], f] += weights[k] * gf

    @numba.njit(nogil=True, cache=True, boundscheck=False)
    def _backward(u: np.ndarray, grad: np.ndarray, grads: tuple, res: np.ndarray, hashed: np.ndarray, levels: np.ndarray) -> None:
        """grads[l] += the tables' gradients of the given levels (see _backward_level)."""
        for level in levels:
            g = grads[level]
            _backward_level(u, grad, level * g.shape[1], g, res[level, 0], res[level, 1], res[level, 2], hashed[level])


def _run_threads(jobs: Sequence[Callable[[], None]]) -> None:
    """Run the jobs concurrently (the first in this thread) and re-raise the first error."""
    errors: list[BaseException] = []

    def guarded(job: Callable[[], None]) -> None:
        try:
            job()
        except BaseException as exc:  # noqa: BLE001 - handed to the calling thread
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(job,), daemon=True) for job in jobs[1:]]
    for t in threads:
        t.start()
    guarded(jobs[0])
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def _split(n: int, parts: int) -> list[tuple[int, int]]:
    bounds = np.linspace(0, n, parts + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def grid_forward(u: np.ndarray, tables: Sequence[np.ndarray], res: np.ndarray, hashed: np.ndarray, threads: int = 1) -> np.ndarray:
    """Features (N, L*F) float32 of float32 points ``u`` (N, 3) in the unit cube: level l reads the float32
    table ``tables[l]`` (T_l, F) at resolution ``res[l]`` (cells per axis), hashed where ``hashed[l]``."""
    assert numba is not None
    n = u.shape[0]
    feats = tables[0].shape[1]
    out = np.empty((n, len(tables) * feats), dtype=np.float32)
    tabs = tuple(tables)
    parts = max(1, min(int(threads), n // MIN_POINTS_PER_THREAD))
    _run_threads([lambda a=a, b=b: _forward(u, tabs, res, hashed, out, a, b) for a, b in _split(n, parts)] or [lambda: None])
    return out


def grid_backward(
    u: np.ndarray, grad: np.ndarray, shapes: Sequence[tuple[int, int]], res: np.ndarray, hashed: np.ndarray, needed: Sequence[bool], threads: int = 1
) -> list[np.ndarray | None]:
    """Gradients of the tables (``None`` where not ``needed``) given the gradient (N, L*F) of
    :func:`grid_forward`'s output. Threads take whole levels, so no two write the same table."""
    assert numba is not None
    grads = tuple(np.zeros(shape, dtype=np.float32) if need else np.zeros((1, shape[1]), dtype=np.float32) for shape, need in zip(shapes, needed))
    levels = np.flatnonzero(np.asarray(needed, dtype=bool))
    parts = max(1, min(int(threads), len(levels), u.shape[0] // MIN_POINTS_PER_THREAD))
    groups = [levels[a:b] for a, b in _split(len(levels), parts)]  # contiguous levels: coarse and fine ones cost alike
    _run_threads([lambda g=g: _backward(u, grad, grads, res, hashed, g) for g in groups] or [lambda: None])
    return [g if need else None for g, need in zip(grads, needed)]


__all__ = ["enabled", "grid_backward", "grid_forward"]
