"""The compiled evaluator kernel (numba) against the numpy reference path, on every kind of input.

The kernel must give the same joint-count matrices, hence the same PQ, as the reference: PNG scanlines
with each of the five filter types (written here by hand, Pillow mixes them), 3- and 4-byte pixels,
label-like and noisy maps, void, unlisted ids, every id dtype, and the fallbacks for what it declines.
"""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nerfseg.evaluation.metrics import _fastpng, _kernel
from nerfseg.evaluation.metrics.frame import (
    frame_stats_png,
    frame_stats_rgb,
    joint_counts,
    joint_counts_numpy,
    joint_counts_rgb,
    joint_counts_rgb_numpy,
)
from nerfseg.evaluation.pq_compute import pq_compute
from nerfseg.errors import InputError
from nerfseg.io import id2rgb
from tests.evaluation.test_metrics_panoptic import make_coco_case

needs_numba = pytest.mark.skipif(not _kernel.available(), reason="numba is not installed")


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _filtered_png(img: np.ndarray, filters: list[int]) -> bytes:
    """An 8-bit RGB/RGBA PNG of ``img`` whose row r uses PNG filter ``filters[r % len(filters)]``."""
    h, w, ch = img.shape
    x = img.reshape(h, w * ch).astype(np.int32)
    a = np.zeros_like(x)
    a[:, ch:] = x[:, :-ch]
    b = np.zeros_like(x)
    b[1:] = x[:-1]
    c = np.zeros_like(x)
    c[1:, ch:] = x[:-1, :-ch]
    p = a + b - c
    pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
    paeth = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
    predictors = [np.zeros_like(x), a, b, (a + b) >> 1, paeth]
    rows = []
    for r in range(h):
        f = filters[r % len(filters)]
        rows.append(bytes([f]) + ((x[r] - predictors[f][r]) & 0xFF).astype(np.uint8).tobytes())
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2 if ch == 3 else 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b"".join(rows))) + _chunk(b"IEND", b"")


def _label_map(rng: np.random.Generator, h: int, w: int, n: int, block: int = 4) -> np.ndarray:
    ids = rng.choice(rng.integers(1, 1 << 24, n), size=(-(-h // block), -(-w // block)))
    return np.repeat(np.repeat(ids, block, axis=0), block, axis=1)[:h, :w]


def _keys(ids: np.ndarray, drop_one: bool = False) -> np.ndarray:
    keys = np.unique(ids[ids > 0]).astype(np.int64)
    return keys[1:] if drop_one and keys.size > 1 else keys


@needs_numba
@pytest.mark.parametrize("channels", [3, 4])
@pytest.mark.parametrize("filters", [[0], [1], [2], [3], [4], [0, 1, 2, 3, 4], [4, 2, 2, 1]])
def test_png_kernel_equals_the_reference_for_every_filter(rng, channels, filters):
    for h, w in ((1, 1), (1, 9), (7, 1), (13, 17), (40, 33)):
        for kind in ("labels", "noise", "mixed"):
            gt = _label_map(rng, h, w, 6)
            gt[rng.random(gt.shape) < 0.1] = 0  # void
            pred = _label_map(rng, h, w, 6, block=3)
            if kind == "noise":
                pred = rng.integers(0, 1 << 24, gt.shape)
            elif kind == "mixed":
                pred[: h // 2] = gt[: h // 2]
            gt_rgb, pred_rgb = id2rgb(gt), id2rgb(pred)
            if channels == 4:  # alpha is ignored, whatever it holds
                gt_rgb = np.concatenate([gt_rgb, rng.integers(0, 256, (h, w, 1), dtype=np.uint8)], axis=2)
                pred_rgb = np.concatenate([pred_rgb, np.full((h, w, 1), 255, np.uint8)], axis=2)
            gk, pk = _keys(gt), _keys(pred, drop_one=True)  # an unlisted prediction id
            expected = joint_counts_numpy(gt.astype(np.int64), gk, pred.astype(np.int64), pk)
            g = _fastpng.inflate_rgb8(_filtered_png(gt_rgb, filters), "t:gt")
            p = _fastpng.inflate_rgb8(_filtered_png(pred_rgb, filters[::-1]), "t:pred")
            assert g is not None and p is not None and g[1:3] == (h, w) and g[3] == channels
            for limit in (None, -1, 2, w):  # default, every row as runs, mixed, every row as pixel moves
                got = _kernel.png_joint_counts(g[0], g[3], p[0], p[3], h, w, gk, pk, dense_limit=limit)
                assert got is not None and (got == expected).all(), (h, w, kind, limit)


def _banded(rng: np.random.Generator, h: int, w: int, noisy: list[tuple[int, int]], block: int) -> np.ndarray:
    """A label map whose rows in the ``noisy`` bands (start, stop) are random ids, clean blocks elsewhere."""
    ids = _label_map(rng, h, w, 5, block=block)
    ids[rng.random(ids.shape) < 0.05] = 0
    for a, b in noisy:
        ids[a:b] = rng.integers(0, 1 << 24, (b - a, w))
    return ids


@needs_numba
@pytest.mark.parametrize("channels", [3, 4])
@pytest.mark.parametrize("filters", [[0], [1], [2], [3], [4], [0, 1, 2, 3, 4], [4, 2, 2, 1]])
def test_png_kernel_switches_between_pixel_moves_and_runs_within_a_frame(rng, channels, filters):
    """Clean rows, then noisy rows (counted as runs), then clean rows again (pixel moves resume from
    counts rebuilt from the last noisy row), in either image or both, at the first and last rows too."""
    h, w = 48, 64  # default limit: 4 changed pixels a row; a noisy row changes ~64, a clean one 0 or a block edge
    bands = {
        "gt": ([(10, 20), (40, 41)], [(30, 34)]),
        "pred": ([(44, 48)], [(0, 3), (12, 18), (25, 26)]),
        "both": ([(0, 2), (12, 22), (47, 48)], [(15, 30)]),
    }
    for name, (gt_bands, pred_bands) in bands.items():
        gt = _banded(rng, h, w, gt_bands, block=16)
        pred = _banded(rng, h, w, pred_bands, block=12)
        pred[:, : w // 2] = np.where(pred[:, : w // 2] == 0, 0, gt[:, : w // 2])  # shared ids: matches
        gt_rgb, pred_rgb = id2rgb(gt), id2rgb(pred)
        if channels == 4:
            gt_rgb = np.concatenate([gt_rgb, rng.integers(0, 256, (h, w, 1), dtype=np.uint8)], axis=2)
            pred_rgb = np.concatenate([pred_rgb, np.full((h, w, 1), 255, np.uint8)], axis=2)
        gk, pk = _keys(gt), _keys(pred, drop_one=True)
        expected = joint_counts_numpy(gt.astype(np.int64), gk, pred.astype(np.int64), pk)
        g = _fastpng.inflate_rgb8(_filtered_png(gt_rgb, filters), "t:gt")
        p = _fastpng.inflate_rgb8(_filtered_png(pred_rgb, filters[::-1]), "t:pred")
        assert g is not None and p is not None
        for limit in (None, 8, 20):
            got = _kernel.png_joint_counts(g[0], g[3], p[0], p[3], h, w, gk, pk, dense_limit=limit)
            assert got is not None and (got == expected).all(), (name, limit)


@needs_numba
def test_png_kernel_rejects_an_unknown_filter_type(rng):
    img = id2rgb(_label_map(rng, 6, 5, 3))
    data = bytearray(_filtered_png(img, [1]))
    raw = bytearray(zlib.decompress(bytes(data[41:-16])))  # IDAT payload of this minimal PNG
    raw[2 * (1 + 15)] = 7  # third row's filter byte
    png = _filtered_png(img, [1])[:33] + _chunk(b"IDAT", zlib.compress(bytes(raw))) + _chunk(b"IEND", b"")
    g = _fastpng.inflate_rgb8(png, "t:gt")
    p = _fastpng.inflate_rgb8(_filtered_png(img, [0]), "t:pred")
    keys = _keys(_label_map(rng, 6, 5, 3))
    assert _kernel.png_joint_counts(g[0], 3, p[0], 3, 6, 5, keys, keys) is None


@needs_numba
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.uint32, np.int32, np.int64, np.uint64, np.int16])
def test_id_and_colour_kernels_equal_the_reference(rng, dtype):
    for h, w in ((1, 1), (2, 3), (30, 41)):
        top = 250 if np.dtype(dtype).itemsize == 1 else 30000
        gt = rng.choice(rng.integers(1, top, 5), size=(h, w))
        gt[rng.random(gt.shape) < 0.2] = 0
        pred = np.where(rng.random(gt.shape) < 0.7, gt, rng.integers(0, top, gt.shape))
        gk, pk = _keys(gt), _keys(pred, drop_one=True)
        expected = joint_counts_numpy(gt.astype(dtype), gk, pred.astype(dtype), pk)
        assert (_kernel.ids_joint_counts(gt.astype(dtype).ravel(), gk, pred.astype(dtype).ravel(), pk) == expected).all()
        assert (joint_counts(gt.astype(dtype), gk, pred.astype(dtype), pk) == expected).all()
        assert (joint_counts_rgb(id2rgb(gt), gk, id2rgb(pred), pk) == expected).all()
        assert (joint_counts_rgb_numpy(id2rgb(gt), gk, id2rgb(pred), pk) == expected).all()


def test_numpy_reference_is_selectable(monkeypatch):
    monkeypatch.setenv("NERFSEG_EVAL_KERNEL", "numpy")
    assert not _kernel.enabled() and _kernel.kernel_name() == "numpy"
    monkeypatch.delenv("NERFSEG_EVAL_KERNEL")
    assert _kernel.enabled() == _kernel.available()


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@needs_numba
def test_frame_stats_png_equals_frame_stats_rgb_and_falls_back(tmp_path, rng, monkeypatch):
    gt = _label_map(rng, 24, 30, 6)
    pred = _label_map(rng, 24, 30, 6, block=5)
    gt_segs = {int(i): {"category_id": 1 + int(i) % 3, "iscrowd": int(i % 4 == 0)} for i in np.unique(gt)}
    pred_segs = {int(i): {"category_id": 1 + int(i) % 3} for i in np.unique(pred)}
    ref = frame_stats_rgb(id2rgb(gt), gt_segs, id2rgb(pred), pred_segs)
    g = _write(tmp_path / "g.png", _filtered_png(id2rgb(gt), [0, 1, 2, 3, 4]))
    p = _write(tmp_path / "p.png", _filtered_png(id2rgb(pred), [4, 4, 2]))
    palette = io.BytesIO()
    Image.fromarray(id2rgb(pred)).convert("P").save(palette, "PNG")  # declined by the kernel path: Pillow reads it
    for pred_path in (p, _write(tmp_path / "pal.png", palette.getvalue())):
        for kernel in ("numba", "numpy"):
            monkeypatch.setenv("NERFSEG_EVAL_KERNEL", kernel)
            if pred_path.name == "pal.png":
                with pytest.raises(InputError, match="expected an RGB panoptic PNG"):
                    frame_stats_png(g, gt_segs, pred_path, pred_segs)
                continue
            st = frame_stats_png(g, gt_segs, pred_path, pred_segs)
            for field in ("gt_ids", "gt_cat", "gt_crowd", "gt_area", "gt_order", "pred_ids", "pred_cat", "matrix"):
                assert (getattr(st, field) == getattr(ref, field)).all(), field
    monkeypatch.delenv("NERFSEG_EVAL_KERNEL")
    # errors are the reference path's, naming the prediction file
    small = _write(tmp_path / "small.png", _filtered_png(id2rgb(pred[:, :-1]), [1]))
    with pytest.raises(InputError, match="shape"):
        frame_stats_png(g, gt_segs, small, pred_segs)
    missing = dict(pred_segs)
    missing.pop(int(pred[0, 0]))
    with pytest.raises(InputError, match="in the prediction PNG but not in its JSON") as err:
        frame_stats_png(g, gt_segs, p, missing)
    assert err.value.path == p
    corrupt = bytearray(p.read_bytes())
    corrupt[45] ^= 0xFF
    with pytest.raises(InputError, match="corrupt|unreadable"):
        frame_stats_png(g, gt_segs, _write(tmp_path / "bad.png", bytes(corrupt)), pred_segs)
    with pytest.raises(InputError, match="not found"):
        frame_stats_png(g, gt_segs, tmp_path / "nope.png", pred_segs)


@needs_numba
@pytest.mark.parametrize("workers", [1, 2])
def test_pq_compute_is_identical_with_either_path(tmp_path, monkeypatch, workers):
    case = make_coco_case(tmp_path, n_images=12, seed=40 + workers)
    monkeypatch.setenv("NERFSEG_EVAL_KERNEL", "numpy")
    ref = pq_compute(case["gt_json"], case["pred_json"], workers=workers)
    monkeypatch.setenv("NERFSEG_EVAL_KERNEL", "numba")
    got = pq_compute(case["gt_json"], case["pred_json"], workers=workers)
    assert json.dumps(got, sort_keys=True) == json.dumps(ref, sort_keys=True)


@needs_numba
def test_compiled_pq_counts_equal_the_reference(rng):
    """``_kernel.pq_counts`` gives frame_pq_counts' tp/fp/fn/iou_sum bit for bit: crowd regions (two of
    one category: only the last in JSON order counts), GT areas from the JSON, void, GT segments of an
    unknown category, and None for a prediction of an unknown category."""
    from nerfseg.evaluation.metrics.frame import frame_stats
    from nerfseg.evaluation.metrics.panoptic import CategoryTable, frame_pq_counts

    cats = CategoryTable({1: True, 2: True, 3: False, 7: False})
    seen = np.zeros(3, dtype=np.int64)
    for trial in range(60):
        h, w = 24, 32
        gt = _label_map(rng, h, w, 7, block=int(rng.integers(2, 9)))
        gt[rng.random(gt.shape) < 0.05] = 0
        pred = gt.copy()
        shift = rng.random(pred.shape) < rng.uniform(0.0, 0.6)
        pred[shift] = _label_map(rng, h, w, 5, block=3)[shift]
        pred[rng.random(pred.shape) < 0.03] = 0
        gt_ids, pred_ids = _keys(gt), _keys(pred)
        gt_segs = {
            int(i): {"category_id": int(rng.choice([1, 2, 3, 7, 9])), "iscrowd": int(rng.random() < 0.3), "area": None if rng.random() < 0.5 else int(rng.integers(1, 200))}
            for i in rng.permutation(gt_ids)
        }  # fmt: skip
        pred_segs = {int(i): {"category_id": int(rng.choice([1, 2, 3, 7]))} for i in pred_ids}
        if trial % 10 == 9:
            pred_segs[int(pred_ids[0])]["category_id"] = 5  # unknown: the reference raises
        stats = frame_stats(gt, gt_segs, pred, pred_segs)
        got = _kernel.pq_counts(stats.matrix, cats.ids, stats.gt_cat, stats.gt_crowd, stats.gt_area, stats.gt_order, stats.pred_cat)
        if trial % 10 == 9:
            assert got is None
            with pytest.raises(InputError, match="unknown category"):
                frame_pq_counts(stats, cats)
            continue
        ref = frame_pq_counts(stats, cats)
        for a, b in zip(got, ref):
            assert a.dtype == b.dtype
            np.testing.assert_array_equal(a, b)
        seen += [int(ref[0].sum()), int(ref[1].sum()), int(ref[2].sum())]
    assert (seen > 20).all(), seen  # the cases produce matches, false positives and false negatives
