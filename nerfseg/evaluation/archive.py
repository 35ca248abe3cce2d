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

This module holds the zip reader and the entry points; the limits, name rules and the two extraction phases
are in ``archive_members.py``, the tar reader in ``archive_tar.py``.

Why not :mod:`tarfile` with a filter: its header parsing is where the memory goes (the 2 GB RSS of a 0.5 MB
``.tar.gz`` with a huge pax header), before any filter is called.
"""

from __future__ import annotations

import contextlib
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
from pathlib import Path
from typing import BinaryIO, Iterator

from nerfseg.evaluation.archive_members import ArchiveAbort, ExtractionPlan, Limits, MemberWriter, decode_member_name, member_parts, show_member_name
from nerfseg.evaluation.archive_tar import TAR_BLOCK, extract_tar, open_tar_stream
from nerfseg.text import printable

__all__ = [
    "Limits",
    "TEMP_PREFIX",
    "ArchiveAbort",
    "MemberWriter",
    "archive_kind",
    "sniff_kind",
    "extract_archive",
    "extraction_folder",
    "clean_stale_extractions",
    "member_parts",
]

#: every extraction folder is ``<tmp>/nerfseg-submission-<pid>-<random>``
TEMP_PREFIX = "nerfseg-submission-"


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
                problems.append(f"member {show_member_name(name)} has a name, extra field and comment of {n + m + k} bytes, "
                                f"over the limit of {limits.max_header_bytes} bytes")
                fh.seek(n - len(name) + m + k, os.SEEK_CUR)
            else:
                name = fh.read(n)
                fh.seek(m + k, os.SEEK_CUR)
                if flags & 0x800:
                    _, why = decode_member_name(name)
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
    plan = ExtractionPlan(limits, limits.expansion_allowance(path.stat().st_size))
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
                    problems.append(f"member {show_member_name(name)} is a symbolic link (links are not allowed)")
                    continue
                if info.is_dir() or kind == stat.S_IFDIR:
                    _, why = member_parts(name)
                    if why:
                        problems.append(f"member {show_member_name(name)}: {why}")
                    continue
                if kind not in (0, stat.S_IFREG):
                    problems.append(f"member {show_member_name(name)} is not a regular file (mode {oct(mode)})")
                    continue
                if info.flag_bits & 0x1:
                    problems.append(f"member {show_member_name(name)} is encrypted")
                    continue
                parts, why = plan.member(name, info.file_size)
                if why:
                    problems.append(f"member {show_member_name(name)}: {why}")
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
                return [f"member {show_member_name(info.filename)} cannot be extracted ({type(exc).__name__}: {printable(exc, 200)})"]
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
        with open_tar_stream(path) as stream:
            block = stream.read(TAR_BLOCK)
        return "tar" if len(block) == TAR_BLOCK and block[257:262] == b"ustar" else None
    except (OSError, EOFError, zlib.error, lzma.LZMAError, ValueError):
        return None


def extract_archive(path: Path, dest: Path, kind: str, limits: Limits) -> list[str]:
    """Extract a zip or tar archive into the (empty) folder ``dest``; returns the problems (nothing is kept then)."""
    return (_extract_zip if kind == "zip" else extract_tar)(Path(path), Path(dest), limits)


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
