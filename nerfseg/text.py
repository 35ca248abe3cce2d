"""Text that came from outside (archive member names, meta.json fields, validator messages) made safe to show.

One helper, used at every boundary where such text is stored or shown (evaluation problems, leaderboard
reasons, pages): control characters and lone surrogates are escaped and the text is cut short.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["printable", "has_control"]

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def has_control(text: str) -> bool:
    """True when ``text`` holds a control character (newline, tab, escape, C1 control, line separator)."""
    return _CONTROL.search(text) is not None


def printable(value: Any, limit: int = 200) -> str:
    """``value`` as one safe, bounded line: control characters and lone surrogates escaped, cut at ``limit``.

    Why: names come from the submitter and end up in terminals, HTML pages and JSON; a newline would forge a
    line of a report, and a lone surrogate (an undecodable byte that ``surrogateescape`` let through) cannot
    be encoded as UTF-8 at all, so the page or JSON response showing it would fail.
    """
    text = value if isinstance(value, str) else str(value)
    if len(text) > 4 * limit:
        text = text[: 4 * limit]
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    text = _CONTROL.sub(lambda m: m.group(0).encode("unicode_escape").decode("ascii"), text)
    return text if len(text) <= limit else text[: limit - 3] + "..."
