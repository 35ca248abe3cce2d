"""Errors that name the file and the problem, so a user can fix their input without a debugger."""

from __future__ import annotations

from pathlib import Path


class NerfsegError(Exception):
    """Base class of every error nerfseg raises on purpose (bad input, not a bug).

    The CLI turns these into a one-line message and exit code 2 instead of a traceback.
    """


class InputError(NerfsegError, ValueError):
    """A file (or a key inside it) is missing, malformed or inconsistent with the spec."""

    def __init__(self, path: str | Path | None, problem: str, key: str | None = None):
        self.path = None if path is None else Path(path)
        self.problem = problem
        self.key = key
        where = str(self.path) if self.path is not None else "<input>"
        if key:
            where += f" [{key}]"
        super().__init__(f"{where}: {problem}")

    def __reduce__(self):  # picklable, so pool workers can send it back to the parent unchanged
        return (type(self), (self.path, self.problem, self.key))


class UnknownCategoryError(InputError):
    """A 3D-FUTURE (category, super-category) pair is not in the class table: never dropped silently."""
