"""The fast pixel path of pq_compute: libspng/libdeflate decoding into reused buffers, and joint counts
computed on the colour bytes. Each is checked against the reference path (Pillow, id maps)."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nerfseg.evaluation.metrics import _fastpng
from nerfseg.evaluation.metrics import frame as frame_mod
from nerfseg.evaluation.metrics.frame import (
    frame_stats,
    frame_stats_rgb,
    joint_counts,
    joint_counts_rgb,
    read_panoptic_ids,
    read_panoptic_rgb_scratch,
    rgb_to_ids,
)
from nerfseg.errors import InputError
from nerfseg.io import id2rgb

needs_spng = pytest.mark.skipif(not _fastpng.available(), reason="pyspng's libspng is not reachable")


def _png(arr: np.ndarray, **save) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG", **save)
    return buf.getvalue()


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _interlaced_png(rgb: np.ndarray) -> bytes:
    """An Adam7-interlaced 8-bit RGB PNG (filter 0 everywhere): Pillow cannot write one."""
    h, w = rgb.shape[:2]
    raw = b""
    for y0, x0, dy, dx in ((0, 0, 8, 8), (0, 4, 8, 8), (4, 0, 8, 4), (0, 2, 4, 4), (2, 0, 4, 2), (0, 1, 2, 2), (1, 0, 2, 1)):
        sub = rgb[y0::dy, x0::dx]
        if sub.size:
            raw += b"".join(b"\x00" + row.tobytes() for row in sub)
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 1)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(raw)) + _chunk(b"IEND", b"")


def _label_map(rng: np.random.Generator, h: int, w: int, n: int) -> np.ndarray:
    """Piecewise-constant 24-bit ids (blocks), like a panoptic map."""
    ids = rng.choice(rng.integers(1, 1 << 24, n), size=(max(h // 4, 1), max(w // 4, 1)))
    return np.repeat(np.repeat(ids, 4, axis=0), 4, axis=1)[:h, :w]


@needs_spng
@pytest.mark.parametrize("inflate", ["libdeflate", "zlib"])
def test_decoder_matches_pillow(rng, monkeypatch, inflate):
    if inflate == "zlib":
        monkeypatch.setenv("NERFSEG_PNG_INFLATE", "zlib")
    elif _fastpng.inflater() != "libdeflate":
        pytest.skip("libdeflate unavailable (the deflate package is missing, or NERFSEG_PNG_INFLATE=zlib)")
    buffer = np.empty(0, dtype=np.uint8)
    for h, w in ((1, 1), (1, 9), (7, 1), (37, 53), (300, 301)):
        for channels in (3, 4):
            arr = rng.integers(0, 256, (h, w, channels), dtype=np.uint8)
            arr[: h // 2] = arr[0, 0]  # flat and noisy parts: Pillow mixes all five filter types
            for level in (0, 1, 9):  # level 0 at 300x301 writes several IDAT chunks
                data = _png(arr, compress_level=level)
                out = _fastpng.decode_rgb8_into(data, buffer, pad=2)
                assert out is not None
                img, buffer = out
                assert img.shape == (h, w, 3) and (img == arr[..., :3]).all()
                assert buffer.size >= 3 * h * w + 2


@needs_spng
def test_decoder_reuses_the_buffer_and_reads_interlaced(rng):
    arr = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    buffer = np.empty(3 * 20 * 30, dtype=np.uint8)
    img, used = _fastpng.decode_rgb8_into(_png(arr), buffer)
    assert used is buffer and np.shares_memory(img, buffer) and (img == arr).all()
    data = _interlaced_png(arr)
    img, _ = _fastpng.decode_rgb8_into(data)
    assert (img == arr).all()
    with Image.open(io.BytesIO(data)) as im:
        assert (np.asarray(im) == arr).all()


@needs_spng
def test_decoder_declines_what_it_should_not_decode(rng):
    arr = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    good = _png(arr)
    assert _fastpng.decode_rgb8_into(good) is not None
    corrupt = bytearray(good)
    corrupt[60] ^= 1  # inside IDAT: the chunk CRC no longer matches
    assert _fastpng.decode_rgb8_into(bytes(corrupt)) is None
    assert _fastpng.decode_rgb8_into(good[: len(good) // 2]) is None  # truncated
    assert _fastpng.decode_rgb8_into(_png(arr[..., 0])) is None  # grey
    assert _fastpng.decode_rgb8_into(_png(arr[..., 0].astype(np.uint16) * 257)) is None  # 16-bit grey
    palette = io.BytesIO()
    Image.fromarray(arr).quantize(8).save(palette, "PNG")
    assert _fastpng.decode_rgb8_into(palette.getvalue()) is None
    assert _fastpng.decode_rgb8_into(b"not a png at all") is None


def test_corrupt_files_are_judged_by_pillow(tmp_path, rng, monkeypatch):
    data = bytearray(_png(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)))
    data[60] ^= 1
    path = tmp_path / "bad.png"
    path.write_bytes(bytes(data))
    monkeypatch.setenv("NERFSEG_PNG_DECODER", "pil")
    try:
        expected = read_panoptic_ids(path)
    except InputError:
        expected = None
    monkeypatch.delenv("NERFSEG_PNG_DECODER")
    if expected is None:
        with pytest.raises(InputError):
            read_panoptic_ids(path)
    else:
        assert (read_panoptic_ids(path) == expected).all()


def test_scratch_reads_reuse_memory_and_match(tmp_path, rng):
    for k in range(2):
        ids = _label_map(rng, 24, 32, 6)
        Image.fromarray(id2rgb(ids)).save(tmp_path / f"{k}.png")
    first = read_panoptic_rgb_scratch(tmp_path / "0.png", "t")
    assert (rgb_to_ids(first) == read_panoptic_ids(tmp_path / "0.png")).all()
    second = read_panoptic_rgb_scratch(tmp_path / "1.png", "t")
    assert (rgb_to_ids(second) == read_panoptic_ids(tmp_path / "1.png")).all()
    if frame_mod.png_decoder() == "pyspng" and _fastpng.available():
        assert np.shares_memory(first, second)  # same scratch slot: no per-frame allocation


@pytest.mark.parametrize("shape", [(1, 1), (1, 2), (2, 1), (3, 7), (30, 41), (64, 64)])
def test_joint_counts_on_colour_bytes_equal_the_id_path(rng, shape):
    h, w = shape
    for trial in range(25):
        gt = _label_map(rng, h, w, 5)
        pred = np.where(rng.random(gt.shape) < 0.9, gt, rng.integers(0, 1 << 24, gt.shape))  # noise
        if trial % 5 == 0:
            pred = rng.integers(0, 1 << 24, gt.shape)  # fragmented: the per-pixel fallback
        if trial % 7 == 0:
            gt[rng.random(gt.shape) < 0.2] = 0  # void
        gt_keys = np.unique(gt[gt > 0]).astype(np.int64)
        pred_keys = np.unique(pred[pred > 0]).astype(np.int64)
        if trial % 3 == 0 and pred_keys.size > 1:
            pred_keys = pred_keys[1:]  # an unlisted id
        expected = joint_counts(gt.astype(np.uint32), gt_keys, pred.astype(np.uint32), pred_keys)
        assert (joint_counts_rgb(id2rgb(gt), gt_keys, id2rgb(pred), pred_keys) == expected).all()


def test_frame_stats_rgb_equals_frame_stats(rng):
    gt = _label_map(rng, 40, 48, 6)
    pred = _label_map(rng, 40, 48, 6)
    gt_segs = {int(i): {"category_id": 1 + int(i) % 3, "iscrowd": int(i % 5 == 0)} for i in np.unique(gt)}
    pred_segs = {int(i): {"category_id": 1 + int(i) % 3} for i in np.unique(pred)}
    a = frame_stats(gt, gt_segs, pred, pred_segs)
    b = frame_stats_rgb(id2rgb(gt), gt_segs, id2rgb(pred), pred_segs)
    for field in ("gt_ids", "gt_cat", "gt_crowd", "gt_area", "gt_order", "pred_ids", "pred_cat", "matrix"):
        assert (getattr(a, field) == getattr(b, field)).all(), field
    assert (a.height, a.width) == (b.height, b.width)
    missing = dict(pred_segs)
    missing.pop(int(pred[0, 0]))
    for fn, g, p in ((frame_stats, gt, pred), (frame_stats_rgb, id2rgb(gt), id2rgb(pred))):
        with pytest.raises(InputError, match="in the prediction PNG but not in its JSON"):
            fn(g, gt_segs, p, missing, source=Path("x.png"))
        with pytest.raises(InputError, match="in the prediction JSON but not in its PNG"):
            fn(g, gt_segs, p, {**pred_segs, 12345: {"category_id": 1}}, source=Path("x.png"))
    with pytest.raises(InputError, match="shape"):
        frame_stats_rgb(id2rgb(gt), gt_segs, id2rgb(pred[:, :-1]), pred_segs)
