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
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from nerfseg.errors import InputError

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
    out = np.zeros(flat.shape, dtype=dtype)
    if k:
        vals = flat.astype(np.int64, copy=False)  # uint64 vs int64 would compare as float64
        pos = np.minimum(np.searchsorted(keys, vals), k - 1)
        hit = keys[pos] == vals
        out[hit] = (pos[hit] + FIRST_SEGMENT).astype(dtype)
    out[flat == 0] = VOID_LABEL
    return out


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
    counting runs instead of pixels makes the pixel pass ~3x cheaper (two comparisons and a nonzero).
    """
    n = gt_flat.size
    if n < 2:
        return None
    change = gt_flat[1:] != gt_flat[:-1]
    change |= pred_flat[1:] != pred_flat[:-1]
    starts = np.flatnonzero(change)
    if starts.size > n // 4:
        return None
    starts += 1
    starts = np.concatenate((np.zeros(1, dtype=starts.dtype), starts))
    lengths = np.diff(starts, append=n)
    return starts, lengths


def joint_counts(gt_ids: np.ndarray, gt_keys: np.ndarray, pred_ids: np.ndarray, pred_keys: np.ndarray) -> np.ndarray:
    """Joint pixel-count matrix of two id maps (layout in the module docstring); runs when they pay off."""
    gt_flat = gt_ids.reshape(-1)
    pred_flat = pred_ids.reshape(-1)
    n_gt = gt_keys.size + FIRST_SEGMENT
    n_pred = pred_keys.size + FIRST_SEGMENT
    runs = _runs(gt_flat, pred_flat)
    if runs is None:
        return joint_histogram(label_image(gt_flat, gt_keys), n_gt, label_image(pred_flat, pred_keys), n_pred)
    starts, lengths = runs
    return joint_histogram(label_image(gt_flat[starts], gt_keys), n_gt, label_image(pred_flat[starts], pred_keys), n_pred, weights=lengths)


def _segment_arrays(segments: Mapping[int, Mapping[str, Any]], gt: bool, where: Path | None) -> dict[str, np.ndarray]:
    """Columns of a segments dict (id, category, crowd, area, JSON order), sorted by id.

    A loop over segments (tens per frame), never over pixels.
    """
    n = len(segments)
    ids = np.empty(n, dtype=np.int64)
    cats = np.empty(n, dtype=np.int64)
    crowd = np.zeros(n, dtype=bool)
    area = np.full(n, np.nan)
    side = "GT" if gt else "prediction"
    for i, (sid, seg) in enumerate(segments.items()):
        try:
            ids[i] = int(sid)
            cats[i] = int(seg["category_id"])
        except (KeyError, TypeError, ValueError):
            raise InputError(where, f"{side} segment {sid!r} has no integer category_id") from None
        if gt:
            crowd[i] = bool(seg.get("iscrowd", 0))
            a = seg.get("area")
            if a is not None:
                area[i] = float(a)
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
    if matrix[:, UNLISTED].any():
        flat = pred_ids.reshape(-1)
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
        height=int(gt_ids.shape[0]),
        width=int(gt_ids.shape[1]),
    )


# ---------------------------------------------------------------------------------------------
# Fast COCO panoptic PNG reading (the decode is most of the cost of evaluating a frame)


def png_decoder() -> str:
    """The PNG decoder in use: ``"pyspng"`` (libspng, ~3x faster, optional) when importable, else ``"pil"``.

    ``NERFSEG_PNG_DECODER=pil`` forces Pillow (both give identical arrays; tests check it).
    """
    if os.environ.get("NERFSEG_PNG_DECODER", "").lower() == "pil" or _pyspng is None:
        return "pil"
    return "pyspng"


def _png_rgb8(data: bytes) -> bool:
    """True for an 8-bit RGB or RGBA PNG (IHDR colour type 2 or 6), the only kind the fast path takes."""
    return len(data) > 26 and data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR" and data[24] == 8 and data[25] in (2, 6)


def read_panoptic_ids(path: str | Path) -> np.ndarray:
    """Read a COCO panoptic PNG into (H, W) uint32 ids ``R + 256 G + 65536 B``.

    Same values as ``nerfseg.io.read_panoptic_png``; faster: libspng decodes when installed (see
    :func:`png_decoder`), and :func:`rgb_to_ids` packs the bytes in one pass.
    """
    path = Path(path)
    if png_decoder() == "pyspng":
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise InputError(path, "file not found") from None
        if _png_rgb8(data):
            try:
                arr = _pyspng.load(data)
            except Exception:  # noqa: BLE001 - corrupt: let Pillow produce the error message below
                arr = None
            if arr is not None and arr.ndim == 3 and arr.shape[2] in (3, 4):
                return rgb_to_ids(np.ascontiguousarray(arr[..., :3]) if arr.shape[2] == 4 else arr)
    try:
        with Image.open(path) as img:
            if img.format != "PNG":
                raise InputError(path, f"not a PNG file (format {img.format})")
            img.load()
            mode = img.mode
            if mode == "RGBA":
                arr = np.ascontiguousarray(np.asarray(img)[..., :3])
            elif mode == "RGB":
                arr = np.asarray(img)
            else:
                raise InputError(path, f"expected an RGB panoptic PNG, got mode {mode}")
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - PIL raises many types for corrupt data
        raise InputError(path, f"corrupt or unreadable PNG ({type(exc).__name__}: {exc})") from None
    return rgb_to_ids(arr)


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
