"""Compiled pixel kernels of the evaluator: PNG unfiltering fused with joint (GT id x prediction id) counting.

Why a compiled kernel: the numpy path (``frame.joint_counts_rgb``) needs about ten full passes over a
frame's bytes (change masks, nonzero, gathers, bincount) after libspng has already made two (inflate copy,
unfilter). Here one loop per frame walks the two inflated PNG streams row by row and counts
*row-differentially*: each image keeps its current row and the label of each pixel, and a row is
handled as the few pixels whose id differs from the pixel above, each moving one pixel between two
cells of the current row's joint histogram (a cell adds its count times the rows it stayed unchanged
only when it changes). Label maps are filtered mostly into zeros, so Up rows (only pixels with a
non-zero residual change) and Paeth rows (a pixel with zero residuals whose left neighbour did not
change does not change) are skimmed 8 bytes at a time and never unfiltered in full; None, Sub and
Average rows are unfiltered in full and compared with the row above. Rows where many pixels change
(noisy predictions) are counted as runs of equal (GT, prediction) labels instead, as moving each
pixel would cost more there; the counts are cleared on entering such rows and rebuilt on leaving. Labels of changed pixels come
from a neighbour or the last lookup, else a binary search over the frame's sorted segment ids.
:func:`pq_counts` then does the per-frame PQ matching from the matrix, as ``panoptic.frame_pq_counts``.

Why numba: it ships binary wheels (with llvmlite) for Linux, macOS and Windows on every CPython the
project supports, so installing needs no compiler, unlike a C extension; a Rust extension would need
wheels built and published per platform by this project. The kernels are compiled on first use
(about a second each) and cached on disk (``cache=True``), and ``nogil=True`` lets threads run them in
parallel. When numba is missing, or ``NERFSEG_EVAL_KERNEL=numpy``, every caller uses the numpy
reference path instead: same matrices (the tests compare both on every fixture), only slower.

Label layout (as ``frame.py``): 0 = unlisted id (in the map, not in the JSON), 1 = VOID (id 0), 2 + i =
``keys[i]`` (keys sorted ascending, unique, > 0).
"""

from __future__ import annotations

import os
import threading

import numpy as np

import importlib.util
from types import ModuleType

_impl_module: ModuleType | None = None


def available() -> bool:
    """True when numba is importable (whether or not the kernel is selected)."""
    return importlib.util.find_spec("numba") is not None


def _impl() -> ModuleType:
    """The jitted loops, imported on first use (numba's import is not paid by code that never counts)."""
    global _impl_module
    if _impl_module is None:
        from nerfseg.evaluation.metrics import _kernel_numba

        _impl_module = _kernel_numba
    return _impl_module


def enabled() -> bool:
    """True when the compiled kernels run: numba importable and ``NERFSEG_EVAL_KERNEL`` is not ``numpy``.

    ``NERFSEG_EVAL_KERNEL=numpy`` selects the pure-numpy reference path (identical results, slower).
    """
    return os.environ.get("NERFSEG_EVAL_KERNEL", "").lower() != "numpy" and available()


def kernel_name() -> str:
    """``"numba"`` or ``"numpy"``: which joint-count path runs (for benchmarks and reports)."""
    return "numba" if enabled() else "numpy"


def _matrix(gt_keys: np.ndarray, pred_keys: np.ndarray) -> np.ndarray:
    return np.zeros((gt_keys.size + 2, pred_keys.size + 2), dtype=np.int64)


def _word_aligned(raw: np.ndarray) -> np.ndarray:
    """``raw`` (1-D uint8), copied if its start is not 8-byte aligned: the kernel skims it as 64-bit words."""
    raw = np.ascontiguousarray(raw, dtype=np.uint8)
    return raw if raw.ctypes.data % 8 == 0 else raw.copy()


def _keys(keys: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(keys, dtype=np.int64)


#: a row pair with more changed pixels than width / DENSE_WIDTH_DIVISOR in either image is counted as
#: runs rather than pixel moves (measured with ``benchmarks/eval_kernel_rows.py``)
DENSE_WIDTH_DIVISOR = 16


def png_joint_counts(gt_raw: np.ndarray, gt_bpp: int, pred_raw: np.ndarray, pred_bpp: int, height: int, width: int, gt_keys: np.ndarray, pred_keys: np.ndarray, dense_limit: int | None = None) -> np.ndarray | None:
    """Joint count matrix of two inflated (still filtered) PNG scanline streams, or None when a scanline
    has an unknown filter type (the caller then lets libspng/Pillow decode and word the error).

    ``*_raw`` are 1-D uint8 arrays of at least ``height * (1 + width * bpp)`` bytes (read, not modified).
    ``dense_limit``: changed pixels per row above which a row is counted as runs (default
    ``width // DENSE_WIDTH_DIVISOR``; -1: every row, ``width``: none); the result does not depend on it.
    """
    k = _impl()
    gt_keys, pred_keys = _keys(gt_keys), _keys(pred_keys)
    gt_raw, pred_raw = _word_aligned(gt_raw), _word_aligned(pred_raw)
    matrix = _matrix(gt_keys, pred_keys)
    limit = int(width) // DENSE_WIDTH_DIVISOR if dense_limit is None else int(dense_limit)
    status = k._png_joint(gt_raw, int(gt_bpp), pred_raw, int(pred_bpp), int(height), int(width), gt_keys, pred_keys, matrix, limit)
    return matrix if status == k.OK else None


def rgb_joint_counts(gt_bytes: np.ndarray, gt_keys: np.ndarray, pred_bytes: np.ndarray, pred_keys: np.ndarray, n: int) -> np.ndarray:
    """Joint count matrix of two flat uint8 RGB byte streams of ``n`` pixels."""
    gt_keys, pred_keys = _keys(gt_keys), _keys(pred_keys)
    matrix = _matrix(gt_keys, pred_keys)
    _impl()._rgb_joint(gt_bytes, pred_bytes, int(n), gt_keys, pred_keys, matrix)
    return matrix


#: id dtypes compiled as they are; others are converted to int64 first (one compiled variant each)
_ID_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.uint32), np.dtype(np.int32), np.dtype(np.int64), np.dtype(np.uint64))


def ids_joint_counts(gt_flat: np.ndarray, gt_keys: np.ndarray, pred_flat: np.ndarray, pred_keys: np.ndarray) -> np.ndarray:
    """Joint count matrix of two flat non-negative integer id maps (any integer dtype)."""
    gt_keys, pred_keys = _keys(gt_keys), _keys(pred_keys)
    if gt_flat.dtype not in _ID_DTYPES or gt_flat.dtype != pred_flat.dtype:
        gt_flat, pred_flat = gt_flat.astype(np.int64), pred_flat.astype(np.int64)
    matrix = _matrix(gt_keys, pred_keys)
    _impl()._ids_joint(np.ascontiguousarray(gt_flat), np.ascontiguousarray(pred_flat), gt_keys, pred_keys, matrix)
    return matrix


def pq_counts(matrix: np.ndarray, cat_ids: np.ndarray, gt_cat: np.ndarray, gt_crowd: np.ndarray, gt_area: np.ndarray, gt_order: np.ndarray, pred_cat: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """One frame's per-category (tp, fp, fn, iou_sum), as ``panoptic.frame_pq_counts`` computes them.

    Arguments are a ``FrameStats``' fields (category *ids*) and the sorted category ids of the
    ``CategoryTable``. None when a prediction uses an unknown category (the reference path words
    the error). Compiled because the ~40 small numpy calls of the reference cost ~0.25 ms a frame,
    holding the GIL that the pool's threads share.
    """
    c = cat_ids.size
    tp, fp, fn = (np.zeros(c, dtype=np.int64) for _ in range(3))
    iou_sum = np.zeros(c, dtype=np.float64)
    status = _impl()._pq_counts(
        matrix, _keys(cat_ids), _keys(gt_cat), np.ascontiguousarray(gt_crowd, dtype=np.bool_), np.ascontiguousarray(gt_area, dtype=np.float64),
        _keys(gt_order), _keys(pred_cat), tp, fp, fn, iou_sum,
    )  # fmt: skip
    return None if status < 0 else (tp, fp, fn, iou_sum)


_warm_lock = threading.Lock()
_warmed = False


def warm() -> None:
    """Compile (or load from numba's cache) the PNG and RGB kernels now.

    ``pq_compute`` calls this before it forks its workers, so that they inherit the compiled code
    instead of each compiling it again.
    """
    global _warmed
    if not enabled() or _warmed:
        return
    with _warm_lock:
        if _warmed:
            return
        keys = np.array([1], dtype=np.int64)
        raw = np.zeros(2 * (1 + 2 * 3), dtype=np.uint8)
        png_joint_counts(raw, 3, raw.copy(), 3, 2, 2, keys, keys)
        rgb_joint_counts(np.zeros(6, np.uint8), keys, np.zeros(6, np.uint8), keys, 2)
        pq_counts(np.zeros((3, 3), np.int64), keys, keys, np.zeros(1, bool), np.ones(1), np.zeros(1, np.int64), keys)
        _warmed = True


__all__ = ["available", "enabled", "ids_joint_counts", "kernel_name", "png_joint_counts", "pq_counts", "rgb_joint_counts", "warm"]
