"""Run folders that know what made them: per-scene input fingerprints and done-markers.

Why: ``nerfseg train`` resumes, skipping scenes whose predictions are complete. Without a record of what
produced those predictions, a re-run with another ``--prior``, ``--preset`` or ``--set`` skipped every
scene and then labelled the old predictions with the new settings (a sim-m2f run published as "prior: gt").

Every scene's work folder therefore holds two small JSON files, both written atomically:

- ``run_inputs.json`` (written before training starts): the inputs the folder's caches and checkpoints
  belong to. Only a folder started with the same inputs is resumed.
- ``predictions.done`` (written after the scene's predictions are in the submission): the same inputs, their
  fingerprint, whether any input derives from the ground truth, and the frame count.

The inputs are everything that changes the predictions: method, preset, prior (its name and a hash of its
files), the resolved method config, the benchmark's GT fingerprint (:mod:`nerfseg.identity`), the code
version and what a method adds (:meth:`nerfseg.methods.Method.fingerprint_inputs`, e.g. the NeRF-RCNN
checkpoint's hash). The code version is ``nerfseg.__version__``: bump it when a change alters predictions
(the git commit is recorded for information, but a documentation commit must not invalidate hours of
training). :func:`classify` compares the inputs with what a folder holds and says what to do.

Inside a scene's work folder a method keeps its caches through one :class:`WorkFolder`: the method config it
belongs to (``method_config.json``; another config wipes the caches), named stages that are skipped when
their outputs are there, timed and logged (per-stage seconds go into the fit summary), atomic npz/json
writes, the device and the cached fit summary. docs/architecture.md shows a method built on it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, TypeVar

import numpy as np

from nerfseg import __version__
from nerfseg.errors import InputError
from nerfseg.io import dumps_json, sha256_file, write_json_atomic, write_npz_atomic

logger = logging.getLogger(__name__)
T = TypeVar("T")

DONE_MARKER = "predictions.done"
STARTED_MARKER = "run_inputs.json"
MARKER_VERSION = 1

#: what ``classify`` answers
DONE, RESUME, FRESH, CHANGED = "done", "resume", "fresh", "changed"


def code_version() -> str:
    """The version that takes part in the fingerprint (see the module docstring for why not the commit)."""
    return __version__


def git_commit() -> str | None:
    """The checkout's commit, recorded in markers for information; None outside a git checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent, capture_output=True,
                             text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    text = out.stdout.strip()
    return text if out.returncode == 0 and len(text) == 40 else None


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON types (tuples become lists, numpy scalars numbers), as after a round trip."""
    return json.loads(dumps_json(value, indent=None))


def fingerprint(inputs: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of ``inputs`` (sorted keys, no whitespace)."""
    text = json.dumps(jsonable(dict(inputs)), sort_keys=True, separators=(",", ":"), allow_nan=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def folder_digest(folder: str | Path) -> str | None:
    """sha256 over a folder's files (relative path + content hash), None when it does not exist."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    h = hashlib.sha256()
    for p in sorted(q for q in folder.rglob("*") if q.is_file()):
        h.update(f"{p.relative_to(folder).as_posix()}\t{sha256_file(p)}\n".encode("utf-8", "surrogateescape"))
    return h.hexdigest()


def file_digest(path: str | Path | None) -> str | None:
    """sha256 of a file, None when there is no such file (an input that is absent is recorded as absent)."""
    if path is None or not Path(path).is_file():
        return None
    return sha256_file(path)


def differences(old: Mapping[str, Any], new: Mapping[str, Any], limit: int = 6) -> list[str]:
    """Human lines naming what changed between two input records (nested configs flattened to a.b.c)."""

    def flat(d: Any, prefix: str = "") -> dict[str, Any]:
        if isinstance(d, dict):
            out: dict[str, Any] = {}
            for k, v in d.items():
                out.update(flat(v, f"{prefix}{k}."))
            return out
        return {prefix[:-1]: d}

    a, b = flat(jsonable(dict(old))), flat(jsonable(dict(new)))
    lines = []
    for key in sorted(set(a) | set(b)):
        if a.get(key, "<absent>") != b.get(key, "<absent>"):
            lines.append(f"{key}: {_short(a.get(key, '<absent>'))} -> {_short(b.get(key, '<absent>'))}")
    if len(lines) > limit:
        lines = lines[:limit] + [f"... and {len(lines) - limit} more"]
    return lines


def _short(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    if isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value):
        text = repr(value[:12] + "...")
    return text if len(text) <= 80 else text[:77] + "..."


def read_marker(path: str | Path) -> dict[str, Any] | None:
    """A marker's JSON, or None when absent or unreadable (a torn or foreign file counts as no marker)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


@dataclass
class SceneState:
    """What to do with one scene's work folder, and why (the reason is shown to the user)."""

    action: str  # DONE | RESUME | FRESH | CHANGED
    reason: str = ""
    changes: list[str] = field(default_factory=list)


def classify(work: Path, scene_out: Path, inputs: Mapping[str, Any], resume: bool = True) -> SceneState:
    """Compare the current ``inputs`` with the markers of a scene's work folder.

    DONE: predictions of exactly these inputs are in the submission (skip). RESUME: an unfinished run of
    these inputs (continue from its checkpoints). FRESH: nothing to keep (train from scratch). CHANGED:
    the folder holds predictions or training state of other inputs; ``reason`` and ``changes`` say which.
    """
    digest = fingerprint(inputs)
    done = read_marker(work / DONE_MARKER)
    started = read_marker(work / STARTED_MARKER)
    if not resume:
        return SceneState(FRESH, "--no-resume: retraining")
    if done is not None:
        if done.get("fingerprint") == digest and scene_out.is_dir():
            return SceneState(DONE, "predictions complete")
        if done.get("fingerprint") == digest:
            return SceneState(RESUME, "same inputs, but the predictions are missing from the submission")
        old = done.get("inputs")
        if not isinstance(old, dict):
            return SceneState(CHANGED, "its predictions were written by an older nerfseg that did not record their inputs")
        return SceneState(CHANGED, "its predictions were made with other inputs", differences(old, inputs))
    if started is not None:
        if started.get("fingerprint") == digest:
            return SceneState(RESUME, "unfinished run of the same inputs")
        old = started.get("inputs")
        return SceneState(CHANGED, "an unfinished run of other inputs is in its work folder",
                          differences(old, inputs) if isinstance(old, dict) else [])
    if scene_out.is_dir():
        return SceneState(CHANGED, "the submission holds predictions of unknown inputs (no marker)")
    if work.is_dir() and any(work.iterdir()):
        return SceneState(FRESH, "work folder without markers (older nerfseg): training from scratch")
    return SceneState(FRESH, "new scene")


def write_started(work: Path, inputs: Mapping[str, Any]) -> None:
    """Record, before training, which inputs this work folder now belongs to (drops an old done-marker)."""
    (work / DONE_MARKER).unlink(missing_ok=True)
    write_json_atomic(work / STARTED_MARKER, {"version": MARKER_VERSION, "fingerprint": fingerprint(inputs),
                                              "inputs": jsonable(dict(inputs))})


def write_done(work: Path, inputs: Mapping[str, Any], frames: int, uses_gt_masks: bool,
               gt_sources: list[str] | None = None) -> dict[str, Any]:
    """The done-marker: written last, after the scene's predictions are in place in the submission."""
    marker = {
        "version": MARKER_VERSION,
        "fingerprint": fingerprint(inputs),
        "inputs": jsonable(dict(inputs)),
        "uses_gt_masks": bool(uses_gt_masks),
        "gt_sources": list(gt_sources or []),
        "frames": int(frames),
        "git_commit": git_commit(),
    }
    write_json_atomic(work / DONE_MARKER, marker)
    write_json_atomic(work / STARTED_MARKER, {"version": MARKER_VERSION, "fingerprint": marker["fingerprint"],
                                              "inputs": marker["inputs"]})
    return marker


# ------------------------------------------------------------------------------------------------
# a method's work folder: config check, cached stages, atomic writes
#: the method config the folder's caches belong to
METHOD_CONFIG = "method_config.json"
#: the summary of a finished fit (its presence, with the config and the test renders, means "done")
FIT_SUMMARY = "fit_summary.json"
#: the test views rendered at the end of a fit, read by ``predict``
TEST_RENDERS = "test_renders.npz"


def resolve_device(device: str) -> str:
    """``"auto"``: CUDA when torch sees one, else CPU; any other name as given (CUDA asked for but absent is
    the user's mistake, said before any work starts)."""
    import torch  # here, not at the top: the runner imports this module before any method needs torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise InputError(None, f"device {device!r} requested but torch.cuda.is_available() is False", key="device")
    return device


def config_json(config: Any) -> Any:
    """A (dataclass) config as plain JSON types, comparable with what a folder stored."""
    return jsonable(dataclasses.asdict(config) if dataclasses.is_dataclass(config) else config)


def downsample_labels(labels: np.ndarray, factor: int) -> np.ndarray:
    """Nearest (centre) sampling of an (H, W, ...) label map by an integer factor.

    Labels cannot be averaged like colours; the pixel nearest the centre of each ``factor`` x ``factor``
    block is the one whose centre the downscaled camera's ray passes through (for odd factors exactly).
    """
    if factor == 1:
        return labels
    off = factor // 2
    h, w = labels.shape[0] // factor, labels.shape[1] // factor
    return labels[off::factor, off::factor][:h, :w]


def read_npz(path: str | Path) -> dict[str, np.ndarray]:
    """All arrays of a cached npz; an unreadable one is an error naming the file (delete it to redo the stage)."""
    try:
        with np.load(path) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError) as exc:
        raise InputError(path, f"unreadable cache file ({exc})") from None


class WorkFolder:
    """One scene's work folder for one method config: what ``fit`` caches and ``predict`` reads.

    ``owned`` names the files (relative paths) that belong to the config: :meth:`open` removes them when the
    folder was made with another config or ``resume`` is off, so a cache never outlives the settings that
    made it. Files a method resumes by itself (a trainer's checkpoint) may be listed too.
    """

    def __init__(self, path: str | Path, config: Any, owned: Iterable[str] = (FIT_SUMMARY, TEST_RENDERS),
                 label: str | None = None) -> None:
        self.path = Path(path)
        self.config = config
        self.owned = tuple(dict.fromkeys((FIT_SUMMARY, TEST_RENDERS, *owned)))
        self.label = label or self.path.name
        #: seconds of each stage run by this object, in order (goes into the fit summary)
        self.seconds: dict[str, float] = {}

    # --- the config the caches belong to
    def stored_config(self) -> Any:
        """The config recorded in the folder, None when there is none or it is unreadable."""
        try:
            return json.loads((self.path / METHOD_CONFIG).read_text())
        except (OSError, ValueError):
            return None

    def same_config(self) -> bool:
        return self.stored_config() == config_json(self.config)

    def open(self, resume: bool) -> bool:
        """Prepare the folder for a fit; True when its caches (of this same config) are kept.

        With ``resume`` off or another config stored, the owned files go and this config is recorded.
        """
        self.path.mkdir(parents=True, exist_ok=True)
        if resume and self.same_config():
            return True
        if (self.path / METHOD_CONFIG).exists():
            logger.info("%s: %s", self.label, "config changed, caches removed" if resume else "not resuming, caches removed")
        self.remove(*self.owned)
        write_json_atomic(self.path / METHOD_CONFIG, config_json(self.config))
        return False

    def remove(self, *names: str) -> None:
        for name in names:
            (self.path / name).unlink(missing_ok=True)

    def has(self, *names: str) -> bool:
        return all((self.path / n).exists() for n in names)

    # --- the finished fit
    def cached_summary(self, requires: Iterable[str] = (TEST_RENDERS,)) -> dict[str, Any] | None:
        """The stored summary of a finished fit of this config; None when absent, partial or of another config."""
        if not self.has(FIT_SUMMARY, *requires) or not self.same_config():
            return None
        try:
            summary = json.loads((self.path / FIT_SUMMARY).read_text())
        except (OSError, ValueError):
            return None  # a torn or foreign file: the fit runs again
        return summary if isinstance(summary, dict) else None

    def write_summary(self, summary: Mapping[str, Any]) -> dict[str, Any]:
        out = dict(summary)
        write_json_atomic(self.path / FIT_SUMMARY, out)
        return out

    # --- files
    def write_npz(self, name: str, arrays: Mapping[str, np.ndarray]) -> None:
        write_npz_atomic(self.path / name, arrays)

    def read_npz(self, name: str) -> dict[str, np.ndarray]:
        return read_npz(self.path / name)

    def write_json(self, name: str, data: Any) -> None:
        write_json_atomic(self.path / name, data)

    # --- stages
    def stage(self, name: str, run: Callable[[], T], outputs: Iterable[str] = (), load: Callable[[], T] | None = None) -> T:
        """Run the named stage, timed and logged, or ``load()`` its result when all its ``outputs`` exist.

        Outputs present in the folder belong to this config (:meth:`open` removed those of another), so a
        killed fit resumes at the stage it was in. The seconds land in :attr:`seconds` under ``name``.
        """
        outputs = tuple(outputs)
        cached = load is not None and bool(outputs) and self.has(*outputs)
        logger.debug("%s: %s %s", self.label, name, "loading its cache" if cached else "started")
        t0 = time.perf_counter()
        result = load() if cached and load is not None else run()
        self.seconds[name] = time.perf_counter() - t0
        logger.info("%s: %s %s in %.1f s", self.label, name, "loaded from cache" if cached else "done", self.seconds[name])
        return result
