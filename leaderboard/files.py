"""Submission files on the leaderboard side: content hashes, stored uploads, and meta.json.

Why here and not in evaluation/: the evaluator validates and scores a submission; the leaderboard only needs to
recognise the same content twice (a hash), keep an upload safely on disk (atomically, under a size limit), and
read the method's meta.json for display once the evaluator has accepted the submission.
"""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
import uuid
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from nerfseg.errors import InputError
from nerfseg.io import atomic_path, sha256_file
from nerfseg.spec import META_JSON

ARCHIVE_SUFFIXES = (".zip", ".tar.gz", ".tgz", ".tar")  # what evaluation.submission accepts
META_MAX_BYTES = 1 << 20  # a meta.json is a few hundred bytes; refuse to read a huge one


class UploadTooLarge(Exception):
    """The upload passed the size limit while it was being copied."""

    def __init__(self, limit: int):
        self.limit = limit
        super().__init__(f"upload exceeds the size limit of {limit} bytes")


def archive_suffix(filename: str | None) -> str | None:
    """``.zip``, ``.tar.gz``, ``.tgz`` or ``.tar`` (lower-cased) if ``filename`` names an accepted archive, else None."""
    if not filename:
        return None
    low = filename.lower()
    for suffix in ARCHIVE_SUFFIXES:
        if low.endswith(suffix):
            return suffix
    return None


def tree_sha256(folder: str | Path) -> str:
    """A content hash of a submission folder: sorted relative paths with each file's sha256.

    Independent of file times and of where the folder lives, so re-submitting the same predictions is
    recognised as a duplicate.
    """
    folder = Path(folder)
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        h.update(rel.encode("utf-8") + b"\0" + sha256_file(path).encode("ascii") + b"\n")
    return h.hexdigest()


def content_hash_and_size(path: str | Path) -> tuple[str, int]:
    """sha256 and size in bytes of an archive, or of every file of a folder."""
    path = Path(path)
    if path.is_dir():
        size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        return tree_sha256(path), size
    if path.is_file():
        return sha256_file(path), path.stat().st_size
    raise InputError(path, "no such submission folder or archive")


def store_upload(stream: BinaryIO, dest_dir: Path, suffix: str, max_bytes: int,
                 chunk: int = 1 << 20) -> tuple[Path, str, int]:
    """Copy an upload to ``dest_dir/<uuid><suffix>`` atomically, hashing it on the way.

    Returns (path, sha256, size). Raises ``UploadTooLarge`` past ``max_bytes``, leaving nothing behind: a file
    either is complete under its final name or does not exist.
    """
    h = hashlib.sha256()
    size = 0
    dest = dest_dir / f"{uuid.uuid4().hex}{suffix}"
    with atomic_path(dest) as tmp:
        with open(tmp, "wb") as out:
            while block := stream.read(chunk):
                size += len(block)
                if size > max_bytes:
                    raise UploadTooLarge(max_bytes)
                h.update(block)
                out.write(block)
            out.flush()
            os.fsync(out.fileno())
    return dest, h.hexdigest(), size


def _member_depth_ok(name: str) -> bool:
    parts = PurePosixPath(name).parts
    return parts[-1] == META_JSON and len(parts) <= 2 and ".." not in parts and not name.startswith("/")


def _parse_meta(data: bytes, where: str) -> dict[str, Any]:
    if len(data) > META_MAX_BYTES:
        raise InputError(where, "meta.json is larger than 1 MiB")
    try:
        meta = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(where, f"meta.json is not valid JSON ({exc})") from exc
    if not isinstance(meta, dict):
        raise InputError(where, "meta.json must hold a JSON object")
    return meta


def read_meta(path: str | Path) -> dict[str, Any] | None:
    """The submission's meta.json (at the top, or inside one top-level folder of an archive); None if absent."""
    path = Path(path)
    if path.is_dir():
        candidates = [path / META_JSON] + sorted(path.glob(f"*/{META_JSON}"))
        for c in candidates:
            if c.is_file():
                if c.stat().st_size > META_MAX_BYTES:
                    raise InputError(c, "meta.json is larger than 1 MiB")
                return _parse_meta(c.read_bytes(), str(c))
        return None
    suffix = archive_suffix(path.name)
    try:
        if suffix == ".zip":
            with zipfile.ZipFile(path) as zf:
                names = sorted((n for n in zf.namelist() if _member_depth_ok(n)), key=lambda n: n.count("/"))
                if not names:
                    return None
                info = zf.getinfo(names[0])
                if info.file_size > META_MAX_BYTES:
                    raise InputError(path, "meta.json is larger than 1 MiB", key=names[0])
                return _parse_meta(zf.read(info), f"{path}[{names[0]}]")
        if suffix in (".tar.gz", ".tgz", ".tar"):
            with tarfile.open(path, "r:*") as tf:
                best: tuple[int, tarfile.TarInfo] | None = None
                for member in tf:
                    if member.isfile() and _member_depth_ok(member.name):
                        depth = member.name.count("/")
                        if best is None or depth < best[0]:
                            best = (depth, member)
                        if depth == 0:
                            break
                if best is None:
                    return None
                if best[1].size > META_MAX_BYTES:
                    raise InputError(path, "meta.json is larger than 1 MiB", key=best[1].name)
                f = tf.extractfile(best[1])
                return None if f is None else _parse_meta(f.read(), f"{path}[{best[1].name}]")
    except (zipfile.BadZipFile, tarfile.TarError, OSError, EOFError) as exc:
        raise InputError(path, f"cannot read the archive ({exc})") from exc
    raise InputError(path, f"not a submission folder or archive ({', '.join(ARCHIVE_SUFFIXES)})")
