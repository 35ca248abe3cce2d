"""How the leaderboard calls the evaluator, and how it tells a bad submission from a broken server.

The evaluator is injected (a callable with the signature of ``nerfseg.evaluation.api.evaluate_submission``) so the
store, worker and server can be tested without the full metric stack, and a deployment can plug in another
entry point by import path (``--evaluator module:function`` or ``path/to/file.py:function``).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any, Protocol

from nerfseg.errors import InputError, NerfsegError
from nerfseg.text import printable

DEFAULT_EVALUATOR = "nerfseg.evaluation.api:evaluate_submission"
EVALUATOR_SETTING = "--evaluator"  # the option a bad evaluator spec came from, named in its error


class Evaluator(Protocol):
    """``nerfseg.evaluation.api.evaluate_submission``'s signature. The report's ``"meta"`` is the meta.json that its
    validation read (the leaderboard records exactly that); a rejection raises an error whose ``meta``
    attribute, when present, is the meta.json read before the problems were found."""

    def __call__(self, data_root: str | Path, submission_path: str | Path, split: str = "test",
                 protocol: str = "nerfseg-v1", workers: int = 1) -> dict[str, Any]: ...


def load_evaluator(spec: str | None = None) -> Evaluator:
    """Import ``module:attr`` (or ``file.py:attr``); default: the standard evaluator of nerfseg/evaluation/api.py."""
    spec = spec or DEFAULT_EVALUATOR
    module_name, sep, attr = spec.rpartition(":")
    if not sep or not module_name or not attr:
        raise InputError(None, f"evaluator {spec!r} is not of the form module:function or file.py:function",
                         key=EVALUATOR_SETTING)
    if module_name.endswith(".py"):
        path = Path(module_name).resolve()
        if not path.is_file():
            raise InputError(path, "no such evaluator file", key=EVALUATOR_SETTING)
        name = f"_nerfseg_evaluator_{abs(hash(str(path)))}"
        loaded = sys.modules.get(name)
        if loaded is None:
            spec_obj = importlib.util.spec_from_file_location(name, path)
            if spec_obj is None or spec_obj.loader is None:
                raise InputError(path, "cannot load this evaluator file", key=EVALUATOR_SETTING)
            loaded = importlib.util.module_from_spec(spec_obj)
            sys.modules[name] = loaded
            spec_obj.loader.exec_module(loaded)
        module = loaded
    else:
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise InputError(None, f"cannot import the evaluator {spec!r}: {exc}", key=EVALUATOR_SETTING) from exc
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise InputError(None, f"evaluator {spec!r}: {attr!r} is not a function of {module_name}",
                         key=EVALUATOR_SETTING)
    return fn


def _submission_error_type() -> type[BaseException] | None:
    try:
        from nerfseg.evaluation.submission import SubmissionError  # the validator's error, when it is installed
    except ImportError:
        return None
    return SubmissionError


def format_problem(problem: Any) -> str:
    """One validator problem as a line: strings pass through, records become 'scene/frame: problem'."""
    if isinstance(problem, str):
        return problem
    if isinstance(problem, dict):
        where = "/".join(str(problem[k]) for k in ("scene", "frame") if problem.get(k) not in (None, ""))
        text = str(problem.get("problem") or problem.get("message") or problem)
        return f"{where}: {text}" if where else text
    if isinstance(problem, (tuple, list)) and len(problem) == 3:
        scene, frame, text = problem
        where = "/".join(str(x) for x in (scene, frame) if x not in (None, ""))
        return f"{where}: {text}" if where else str(text)
    return str(problem)


#: reasons stored per rejected submission, and characters per reason: the validator already caps its own
#: problems; this bounds what any evaluator (a plugged-in one too) can put on a status page
MAX_REASONS = 101
MAX_REASON_CHARS = 1000


def safe_reasons(reasons: list[Any]) -> list[str]:
    """Reasons as they are stored and shown: each one line, escaped (no lone surrogate, which would make every
    page showing it fail to encode), cut short, and at most :data:`MAX_REASONS` of them."""
    out = [printable(format_problem(r), MAX_REASON_CHARS) for r in reasons[:MAX_REASONS]]
    if len(reasons) > MAX_REASONS:
        out.append(f"... and {len(reasons) - MAX_REASONS} more reason(s) not listed")
    return out


def validated_meta(report: Any = None, exc: BaseException | None = None) -> dict[str, Any] | None:
    """The meta.json that the evaluator's validation read: ``report["meta"]`` after an evaluation, the
    SubmissionError's ``meta`` after a rejection, else None.

    Why never a fresh read of the archive: a second reader with its own rules (which meta.json, at which
    depth, hidden folders or not) can find another file than the one validated, and the board would show
    flags (``uses_gt_masks``) and a description that were never checked.
    """
    meta = report.get("meta") if isinstance(report, dict) else getattr(exc, "meta", None) if exc is not None else None
    return dict(meta) if isinstance(meta, dict) else None


def rejection_reasons(exc: BaseException) -> list[str] | None:
    """The reasons to show the submitter when ``exc`` means the SUBMISSION is bad (validation failed, input
    error); None when it is not the submitter's fault (a bug, a missing dataset), which the caller reports as
    an internal error instead."""
    submission_error = _submission_error_type()
    is_submission_error = submission_error is not None and isinstance(exc, submission_error)
    if is_submission_error or isinstance(exc, NerfsegError):
        problems = getattr(exc, "problems", None)
        if problems:
            return safe_reasons(list(problems))
        return safe_reasons([str(exc) or type(exc).__name__])
    return None


def internal_error_reason(exc: BaseException, ref: str) -> str:
    """What the submitter sees for a server-side failure: no paths or tracebacks, a reference for the logs."""
    return f"internal evaluation error ({type(exc).__name__}); the organisers can find it in the logs as {ref}"
