"""The numba-jitted loops behind ``_kernel.py`` (imported on first use: importing numba costs ~0.5 s).

Over 600 lines: the PNG row handlers share small inlined helpers, and keeping them in one module keeps them private.
"""

from __future__ import annotations

import numba
import numpy as np

#: return codes of the PNG kernel
OK = 0
BAD_FILTER = -1
#: label of id 0 (layout in ``_kernel.py``)
VOID = 1

_jit = numba.njit(nogil=True, cache=True, boundscheck=False)
#: for the small helpers called per changed pixel: inlined in numba's IR, so that a call does not pass
#: (and reference-count) a dozen arrays (measured: 2x slower kernel when they were plain calls)
_inline = numba.njit(nogil=True, cache=True, boundscheck=False, inline="always")


@_jit
def _find(keys: np.ndarray, value: np.int64) -> np.int64:
    """Position of ``value`` in the sorted ``keys`` (binary search), -1 when absent."""
    lo = 0
    hi = keys.size
    while lo < hi:
        mid = (lo + hi) >> 1
        if keys[mid] < value:
            lo = mid + 1
        else:
            hi = mid
    if lo < keys.size and keys[lo] == value:
        return lo
    return -1


@_jit
def _label(keys: np.ndarray, value: np.int64) -> np.int64:
    """Compact label of one id: 1 for VOID (0), 2 + i for keys[i], 0 (unlisted) otherwise."""
    if value == 0:
        return 1
    pos = _find(keys, value)
    return pos + 2 if pos >= 0 else 0


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
def _unfilter_into(f: int, res: np.ndarray, prev: np.ndarray, out: np.ndarray, stride: int, bpp: int, tmp: np.ndarray) -> bool:
    """Undo PNG filter ``f`` (0, 1, 3 or 4) of one scanline: ``out`` = residuals ``res`` + the predictor
    from ``prev`` (the unfiltered row above, zeros above the first row) and ``out`` itself.
    ``tmp``: scratch of ``stride`` bytes. False for an unknown filter type.

    Speed notes (measured on 480x640 label maps): Sub and Paeth on 3-byte pixels keep the left pixel in
    registers; a Paeth pixel with zero residuals under a flat pair of upper pixels (b == c, so the
    predictor is a) repeats its left neighbour, a test that does not depend on the serial chain and
    runs first as a vectorised pass (~5x faster).
    """
    if f == 0:
        for i in range(stride):
            out[i] = res[i]
        return True
    if f == 1:  # Sub
        if bpp == 3:
            a0 = res[0]
            a1 = res[1]
            a2 = res[2]
            out[0] = a0
            out[1] = a1
            out[2] = a2
            for j in range(3, stride, 3):
                a0 = res[j] + a0
                a1 = res[j + 1] + a1
                a2 = res[j + 2] + a2
                out[j] = a0
                out[j + 1] = a1
                out[j + 2] = a2
        else:
            for i in range(bpp):
                out[i] = res[i]
            for i in range(bpp, stride):
                out[i] = res[i] + out[i - bpp]
        return True
    if f == 2:  # Up (dense; the sparse in-place form is in _up_row)
        for i in range(stride):
            out[i] = res[i] + prev[i]
        return True
    if f == 3:  # Average
        for i in range(bpp):
            out[i] = res[i] + (prev[i] >> 1)
        for i in range(bpp, stride):
            out[i] = res[i] + ((np.int32(out[i - bpp]) + np.int32(prev[i])) >> 1)
        return True
    if f == 4:  # Paeth
        if bpp == 3:
            tmp[0] = res[0] | res[1] | res[2] | prev[0] | prev[1] | prev[2]
            tmp[1] = tmp[0]
            tmp[2] = tmp[0]
            for i in range(3, stride):
                tmp[i] = res[i] | (prev[i] ^ prev[i - 3])
            a0 = np.int32(0)
            a1 = np.int32(0)
            a2 = np.int32(0)
            for j in range(0, stride, 3):
                if (tmp[j] | tmp[j + 1] | tmp[j + 2]) != 0:
                    c0 = np.int32(prev[j - 3]) if j else np.int32(0)
                    c1 = np.int32(prev[j - 2]) if j else np.int32(0)
                    c2 = np.int32(prev[j - 1]) if j else np.int32(0)
                    a0 = (np.int32(res[j]) + _paeth(a0, np.int32(prev[j]), c0)) & 0xFF
                    a1 = (np.int32(res[j + 1]) + _paeth(a1, np.int32(prev[j + 1]), c1)) & 0xFF
                    a2 = (np.int32(res[j + 2]) + _paeth(a2, np.int32(prev[j + 2]), c2)) & 0xFF
                out[j] = a0
                out[j + 1] = a1
                out[j + 2] = a2
        else:
            for i in range(bpp):
                out[i] = res[i] + prev[i]
            for i in range(bpp, stride):
                out[i] = (np.int32(res[i]) + _paeth(np.int32(out[i - bpp]), np.int32(prev[i]), np.int32(prev[i - bpp]))) & 0xFF
        return True
    return False


@_inline
def _pixel_id(row: np.ndarray, i: int) -> np.int64:
    return np.int64(row[i]) | (np.int64(row[i + 1]) << 8) | (np.int64(row[i + 2]) << 16)


@_inline
def _bump(counts: np.ndarray, since: np.ndarray, total: np.ndarray, cell: int, delta: int, r: int) -> None:
    """Change the number of pixels of the current row in joint cell ``cell`` by ``delta`` from row ``r`` on.

    ``counts[cell]`` pixels of every row from ``since[cell]`` to ``r - 1`` were in the cell: they are
    added to ``total`` (the matrix, flat) now, so a cell costs nothing on rows where it does not change.
    """
    total[cell] += counts[cell] * (r - since[cell])
    since[cell] = r
    counts[cell] += delta


@_inline
def _move(gt_side: bool, j: int, new_id: np.int64, lrow: np.ndarray, rrow: np.ndarray, bpp: int, width: int, keys: np.ndarray, cache: np.ndarray, labels: np.ndarray, other: np.ndarray, n_pred: int, counts: np.ndarray, since: np.ndarray, total: np.ndarray, r: int) -> None:
    """Pixel ``j`` of this image's row ``r`` now holds ``new_id``: move it to its new joint cell.

    The label of ``new_id`` is most often that of a neighbour (a boundary moved by a pixel or two):
    ``lrow``/``rrow`` hold the bytes that ``labels`` describe left/right of ``j``; else the last
    lookup (``cache[:2]``: id, label), else a binary search. Moves between the same two cells are
    counted in ``cache[2:5]`` (from cell, to cell, pixels) and applied together (:func:`_flush`, which
    the caller also calls at the end of each row).
    """
    if j > 0 and new_id == _pixel_id(lrow, (j - 1) * bpp):
        lab = labels[j - 1]
    elif j + 1 < width and new_id == _pixel_id(rrow, (j + 1) * bpp):
        lab = labels[j + 1]
    else:
        if new_id != cache[0]:
            cache[0] = new_id
            cache[1] = _label(keys, new_id)
        lab = cache[1]
    old = labels[j]
    if lab == old:
        return
    pending = cache[2:5]
    labels[j] = lab
    o = other[j]
    if gt_side:
        from_cell = old * n_pred + o
        to_cell = lab * n_pred + o
    else:
        from_cell = o * n_pred + old
        to_cell = o * n_pred + lab
    if from_cell == pending[0] and to_cell == pending[1]:
        pending[2] += 1  # a boundary row moves runs of pixels alike: one pair of bumps per run
    else:
        _flush(pending, counts, since, total, r)
        pending[0] = from_cell
        pending[1] = to_cell
        pending[2] = 1


@_inline
def _flush(pending: np.ndarray, counts: np.ndarray, since: np.ndarray, total: np.ndarray, r: int) -> None:
    """Apply the pending moves (``pending``: from cell, to cell, pixels) of row ``r``."""
    if pending[2] > 0:
        _bump(counts, since, total, pending[0], -pending[2], r)
        _bump(counts, since, total, pending[1], pending[2], r)
        pending[2] = 0


@_inline
def _next_nonzero(raw: np.ndarray, words: np.ndarray, pos: int, end: int) -> int:
    """Index of the first non-zero byte of ``raw[pos:end]``, or ``end``; ``words`` is ``raw`` seen as
    64-bit words, so that the long zero stretches of filtered label maps cost one test per 8 bytes."""
    while pos < end and (pos & 7) != 0:
        if raw[pos] != 0:
            return pos
        pos += 1
    while pos + 32 <= end and (words[pos >> 3] | words[(pos >> 3) + 1] | words[(pos >> 3) + 2] | words[(pos >> 3) + 3]) == 0:
        pos += 32
    while pos + 8 <= end and words[pos >> 3] == 0:
        pos += 8
    while pos < end:
        if raw[pos] != 0:
            return pos
        pos += 1
    return end


@_jit
def _up_row(raw: np.ndarray, words: np.ndarray, off: int, row: np.ndarray, stride: int, bpp: int, gt_side: bool, keys: np.ndarray, cache: np.ndarray, labels: np.ndarray, other: np.ndarray, n_pred: int, counts: np.ndarray, since: np.ndarray, total: np.ndarray, r: int) -> None:
    """The Up-filtered row whose residuals start at ``raw[off]``, in place on ``row`` (the row above):
    only pixels with a non-zero residual change, and label maps are Up-filtered mostly into zeros."""
    end = off + stride
    pos = _next_nonzero(raw, words, off, end)
    while pos < end:
        base = ((pos - off) // bpp) * bpp
        old = _pixel_id(row, base)
        for k in range(base, base + bpp):
            row[k] = row[k] + raw[off + k]
        new = _pixel_id(row, base)
        if new != old:
            _move(gt_side, base // bpp, new, row, row, bpp, stride // bpp, keys, cache, labels, other, n_pred, counts, since, total, r)
        pos = _next_nonzero(raw, words, off + base + bpp, end)


@_jit
def _paeth_row(raw: np.ndarray, words: np.ndarray, off: int, row: np.ndarray, width: int, bpp: int, gt_side: bool, keys: np.ndarray, cache: np.ndarray, labels: np.ndarray, other: np.ndarray, n_pred: int, counts: np.ndarray, since: np.ndarray, total: np.ndarray, r: int, left: np.ndarray) -> None:
    """The Paeth-filtered row whose residuals start at ``raw[off]``, in place on ``row`` (the row above).

    A pixel with zero residuals whose left neighbour did not change does not change either (its left
    and upper-left bytes are equal, so the predictor is the upper byte), so only the stretches that
    start at a non-zero residual and continue while pixels keep changing are unfiltered, serially;
    the rest is skimmed like an Up row. ``left``: scratch of 2 x 4 (new, old bytes of the left pixel).
    """
    stride = width * bpp
    end = off + stride
    pos = _next_nonzero(raw, words, off, end)
    while pos < end:
        j = (pos - off) // bpp
        for k in range(bpp):  # the left pixel did not change: its new and old bytes are equal
            v = np.int32(row[(j - 1) * bpp + k]) if j > 0 else np.int32(0)
            left[k] = v
            left[4 + k] = v
        changed = True
        while j < width:
            base = j * bpp
            nonzero = np.uint8(0)
            for k in range(bpp):
                nonzero |= raw[off + base + k]
            if nonzero == 0 and not changed:
                break
            old = _pixel_id(row, base)
            changed = False
            for k in range(bpp):
                b = np.int32(row[base + k])
                new = (np.int32(raw[off + base + k]) + _paeth(left[k], b, left[4 + k])) & 0xFF
                left[k] = new
                left[4 + k] = b
                if new != b:
                    row[base + k] = new
                    changed = True
            if changed:
                new_id = _pixel_id(row, base)
                if new_id != old:
                    _move(gt_side, j, new_id, row, row, bpp, width, keys, cache, labels, other, n_pred, counts, since, total, r)
            j += 1
        pos = _next_nonzero(raw, words, off + j * bpp, end)


@_jit
def _change_flags(prev: np.ndarray, out: np.ndarray, width: int, bpp: int, flags: np.ndarray) -> int:
    """One flag byte per pixel of a row unfiltered in full (non-zero where its id differs from the
    pixel above; a branch-free loop LLVM vectorises), zero-padded to whole 64-bit words; returns how
    many pixels changed."""
    for j in range(width):
        i = j * bpp
        flags[j] = (out[i] ^ prev[i]) | (out[i + 1] ^ prev[i + 1]) | (out[i + 2] ^ prev[i + 2])
    for j in range(width, ((width + 7) >> 3) << 3):
        flags[j] = 0
    n = 0
    for j in range(width):
        n += flags[j] != 0
    return n


@_jit
def _full_row(prev: np.ndarray, out: np.ndarray, width: int, bpp: int, gt_side: bool, keys: np.ndarray, cache: np.ndarray, labels: np.ndarray, other: np.ndarray, n_pred: int, counts: np.ndarray, since: np.ndarray, total: np.ndarray, r: int, flags: np.ndarray) -> None:
    """Move the pixels whose id differs between ``prev`` and ``out`` (a row unfiltered in full), as
    flagged by :func:`_change_flags`: the flags are read eight at a time as 64-bit words, and only
    non-zero words are looked at byte by byte."""
    n_words = (width + 7) >> 3
    words = flags[: n_words << 3].view(np.uint64)
    for w in range(n_words):
        if words[w] == 0:
            continue
        for j in range(w << 3, min((w << 3) + 8, width)):
            if flags[j] != 0:
                _move(gt_side, j, _pixel_id(out, j * bpp), out, prev, bpp, width, keys, cache, labels, other, n_pred, counts, since, total, r)


@_jit
def _prepare_row(raw: np.ndarray, words: np.ndarray, r: int, stride: int, bpp: int, width: int, rows: np.ndarray, cur: int, flags: np.ndarray, tmp: np.ndarray) -> tuple[int, int]:
    """First look at row ``r`` of one image: (index in ``rows`` of its unfiltered row, estimate of its
    changed pixels); index -1 for an unknown filter type.

    Up and Paeth rows are left filtered (index ``cur``, the row above): their estimate is the number of
    non-zero 64-bit words of residuals (a changed pixel makes one or two; one test per 8 bytes). The
    rarer None, Sub and Average rows are unfiltered in full into the other buffer and compared with
    the row above (``flags``, exact count).
    """
    off = r * (stride + 1)
    f = raw[off]
    if f == 2 or f == 4:
        n = 0
        for w in range((off + 8) >> 3, (off + 1 + stride) >> 3):  # the words wholly inside the residuals
            n += words[w] != 0
        return cur, n
    nxt = 1 - cur
    if not _unfilter_into(f, raw[off + 1 : off + 1 + stride], rows[cur], rows[nxt], stride, bpp, tmp):
        return -1, 0
    if bpp == 3:
        return nxt, _change_flags(rows[cur], rows[nxt], width, 3, flags)
    return nxt, _change_flags(rows[cur], rows[nxt], width, bpp, flags)


@_jit
def _next_row(raw: np.ndarray, words: np.ndarray, r: int, stride: int, bpp: int, width: int, rows: np.ndarray, cur: int, nxt: int, gt_side: bool, keys: np.ndarray, cache: np.ndarray, labels: np.ndarray, other: np.ndarray, n_pred: int, counts: np.ndarray, since: np.ndarray, total: np.ndarray, flags: np.ndarray, left: np.ndarray) -> None:
    """Move the changed pixels of row ``r`` of one image (prepared by :func:`_prepare_row`, which
    returned ``nxt``): Up and Paeth rows sparsely, in place on ``rows[cur]``; a row unfiltered in full
    (``nxt != cur``) by comparison with the row above."""
    off = r * (stride + 1)
    if nxt == cur:
        if raw[off] == 2:
            if bpp == 3:  # constant step: the common case, compiled on its own
                _up_row(raw, words, off + 1, rows[cur], stride, 3, gt_side, keys, cache, labels, other, n_pred, counts, since, total, r)
            else:
                _up_row(raw, words, off + 1, rows[cur], stride, bpp, gt_side, keys, cache, labels, other, n_pred, counts, since, total, r)
        elif bpp == 3:
            _paeth_row(raw, words, off + 1, rows[cur], width, 3, gt_side, keys, cache, labels, other, n_pred, counts, since, total, r, left)
        else:
            _paeth_row(raw, words, off + 1, rows[cur], width, bpp, gt_side, keys, cache, labels, other, n_pred, counts, since, total, r, left)
    elif bpp == 3:
        _full_row(rows[cur], rows[nxt], width, 3, gt_side, keys, cache, labels, other, n_pred, counts, since, total, r, flags)
    else:
        _full_row(rows[cur], rows[nxt], width, bpp, gt_side, keys, cache, labels, other, n_pred, counts, since, total, r, flags)


@_jit
def _relabel_row(prev: np.ndarray, out: np.ndarray, width: int, bpp: int, keys: np.ndarray, cache: np.ndarray, labels: np.ndarray) -> None:
    """Labels of every pixel of ``out`` (``labels`` holds those of ``prev``, the row above): a lookup
    only where the id differs from both its left and its upper neighbour."""
    last_id = np.int64(-1)
    last_lab = np.int64(0)
    for j in range(width):
        v = _pixel_id(out, j * bpp)
        if v == last_id:
            labels[j] = last_lab
            continue
        if v != _pixel_id(prev, j * bpp):
            if v != cache[0]:
                cache[0] = v
                cache[1] = _label(keys, v)
            labels[j] = cache[1]
        last_id = v
        last_lab = labels[j]


@_jit
def _dense_row(raw: np.ndarray, r: int, stride: int, bpp: int, width: int, rows: np.ndarray, cur: int, nxt: int, keys: np.ndarray, cache: np.ndarray, labels: np.ndarray, tmp: np.ndarray) -> int:
    """Unfilter row ``r`` of one image in full (if :func:`_prepare_row` did not) and relabel every
    pixel; returns the index in ``rows`` of the unfiltered row."""
    if nxt == cur:
        nxt = 1 - cur
        off = r * (stride + 1)
        _unfilter_into(raw[off], raw[off + 1 : off + 1 + stride], rows[cur], rows[nxt], stride, bpp, tmp)  # Up or Paeth: known
    if bpp == 3:
        _relabel_row(rows[cur], rows[nxt], width, 3, keys, cache, labels)
    else:
        _relabel_row(rows[cur], rows[nxt], width, bpp, keys, cache, labels)
    return nxt


@_jit
def _joint_runs(gt_labels: np.ndarray, pred_labels: np.ndarray, width: int, n_pred: int, mode: int, counts: np.ndarray, since: np.ndarray, total: np.ndarray, r: int) -> None:
    """For each run of equal joint cells along the current row: ``mode`` 0 adds its length to
    ``total`` (a dense row counted directly), 1 clears the cell's current count into ``total`` (leaving
    row-differential counting before row ``r``), 2 adds its length to the cell's current count from
    row ``r`` on (resuming it; the counts are all zero then)."""
    cell = gt_labels[0] * n_pred + pred_labels[0]
    start = 0
    for j in range(1, width + 1):
        c = gt_labels[j] * n_pred + pred_labels[j] if j < width else -1
        if c == cell:
            continue
        if mode == 0:
            total[cell] += j - start
        elif mode == 1:
            if counts[cell] != 0:
                _bump(counts, since, total, cell, -counts[cell], r)
        else:
            _bump(counts, since, total, cell, j - start, r)
        cell = c
        start = j


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
    dense_limit: int,
) -> int:
    """Unfilter two inflated 8-bit RGB/RGBA PNG streams row by row and add their joint counts to
    ``matrix`` ((n_gt, n_pred) int64, zeros). Returns OK or BAD_FILTER. The streams are not modified.

    Row-differential counting: each image keeps its current row (unfiltered) and the label of each of
    its pixels; a row is handled as the few pixels whose id differs from the pixel above (PNG's
    zero row above the first row is all VOID), each moving one pixel between two cells of the current
    row's joint histogram, and a cell adds its count times the rows it stayed unchanged only when it
    changes (:func:`_bump`). A label map's Up-filtered rows are then read but never unfiltered in full.

    A row pair where either image has more than ``dense_limit`` changed pixels (estimated by
    :func:`_prepare_row`) is counted as runs instead, straight into ``matrix``: moving each pixel
    costs more than a pass over the row there (noisy predictions). Entering such rows clears the
    current counts into ``matrix``; leaving them rebuilds the counts from the last row's runs.
    """
    n_pred = matrix.shape[1]
    total = matrix.reshape(-1)
    counts = np.zeros(total.size, dtype=np.int64)
    since = np.zeros(total.size, dtype=np.int64)
    counts[VOID * n_pred + VOID] = width  # the zero row above the first row: every pixel (VOID, VOID)
    gt_labels = np.full(width, VOID, dtype=np.int64)
    pred_labels = np.full(width, VOID, dtype=np.int64)
    gt_cache = np.array([0, VOID, -1, -1, 0], dtype=np.int64)
    pred_cache = np.array([0, VOID, -1, -1, 0], dtype=np.int64)
    gt_stride = width * gt_bpp
    pred_stride = width * pred_bpp
    gt_rows = np.zeros((2, gt_stride), dtype=np.uint8)
    pred_rows = np.zeros((2, pred_stride), dtype=np.uint8)
    gt_flags = np.empty(((width + 7) >> 3) << 3, dtype=np.uint8)
    pred_flags = np.empty(((width + 7) >> 3) << 3, dtype=np.uint8)
    tmp = np.empty(max(gt_stride, pred_stride), dtype=np.uint8)
    left = np.zeros(8, dtype=np.int32)
    gt_words = gt_raw[: (gt_raw.size >> 3) << 3].view(np.uint64)
    pred_words = pred_raw[: (pred_raw.size >> 3) << 3].view(np.uint64)
    gc = 0
    pc = 0
    dense = False  # whether the counts are cleared (the previous row was counted as runs)
    for r in range(height):
        gn, g_changed = _prepare_row(gt_raw, gt_words, r, gt_stride, gt_bpp, width, gt_rows, gc, gt_flags, tmp)
        if gn < 0:
            return BAD_FILTER
        pn, p_changed = _prepare_row(pred_raw, pred_words, r, pred_stride, pred_bpp, width, pred_rows, pc, pred_flags, tmp)
        if pn < 0:
            return BAD_FILTER
        if g_changed > dense_limit or p_changed > dense_limit:
            if not dense:
                _joint_runs(gt_labels, pred_labels, width, n_pred, 1, counts, since, total, r)
                dense = True
            gc = _dense_row(gt_raw, r, gt_stride, gt_bpp, width, gt_rows, gc, gn, gt_keys, gt_cache, gt_labels, tmp)
            pc = _dense_row(pred_raw, r, pred_stride, pred_bpp, width, pred_rows, pc, pn, pred_keys, pred_cache, pred_labels, tmp)
            _joint_runs(gt_labels, pred_labels, width, n_pred, 0, counts, since, total, r)
            continue
        if dense:
            _joint_runs(gt_labels, pred_labels, width, n_pred, 2, counts, since, total, r)
            dense = False
        _next_row(gt_raw, gt_words, r, gt_stride, gt_bpp, width, gt_rows, gc, gn, True, gt_keys, gt_cache, gt_labels, pred_labels, n_pred, counts, since, total, gt_flags, left)
        _flush(gt_cache[2:5], counts, since, total, r)
        _next_row(pred_raw, pred_words, r, pred_stride, pred_bpp, width, pred_rows, pc, pn, False, pred_keys, pred_cache, pred_labels, gt_labels, n_pred, counts, since, total, pred_flags, left)
        _flush(pred_cache[2:5], counts, since, total, r)
        gc = gn
        pc = pn
    for cell in range(total.size):  # all zero after a dense last row
        total[cell] += counts[cell] * (height - since[cell])
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


@numba.njit(nogil=True, cache=True, boundscheck=False, error_model="numpy")
def _pq_counts(matrix: np.ndarray, cat_ids: np.ndarray, gt_cat: np.ndarray, gt_crowd: np.ndarray, gt_area: np.ndarray, gt_order: np.ndarray, pred_cat: np.ndarray, tp: np.ndarray, fp: np.ndarray, fn: np.ndarray, iou_sum: np.ndarray) -> int:
    """panoptic.pq_match of one frame straight from its joint matrix, the same arithmetic in the same
    order (so the same float64 sums); adds to tp/fp/fn/iou_sum (per category, zeros on entry).
    Returns -1 (nothing added) when a prediction uses an unknown category: the caller's reference
    path then words the error."""
    n_gt = gt_cat.size
    n_pred = pred_cat.size
    pc = np.empty(n_pred, dtype=np.int64)
    for j in range(n_pred):
        pc[j] = _find(cat_ids, pred_cat[j])
        if pc[j] < 0:
            return -1
    gc = np.empty(n_gt, dtype=np.int64)
    for i in range(n_gt):
        gc[i] = _find(cat_ids, gt_cat[i])
    pred_area = np.zeros(n_pred, dtype=np.int64)
    for i in range(matrix.shape[0]):
        for j in range(n_pred):
            pred_area[j] += matrix[i, 2 + j]
    # the crowd region honoured per category: the last crowd segment in JSON order (crowd_rows)
    crowd_row = np.full(cat_ids.size, -1, dtype=np.int64)
    crowd_pos = np.full(cat_ids.size, -1, dtype=np.int64)
    for i in range(n_gt):
        if gt_crowd[i] and gc[i] >= 0 and gt_order[i] > crowd_pos[gc[i]]:
            crowd_pos[gc[i]] = gt_order[i]
            crowd_row[gc[i]] = i
    gt_pred = np.full(n_gt, -1, dtype=np.int64)
    gt_iou = np.zeros(n_gt, dtype=np.float64)
    pred_gt = np.full(n_pred, -1, dtype=np.int64)
    crowd_inter = np.zeros(n_pred, dtype=np.float64)
    for i in range(n_gt):
        if gc[i] < 0:
            continue
        for j in range(n_pred):
            inter = matrix[2 + i, 2 + j]
            if inter == 0:
                continue
            if gc[i] == pc[j] and not gt_crowd[i]:
                union = pred_area[j] + gt_area[i] - inter - matrix[1, 2 + j]
                iou = inter / union
                if iou > 0.5:
                    gt_pred[i] = j
                    gt_iou[i] = iou
                    pred_gt[j] = i
            if crowd_row[pc[j]] == i:
                crowd_inter[j] += inter
    for i in range(n_gt):
        if gc[i] < 0:
            continue
        if gt_pred[i] >= 0:
            tp[gc[i]] += 1
            iou_sum[gc[i]] += gt_iou[i]
        elif not gt_crowd[i]:
            fn[gc[i]] += 1
    for j in range(n_pred):
        if pred_gt[j] >= 0:
            continue
        ignored = matrix[1, 2 + j] + crowd_inter[j]
        frac = ignored / pred_area[j] if pred_area[j] > 0 else 0.0
        if not frac > 0.5:
            fp[pc[j]] += 1
    return 0
