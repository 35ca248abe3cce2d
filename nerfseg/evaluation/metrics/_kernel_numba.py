"""The numba-jitted loops behind ``_kernel.py`` (imported on first use: importing numba costs ~0.5 s)."""

from __future__ import annotations

import numba
import numpy as np

#: return codes of the PNG kernel
OK = 0
BAD_FILTER = -1

_jit = numba.njit(nogil=True, cache=True, boundscheck=False)


@_jit
def _label(keys: np.ndarray, value: np.int64) -> np.int64:
    """Compact label of one id: 1 for VOID (0), 2 + i for keys[i], 0 (unlisted) otherwise."""
    if value == 0:
        return 1
    lo = 0
    hi = keys.size
    while lo < hi:
        mid = (lo + hi) >> 1
        if keys[mid] < value:
            lo = mid + 1
        else:
            hi = mid
    if lo < keys.size and keys[lo] == value:
        return lo + 2
    return 0


@_jit
def _paeth(a: np.int32, b: np.int32, c: np.int32) -> np.int32:
    """The PNG Paeth predictor of one byte from its left (a), upper (b) and upper-left (c) neighbours."""
    pa = abs(b - c)  # |p - a| with p = a + b - c
    pb = abs(a - c)
    pc = abs(a + b - c - c)
    if pa <= pb and pa <= pc:
        return a
    if pb <= pc:
        return b
    return c


@_jit
def _unfilter_row(buf: np.ndarray, start: int, stride: int, bpp: int, first: bool, tmp: np.ndarray) -> bool:
    """Undo the PNG filter of the scanline at ``buf[start]`` (filter byte) in place; the row above
    (already unfiltered) ends one byte before it. ``tmp``: scratch of at least ``stride`` bytes.
    False for an unknown filter type.

    Speed notes (each measured on 480x640 label maps): the row and the row above are taken as
    slices indexed from 0, which lets LLVM vectorise Up (~30x faster than offsets into the whole
    buffer, where numba's negative-index handling blocks it); Sub and Paeth on 3-byte pixels keep
    the left pixel in registers, and a Paeth pixel with a zero residual under a flat pair of upper
    pixels (b == c, so the predictor is a) just repeats its left neighbour (~5x faster with the test
    vectorised ahead of the serial loop).
    """
    f = buf[start]
    row = buf[start + 1 : start + 1 + stride]
    if f == 0:
        return True
    if f == 1 or (f == 4 and first):  # Sub; Paeth with a zero row above predicts from the left
        if bpp == 3:
            a0 = row[0]
            a1 = row[1]
            a2 = row[2]
            for j in range(3, stride, 3):
                a0 = row[j] + a0
                a1 = row[j + 1] + a1
                a2 = row[j + 2] + a2
                row[j] = a0
                row[j + 1] = a1
                row[j + 2] = a2
        else:
            for i in range(bpp, stride):
                row[i] = row[i] + row[i - bpp]
        return True
    if f == 3 and first:  # Average with a zero row above
        for i in range(bpp, stride):
            row[i] = row[i] + (row[i - bpp] >> 1)
        return True
    if first:
        return f == 2  # Up with a zero row above: nothing to add
    prev = buf[start - stride : start]
    if f == 2:  # Up (vectorised)
        for i in range(stride):
            row[i] = row[i] + prev[i]
        return True
    if f == 3:  # Average
        for i in range(bpp):
            row[i] = row[i] + (prev[i] >> 1)
        for i in range(bpp, stride):
            row[i] = row[i] + ((np.int32(row[i - bpp]) + np.int32(prev[i])) >> 1)
        return True
    if f == 4:  # Paeth
        if bpp == 3:
            # a pixel whose residual is zero and whose upper neighbours are equal (b == c) has
            # predictor a: it repeats its left neighbour. That test does not depend on the
            # serial chain, so it runs first as a vectorised pass over the row's bytes.
            tmp[0] = row[0] | row[1] | row[2] | prev[0] | prev[1] | prev[2]
            for i in range(3, stride):
                tmp[i] = row[i] | (prev[i] ^ prev[i - 3])
            a0 = np.int32(0)
            a1 = np.int32(0)
            a2 = np.int32(0)
            for j in range(0, stride, 3):
                if (tmp[j] | tmp[j + 1] | tmp[j + 2]) != 0:
                    c0 = np.int32(prev[j - 3]) if j else np.int32(0)
                    c1 = np.int32(prev[j - 2]) if j else np.int32(0)
                    c2 = np.int32(prev[j - 1]) if j else np.int32(0)
                    a0 = (np.int32(row[j]) + _paeth(a0, np.int32(prev[j]), c0)) & 0xFF
                    a1 = (np.int32(row[j + 1]) + _paeth(a1, np.int32(prev[j + 1]), c1)) & 0xFF
                    a2 = (np.int32(row[j + 2]) + _paeth(a2, np.int32(prev[j + 2]), c2)) & 0xFF
                row[j] = a0
                row[j + 1] = a1
                row[j + 2] = a2
        else:
            for i in range(bpp):
                row[i] = row[i] + prev[i]
            for i in range(bpp, stride):
                row[i] = (np.int32(row[i]) + _paeth(np.int32(row[i - bpp]), np.int32(prev[i]), np.int32(prev[i - bpp]))) & 0xFF
        return True
    return False


@_jit
def _pixel_id(row: np.ndarray, i: int) -> np.int64:
    return np.int64(row[i]) | (np.int64(row[i + 1]) << 8) | (np.int64(row[i + 2]) << 16)


@_jit
def _scan_row(grow: np.ndarray, gbpp: int, prow: np.ndarray, pbpp: int, width: int, gt_keys: np.ndarray, pred_keys: np.ndarray, matrix: np.ndarray, state: np.ndarray, flags: np.ndarray) -> None:
    """Add one row pair's runs of equal (GT id, prediction id) to ``matrix``; ``state`` carries the
    open run across rows: (current GT id, current prediction id, their labels, start of the run as
    a pixel index within this row, counted negative when it began on an earlier row).

    Label maps change colour at a few dozen pixels per row, so the row is first reduced to one flag
    byte per pixel (non-zero where the pixel differs from its left neighbour in either map; a
    branch-free loop that LLVM vectorises), and the flags are then read eight at a time as 64-bit
    words: only the few non-zero words are looked at byte by byte.
    """
    n_words = (width + 7) >> 3
    for j in range(1, width):
        gi = j * gbpp
        pi = j * pbpp
        flags[j] = (
            (grow[gi] ^ grow[gi - gbpp]) | (grow[gi + 1] ^ grow[gi + 1 - gbpp]) | (grow[gi + 2] ^ grow[gi + 2 - gbpp])
            | (prow[pi] ^ prow[pi - pbpp]) | (prow[pi + 1] ^ prow[pi + 1 - pbpp]) | (prow[pi + 2] ^ prow[pi + 2 - pbpp])
        )
    for j in range(width, n_words << 3):
        flags[j] = 0
    # the first pixel continues the open run only if both its ids equal the run's
    g0 = _pixel_id(grow, 0)
    p0 = _pixel_id(prow, 0)
    flags[0] = 0 if (g0 == state[0] and p0 == state[1]) else 1
    cur_g = state[0]
    cur_p = state[1]
    lg = state[2]
    lp = state[3]
    run_start = state[4] - width  # the open run's start, relative to this row
    words = flags[: n_words << 3].view(np.uint64)
    for w in range(n_words):
        if words[w] == 0:
            continue
        for j in range(w << 3, min((w << 3) + 8, width)):
            if flags[j] == 0:
                continue
            if j > run_start and cur_g >= 0:
                matrix[lg, lp] += j - run_start
            g = _pixel_id(grow, j * gbpp)
            p = _pixel_id(prow, j * pbpp)
            if g != cur_g:
                cur_g = g
                lg = _label(gt_keys, g)
            if p != cur_p:
                cur_p = p
                lp = _label(pred_keys, p)
            run_start = j
    state[0] = cur_g
    state[1] = cur_p
    state[2] = lg
    state[3] = lp
    state[4] = run_start


@_jit
def _png_joint(
    gt_raw: np.ndarray,
    gt_bpp: int,
    pred_raw: np.ndarray,
    pred_bpp: int,
    height: int,
    width: int,
    gt_keys: np.ndarray,
    pred_keys: np.ndarray,
    matrix: np.ndarray,
) -> int:
    """Unfilter two inflated 8-bit RGB/RGBA PNG streams row by row and add their joint counts to
    ``matrix`` ((n_gt, n_pred) int64). The streams are modified in place. Returns OK or BAD_FILTER.

    Each row pair is scanned right after it is unfiltered, while it is still in L1 cache.
    """
    gt_stride = width * gt_bpp
    pred_stride = width * pred_bpp
    state = np.zeros(5, dtype=np.int64)
    state[0] = -1  # no open run yet
    state[1] = -1
    flags = np.empty(((width + 7) >> 3) << 3, dtype=np.uint8)
    tmp = np.empty(max(gt_stride, pred_stride), dtype=np.uint8)
    for r in range(height):
        go = r * (gt_stride + 1)
        po = r * (pred_stride + 1)
        if not _unfilter_row(gt_raw, go, gt_stride, gt_bpp, r == 0, tmp):
            return BAD_FILTER
        if not _unfilter_row(pred_raw, po, pred_stride, pred_bpp, r == 0, tmp):
            return BAD_FILTER
        grow = gt_raw[go + 1 : go + 1 + gt_stride]
        prow = pred_raw[po + 1 : po + 1 + pred_stride]
        if gt_bpp == 3 and pred_bpp == 3:  # constant steps: the common case, compiled on its own
            _scan_row(grow, 3, prow, 3, width, gt_keys, pred_keys, matrix, state, flags)
        else:
            _scan_row(grow, gt_bpp, prow, pred_bpp, width, gt_keys, pred_keys, matrix, state, flags)
    if state[0] >= 0:
        matrix[state[2], state[3]] += width - state[4]  # the run still open at the last pixel
    return OK


@_jit
def _rgb_joint(gt_bytes: np.ndarray, pred_bytes: np.ndarray, n: int, gt_keys: np.ndarray, pred_keys: np.ndarray, matrix: np.ndarray) -> None:
    """Joint counts of two flat RGB byte streams of ``n`` pixels (ids R + 256 G + 65536 B)."""
    cur_g = np.int64(-1)
    cur_p = np.int64(-1)
    lg = np.int64(0)
    lp = np.int64(0)
    run = np.int64(0)
    for k in range(n):
        i = 3 * k
        g = np.int64(gt_bytes[i]) | (np.int64(gt_bytes[i + 1]) << 8) | (np.int64(gt_bytes[i + 2]) << 16)
        p = np.int64(pred_bytes[i]) | (np.int64(pred_bytes[i + 1]) << 8) | (np.int64(pred_bytes[i + 2]) << 16)
        if g == cur_g and p == cur_p:
            run += 1
        else:
            if run:
                matrix[lg, lp] += run
            if g != cur_g:
                cur_g = g
                lg = _label(gt_keys, g)
            if p != cur_p:
                cur_p = p
                lp = _label(pred_keys, p)
            run = 1
    if run:
        matrix[lg, lp] += run


@_jit
def _ids_joint(gt_ids: np.ndarray, pred_ids: np.ndarray, gt_keys: np.ndarray, pred_keys: np.ndarray, matrix: np.ndarray) -> None:
    """Joint counts of two flat non-negative integer id maps of the same length."""
    cur_g = np.int64(-1)
    cur_p = np.int64(-1)
    lg = np.int64(0)
    lp = np.int64(0)
    run = np.int64(0)
    for k in range(gt_ids.size):
        g = np.int64(gt_ids[k])
        p = np.int64(pred_ids[k])
        if g == cur_g and p == cur_p:
            run += 1
        else:
            if run:
                matrix[lg, lp] += run
            if g != cur_g:
                cur_g = g
                lg = _label(gt_keys, g)
            if p != cur_p:
                cur_p = p
                lp = _label(pred_keys, p)
            run = 1
    if run:
        matrix[lg, lp] += run
