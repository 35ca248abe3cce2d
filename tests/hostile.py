"""Hostile submission files, generated small and fast, for the bomb tests and ``benchmarks/hostile_uploads.py``.

Each generator writes a file that is small on disk but would cost a naive reader a lot: a tar whose GNU
long-name or pax header declares hundreds of MB (repetitive bytes, so gzip shrinks them ~1000x), a zip whose
central directory holds millions of entries (records written directly, no data), an ``instances3d.h5`` whose
``/instances`` group holds many large gzip columns that were never written (HDF5 returns the fill value, so
the file stays tiny), a panoptic.json that yields 100k problems, a 16-bit RGB PNG and a tar member whose name
is not UTF-8. Nothing here reads /work/shared; everything is built from bytes.
"""

from __future__ import annotations

import gzip
import json
import shutil
import struct
import tarfile
import zlib
from pathlib import Path

import numpy as np

_MB = 1 << 20


def _gzip_repeat(block: bytes, times: int) -> bytes:
    """``block * times`` gzip-compressed, quickly: one gzip member compressed once and repeated
    (a file of concatenated gzip members is a valid gzip file that decompresses to the concatenation)."""
    member = gzip.compress(block, compresslevel=9)
    return member * times


def _tar_header(name: bytes, size: int, kind: bytes = b"0") -> bytes:
    """A ustar header block with a valid checksum, built by hand (names as raw bytes, any size)."""
    block = bytearray(512)
    block[: len(name[:100])] = name[:100]
    block[100:108] = b"0000644\x00"
    block[108:116] = b"0000000\x00"
    block[116:124] = b"0000000\x00"
    block[124:136] = b"%011o\x00" % size if size < 8**11 else b"\x80" + size.to_bytes(11, "big")
    block[136:148] = b"00000000000\x00"
    block[148:156] = b" " * 8
    block[156:157] = kind
    block[257:263] = b"ustar\x00"
    block[263:265] = b"00"
    block[148:156] = b"%06o\x00 " % sum(block)
    return bytes(block)


def _pad(n: int) -> bytes:
    return bytes(-n % 512)


def _member(name: bytes, data: bytes) -> bytes:
    return _tar_header(name, len(data)) + data + _pad(len(data))


def tar_with_long_header(path: Path, header_mb: int = 256, kind: str = "gnu") -> Path:
    """A .tar.gz whose first member has a GNU long name (``kind='gnu'``) or a pax path (``'pax'``) of
    ``header_mb`` MiB, followed by a small regular member. About 1/1000 of ``header_mb`` on disk."""
    chunk = b"a" * _MB
    if kind == "gnu":
        size = header_mb * _MB
        head = _tar_header(b"././@LongLink", size, b"L")
        body_len = size
    else:
        # one pax record "<len> path=<value>\n" whose value is header_mb MiB of 'a'
        value_len = header_mb * _MB
        digits = len(str(value_len + 8 + 7))
        rec_len = digits + 1 + 5 + value_len + 1
        while len(str(rec_len)) != digits:
            digits = len(str(rec_len))
            rec_len = digits + 1 + 5 + value_len + 1
        size = rec_len
        head = _tar_header(b"PaxHeader/x", size, b"x")
        body_len = rec_len
    parts = [gzip.compress(head)]
    if kind == "pax":
        parts.append(gzip.compress(f"{rec_len} path=".encode()))
        body_len -= len(f"{rec_len} path=") + 1
    parts.append(_gzip_repeat(chunk, body_len // _MB))
    tail = b"a" * (body_len % _MB) + (b"\n" if kind == "pax" else b"")
    tail += _pad(size) + _member(b"meta.json", b"{}") + bytes(1024)
    parts.append(gzip.compress(tail))
    path.write_bytes(b"".join(parts))
    return path


def tar_with_bad_utf8_name(path: Path, base: Path | None = None) -> Path:
    """A .tar.gz holding the files of ``base`` (if given) and one member whose name is not valid UTF-8."""
    raw = b""
    if base is not None:
        for p in sorted(base.rglob("*")):
            if p.is_file():
                raw += _member(p.relative_to(base).as_posix().encode(), p.read_bytes())
    raw += _member(b"tiny_000/caf\xe9\xff.bin", b"x") + bytes(1024)
    path.write_bytes(gzip.compress(raw))
    return path


def tar_bomb(path: Path, member_mb: int = 60) -> Path:
    """A .tar.gz whose one member is ``member_mb`` MiB of zeros (under the 64 MiB file limit): ~1000x."""
    size = member_mb * _MB
    parts = [gzip.compress(_member(b"meta.json", b"{}") + _tar_header(b"tiny_000/zeros.bin", size)),
             _gzip_repeat(bytes(_MB), member_mb), gzip.compress(bytes(1024))]
    path.write_bytes(b"".join(parts))
    return path


def zip_with_many_entries(path: Path, entries: int = 2_000_000) -> Path:
    """A .zip whose central directory lists ``entries`` empty members (ZIP64 end records), written directly.

    Every directory record points at one shared local header; no reader should get that far.
    """
    name = b"x"
    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 0, 0, 0, 0, 0, 0, len(name), 0) + name
    record = struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 45, 20, 0, 0, 0, 0, 0, 0, 0, len(name), 0, 0, 0, 0, 0, 0) + name
    cd_offset = len(local)
    cd_size = len(record) * entries
    z64_offset = cd_offset + cd_size
    z64 = struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, entries, entries, cd_size, cd_offset)
    locator = struct.pack("<IIQI", 0x07064B50, 0, z64_offset, 1)
    eocd = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    with open(path, "wb") as f:
        f.write(local)
        block = record * 65536
        left = entries
        while left:
            n = min(left, 65536)
            f.write(block if n == 65536 else record * n)
            left -= n
        f.write(z64 + locator + eocd)
    return path


def h5_many_columns(path: Path, grid_shape: tuple[int, int, int] = (8, 6, 5), columns: int = 48,
                    rows: int = 65535, width: int = 120) -> Path:
    """An instances3d.h5 whose /instances group has ``columns`` gzip datasets of ``rows`` x ``width`` float64
    (each just under the old 64 MiB per-column check) that were never written: a tiny file that expands to
    ``columns * rows * width * 8`` bytes when read."""
    import h5py

    with h5py.File(path, "w") as f:
        f.create_dataset("grid/instance", data=np.zeros(grid_shape, np.uint16))
        group = f.create_group("instances")
        for i in range(columns):
            group.create_dataset(f"c{i:03d}", shape=(rows, width), dtype="f8", compression="gzip",
                                 chunks=(min(rows, 4096), width), fillvalue=1.0)
        group.create_dataset("id", data=np.zeros(0, np.int64))
    return path


def panoptic_json_with_problems(path: Path, count: int = 100_000) -> Path:
    """A panoptic.json with ``count`` annotations lacking a file_name: one problem each."""
    path.write_text(json.dumps({"annotations": [{"segments_info": []}] * count}))
    return path


def png_rgb16(path: Path, width: int, height: int, value: int = 0x0102) -> Path:
    """A 16-bit-per-channel RGB PNG (Pillow cannot write one), every channel ``value``."""
    row = b"\x00" + struct.pack(">H", value) * 3 * width
    raw = row * height

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    return path


def zip_with_hidden_meta(path: Path, folder: Path, hidden_meta: dict) -> Path:
    """A .zip of ``folder`` wrapped in ``wrap/``, preceded by ``.h/meta.json`` holding ``hidden_meta``:
    the validator reads wrap/meta.json, a naive 'first meta.json in the archive' reader the hidden one."""
    import zipfile

    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(".h/meta.json", json.dumps(hidden_meta))
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                zf.write(p, "wrap/" + p.relative_to(folder).as_posix())
    return path


def copy_tree(src: Path, dst: Path) -> Path:
    return Path(shutil.copytree(src, dst))


def tar_gz_of(folder: Path, path: Path) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                tf.add(p, p.relative_to(folder).as_posix())
    return path
