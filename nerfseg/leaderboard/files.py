"""Submission files on the leaderboard side: content hashes and stored uploads.

Why here and not in nerfseg/evaluation/: the evaluator validates and scores a submission; the leaderboard only needs to
recognise the same content twice (a hash) and keep an upload safely on disk (atomically, under a size limit).
It never reads meta.json itself: the meta shown on the board is the one the evaluator's validation read
(``nerfseg.leaderboard.evaluate.validated_meta``), so no second reader can pick another file than the one checked.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path
from typing import BinaryIO

from nerfseg.errors import InputError
from nerfseg.io import atomic_path, sha256_file

ARCHIVE_SUFFIXES = (".zip", ".tar.gz", ".tgz", ".tar")  # what nerfseg.evaluation.submission accepts


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
