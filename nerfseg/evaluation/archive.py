"""Safe extraction of submission archives (``.zip``, ``.tar``, ``.tar.gz``/``.tgz``; bz2/xz tars by content).

A submission archive comes from anyone with an upload token, so every cost it can impose is bounded by the
:class:`Limits` before it is paid:

- zip: the member count and the central directory's size are read from the end-of-central-directory record
  (and its ZIP64 form), then the directory is walked as a stream, record by record, checking each entry's
  name, extra and comment lengths, BEFORE :mod:`zipfile` builds its in-memory index of it;
- tar: headers are parsed here, one 512-byte block at a time, instead of by :mod:`tarfile`, which reads a GNU
  long-name or a pax header whole into memory whatever size it declares; an extended header over
  ``max_header_bytes`` is refused from its size field, before its payload is read;
- every member's declared size is checked against the per-file and total limits and against an expansion
  ratio (expanded bytes per archive byte) before its data is decompressed, and the bytes actually written are
  counted again (a header can lie);
- member names must be valid UTF-8 without control characters, relative, free of ``..``, and not links or
  devices; anything else is a problem naming the member, printed escaped and cut short.

Extraction is two-phase: every header is checked first (all problems are collected), and only an archive
with no problem is written, into a private temporary folder whose name carries this process's id, so that
:func:`clean_stale_extractions` can remove the folders of evaluations that were killed (and only those).

Why not :mod:`tarfile` with a filter: its header parsing is where the memory goes (the 2 GB RSS of a 0.5 MB
``.tar.gz`` with a huge pax header), before any filter is called.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import lzma
import os
import re
import shutil
import stat
import struct
import tempfile
import threading
import time
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO, Iterator

from nerfseg.errors import InputError
from nerfseg.text import has_control, printable

__all__ = [
    "Limits",
    "TEMP_PREFIX",
    "ArchiveAbort",
    "archive_kind",
    "sniff_kind",
    "extract_archive",
    "extraction_folder",
    "clean_stale_extractions",
    "member_parts",
]

#: every extraction folder is ``<tmp>/nerfseg-submission-<pid>-<random>``
TEMP_PREFIX = "nerfseg-submission-"
_BLOCK = 512
_CHUNK = 1 << 20


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class Limits:
    """Size limits for a submission; archives are checked against them before and while extracting."""

    max_total_bytes: int = 2 << 30  #: everything, expanded (2 GiB)
    max_file_bytes: int = 64 << 20  #: any single file (64 MiB)
    max_members: int = 100_000  #: archive members / files in the folder
    #: a tar GNU long-name / pax header, or a zip entry's name + extra field + comment: real ones are tiny
    max_header_bytes: int = 4096
    #: a zip's central directory (zipfile holds it in memory whole)
    max_directory_bytes: int = 32 << 20
    #: expanded bytes per archive byte past ``ratio_floor_bytes``; PNG-heavy submissions expand about 1x,
    #: JSON about 10x, while a bomb of zeros expands about 1000x
    max_expansion_ratio: int = 100
    ratio_floor_bytes: int = 8 << 20

    def __post_init__(self) -> None:
        for name in ("max_total_bytes", "max_file_bytes", "max_members", "max_header_bytes",
                     "max_directory_bytes", "max_expansion_ratio", "ratio_floor_bytes"):
            value = getattr(self, name)
            if not _is_int(value) or value <= 0:
                raise InputError(None, f"limit {name} must be a positive integer, got {value!r}")

    def expansion_allowance(self, archive_bytes: int) -> int:
        """How many bytes an archive of ``archive_bytes`` may expand to (the ratio bound and the total limit)."""
        return min(self.max_total_bytes, max(self.ratio_floor_bytes, archive_bytes * self.max_expansion_ratio))


class ArchiveAbort(Exception):
    """A hard stop while reading an archive (the rest cannot be trusted or would cost too much)."""


# ---------------------------------------------------------------------------------------------
# Names


def _show(name: str | bytes) -> str:
    """A member name for a message: quoted, escaped, at most 120 characters."""
    if isinstance(name, bytes):
        return printable(repr(name)[1:], 120)
    return printable(repr(name), 120)


def member_parts(name: str) -> tuple[list[str], str | None]:
    """Split an archive member name into path parts, or say why it may not be extracted."""
    if not name or "\x00" in name:
        return [], "empty or NUL-containing member name"
    if has_control(name):
        return [], "the name contains control characters (newlines, tabs, escapes)"
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        return [], "absolute path (members must stay inside the submission folder)"
    parts = [p for p in re.split(r"[\\/]+", name) if p not in ("", ".")]
    if ".." in parts:
        return [], "'..' in the path escapes the submission folder"
    return parts, None


def _decode_name(raw: bytes) -> tuple[str | None, str | None]:
    """(name, None) for a valid UTF-8 name, (None, why) otherwise: never a string with lone surrogates."""
    try:
        return raw.decode("utf-8"), None
    except UnicodeDecodeError:
        return None, f"member name {_show(raw)} is not valid UTF-8 (name files in UTF-8)"


# ---------------------------------------------------------------------------------------------
# Writing


class MemberWriter:
    """Writes members under ``dest`` counting the bytes actually written against the limits."""

    def __init__(self, dest: Path, limits: Limits, allowance: int | None = None):
        self.dest = Path(os.path.realpath(dest))
        self.limits = limits
        self.allowance = limits.max_total_bytes if allowance is None else allowance
        self.total = 0

    def write(self, name: str, parts: list[str], src: IO[bytes], declared: int) -> None:
        target = self.dest.joinpath(*parts)
        parent = Path(os.path.realpath(target.parent))
        if parent != self.dest and self.dest not in parent.parents:  # defence in depth: never write outside
            raise ArchiveAbort(f"member {_show(name)} would be written outside the submission folder")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            out = open(target, "xb")  # "x": a second member of the same name never overwrites the first
        except FileExistsError:
            raise ArchiveAbort(f"member {_show(name)} appears twice in the archive") from None
        except OSError as exc:
            raise ArchiveAbort(f"member {_show(name)} cannot be placed ({exc.strerror or exc})") from None
        written = 0
        with out:
            while chunk := src.read(_CHUNK):
                written += len(chunk)
                if written > declared:
                    raise ArchiveAbort(f"member {_show(name)} holds more bytes than its header declares ({declared})")
                if written > self.limits.max_file_bytes:
                    raise ArchiveAbort(f"member {_show(name)} expands past the file size limit of {self.limits.max_file_bytes} bytes")
                if self.total + written > self.limits.max_total_bytes:
                    raise ArchiveAbort(f"the archive expands past the total size limit of {self.limits.max_total_bytes} bytes")
                if self.total + written > self.allowance:
                    raise ArchiveAbort(f"the archive expands past {self.allowance} bytes "
                                       f"(at most {self.limits.max_expansion_ratio}x its size)")
                out.write(chunk)
        self.total += written


class _Plan:
    """Checks each regular member's name and declared size (phase one); violations of a size stop the scan."""

    def __init__(self, limits: Limits, allowance: int):
        self.limits, self.allowance = limits, allowance
        self.seen: set[str] = set()
        self.total = 0

    def member(self, name: str, size: int) -> tuple[list[str] | None, str | None]:
        parts, why = member_parts(name)
        if why:
            return None, why
        if not parts:
            return None, None
        key = "/".join(parts)
        if key in self.seen:
            return None, "appears twice in the archive"
        self.seen.add(key)
        limits = self.limits
        if size > limits.max_file_bytes:
            raise ArchiveAbort(f"member {_show(name)} declares {size} bytes, over the file size limit of {limits.max_file_bytes} bytes")
        self.total += size
        if self.total > limits.max_total_bytes:
            raise ArchiveAbort(f"the archive declares more than the total size limit of {limits.max_total_bytes} bytes (at member {_show(name)})")
        if self.total > self.allowance:
            raise ArchiveAbort(f"the archive declares more than {self.allowance} bytes, over {limits.max_expansion_ratio}x "
                               f"its own size (at member {_show(name)}): an archive may not expand more than that")
        return parts, None


# ---------------------------------------------------------------------------------------------
# zip


def _zip_directory(fh: BinaryIO, size: int) -> tuple[int, int, int]:
    """(member count, central directory start, central directory size) from the end-of-central-directory record."""
    tail_len = min(size, 22 + 0xFFFF + 20)
    fh.seek(size - tail_len)
    tail = fh.read(tail_len)
    pos = tail.rfind(b"PK\x05\x06")
    while pos >= 0 and pos + 22 + struct.unpack_from("<H", tail, pos + 20)[0] > len(tail):
        pos = tail.rfind(b"PK\x05\x06", 0, pos)  # a signature inside the comment: keep looking
    if pos < 0:
        raise ArchiveAbort("not a readable zip archive (no end-of-central-directory record)")
    eocd = size - tail_len + pos
    _sig, _disk, _cd_disk, _n_disk, count, cd_size, _cd_offset, _comment = struct.unpack_from("<IHHHHIIH", tail, pos)
    cd_end = eocd
    loc = pos - 20
    if loc >= 0 and tail[loc:loc + 4] == b"PK\x06\x07":  # ZIP64: the real counts are in the zip64 record
        # like zipfile: the record sits just before its locator (the locator's offset would be wrong for an
        # archive with data prepended)
        z64_offset = size - tail_len + loc - 56
        if z64_offset < 0:
            raise ArchiveAbort("not a readable zip archive (bad ZIP64 locator)")
        fh.seek(z64_offset)
        rec = fh.read(56)
        if len(rec) < 56 or rec[:4] != b"PK\x06\x06":
            raise ArchiveAbort("not a readable zip archive (bad ZIP64 end-of-central-directory record)")
        count, cd_size = struct.unpack_from("<QQ", rec, 32)
        cd_end = z64_offset
    start = cd_end - cd_size  # like zipfile: tolerant of data prepended to the archive
    if start < 0:
        raise ArchiveAbort("not a readable zip archive (the central directory lies before the file start)")
    return int(count), int(start), int(cd_size)


def _zip_precheck(path: Path, limits: Limits) -> list[str]:
    """Count and size the central directory from the file, streaming, before zipfile reads it (problems)."""
    size = path.stat().st_size
    problems: list[str] = []
    with open(path, "rb") as fh:
        count, start, cd_size = _zip_directory(fh, size)
        if count > limits.max_members:
            return [f"the archive has {count} members, over the limit of {limits.max_members}"]
        if cd_size > limits.max_directory_bytes:
            return [f"the archive's central directory is {cd_size} bytes, over the limit of {limits.max_directory_bytes} bytes"]
        fh.seek(start)
        seen = 0
        buf = b""
        consumed = 0
        while consumed < cd_size:
            need = 46 - len(buf)
            if need > 0:
                buf += fh.read(need)
            if len(buf) < 46 or buf[:4] != b"PK\x01\x02":
                break  # let zipfile name the corruption
            flags = struct.unpack_from("<H", buf, 8)[0]
            n, m, k = struct.unpack_from("<HHH", buf, 28)
            seen += 1
            if seen > limits.max_members:
                return [f"the archive has more than {limits.max_members} members (its directory says {count})"]
            if n + m + k > limits.max_header_bytes:
                name = fh.read(min(n, 120))
                problems.append(f"member {_show(name)} has a name, extra field and comment of {n + m + k} bytes, "
                                f"over the limit of {limits.max_header_bytes} bytes")
                fh.seek(n - len(name) + m + k, os.SEEK_CUR)
            else:
                name = fh.read(n)
                fh.seek(m + k, os.SEEK_CUR)
                if flags & 0x800:
                    _, why = _decode_name(name)
                    if why:
                        problems.append(why)
            consumed += 46 + n + m + k
            buf = b""
            if len(problems) > 1000:
                break
    return problems


def _zip_mode(info: zipfile.ZipInfo) -> int:
    return (info.external_attr >> 16) & 0xFFFF if info.create_system == 3 else 0


def _extract_zip(path: Path, dest: Path, limits: Limits) -> list[str]:
    try:
        problems = _zip_precheck(path, limits)
    except ArchiveAbort as exc:
        return [str(exc)]
    except (OSError, struct.error) as exc:
        return [f"not a readable zip archive ({type(exc).__name__})"]
    if problems:
        return problems
    try:
        zf = zipfile.ZipFile(path)
    except Exception as exc:  # BadZipFile, OSError, ValueError on mangled directories
        return [f"not a readable zip archive ({type(exc).__name__}: {printable(exc, 200)})"]
    plan = _Plan(limits, limits.expansion_allowance(path.stat().st_size))
    todo: list[tuple[zipfile.ZipInfo, list[str]]] = []
    with zf:
        infos = zf.infolist()
        if len(infos) > limits.max_members:
            return [f"the archive has {len(infos)} members, over the limit of {limits.max_members}"]
        try:
            for info in infos:
                name = info.filename
                mode = _zip_mode(info)
                kind = stat.S_IFMT(mode)
                if kind == stat.S_IFLNK:
                    problems.append(f"member {_show(name)} is a symbolic link (links are not allowed)")
                    continue
                if info.is_dir() or kind == stat.S_IFDIR:
                    _, why = member_parts(name)
                    if why:
                        problems.append(f"member {_show(name)}: {why}")
                    continue
                if kind not in (0, stat.S_IFREG):
                    problems.append(f"member {_show(name)} is not a regular file (mode {oct(mode)})")
                    continue
                if info.flag_bits & 0x1:
                    problems.append(f"member {_show(name)} is encrypted")
                    continue
                parts, why = plan.member(name, info.file_size)
                if why:
                    problems.append(f"member {_show(name)}: {why}")
                elif parts is not None:
                    todo.append((info, parts))
        except ArchiveAbort as exc:
            return problems + [str(exc)]
        if problems:
            return problems
        writer = MemberWriter(dest, limits, plan.allowance)
        for info, parts in todo:
            try:
                with zf.open(info) as src:
                    writer.write(info.filename, parts, src, info.file_size)
            except ArchiveAbort as exc:
                return [str(exc)]
            except Exception as exc:  # bad CRC, corrupt deflate stream, unsupported compression
                return [f"member {_show(info.filename)} cannot be extracted ({type(exc).__name__}: {printable(exc, 200)})"]
    return []


# ---------------------------------------------------------------------------------------------
# tar (a streaming header parser: no header is read into memory past max_header_bytes)


_REGULAR = (b"0", b"\x00", b"7")
_NO_DATA = (b"1", b"2", b"3", b"4", b"5", b"6")  # links, devices, folders, FIFOs carry no data
_TYPE_NAMES = {b"1": "hard link", b"2": "symbolic link", b"3": "character device", b"4": "block device",
               b"5": "folder", b"6": "FIFO", b"S": "GNU sparse file"}


def _open_stream(path: Path) -> BinaryIO:
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
        raise ArchiveAbort(f"corrupt tar archive (a header holds the number {_show(text)})") from None


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
            got = self._read(min(n, _CHUNK))
            if not got:
                raise ArchiveAbort("corrupt tar archive (unexpected end of data)")
            n -= len(got)

    def _payload(self, size: int, what: str) -> bytes:
        if size > self.limits.max_header_bytes:
            raise ArchiveAbort(f"the archive has a {what} of {size} bytes, over the limit of "
                               f"{self.limits.max_header_bytes} bytes (refused before reading it)")
        padded = size + (-size % _BLOCK)
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
            block = self._read(_BLOCK)
            if not block:
                return  # end of file without the end-of-archive blocks: tolerated, like tarfile
            if len(block) < _BLOCK:
                raise ArchiveAbort("corrupt tar archive (truncated header)")
            if block == bytes(_BLOCK):
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
                raise ArchiveAbort(f"member {_show(name)} is a GNU sparse file (not a regular file)")
            long_name, pax = None, {}
            if kind == b"\x00" and name.endswith(b"/"):
                kind = b"5"  # an old-style (pre-POSIX) folder entry, as tarfile reads it
            decoded, why = _decode_name(name)
            has_data = kind not in _NO_DATA
            self._data_left = size if has_data else 0
            self._left = size + (-size % _BLOCK) if has_data else 0
            if has_data and size > self.limits.max_file_bytes:
                raise ArchiveAbort(f"member {_show(decoded if decoded is not None else name)} declares {size} bytes, "
                                   f"over the file size limit of {self.limits.max_file_bytes} bytes")
            yield _TarEntry(index, decoded, why, name, kind, size, sparse)
            index += 1


def _tar_problem(entry: _TarEntry) -> str | None:
    """Why a tar member cannot be extracted (links, devices, sparse files, bad names), or None."""
    if entry.name is None:
        return entry.name_problem
    if entry.type in (b"1", b"2"):
        return f"member {_show(entry.name)} is a {'symbolic' if entry.type == b'2' else 'hard'} link (links are not allowed)"
    if entry.type == b"5":
        _, why = member_parts(entry.name)
        return None if why is None else f"member {_show(entry.name)}: {why}"
    if entry.type not in _REGULAR or entry.sparse:
        what = _TYPE_NAMES.get(entry.type, f"tar type {entry.type!r}")
        return f"member {_show(entry.name)} is not a regular file ({'GNU sparse file' if entry.sparse else what})"
    return None


def _extract_tar(path: Path, dest: Path, limits: Limits) -> list[str]:
    problems: list[str] = []
    allowance = limits.expansion_allowance(path.stat().st_size)
    budget = allowance + 2 * _BLOCK * (limits.max_members + 2)  # headers and padding on top of the data
    plan = _Plan(limits, allowance)
    todo: dict[int, list[str]] = {}
    members = 0
    try:
        with _open_stream(path) as stream:
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
                    problems.append(f"member {_show(entry.name)}: {why}")
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
        with _open_stream(path) as stream:
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


# ---------------------------------------------------------------------------------------------
# Entry points


def archive_kind(path: Path) -> str | None:
    """'zip' or 'tar' from the file name, or None."""
    name = path.name.lower()
    if name.endswith(".zip"):
        return "zip"
    if name.endswith((".tar.gz", ".tgz", ".tar", ".tar.bz2", ".tar.xz")):
        return "tar"
    return None


def sniff_kind(path: Path) -> str | None:
    """'zip' or 'tar' from the content (for a file without a known suffix), reading at most one header."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
        if head in (b"PK\x03\x04", b"PK\x05\x06"):
            return "zip"
        with _open_stream(path) as stream:
            block = stream.read(_BLOCK)
        return "tar" if len(block) == _BLOCK and block[257:262] == b"ustar" else None
    except (OSError, EOFError, zlib.error, lzma.LZMAError, ValueError):
        return None


def extract_archive(path: Path, dest: Path, kind: str, limits: Limits) -> list[str]:
    """Extract a zip or tar archive into the (empty) folder ``dest``; returns the problems (nothing is kept then)."""
    return (_extract_zip if kind == "zip" else _extract_tar)(Path(path), Path(dest), limits)


_ACTIVE: set[str] = set()  # extraction folders of this process in use right now (threads share the process)
_ACTIVE_LOCK = threading.Lock()


@contextlib.contextmanager
def extraction_folder() -> Iterator[Path]:
    """A private temporary folder ``nerfseg-submission-<pid>-*`` for one extraction, removed afterwards."""
    tmp = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{os.getpid()}-"))
    with _ACTIVE_LOCK:
        _ACTIVE.add(tmp.name)
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        with _ACTIVE_LOCK:
            _ACTIVE.discard(tmp.name)


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


_FOLDER_RE = re.compile(re.escape(TEMP_PREFIX) + r"(\d+)-")


def clean_stale_extractions(tmpdir: str | Path | None = None, legacy_age_s: float = 6 * 3600) -> tuple[int, int]:
    """Remove extraction folders left by killed evaluations; returns (folders removed, bytes freed).

    A folder is stale when the process whose id its name carries is gone (or is this process, which is not
    using it: a restarted container often gets the same process id back), or when it has the older name
    without a process id and was not touched for ``legacy_age_s``. Folders of other live processes (other
    workers evaluating right now) are left alone.
    """
    root = Path(tmpdir or tempfile.gettempdir())
    removed = freed = 0
    now = time.time()
    try:
        entries = list(root.iterdir())
    except OSError:
        return 0, 0
    for entry in entries:
        if not entry.name.startswith(TEMP_PREFIX):
            continue
        try:
            st = entry.lstat()
        except OSError:
            continue
        if not stat.S_ISDIR(st.st_mode):
            continue
        match = _FOLDER_RE.match(entry.name)
        if match:
            pid = int(match.group(1))
            if pid == os.getpid():
                with _ACTIVE_LOCK:
                    if entry.name in _ACTIVE:
                        continue
            elif _pid_alive(pid):
                continue
        elif now - st.st_mtime < legacy_age_s:
            continue
        size = 0
        for dirpath, _dirs, files in os.walk(entry):
            for f in files:
                with contextlib.suppress(OSError):
                    size += os.lstat(os.path.join(dirpath, f)).st_size
        shutil.rmtree(entry, ignore_errors=True)
        if not entry.exists():
            removed += 1
            freed += size
    return removed, freed
