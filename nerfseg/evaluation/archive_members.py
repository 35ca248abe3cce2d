"""What both archive readers share: the :class:`Limits`, member-name rules, and the two phases of extraction
(:class:`ExtractionPlan` checks every declared name and size first, :class:`MemberWriter` counts the bytes
actually written). The readers are ``archive.py`` (zip, and the entry points) and ``archive_tar.py``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from nerfseg.errors import InputError
from nerfseg.text import has_control, printable

COPY_CHUNK = 1 << 20  # bytes copied (or skipped) at a time: bounded memory whatever a member declares


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


def show_member_name(name: str | bytes) -> str:
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


def decode_member_name(raw: bytes) -> tuple[str | None, str | None]:
    """(name, None) for a valid UTF-8 name, (None, why) otherwise: never a string with lone surrogates."""
    try:
        return raw.decode("utf-8"), None
    except UnicodeDecodeError:
        return None, f"member name {show_member_name(raw)} is not valid UTF-8 (name files in UTF-8)"


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
            raise ArchiveAbort(f"member {show_member_name(name)} would be written outside the submission folder")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            out = open(target, "xb")  # "x": a second member of the same name never overwrites the first
        except FileExistsError:
            raise ArchiveAbort(f"member {show_member_name(name)} appears twice in the archive") from None
        except OSError as exc:
            raise ArchiveAbort(f"member {show_member_name(name)} cannot be placed ({exc.strerror or exc})") from None
        written = 0
        with out:
            while chunk := src.read(COPY_CHUNK):
                written += len(chunk)
                if written > declared:
                    raise ArchiveAbort(f"member {show_member_name(name)} holds more bytes than its header declares ({declared})")
                if written > self.limits.max_file_bytes:
                    raise ArchiveAbort(f"member {show_member_name(name)} expands past the file size limit of {self.limits.max_file_bytes} bytes")
                if self.total + written > self.limits.max_total_bytes:
                    raise ArchiveAbort(f"the archive expands past the total size limit of {self.limits.max_total_bytes} bytes")
                if self.total + written > self.allowance:
                    raise ArchiveAbort(f"the archive expands past {self.allowance} bytes "
                                       f"(at most {self.limits.max_expansion_ratio}x its size)")
                out.write(chunk)
        self.total += written


class ExtractionPlan:
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
            raise ArchiveAbort(f"member {show_member_name(name)} declares {size} bytes, over the file size limit of {limits.max_file_bytes} bytes")
        self.total += size
        if self.total > limits.max_total_bytes:
            raise ArchiveAbort(f"the archive declares more than the total size limit of {limits.max_total_bytes} bytes (at member {show_member_name(name)})")
        if self.total > self.allowance:
            raise ArchiveAbort(f"the archive declares more than {self.allowance} bytes, over {limits.max_expansion_ratio}x "
                               f"its own size (at member {show_member_name(name)}): an archive may not expand more than that")
        return parts, None
