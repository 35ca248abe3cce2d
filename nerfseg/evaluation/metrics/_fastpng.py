"""Decode 8-bit RGB/RGBA PNGs into a buffer the caller reuses, with libspng (and libdeflate when present).

Why not ``pyspng.load``: it mallocs a fresh ~1 MiB output per image, and a frame loop that allocates and
frees a few such blocks per frame makes glibc hand the memory back to the kernel and fault it in again
(~800 page faults, ~0.8 ms of system time per 480x640 frame, as much as the decode itself). pyspng's
extension module links libspng statically and exports its C API, so we call ``spng_decode_image`` through
ctypes with our own output buffer: same library, same pixels as ``pyspng.load``, no per-image allocation,
and ctypes drops the GIL during the call.

Why libdeflate: half of libspng's time goes to zlib 1.2's inflate, which copies the long short-distance
matches of label maps byte by byte. When the optional ``deflate`` package (libdeflate, MIT) is installed,
its exported ``libdeflate_zlib_decompress`` inflates the IDAT stream ~10x faster into a scratch buffer, the
filtered scanlines are re-wrapped as *stored* (uncompressed) deflate blocks in a minimal PNG (IHDR, one
IDAT, IEND), and libspng, whose inflate of stored blocks is a plain copy, only unfilters. Integrity checks
are kept: the chunk CRCs of IHDR and IDAT are verified and libdeflate verifies the zlib Adler-32.

Everything here is optional: :func:`available` is False when pyspng is missing, when its module does not
export the libspng symbols or is not libspng 0.7 (whose structures and constants this file encodes), or
when ``NERFSEG_PNG_DECODER=pil``. A PNG that this module cannot or will not decode (not 8-bit RGB/RGBA,
corrupt, CRC mismatch...) makes :func:`decode_rgb8_into` return ``None``, so that the caller's Pillow path
decodes it or words the error: this module changes speed, never a result.
"""

from __future__ import annotations

import ctypes
import os
import struct
import threading
import zlib

import numpy as np

# libspng 0.7 constants (spng.h)
_SPNG_OK = 0
#: skip zlib's Adler-32 of the *inflated* bytes (~0.25 ms per 480x640 image, a third of the decode): the
#: CRC-32s of IHDR and every IDAT, which cover the same data compressed, are checked by :func:`_parse`
_SPNG_CTX_IGNORE_ADLER32 = 1
_SPNG_CRC_ERROR = 0
#: for the PNG re-wrapped here, whose IDAT carries a dummy CRC (its source chunks were verified)
_SPNG_CRC_USE = 2
_SPNG_FMT_RGB8 = 4
_COLOR_TRUECOLOR = 2
_COLOR_TRUECOLOR_ALPHA = 6
#: largest chunk / cached chunk data libspng may buffer (pyspng's own limits)
_CHUNK_LIMIT = 64 * 1024 * 1024
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_LIBDEFLATE_SUCCESS = 0
#: larger images (by their header) are left to Pillow, whose decompression-bomb check then applies
_MAX_PIXELS = 1 << 28
#: payload of one stored deflate block (its LEN field is 16 bits)
_STORED_BLOCK = 65535
_IEND_CHUNK = struct.pack(">I", 0) + b"IEND" + struct.pack(">I", zlib.crc32(b"IEND"))


class _Ihdr(ctypes.Structure):
    _fields_ = [
        ("width", ctypes.c_uint32),
        ("height", ctypes.c_uint32),
        ("bit_depth", ctypes.c_uint8),
        ("color_type", ctypes.c_uint8),
        ("compression_method", ctypes.c_uint8),
        ("filter_method", ctypes.c_uint8),
        ("interlace_method", ctypes.c_uint8),
    ]


def _bind(lib: ctypes.CDLL, protos: tuple[tuple[str, object, list[object]], ...]) -> None:
    for name, res, args in protos:
        fn = getattr(lib, name)  # AttributeError: symbol not exported by this build
        fn.restype = res
        fn.argtypes = args


_VP, _SZ = ctypes.c_void_p, ctypes.c_size_t
_lock = threading.Lock()
_loaded = False
_spng: ctypes.CDLL | None = None
_deflate: ctypes.CDLL | None = None


def _load() -> tuple[ctypes.CDLL | None, ctypes.CDLL | None]:
    """(libspng from pyspng or None, libdeflate from the ``deflate`` package or None), bound once."""
    global _loaded, _spng, _deflate
    if _loaded:
        return _spng, _deflate
    with _lock:
        if _loaded:
            return _spng, _deflate
        spng = deflate = None
        try:
            from pyspng import _pyspng_c  # type: ignore[import-not-found]

            if str(_pyspng_c.spng_version_string()).split(".")[:2] == ["0", "7"]:
                spng = ctypes.CDLL(_pyspng_c.__file__)
                _bind(
                    spng,
                    (
                        ("spng_ctx_new", _VP, [ctypes.c_int]),
                        ("spng_ctx_free", None, [_VP]),
                        ("spng_set_crc_action", ctypes.c_int, [_VP, ctypes.c_int, ctypes.c_int]),
                        ("spng_set_chunk_limits", ctypes.c_int, [_VP, _SZ, _SZ]),
                        ("spng_set_png_buffer", ctypes.c_int, [_VP, _VP, _SZ]),
                        ("spng_get_ihdr", ctypes.c_int, [_VP, ctypes.POINTER(_Ihdr)]),
                        ("spng_decoded_image_size", ctypes.c_int, [_VP, ctypes.c_int, ctypes.POINTER(_SZ)]),
                        ("spng_decode_image", ctypes.c_int, [_VP, _VP, _SZ, ctypes.c_int, ctypes.c_int]),
                    ),
                )
        except (ImportError, OSError, AttributeError, ValueError):
            spng = None
        # libdeflate serves both libspng's path and inflate_rgb8 (which needs no libspng)
        try:
            from deflate import _deflate as _deflate_mod  # type: ignore[import-not-found]

            deflate = ctypes.CDLL(_deflate_mod.__file__)
            _bind(
                deflate,
                (
                    ("libdeflate_alloc_decompressor", _VP, []),
                    ("libdeflate_free_decompressor", None, [_VP]),
                    ("libdeflate_zlib_decompress", ctypes.c_int, [_VP, _VP, _SZ, _VP, _SZ, ctypes.POINTER(_SZ)]),
                ),
            )
        except (ImportError, OSError, AttributeError):
            deflate = None
        _spng, _deflate, _loaded = spng, deflate, True
    return _spng, _deflate


def available() -> bool:
    """True when PNGs can be decoded here (pyspng's libspng 0.7 reachable, Pillow not forced)."""
    if os.environ.get("NERFSEG_PNG_DECODER", "").lower() == "pil":
        return False
    return _load()[0] is not None


def inflater() -> str:
    """Which inflate runs: ``"libdeflate"`` (``deflate`` package installed) or ``"zlib"`` (libspng's own)."""
    spng, deflate = _load()
    return "libdeflate" if spng is not None and deflate is not None and not _no_libdeflate() else "zlib"


def _no_libdeflate() -> bool:
    return os.environ.get("NERFSEG_PNG_INFLATE", "").lower() == "zlib"


def is_rgb8_png(data: bytes) -> bool:
    """True for an 8-bit RGB or RGBA PNG (IHDR colour type 2 or 6), the only kind decoded here."""
    return (
        len(data) > 26
        and data[:8] == _PNG_SIGNATURE
        and data[12:16] == b"IHDR"
        and data[24] == 8
        and data[25] in (_COLOR_TRUECOLOR, _COLOR_TRUECOLOR_ALPHA)
    )


class _Decompressor:
    """A libdeflate decompressor, freed with its owner (a thread's scratch)."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        self.lib = lib
        self.ptr = lib.libdeflate_alloc_decompressor()

    def __del__(self) -> None:
        if self.ptr:
            self.lib.libdeflate_free_decompressor(self.ptr)
            self.ptr = None


class _Local(threading.local):
    """Per-thread scratch: libdeflate decompressors are not thread-safe, and buffers are reused."""

    def __init__(self) -> None:
        self.decompressor: _Decompressor | None = None
        self.raw = np.empty(0, dtype=np.uint8)
        self.png = np.empty(0, dtype=np.uint8)
        self.slots: dict[str, np.ndarray] = {}  # inflate_rgb8's outputs, by slot


_LOCAL = _Local()


def _grow(buf: np.ndarray, size: int) -> np.ndarray:
    return buf if buf.size >= size else np.empty(size + size // 8, dtype=np.uint8)


def _address(data: bytes) -> int:
    """Address of a bytes object's payload (valid while the caller holds ``data``)."""
    return ctypes.cast(ctypes.c_char_p(data), ctypes.c_void_p).value or 0


def _spng_decode(spng: ctypes.CDLL, src: object, src_len: int, flags: int, crc: int, buffer: np.ndarray | None, pad: int) -> tuple[np.ndarray, np.ndarray] | None:
    ctx = spng.spng_ctx_new(flags)
    if not ctx:
        return None
    try:
        if spng.spng_set_crc_action(ctx, crc, crc) != _SPNG_OK:
            return None
        spng.spng_set_chunk_limits(ctx, _CHUNK_LIMIT, _CHUNK_LIMIT)
        if spng.spng_set_png_buffer(ctx, src, src_len) != _SPNG_OK:
            return None
        ihdr = _Ihdr()
        if spng.spng_get_ihdr(ctx, ctypes.byref(ihdr)) != _SPNG_OK:
            return None
        size = ctypes.c_size_t(0)
        if spng.spng_decoded_image_size(ctx, _SPNG_FMT_RGB8, ctypes.byref(size)) != _SPNG_OK:
            return None
        h, w = int(ihdr.height), int(ihdr.width)
        n_bytes = int(size.value)
        if n_bytes != 3 * h * w or h * w > _MAX_PIXELS:
            return None
        need = n_bytes + max(int(pad), 0)
        if buffer is None or buffer.dtype != np.uint8 or buffer.ndim != 1 or buffer.size < need or not buffer.flags.c_contiguous or not buffer.flags.writeable:
            buffer = np.empty(need, dtype=np.uint8)
        if spng.spng_decode_image(ctx, buffer.ctypes.data, n_bytes, _SPNG_FMT_RGB8, 0) != _SPNG_OK:
            return None
    finally:
        spng.spng_ctx_free(ctx)
    return buffer[:n_bytes].reshape(h, w, 3), buffer


def _parse(data: bytes) -> tuple[tuple[int, ...], list[tuple[int, int]]] | None:
    """IHDR fields and the (offset, length) of every IDAT chunk, after checking their CRC-32s.

    None for anything unusual (no IHDR first, truncated chunk, CRC mismatch): such files go to Pillow.
    Checking the CRCs here (~10 us, they cover the compressed bytes) is what lets libspng skip the
    Adler-32 of the inflated bytes; libspng itself does not check the last IDAT's CRC when it stops
    reading after the last row.
    """
    n = len(data)
    pos, ihdr, idats = 8, -1, []
    while pos + 12 <= n:
        length, kind = struct.unpack_from(">I4s", data, pos)
        end = pos + 12 + length
        if end > n:
            return None
        if kind == b"IHDR":
            if ihdr >= 0 or length != 13:
                return None
            ihdr = pos
        elif kind == b"IDAT":
            idats.append((pos, length))
        elif kind == b"IEND":
            break
        pos = end
    else:
        return None  # no IEND: truncated
    if ihdr != 8 or not idats:
        return None
    view = memoryview(data)
    for start, length in ((ihdr, 13), *idats):
        if zlib.crc32(view[start + 4 : start + 8 + length]) != struct.unpack_from(">I", data, start + 8 + length)[0]:
            return None
    return struct.unpack_from(">IIBBBBB", data, ihdr + 8), idats


def _restored_png(deflate: ctypes.CDLL, data: bytes, ihdr: tuple[int, ...], idats: list[tuple[int, int]]) -> tuple[np.ndarray, int] | None:
    """``data`` re-encoded as IHDR + one IDAT of stored deflate blocks + IEND, in this thread's scratch.

    Returns (buffer, length), or None for what this path does not take (interlaced, a bad zlib stream):
    those go through libspng unchanged.
    """
    width, height, depth, color, compression, filtering, interlace = ihdr
    if depth != 8 or color not in (_COLOR_TRUECOLOR, _COLOR_TRUECOLOR_ALPHA) or compression or filtering or interlace:
        return None
    bpp = 3 if color == _COLOR_TRUECOLOR else 4
    n_raw = height * (1 + width * bpp)
    n_blocks = -(-n_raw // _STORED_BLOCK)
    idat_len = 2 + n_raw + 5 * n_blocks + 4
    if width == 0 or height == 0 or width * height > _MAX_PIXELS or idat_len >= 1 << 31:
        return None
    if len(idats) == 1:
        start, length = idats[0]
        src, src_addr, src_len = data, _address(data) + start + 8, length
    else:
        view = memoryview(data)
        src = b"".join(view[s + 8 : s + 8 + length] for s, length in idats)
        src_addr, src_len = _address(src), len(src)
    local = _LOCAL
    if local.decompressor is None:
        local.decompressor = _Decompressor(deflate)
    if not local.decompressor.ptr:
        return None
    local.raw = raw = _grow(local.raw, n_raw)
    got = ctypes.c_size_t(0)
    status = deflate.libdeflate_zlib_decompress(local.decompressor.ptr, src_addr, src_len, raw.ctypes.data, n_raw, ctypes.byref(got))
    del src
    if status != _LIBDEFLATE_SUCCESS or got.value != n_raw:
        return None

    total = 8 + 25 + 8 + idat_len + 4 + len(_IEND_CHUNK)
    local.png = out = _grow(local.png, total)
    out[:33] = np.frombuffer(data, dtype=np.uint8, count=33)  # signature + IHDR chunk (CRC verified)
    out[33:41] = np.frombuffer(struct.pack(">I", idat_len) + b"IDAT", dtype=np.uint8)
    out[41:43] = (0x78, 0x01)  # zlib header: deflate, 32 KiB window, no dictionary
    o = 43
    full, rest = divmod(n_raw, _STORED_BLOCK)
    if full:
        blocks = out[o : o + full * (_STORED_BLOCK + 5)].reshape(full, _STORED_BLOCK + 5)
        blocks[:, :5] = (0x00, 0xFF, 0xFF, 0x00, 0x00)  # BTYPE=00, LEN=65535, NLEN=~LEN
        blocks[:, 5:] = raw[: full * _STORED_BLOCK].reshape(full, _STORED_BLOCK)
        o += full * (_STORED_BLOCK + 5)
    if rest:
        out[o : o + 5] = (0x00, rest & 0xFF, rest >> 8, ~rest & 0xFF, (~rest >> 8) & 0xFF)
        out[o + 5 : o + 5 + rest] = raw[full * _STORED_BLOCK : n_raw]
        o += 5 + rest
    out[o - (rest + 5 if rest else _STORED_BLOCK + 5)] = 0x01  # BFINAL on the last block
    out[o : o + 8] = 0  # Adler-32 and IDAT CRC: not checked (the source's were)
    o += 8
    out[o : o + len(_IEND_CHUNK)] = np.frombuffer(_IEND_CHUNK, dtype=np.uint8)
    return out, total


def inflate_rgb8(data: bytes, slot: str) -> tuple[np.ndarray, int, int, int] | None:
    """Inflate an 8-bit RGB/RGBA PNG's IDAT stream, still filtered, into this thread's scratch ``slot``.

    Returns ``(raw, height, width, bytes_per_pixel)`` where ``raw`` holds ``height`` scanlines of one
    filter byte plus ``width * bytes_per_pixel`` bytes (the compiled evaluator kernel unfilters and
    counts them, see ``_kernel.py``); it is overwritten by the next call with the same slot in the same thread.
    None for anything else (not 8-bit RGB/RGBA, interlaced, corrupt, CRC or Adler-32 mismatch, wrong
    size): the caller's libspng/Pillow path then decodes the file or words the error. Uses libdeflate
    when the ``deflate`` package is installed, else zlib; needs no libspng.
    """
    if not isinstance(data, bytes):
        data = bytes(data)
    if not is_rgb8_png(data):
        return None
    parsed = _parse(data)
    if parsed is None:
        return None
    (width, height, depth, color, compression, filtering, interlace), idats = parsed
    if depth != 8 or color not in (_COLOR_TRUECOLOR, _COLOR_TRUECOLOR_ALPHA) or compression or filtering or interlace:
        return None
    bpp = 3 if color == _COLOR_TRUECOLOR else 4
    n_raw = height * (1 + width * bpp)
    if width == 0 or height == 0 or width * height > _MAX_PIXELS:
        return None
    local = _LOCAL
    raw = local.slots.get(slot)
    raw = _grow(np.empty(0, dtype=np.uint8) if raw is None else raw, n_raw)
    local.slots[slot] = raw
    if len(idats) == 1:
        start, length = idats[0]
        src: bytes = data
        src_addr, src_len = _address(data) + start + 8, length
    else:
        view = memoryview(data)
        src = b"".join(view[s + 8 : s + 8 + length] for s, length in idats)
        src_addr, src_len = _address(src), len(src)
    _, deflate = _load()
    if deflate is not None and not _no_libdeflate():
        if local.decompressor is None:
            local.decompressor = _Decompressor(deflate)
        if not local.decompressor.ptr:
            return None
        got = ctypes.c_size_t(0)
        status = deflate.libdeflate_zlib_decompress(local.decompressor.ptr, src_addr, src_len, raw.ctypes.data, n_raw, ctypes.byref(got))
        if status != _LIBDEFLATE_SUCCESS or got.value != n_raw:
            return None
    else:
        try:
            if len(idats) == 1:
                start, length = idats[0]
                src = memoryview(data)[start + 8 : start + 8 + length]
            out = zlib.decompress(src)
        except zlib.error:
            return None
        if len(out) != n_raw:
            return None
        raw[:n_raw] = np.frombuffer(out, dtype=np.uint8)
    return raw, int(height), int(width), bpp


def decode_rgb8_into(data: bytes, buffer: np.ndarray | None = None, pad: int = 0) -> tuple[np.ndarray, np.ndarray] | None:
    """Decode an 8-bit RGB/RGBA PNG to an (H, W, 3) uint8 array (alpha dropped), in ``buffer`` if it fits.

    ``buffer`` is a 1-D uint8 array that the caller keeps between frames; when it has at least
    ``3*H*W + pad`` bytes the image is decoded into its start, else into a new array of that size.
    Returns ``(image, buffer_used)``: the image is a view of ``buffer_used``, to keep for the next call.
    ``pad`` spare bytes after the pixels let callers read whole 4-byte words at every pixel. Returns None
    when libspng is unavailable, the file is not an 8-bit RGB/RGBA PNG, or it is rejected (corrupt data,
    CRC mismatch...): the caller falls back to Pillow.
    """
    spng, deflate = _load()
    if not isinstance(data, bytes):
        data = bytes(data)
    if spng is None or not is_rgb8_png(data):
        return None
    parsed = _parse(data)
    if parsed is None:
        return None
    ihdr, idats = parsed
    if deflate is not None and not _no_libdeflate():
        restored = _restored_png(deflate, data, ihdr, idats)
        if restored is not None:
            png, length = restored
            return _spng_decode(spng, png.ctypes.data, length, _SPNG_CTX_IGNORE_ADLER32, _SPNG_CRC_USE, buffer, pad)
    return _spng_decode(spng, data, len(data), _SPNG_CTX_IGNORE_ADLER32, _SPNG_CRC_ERROR, buffer, pad)


__all__ = ["available", "decode_rgb8_into", "inflate_rgb8", "inflater", "is_rgb8_png"]
