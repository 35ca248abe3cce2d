"""What validation reports: :class:`Problem` (one thing wrong, where), :class:`ValidationResult` and
:class:`SubmissionError`, with the caps that keep a report readable whatever a submission holds.

Problems are capped (:data:`MAX_PROBLEMS`, then a count) and every name in them is escaped, so printing a
report can never forge a line or fail to encode.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nerfseg.errors import NerfsegError
from nerfseg.text import printable

MAX_LISTED = 10  # ids listed in one message


def short_repr(value: Any, limit: int = 60) -> str:
    """repr of a user-supplied value, cut short: a message must stay readable whatever was submitted."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def ids_text(ids: Any) -> str:
    """The first :data:`MAX_LISTED` of ``ids`` in order, and how many more (a message stays one line)."""
    ids = sorted(ids)
    more = f" and {len(ids) - MAX_LISTED} more" if len(ids) > MAX_LISTED else ""
    return f"{ids[:MAX_LISTED]}{more}"


#: problems kept per submission (the rest are counted in one last problem) and the length of each message:
#: a submitter learns what to fix from the first hundred, and a status page must stay small whatever is sent
MAX_PROBLEMS = 100
MAX_MESSAGE_CHARS = 500
_MAX_WHERE_CHARS = 80


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a submission; ``scene``/``frame`` are None when the problem is wider.

    Scene and frame names come from the submission: they are stored escaped (no newline, control character
    or undecodable byte survives) and cut short, like the message, so that printing a problem can never
    forge a line or fail to encode.
    """

    scene: str | None
    frame: str | None
    message: str

    def __post_init__(self) -> None:
        if self.scene is not None:
            object.__setattr__(self, "scene", printable(self.scene, _MAX_WHERE_CHARS))
        if self.frame is not None:
            object.__setattr__(self, "frame", printable(self.frame, _MAX_WHERE_CHARS))
        object.__setattr__(self, "message", printable(self.message, MAX_MESSAGE_CHARS))

    def __str__(self) -> str:
        where = [f"scene {self.scene}"] if self.scene is not None else []
        if self.frame is not None:
            where.append(f"frame {self.frame}")
        return f"{', '.join(where) or 'submission'}: {self.message}"


def cap_problems(problems: list[Problem], limit: int = MAX_PROBLEMS) -> list[Problem]:
    """The first ``limit`` problems and one that counts the rest (a list already capped is left as it is)."""
    if len(problems) <= limit + 1:
        return list(problems)
    rest = len(problems) - limit
    return list(problems[:limit]) + [Problem(None, None, f"... and {rest} more problem(s) not listed; fix these first")]


@dataclass
class ValidationResult:
    """Outcome of :func:`validate_submission`: every problem found, and meta.json when it was readable."""

    ok: bool
    problems: list[Problem]
    meta: dict[str, Any] | None
    source: Path | None = None

    def __str__(self) -> str:
        if self.ok:
            return f"{self.source}: valid submission"
        return _problems_text(self.problems, self.source)


def _problems_text(problems: list[Problem], source: Path | str | None) -> str:
    head = f"invalid submission{f' {printable(source)}' if source is not None else ''}: {len(problems)} problem(s)"
    return "\n".join([head] + [f"  {p}" for p in problems])


class SubmissionError(NerfsegError):
    """A submission failed validation; ``problems`` lists all of them, ``str()`` one per line."""

    def __init__(self, problems: list[Problem], source: str | Path | None = None, meta: dict[str, Any] | None = None):
        self.problems = cap_problems(list(problems))
        self.source = None if source is None else Path(source)
        #: meta.json as validation read it (None when unreadable): what a leaderboard records, never a re-read
        self.meta = meta
        super().__init__(_problems_text(self.problems, self.source))
