"""The tar reader of submission archives (plain, gzip, bzip2, xz): a streaming header parser of our own.

No header is read into memory past ``max_header_bytes`` (:mod:`tarfile` reads a GNU long-name or pax header
whole, whatever size it declares); see ``archive.py`` for the whole defence.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, BinaryIO, Iterator

from nerfseg.evaluation.archive_members import COPY_CHUNK, ArchiveAbort, ExtractionPlan, Limits, MemberWriter, decode_member_name, member_parts
from nerfseg.evaluation.archive_members import show_member_name
from nerfseg.text import printable

TAR_BLOCK = 512


_REGULAR = (b"0", b"\x00", b"7")
_NO_DATA = (b"1", b"2", b"3", b"4", b"5", b"6")  # links, devices, folders, FIFOs carry no data
_TYPE_NAMES = {b"1": "hard link", b"2": "symbolic link", b"3": "character device", b"4": "block device",
               b"5": "folder", b"6": "FIFO", b"S": "GNU sparse file"}


def open_tar_stream(path: Path) -> BinaryIO:
    """The decompressed tar stream (gzip, bzip2, xz or none, by the file's magic bytes)."""
    with open(path, "rb") as fh:
        magic = fh.read(6)
    if magic[:2] == b"\x1f\x8b":
        return gzip.open(path, "rb")  # type: ignore[return-value]
    if magic[:3] == b"BZh":
        return bz2.open(path, "rb")  # type: ignore[return-value]
    if magic == b"\xfd7zXZ\x00":
        return lzma.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")


def _number(field: bytes) -> int:
    """A tar numeric field: octal text, or GNU base-256 (high bit set)."""
    if field and field[0] & 0x80:
        value = int.from_bytes(field[1:], "big")
        return -value if field[0] & 0x40 else value
    text = field.split(b"\x00", 1)[0].strip(b" ")
    if not text:
        return 0
    try:
        return int(text, 8)
    except ValueError:
        raise ArchiveAbort(f"corrupt tar archive (a header holds the number {show_member_name(text)})") from None


def _pax_records(data: bytes) -> dict[bytes, bytes]:
    """Parse pax extended-header records ``"<len> <key>=<value>\\n"`` (the header is already size-checked)."""
    out: dict[bytes, bytes] = {}
    pos = 0
    while pos < len(data):
        if data[pos:].strip(b"\x00") == b"":
            break
        space = data.find(b" ", pos)
        try:
            length = int(data[pos:space])
        except ValueError:
            raise ArchiveAbort("corrupt tar archive (malformed pax header)") from None
        if space < 0 or length <= 0 or pos + length > len(data):
            raise ArchiveAbort("corrupt tar archive (malformed pax header)")
        record = data[space + 1:pos + length]
        if not record.endswith(b"\n") or b"=" not in record:
            raise ArchiveAbort("corrupt tar archive (malformed pax header)")
        key, _, value = record[:-1].partition(b"=")
        out[key] = value
        pos += length
    return out


@dataclass
class _TarEntry:
    """One member as its headers describe it; ``name`` is None when ``name_problem`` says why."""

    index: int
    name: str | None
    name_problem: str | None
    raw_name: bytes
    type: bytes
    size: int
    sparse: bool


class _TarReader:
    """Iterates a tar stream's members; the consumer may read a member's data through :meth:`data`."""

    def __init__(self, stream: BinaryIO, limits: Limits, budget: int):
        self.stream, self.limits = stream, limits
        self.budget = budget  # decompressed bytes this pass may consume (headers, padding and data)
        self.pos = 0
        self._left = 0  # data (plus padding) of the current member not yet consumed
        self._data_left = 0

    def _read(self, n: int) -> bytes:
        if self.pos + n > self.budget:
            raise ArchiveAbort(f"the archive expands past {self.budget} bytes (at most "
                               f"{self.limits.max_expansion_ratio}x its size, {self.limits.max_total_bytes} in all)")
        data = self.stream.read(n)
        self.pos += len(data)
        return data

    def _skip(self, n: int) -> None:
        while n > 0:
            got = self._read(min(n, COPY_CHUNK))
            if not got:
                raise ArchiveAbort("corrupt tar archive (unexpected end of data)")
            n -= len(got)

    def _payload(self, size: int, what: str) -> bytes:
        if size > self.limits.max_header_bytes:
            raise ArchiveAbort(f"the archive has a {what} of {size} bytes, over the limit of "
                               f"{self.limits.max_header_bytes} bytes (refused before reading it)")
        padded = size + (-size % TAR_BLOCK)
        data = self._read(padded)
        if len(data) < padded:
            raise ArchiveAbort("corrupt tar archive (unexpected end of data)")
        return data[:size]

    def data(self) -> IO[bytes]:
        """The current member's data as a file object bounded to its declared size."""
        reader = self

        class _Data:
            def read(self, n: int = -1) -> bytes:
                if reader._data_left <= 0:
                    return b""
                want = reader._data_left if n is None or n < 0 else min(n, reader._data_left)
                got = reader._read(want)
                if not got:
                    raise ArchiveAbort("corrupt tar archive (unexpected end of data)")
                reader._data_left -= len(got)
                reader._left -= len(got)
                return got

        return _Data()  # type: ignore[return-value]

    def __iter__(self) -> Iterator[_TarEntry]:
        index = 0
        long_name: bytes | None = None
        pax: dict[bytes, bytes] = {}
        headers = 0
        while True:
            if self._left:
                self._skip(self._left)
                self._left = self._data_left = 0
            block = self._read(TAR_BLOCK)
            if not block:
                return  # end of file without the end-of-archive blocks: tolerated, like tarfile
            if len(block) < TAR_BLOCK:
                raise ArchiveAbort("corrupt tar archive (truncated header)")
            if block == bytes(TAR_BLOCK):
                return
            headers += 1
            if headers > 3 * self.limits.max_members + 3:  # a member may have a pax and GNU headers
                raise ArchiveAbort(f"the archive has more than {self.limits.max_members} members")
            stored = _number(block[148:156])
            unsigned = sum(block[:148]) + 8 * 32 + sum(block[156:])
            signed = sum(struct.unpack("148b", block[:148])) + 8 * 32 + sum(struct.unpack("356b", block[156:]))
            if stored not in (unsigned, signed):
                raise ArchiveAbort("corrupt tar archive (bad header checksum)")
            kind = block[156:157]
            size = _number(block[124:136])
            if size < 0:
                raise ArchiveAbort("corrupt tar archive (negative member size)")
            if kind in (b"L", b"K"):
                value = self._payload(size, "GNU long-name header").split(b"\x00", 1)[0]
                if kind == b"L":
                    long_name = value
                continue
            if kind in (b"x", b"X", b"g"):
                records = _pax_records(self._payload(size, "pax extended header"))
                if kind != b"g":
                    pax.update(records)
                continue
            name = block[:100].split(b"\x00", 1)[0]
            if block[257:262] == b"ustar":
                prefix = block[345:500].split(b"\x00", 1)[0]
                if prefix:
                    name = prefix + b"/" + name
            if long_name is not None:
                name = long_name
            if b"path" in pax:
                name = pax[b"path"]
            if b"size" in pax:
                try:
                    size = int(pax[b"size"])
                except ValueError:
                    raise ArchiveAbort("corrupt tar archive (pax size is not a number)") from None
            sparse = kind == b"S" or any(k.startswith(b"GNU.sparse.") for k in pax)
            if kind == b"S" and block[482]:  # old GNU sparse map continued in extension blocks: stop here
                raise ArchiveAbort(f"member {show_member_name(name)} is a GNU sparse file (not a regular file)")
            long_name, pax = None, {}
            if kind == b"\x00" and name.endswith(b"/"):
                kind = b"5"  # an old-style (pre-POSIX) folder entry, as tarfile reads it
            decoded, why = decode_member_name(name)
            has_data = kind not in _NO_DATA
            self._data_left = size if has_data else 0
            self._left = size + (-size % TAR_BLOCK) if has_data else 0
            if has_data and size > self.limits.max_file_bytes:
                raise ArchiveAbort(f"member {show_member_name(decoded if decoded is not None else name)} declares {size} bytes, "
                                   f"over the file size limit of {self.limits.max_file_bytes} bytes")
            yield _TarEntry(index, decoded, why, name, kind, size, sparse)
            index += 1


def _tar_problem(entry: _TarEntry) -> str | None:
    """Why a tar member cannot be extracted (links, devices, sparse files, bad names), or None."""
    if entry.name is None:
        return entry.name_problem
    if entry.type in (b"1", b"2"):
        return f"member {show_member_name(entry.name)} is a {'symbolic' if entry.type == b'2' else 'hard'} link (links are not allowed)"
    if entry.type == b"5":
        _, why = member_parts(entry.name)
        return None if why is None else f"member {show_member_name(entry.name)}: {why}"
    if entry.type not in _REGULAR or entry.sparse:
        what = _TYPE_NAMES.get(entry.type, f"tar type {entry.type!r}")
        return f"member {show_member_name(entry.name)} is not a regular file ({'GNU sparse file' if entry.sparse else what})"
    return None


def extract_tar(path: Path, dest: Path, limits: Limits) -> list[str]:
    problems: list[str] = []
    allowance = limits.expansion_allowance(path.stat().st_size)
    budget = allowance + 2 * TAR_BLOCK * (limits.max_members + 2)  # headers and padding on top of the data
    plan = ExtractionPlan(limits, allowance)
    todo: dict[int, list[str]] = {}
    members = 0
    try:
        with open_tar_stream(path) as stream:
            for entry in _TarReader(stream, limits, budget):
                members += 1
                if members > limits.max_members:
                    raise ArchiveAbort(f"the archive has more than {limits.max_members} members")
                why = _tar_problem(entry)
                if why:
                    problems.append(why)
                    if len(problems) > 1000:
                        break
                    continue
                if entry.type == b"5":
                    continue
                assert entry.name is not None
                parts, why = plan.member(entry.name, entry.size)
                if why:
                    problems.append(f"member {show_member_name(entry.name)}: {why}")
                elif parts is not None:
                    todo[entry.index] = parts
    except ArchiveAbort as exc:
        return problems + [str(exc)]
    except (OSError, EOFError, zlib.error, lzma.LZMAError, ValueError) as exc:  # not gzip, truncated or corrupt stream
        return problems + [f"not a readable tar archive ({type(exc).__name__}: {printable(exc, 200)})"]
    if problems:
        return problems
    if members == 0:
        return ["not a readable tar archive (no member found)"]
    writer = MemberWriter(dest, limits, allowance)
    try:
        with open_tar_stream(path) as stream:
            reader = _TarReader(stream, limits, budget)
            for entry in reader:
                parts = todo.get(entry.index)
                if parts is not None:
                    assert entry.name is not None
                    writer.write(entry.name, parts, reader.data(), entry.size)
    except ArchiveAbort as exc:
        return [str(exc)]
    except (OSError, EOFError, zlib.error, lzma.LZMAError, ValueError) as exc:
        return [f"corrupt tar archive ({type(exc).__name__}: {printable(exc, 200)})"]
    return []
