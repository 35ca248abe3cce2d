"""One pass over a frame's pixels: the joint (GT segment x predicted segment) pixel-count matrix.

Every 2D metric of nerfseg (PQ, PQ^scene, the confusion matrix behind mIoU, the binary metric and the
compatibility protocols) is a function of this small matrix plus the segments' categories, so a protocol
builds it once per frame and feeds it to all its accumulators (see :class:`FrameStats`). The pixel pass is
the only O(H*W) work, kept to a few vectorised sweeps: label maps are piecewise constant, so the frame is
cut into runs of constant (gt id, pred id) along raster order (two comparisons and a ``flatnonzero``); the
run values are mapped to compact labels (a small lookup table, or a binary search for large ids) and
``np.bincount`` sums the run lengths per packed ``gt_label * n_pred + pred_label``. Fragmented maps (more
than one run per four pixels) fall back to labelling every pixel.

Label layout on both axes: 0 = *unlisted* (an id in the map without a segment entry), 1 = VOID (id 0),
2.. = the listed segments in ascending id order.

The pixel-sized temporaries (decoded bytes, id maps, change masks) live in per-thread scratch buffers that
are reused from frame to frame: allocating and freeing ~1 MiB blocks per frame makes glibc return them to
the kernel and fault them in again, which cost as much system time as the decode itself.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from nerfseg.evaluation.metrics import _fastpng, _kernel
from nerfseg.errors import InputError
from nerfseg.io import read_png

try:  # optional accelerator: libspng decodes PNGs ~3x faster than Pillow
    import pyspng as _pyspng
except ImportError:  # pragma: no cover - depends on the environment
    _pyspng = None

UNLISTED = 0
VOID_LABEL = 1
FIRST_SEGMENT = 2
#: ids below this use a lookup table; above, a binary search over the sorted keys (a table over 2^24
#: random COCO ids costs ~1 ms just to allocate and fault in, more than searching the ~10^4 run values)
_LUT_LIMIT = 1 << 17


def _where(source: str | Path | None) -> Path | None:
    return None if source is None else Path(source)


class _Scratch(threading.local):
    """Per-thread reusable pixel-sized buffers, by name (grown on demand, never shrunk: a thread keeps a
    few buffers of its largest frame's size, ~1 MiB each at 640x480)."""

    def __init__(self) -> None:
        self.buffers: dict[str, np.ndarray] = {}


_SCRATCH = _Scratch()


def _scratch(name: str, size: int, dtype: type | np.dtype) -> np.ndarray:
    """A 1-D array of ``size`` elements of ``dtype`` backed by this thread's buffer ``name``.

    The content is garbage and is overwritten by the next request for the same name in the same thread,
    so results handed out of this module never alias a scratch buffer unless the docstring says so.
    """
    dtype = np.dtype(dtype)
    nbytes = size * dtype.itemsize
    buf = _SCRATCH.buffers.get(name)
    if buf is None or buf.size < nbytes:
        buf = np.empty(max(nbytes, 64), dtype=np.uint8)
        _SCRATCH.buffers[name] = buf
    return buf[:nbytes].view(dtype)


def label_image(ids: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Map every pixel id to its compact label (0 unlisted, 1 void, 2+i for ``keys[i]``), flattened.

    ``keys`` must be sorted, unique and > 0. The result is uint8 when there are fewer than 254 segments.
    """
    flat = ids.reshape(-1)
    k = int(keys.size)
    dtype = np.uint8 if k + FIRST_SEGMENT <= 256 else (np.uint16 if k + FIRST_SEGMENT <= 65536 else np.int32)
    top = int(flat.max()) if flat.size else 0
    if k:
        top = max(top, int(keys[-1]))
    if top < _LUT_LIMIT:
        lut = np.zeros(top + 1, dtype=dtype)  # small: tens of KiB
        lut[0] = VOID_LABEL
        lut[keys] = np.arange(FIRST_SEGMENT, k + FIRST_SEGMENT, dtype=dtype)
        return np.take(lut, flat)
    # binary search in [0, keys...]: position 0 is VOID, i+1 is keys[i], a miss is unlisted
    table = np.empty(k + 1, dtype=np.int64)
    table[0] = 0
    table[1:] = keys
    vals = flat.astype(np.int64, copy=False)  # uint64 vs int64 would compare as float64
    pos = np.searchsorted(table, vals)
    np.minimum(pos, k, out=pos)
    hit = table[pos] == vals
    pos += VOID_LABEL
    pos *= hit
    return pos.astype(dtype, copy=False)


def joint_histogram(
    gt_labels: np.ndarray, n_gt: int, pred_labels: np.ndarray, n_pred: int, weights: np.ndarray | None = None
) -> np.ndarray:
    """(n_gt, n_pred) int64 matrix of pixel counts for every (gt label, pred label) pair."""
    joint = gt_labels.astype(np.intp)
    joint *= n_pred
    joint += pred_labels
    counts = np.bincount(joint, weights=weights, minlength=n_gt * n_pred)
    if weights is not None:
        counts = np.rint(counts).astype(np.int64)  # float sums of integer run lengths: exact below 2^53
    return counts.reshape(n_gt, n_pred)


def _runs(gt_flat: np.ndarray, pred_flat: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Start index and length of each run of pixels whose (gt id, pred id) pair is constant, in raster
    order; ``None`` when the maps are too fragmented for runs to pay off.

    Label maps are piecewise constant, so a 640x480 frame has ~10^4 runs for 3*10^5 pixels: labelling and
    counting runs instead of pixels makes the pixel pass ~3x cheaper (two comparisons and a nonzero). The
    two change masks are scratch buffers (no page faults per frame).
    """
    n = gt_flat.size
    if n < 2:
        return None
    change = _scratch("change", n - 1, np.bool_)
    other = _scratch("change2", n - 1, np.bool_)
    np.not_equal(gt_flat[1:], gt_flat[:-1], out=change)
    np.not_equal(pred_flat[1:], pred_flat[:-1], out=other)
    np.logical_or(change, other, out=change)
    if np.count_nonzero(change) > n // 4:
        return None
    cut = np.flatnonzero(change)
    starts = np.empty(cut.size + 1, dtype=np.intp)
    starts[0] = 0
    np.add(cut, 1, out=starts[1:])
    lengths = np.empty_like(starts)
    np.subtract(starts[1:], starts[:-1], out=lengths[:-1])
    lengths[-1] = n - starts[-1]
    return starts, lengths


def joint_counts(gt_ids: np.ndarray, gt_keys: np.ndarray, pred_ids: np.ndarray, pred_keys: np.ndarray) -> np.ndarray:
    """Joint pixel-count matrix of two id maps (layout in the module docstring); runs when they pay off.

    The compiled kernel (``_kernel.py``) computes it when enabled, else the numpy reference below.
    """
    gt_flat = gt_ids.reshape(-1)
    pred_flat = pred_ids.reshape(-1)
    if _kernel.enabled():
        return _kernel.ids_joint_counts(gt_flat, gt_keys, pred_flat, pred_keys)
    return joint_counts_numpy(gt_flat, gt_keys, pred_flat, pred_keys)


def joint_counts_numpy(gt_ids: np.ndarray, gt_keys: np.ndarray, pred_ids: np.ndarray, pred_keys: np.ndarray) -> np.ndarray:
    """:func:`joint_counts` by numpy only: the reference the compiled kernel is tested against."""
    gt_flat = gt_ids.reshape(-1)
    pred_flat = pred_ids.reshape(-1)
    n_gt = gt_keys.size + FIRST_SEGMENT
    n_pred = pred_keys.size + FIRST_SEGMENT
    runs = _runs(gt_flat, pred_flat)
    if runs is None:
        return joint_histogram(label_image(gt_flat, gt_keys), n_gt, label_image(pred_flat, pred_keys), n_pred)
    starts, lengths = runs
    return joint_histogram(label_image(gt_flat[starts], gt_keys), n_gt, label_image(pred_flat[starts], pred_keys), n_pred, weights=lengths)


def _rgb_run_starts(gt_bytes: np.ndarray, pred_bytes: np.ndarray, n: int) -> np.ndarray | None:
    """Start pixel of each run of constant (gt colour, pred colour) over two flat RGB byte streams of ``n``
    pixels, in raster order; ``None`` when the maps are too fragmented for runs to pay off.

    Why bytes: comparing each byte with the one 3 bytes on (the same channel of the next pixel) is a
    contiguous SIMD pass, whereas packing 3-byte pixels into 32-bit ids is a strided one (~4x slower).
    Pixel p differs from p+1 iff one of bytes 3p..3p+2 flags. The flags are scanned 8 at a time (as
    uint64 words, almost all zero), and only the few non-zero words are resolved to byte positions.
    """
    if n < 2:
        return np.zeros(1, dtype=np.intp)
    m = 3 * n - 3
    padded = -(-m // 8) * 8
    flags = _scratch("rgb_change", padded, np.bool_)
    other = _scratch("rgb_change2", m, np.bool_)
    np.not_equal(gt_bytes[3:], gt_bytes[:-3], out=flags[:m])
    np.not_equal(pred_bytes[3:], pred_bytes[:-3], out=other)
    np.logical_or(flags[:m], other, out=flags[:m])
    flags[m:] = False
    words = flags.view(np.uint64)
    busy = _scratch("rgb_change_words", words.size, np.bool_)
    np.not_equal(words, 0, out=busy)
    hot = np.flatnonzero(busy)
    if hot.size > n // 4:
        return None
    byte = np.flatnonzero(words[hot].view(np.bool_))  # flagged bytes, as (word, byte) in raster order
    pixel = hot[byte >> 3]
    pixel *= 8
    pixel += byte & 7
    pixel //= 3  # a change between `pixel` and `pixel + 1`, listed once per differing channel (sorted)
    if pixel.size:
        first = np.empty(pixel.size, dtype=np.bool_)
        first[0] = True
        np.not_equal(pixel[1:], pixel[:-1], out=first[1:])
        pixel = pixel[first]
    starts = np.empty(pixel.size + 1, dtype=np.intp)
    starts[0] = 0
    np.add(pixel, 1, out=starts[1:])
    return starts


def _ids_at(flat_bytes: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """int64 panoptic ids of the given pixels of a flat RGB byte stream."""
    at = pixels * 3
    ids = flat_bytes[at].astype(np.int64)
    at += 1
    ids |= flat_bytes[at].astype(np.int64) << 8
    at += 1
    ids |= flat_bytes[at].astype(np.int64) << 16
    return ids


def joint_counts_rgb(gt_rgb: np.ndarray, gt_keys: np.ndarray, pred_rgb: np.ndarray, pred_keys: np.ndarray) -> np.ndarray:
    """:func:`joint_counts` of two (H, W, 3) uint8 COCO panoptic colour maps (id = R + 256 G + 65536 B).

    The compiled kernel computes it when enabled, else :func:`joint_counts_rgb_numpy`.
    """
    if _kernel.enabled():
        h, w = gt_rgb.shape[:2]
        gt_bytes = np.ascontiguousarray(gt_rgb).reshape(-1)
        pred_bytes = np.ascontiguousarray(pred_rgb).reshape(-1)
        return _kernel.rgb_joint_counts(gt_bytes, gt_keys, pred_bytes, pred_keys, h * w)
    return joint_counts_rgb_numpy(gt_rgb, gt_keys, pred_rgb, pred_keys)


def joint_counts_rgb_numpy(gt_rgb: np.ndarray, gt_keys: np.ndarray, pred_rgb: np.ndarray, pred_keys: np.ndarray) -> np.ndarray:
    """:func:`joint_counts_rgb` by numpy only (the reference; fragmented maps label every pixel)."""
    h, w = gt_rgb.shape[:2]
    n = h * w
    gt_bytes = np.ascontiguousarray(gt_rgb).reshape(-1)
    pred_bytes = np.ascontiguousarray(pred_rgb).reshape(-1)
    n_gt = gt_keys.size + FIRST_SEGMENT
    n_pred = pred_keys.size + FIRST_SEGMENT
    starts = _rgb_run_starts(gt_bytes, pred_bytes, n)
    if starts is None:  # noise-like maps: label every pixel
        return joint_histogram(label_image(rgb_to_ids(gt_rgb), gt_keys), n_gt, label_image(rgb_to_ids(pred_rgb), pred_keys), n_pred)
    lengths = np.empty_like(starts)
    np.subtract(starts[1:], starts[:-1], out=lengths[:-1])
    lengths[-1] = n - starts[-1]
    return joint_histogram(
        label_image(_ids_at(gt_bytes, starts), gt_keys), n_gt, label_image(_ids_at(pred_bytes, starts), pred_keys), n_pred, weights=lengths
    )


def _segment_arrays(segments: Mapping[int, Mapping[str, Any]], gt: bool, where: Path | None) -> dict[str, np.ndarray]:
    """Columns of a segments dict (id, category, crowd, area, JSON order), sorted by id.

    A loop over segments (tens per frame), never over pixels.
    """
    side = "GT" if gt else "prediction"
    id_list: list[int] = []
    cat_list: list[int] = []
    sid: Any = None
    try:
        for sid, seg in segments.items():
            id_list.append(int(sid))
            cat_list.append(int(seg["category_id"]))
    except (KeyError, TypeError, ValueError):
        raise InputError(where, f"{side} segment {sid!r} has no integer category_id") from None
    n = len(id_list)
    ids = np.array(id_list, dtype=np.int64)
    cats = np.array(cat_list, dtype=np.int64)
    if gt:
        crowd = np.array([bool(seg.get("iscrowd", 0)) for seg in segments.values()], dtype=bool)
        area = np.array([np.nan if seg.get("area") is None else float(seg["area"]) for seg in segments.values()], dtype=np.float64)
    else:
        crowd = np.zeros(n, dtype=bool)
        area = np.full(n, np.nan)
    if n and ids.min() <= 0:
        raise InputError(where, f"{side} segment id {int(ids.min())} is not allowed: id 0 is VOID and ids are positive")
    order = np.argsort(ids, kind="stable")
    return {"ids": ids[order], "cat": cats[order], "crowd": crowd[order], "area": area[order], "order": order}


@dataclass
class FrameStats:
    """The joint pixel counts of one frame and the segment tables they refer to.

    ``matrix[i, j]`` counts pixels with GT label i and predicted label j (layout in the module docstring).
    ``gt_area`` is the JSON ``area`` where the GT gave one, else the pixel count (panopticapi reads GT
    areas from the JSON and prediction areas from the PNG).
    """

    gt_ids: np.ndarray
    gt_cat: np.ndarray
    gt_crowd: np.ndarray
    gt_area: np.ndarray
    gt_order: np.ndarray
    pred_ids: np.ndarray
    pred_cat: np.ndarray
    matrix: np.ndarray
    height: int
    width: int

    @property
    def gt_pixels(self) -> np.ndarray:
        return self.matrix[FIRST_SEGMENT:, :].sum(axis=1)

    @property
    def pred_pixels(self) -> np.ndarray:
        return self.matrix[:, FIRST_SEGMENT:].sum(axis=0)

    @property
    def num_pixels(self) -> int:
        return self.height * self.width


def frame_stats(
    gt_ids: np.ndarray,
    gt_segments: Mapping[int, Mapping[str, Any]],
    pred_ids: np.ndarray,
    pred_segments: Mapping[int, Mapping[str, Any]],
    source: str | Path | None = None,
    strict: bool = True,
) -> FrameStats:
    """Build :class:`FrameStats` for one frame, checking the prediction as panopticapi does.

    Raises :class:`InputError` (naming ``source``) when the maps differ in shape, when the prediction map
    holds ids missing from ``pred_segments`` or (``strict``) ``pred_segments`` lists ids absent from the
    map, or when a segment uses id 0. ``strict=False`` is for resized maps, where small segments vanish.
    """
    where = _where(source)
    gt_ids = np.asarray(gt_ids)
    pred_ids = np.asarray(pred_ids)
    if gt_ids.shape != pred_ids.shape or gt_ids.ndim != 2:
        raise InputError(where, f"prediction map has shape {pred_ids.shape}, GT map has shape {gt_ids.shape}")
    for name, arr in (("GT", gt_ids), ("prediction", pred_ids)):
        if arr.dtype.kind not in "ui":
            raise InputError(where, f"{name} panoptic map must hold integers, got dtype {arr.dtype}")
        if arr.dtype.kind == "i" and arr.size and arr.min() < 0:
            raise InputError(where, f"{name} panoptic map holds negative ids")
    g = _segment_arrays(gt_segments, True, where)
    p = _segment_arrays(pred_segments, False, where)
    matrix = joint_counts(gt_ids, g["ids"], pred_ids, p["ids"])
    return _checked_stats(matrix, g, p, gt_ids.shape, where, strict, lambda: pred_ids)


def frame_stats_rgb(
    gt_rgb: np.ndarray,
    gt_segments: Mapping[int, Mapping[str, Any]],
    pred_rgb: np.ndarray,
    pred_segments: Mapping[int, Mapping[str, Any]],
    source: str | Path | None = None,
    strict: bool = True,
) -> FrameStats:
    """:func:`frame_stats` of two maps given as their (H, W, 3) uint8 COCO panoptic colours.

    Same result and checks, from the PNG's bytes as decoded: the pixel pass works on the colour bytes
    (:func:`joint_counts_rgb`), so the id maps are never built (two ~1 MiB passes saved per frame).
    """
    where = _where(source)
    gt_rgb = np.asarray(gt_rgb)
    pred_rgb = np.asarray(pred_rgb)
    if gt_rgb.shape != pred_rgb.shape or gt_rgb.ndim != 3 or gt_rgb.shape[2] != 3:
        raise InputError(where, f"prediction map has shape {pred_rgb.shape[:2]}, GT map has shape {gt_rgb.shape[:2]}")
    if gt_rgb.dtype != np.uint8 or pred_rgb.dtype != np.uint8:
        raise InputError(where, f"panoptic colour maps must be uint8, got {gt_rgb.dtype} and {pred_rgb.dtype}")
    g = _segment_arrays(gt_segments, True, where)
    p = _segment_arrays(pred_segments, False, where)
    matrix = joint_counts_rgb(gt_rgb, g["ids"], pred_rgb, p["ids"])
    return _checked_stats(matrix, g, p, gt_rgb.shape[:2], where, strict, lambda: rgb_to_ids(pred_rgb))


def frame_stats_png(
    gt_path: str | Path,
    gt_segments: Mapping[int, Mapping[str, Any]],
    pred_path: str | Path,
    pred_segments: Mapping[int, Mapping[str, Any]],
    source: str | Path | None = None,
    strict: bool = True,
) -> FrameStats:
    """:func:`frame_stats_rgb` of two COCO panoptic PNG files, decoding included.

    With the compiled kernel (and unless ``NERFSEG_PNG_DECODER=pil`` asks for the reference decoder), both
    files are inflated (libdeflate) into this thread's scratch and one
    loop unfilters and counts them (no decoded image is ever stored); any file that path declines
    (not 8-bit RGB/RGBA, interlaced, corrupt, sizes differ...) goes through :func:`read_panoptic_rgb_scratch`
    and :func:`frame_stats_rgb`, which decode with libspng or Pillow and word the errors. Same result
    either way. ``source`` (default: ``pred_path``) names the frame in errors.
    """
    gt_path, pred_path = Path(gt_path), Path(pred_path)
    source = pred_path if source is None else source
    if _kernel.enabled() and os.environ.get("NERFSEG_PNG_DECODER", "").lower() != "pil":
        gt_raw = _fastpng.inflate_rgb8(_read_bytes(gt_path), "kernel:gt")
        pred_raw = _fastpng.inflate_rgb8(_read_bytes(pred_path), "kernel:pred") if gt_raw is not None else None
        if gt_raw is not None and pred_raw is not None and gt_raw[1:3] == pred_raw[1:3]:
            where = _where(source)
            g = _segment_arrays(gt_segments, True, where)
            p = _segment_arrays(pred_segments, False, where)
            (graw, h, w, gbpp), (praw, _, _, pbpp) = gt_raw, pred_raw
            matrix = _kernel.png_joint_counts(graw, gbpp, praw, pbpp, h, w, g["ids"], p["ids"])
            if matrix is not None:
                return _checked_stats(matrix, g, p, (h, w), where, strict, lambda: read_panoptic_ids(pred_path))
    return frame_stats_rgb(
        read_panoptic_rgb_scratch(gt_path, "gt"), gt_segments, read_panoptic_rgb_scratch(pred_path, "pred"), pred_segments, source, strict
    )


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    except OSError as exc:
        raise InputError(path, f"unreadable ({type(exc).__name__}: {exc})") from None


def _checked_stats(
    matrix: np.ndarray,
    g: dict[str, np.ndarray],
    p: dict[str, np.ndarray],
    shape: tuple[int, ...],
    where: Path | None,
    strict: bool,
    pred_ids: Callable[[], np.ndarray],
) -> FrameStats:
    """panopticapi's checks on a frame's joint counts, then its :class:`FrameStats`.

    ``pred_ids`` builds the prediction's id map, only to name the offending ids in an error message.
    """
    if matrix[:, UNLISTED].any():
        flat = pred_ids().reshape(-1)
        present = np.unique(flat)
        missing = np.setdiff1d(present[present != 0], p["ids"])
        raise InputError(where, f"segment ids {missing[:10].tolist()} are in the prediction PNG but not in its JSON")
    absent = matrix[:, FIRST_SEGMENT:].sum(axis=0) == 0
    if strict and absent.any():
        raise InputError(where, f"segment ids {p['ids'][absent][:10].tolist()} are in the prediction JSON but not in its PNG")
    gt_pixels = matrix[FIRST_SEGMENT:, :].sum(axis=1)
    gt_area = np.where(np.isnan(g["area"]), gt_pixels, g["area"])
    return FrameStats(
        gt_ids=g["ids"],
        gt_cat=g["cat"],
        gt_crowd=g["crowd"],
        gt_area=gt_area,
        gt_order=g["order"],
        pred_ids=p["ids"],
        pred_cat=p["cat"],
        matrix=matrix,
        height=int(shape[0]),
        width=int(shape[1]),
    )


# ---------------------------------------------------------------------------------------------
# Fast COCO panoptic PNG reading (the decode is most of the cost of evaluating a frame)


def png_decoder() -> str:
    """The PNG decoder in use: ``"pyspng"`` (libspng, ~3x faster, optional) when importable, else ``"pil"``.

    ``NERFSEG_PNG_DECODER=pil`` forces Pillow (both give identical arrays; tests check it). With pyspng,
    the image goes through libspng's C API into a reused buffer when the module exposes it (see
    ``_fastpng``), else through ``pyspng.load``.
    """
    if os.environ.get("NERFSEG_PNG_DECODER", "").lower() == "pil" or _pyspng is None:
        return "pil"
    return "pyspng"


def _png_rgb8(data: bytes) -> bool:
    """True for an 8-bit RGB or RGBA PNG (IHDR colour type 2 or 6), the only kind the fast path takes."""
    return _fastpng.is_rgb8_png(data)


def read_panoptic_ids(path: str | Path) -> np.ndarray:
    """Read a COCO panoptic PNG into (H, W) uint32 ids ``R + 256 G + 65536 B``.

    Same values as ``nerfseg.io.read_panoptic_png``; faster: libspng decodes when installed (see
    :func:`png_decoder`), and :func:`rgb_to_ids` packs the bytes in one pass.
    """
    return rgb_to_ids(_read_rgb(Path(path), "read"))


def read_panoptic_rgb_scratch(path: str | Path, slot: str) -> np.ndarray:
    """A COCO panoptic PNG as its (H, W, 3) uint8 colours, decoded into this thread's scratch buffer ``slot``.

    For frame loops that are done with a map before reading the next one (``pq_compute``'s workers, with
    :func:`frame_stats_rgb`): no per-frame allocation, but the result is overwritten by the next call with
    the same ``slot`` in the same thread. Errors as :func:`read_panoptic_ids`.
    """
    return _read_rgb(Path(path), slot)


def _read_rgb(path: Path, slot: str) -> np.ndarray:
    """(H, W, 3) uint8 C-contiguous colours of a panoptic PNG (alpha dropped); libspng when possible."""
    if png_decoder() == "pyspng":
        data = _read_bytes(path)
        if _png_rgb8(data):
            if _fastpng.available():
                key = f"rgb:{slot}"
                decoded = _fastpng.decode_rgb8_into(data, _SCRATCH.buffers.get(key))
                if decoded is not None:
                    rgb, used = decoded
                    _SCRATCH.buffers[key] = used
                    return rgb
            else:
                try:
                    arr = _pyspng.load(data)
                except Exception:  # noqa: BLE001 - corrupt: let Pillow produce the error message below
                    arr = None
                if arr is not None and arr.ndim == 3 and arr.shape[2] in (3, 4):
                    return np.ascontiguousarray(arr[..., :3])
    # Pillow (nerfseg.io.read_png): the reference decoder (panopticapi's), and the one that words the errors
    arr = read_png(path)
    if arr.ndim == 3 and arr.shape[2] in (3, 4):  # RGB, or RGBA whose alpha is dropped
        return np.ascontiguousarray(arr[..., :3])
    with Image.open(path) as img:  # reopened only to name the mode in the message
        mode = img.mode
    raise InputError(path, f"expected an RGB panoptic PNG, got mode {mode}")


def rgb_to_ids(arr: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> (H, W) uint32 panoptic ids (fast path for C-contiguous little-endian input)."""
    h, w = arr.shape[:2]
    n = h * w
    if sys.byteorder != "little" or not arr.flags.c_contiguous or arr.dtype != np.uint8 or n < 2:
        c = arr.astype(np.uint32)
        return c[..., 0] | (c[..., 1] << 8) | (c[..., 2] << 16)
    out = np.empty(n, dtype=np.uint32)
    # pixels 0..n-2 as overlapping 4-byte words (the 4th byte belongs to the next pixel and is masked off);
    # the last pixel would read past the buffer, so it is done on its own
    words = np.ndarray((n - 1,), dtype="<u4", buffer=arr, offset=0, strides=(3,))
    np.bitwise_and(words, 0xFFFFFF, out=out[:-1])
    last = arr.reshape(-1)[-3:].astype(np.uint32)
    out[-1] = last[0] | (last[1] << 8) | (last[2] << 16)
    return out.reshape(h, w)
