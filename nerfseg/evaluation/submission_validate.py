"""Strict validation of a submission against a built benchmark (SPEC section 4): every problem, in one round.

A leaderboard must never record half of a broken submission, and a submitter must learn every problem at
once, so validation collects ALL problems (each naming scene, frame and problem) instead of stopping at the
first. Archives are extracted by :mod:`nerfseg.evaluation.archive` (links, devices, escapes and size limits
refused before anything is written); the files are read by :mod:`nerfseg.evaluation.submission_files`.
"""

from __future__ import annotations

import contextlib
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from nerfseg import spec
from nerfseg.errors import InputError
from nerfseg.evaluation import archive
from nerfseg.evaluation.archive import Limits
from nerfseg.evaluation.gt import gt3d_grid_shape
from nerfseg.evaluation.submission_files import parse_panoptic_json, parse_segments, read_instances3d, read_prediction_png, read_submission_json
from nerfseg.evaluation.submission_problems import Problem, SubmissionError, ValidationResult, cap_problems, ids_text, short_repr
from nerfseg.text import has_control, printable

#: meta.json keys that must be present, and their types
META_REQUIRED: dict[str, type] = {"method": str, "uses_gt_masks": bool, "spec_version": str}
#: optional meta.json keys that must be strings when given
META_OPTIONAL_STR = ("description", "url", "paper", "code")
_SCENE_ENTRIES = {spec.PANOPTIC_DIR, spec.PANOPTIC_JSON, spec.INSTANCES3D_H5}


def is_ignored_name(name: str) -> bool:
    """Hidden files and macOS archive debris are skipped, not reported: they carry no prediction."""
    return name.startswith(".") or name in ("__MACOSX", "Thumbs.db", "desktop.ini")


def _find_root(folder: Path) -> Path:
    """The folder holding meta.json: the top level, or the single folder an archive tool wrapped it in.

    This is the only rule for where meta.json is: validation reads it here, and the leaderboard records the
    meta that validation read (never a second search through the archive, which might find another one).
    """
    if (folder / spec.META_JSON).exists():
        return folder
    entries = [e for e in folder.iterdir() if not is_ignored_name(e.name)]
    if len(entries) == 1 and entries[0].is_dir() and not entries[0].is_symlink() and (entries[0] / spec.META_JSON).is_file():
        return entries[0]
    return folder


@contextlib.contextmanager
def materialise(path: str | Path, limits: Limits) -> Iterator[tuple[Path | None, list[Problem]]]:
    """Yield (submission root folder or None, archive problems); an archive lives in a temp dir removed afterwards."""
    path = Path(path)
    if path.is_dir():
        yield _find_root(path), []
        return
    if not path.exists():
        yield None, [Problem(None, None, f"{printable(path)} does not exist")]
        return
    if not path.is_file():  # a FIFO or a device would block or never end
        yield None, [Problem(None, None, f"{printable(path)} is neither a folder nor a regular file")]
        return
    # a name without a known suffix: trust the content's magic, not the name
    kind = archive.archive_kind(path) or archive.sniff_kind(path)
    if kind is None:
        yield None, [Problem(None, None, f"{printable(path.name)} is neither a folder, a .zip nor a .tar.gz")]
        return
    size = path.stat().st_size
    if size > limits.max_total_bytes:
        yield None, [Problem(None, None, f"the archive is {size} bytes, over the total size limit of {limits.max_total_bytes} bytes")]
        return
    with archive.extraction_folder() as tmp:
        found = archive.extract_archive(path, tmp, kind, limits)
        problems = cap_problems([Problem(None, None, msg) for msg in found])
        yield (None if problems else _find_root(tmp)), problems


def _where(rel: Path) -> tuple[str | None, str | None]:
    """(scene, frame) a file inside the submission belongs to, for messages."""
    parts = rel.parts
    scene = parts[0] if len(parts) > 1 else None
    frame = Path(parts[2]).stem if len(parts) == 3 and parts[1] == spec.PANOPTIC_DIR else None
    return scene, frame


def _scan_files(root: Path, limits: Limits) -> tuple[list[Problem], set[Path]]:
    """Links, special files and size limits over the whole folder; returns the files too big to open."""
    problems: list[Problem] = []
    oversize: set[Path] = set()
    total = count = 0
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in sorted(dirnames + filenames):
            p = Path(dirpath) / name
            rel = p.relative_to(root)
            scene, frame = _where(rel)
            count += 1
            if count > limits.max_members:
                problems.append(Problem(None, None, f"more than {limits.max_members} files"))
                return problems, oversize
            st = p.lstat()
            if stat.S_ISLNK(st.st_mode):
                problems.append(Problem(scene, frame, f"{rel} is a symbolic link (links are not allowed)"))
                oversize.add(p)  # never follow it
            elif stat.S_ISDIR(st.st_mode):
                continue
            elif not stat.S_ISREG(st.st_mode):
                problems.append(Problem(scene, frame, f"{rel} is not a regular file"))
                oversize.add(p)
            else:
                total += st.st_size
                if st.st_size > limits.max_file_bytes:
                    problems.append(Problem(scene, frame, f"{rel} is {st.st_size} bytes, over the file size limit of {limits.max_file_bytes} bytes"))
                    oversize.add(p)
        dirnames[:] = [d for d in dirnames if not (Path(dirpath) / d).is_symlink()]
    if total > limits.max_total_bytes:
        problems.append(Problem(None, None, f"the submission holds {total} bytes, over the total size limit of {limits.max_total_bytes} bytes"))
    return problems, oversize


def check_meta(root: Path) -> tuple[dict[str, Any] | None, list[Problem]]:
    """meta.json of the submission at ``root`` (None when unreadable) and what is wrong with it."""
    path = root / spec.META_JSON
    if not path.is_file():
        return None, [Problem(None, None, "meta.json is missing")]
    meta, why = read_submission_json(path)
    if why is not None:
        return None, [Problem(None, None, f"meta.json: {why}")]
    if not isinstance(meta, dict):
        return None, [Problem(None, None, "meta.json must hold a JSON object")]
    bad: list[str] = []
    method = meta.get("method")
    if not isinstance(method, str) or not method.strip():
        bad.append("'method' (the method name) must be a non-empty string")
    if not isinstance(meta.get("uses_gt_masks"), bool):
        bad.append("'uses_gt_masks' must be true or false")
    version = meta.get("spec_version")
    if version is None:
        bad.append(f"'spec_version' is missing (this benchmark is spec version {spec.SPEC_VERSION!r})")
    elif isinstance(version, bool) or not isinstance(version, (str, int)) or str(version) != spec.SPEC_VERSION:
        bad.append(f"'spec_version' is {short_repr(version)}, this benchmark is spec version {spec.SPEC_VERSION!r}")
    for key in META_OPTIONAL_STR:
        if key in meta and meta[key] is not None and not isinstance(meta[key], str):
            bad.append(f"'{key}' must be a string")
    if "prior" in meta and meta["prior"] is not None and not isinstance(meta["prior"], str):
        bad.append("'prior' must be a string or null")
    if "semantic_only" in meta and not isinstance(meta["semantic_only"], bool):
        bad.append("'semantic_only' must be true or false")
    # Text that a leaderboard stores and shows: a JSON "\udcff" escape decodes to a lone surrogate, which no
    # database or page can encode; a method name is one line.
    for key in ("method", "prior", *META_OPTIONAL_STR):
        value = meta.get(key)
        if not isinstance(value, str):
            continue
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            bad.append(f"'{key}' is not valid text (it holds a lone surrogate escape such as \\udcff)")
            continue
        if key in ("method", "prior") and has_control(value):
            bad.append(f"'{key}' must be one line of printable text (got {short_repr(value)})")
    return meta, [Problem(None, None, f"meta.json: {b}") for b in bad]


@dataclass
class SceneCheck:
    """What validation learnt about one scene, kept so that reading it later is cheap."""

    expected_size: tuple[int, int] | None = None
    annotations: dict[str, dict[str, Any]] = field(default_factory=dict)


def _validate_scene(root: Path, scene: str, data_root: Path, limits: Limits, oversize: set[Path], checks: dict[str, SceneCheck]) -> list[Problem]:
    """Every problem of one scene folder: its entries, panoptic.json, each test view, instances3d.h5."""
    sub = root / scene
    info = spec.load_scene_info(spec.scene_dir(data_root, scene))  # a broken benchmark raises InputError
    size = (info.width, info.height)
    check = checks.setdefault(scene, SceneCheck(expected_size=size))
    expected = [f.name for f in info.frames_in("test")]
    problems, pngs = _scene_entries(sub, scene)
    json_problems, json_ok = _scene_annotations(sub, scene, oversize, check)
    problems += json_problems
    annotations = check.annotations

    expected_set = set(expected)
    for name in sorted(set(pngs) - expected_set):
        problems.append(Problem(scene, name, "extra frame: panoptic/ has a PNG for a view that is not a test view of this scene"))
    if json_ok:
        for name in sorted(set(annotations) - expected_set):
            problems.append(Problem(scene, name, "extra frame: panoptic.json annotates a view that is not a test view of this scene"))
    for name in expected:
        problems += _check_view(scene, name, pngs.get(name), annotations.get(name), json_ok, size, oversize)

    h5_path = sub / spec.INSTANCES3D_H5
    if h5_path.exists() and h5_path not in oversize:
        gt_shape = gt3d_grid_shape(spec.scene_dir(data_root, scene))
        _, h5_problems = read_instances3d(h5_path, gt_shape)
        problems += [Problem(scene, None, msg) for msg in h5_problems]
    return problems


def _scene_entries(sub: Path, scene: str) -> tuple[list[Problem], dict[str, Path]]:
    """Unexpected entries of a scene folder, and its prediction PNGs by frame stem."""
    problems: list[Problem] = []
    for entry in sorted(sub.iterdir()):
        if entry.name not in _SCENE_ENTRIES and not is_ignored_name(entry.name):
            problems.append(Problem(scene, None, f"unexpected entry {entry.name!r} (a scene holds panoptic/, panoptic.json, instances3d.h5)"))
    pngs: dict[str, Path] = {}
    pan_dir = sub / spec.PANOPTIC_DIR
    if not pan_dir.is_dir() or pan_dir.is_symlink():
        problems.append(Problem(scene, None, "panoptic/ folder is missing"))
        return problems, pngs
    for entry in sorted(pan_dir.iterdir()):
        if is_ignored_name(entry.name):
            continue
        if entry.suffix.lower() != ".png" or not entry.is_file():
            problems.append(Problem(scene, entry.stem, f"unexpected entry panoptic/{entry.name} (frames are <frame>.png files)"))
        else:
            pngs[entry.stem] = entry
    return problems, pngs


def _scene_annotations(sub: Path, scene: str, oversize: set[Path], check: SceneCheck) -> tuple[list[Problem], bool]:
    """Parse the scene's panoptic.json into ``check.annotations``; (problems, whether the file as a whole is usable)."""
    check.annotations = {}
    json_path = sub / spec.PANOPTIC_JSON
    if not json_path.is_file():
        return [Problem(scene, None, "panoptic.json is missing")], False
    if json_path in oversize:
        return [], False  # already reported as too big
    check.annotations, json_problems = parse_panoptic_json(json_path)
    problems = [Problem(scene, frame, msg) for frame, msg in json_problems]
    return problems, not any(frame is None for frame, _ in json_problems)


def _check_view(
    scene: str, name: str, png: Path | None, ann: dict[str, Any] | None, json_ok: bool, size: tuple[int, int], oversize: set[Path]
) -> list[Problem]:
    """One expected test view: its PNG and annotation exist, its segments parse, and both list the same ids."""
    problems: list[Problem] = []
    if png is None:
        problems.append(Problem(scene, name, f"missing frame: panoptic/{name}.png is not in the submission"))
    if json_ok and ann is None:
        problems.append(Problem(scene, name, "missing frame: panoptic.json has no annotation for this test view"))
    segments: dict[int, dict[str, Any]] | None = None
    if ann is not None:
        segments, seg_problems = parse_segments(ann)
        problems += [Problem(scene, name, msg) for msg in seg_problems]
    if png is None or png in oversize:
        return problems
    try:
        ids = read_prediction_png(png, size)
    except InputError as exc:
        return problems + [Problem(scene, name, f"panoptic/{name}.png: {exc.problem}")]
    if segments is None:
        return problems
    present = set(np.unique(ids).tolist()) - {spec.VOID_ID}
    listed = set(segments)
    if present - listed:
        problems.append(Problem(scene, name, f"ids in the PNG but not in panoptic.json: {ids_text(present - listed)}"))
    if listed - present:
        problems.append(Problem(scene, name, f"ids in panoptic.json but not in the PNG: {ids_text(listed - present)}"))
    return problems


def validate_root(root: Path, data_root: Path, split: str, limits: Limits, checks: dict[str, SceneCheck]) -> tuple[list[Problem], dict[str, Any] | None]:
    """Every problem of the extracted submission at ``root`` and its meta.json; fills ``checks`` per scene."""
    problems, oversize = _scan_files(root, limits)
    meta, meta_problems = check_meta(root) if (root / spec.META_JSON) not in oversize else (None, [])
    problems = meta_problems + problems
    expected = spec.scenes_in_split(data_root, split)
    present: list[str] = []
    for entry in sorted(root.iterdir()):
        if entry.name == spec.META_JSON or is_ignored_name(entry.name):
            continue
        if entry.is_dir() and not entry.is_symlink():
            present.append(entry.name)
        elif not entry.is_symlink():
            problems.append(Problem(None, None, f"unexpected file {entry.name!r} at the top level (expected meta.json and one folder per scene)"))
    for scene in expected:
        if scene not in present:
            problems.append(Problem(scene, None, f"missing scene: {scene} is in the {split!r} split of the benchmark"))
    for scene in present:
        if scene not in expected:
            problems.append(Problem(scene, None, f"extra scene: not in the {split!r} split of the benchmark"))
    for scene in expected:
        if scene in present:
            problems += _validate_scene(root, scene, data_root, limits, oversize, checks)
    return problems, meta


def validate_submission(path: str | Path, data_root: str | Path, split: str = "test", limits: Limits = Limits()) -> ValidationResult:
    """Check a submission (folder, .zip or .tar.gz) against the benchmark at ``data_root``.

    ``split`` is the SCENE split (train/val/test of benchmark.json); inside each scene only the test
    views are expected. Every problem is reported; nothing is written except a temporary extraction
    folder that is removed before returning. Problems of the benchmark itself raise InputError.
    """
    path = Path(path)
    with materialise(path, limits) as (root, problems):
        if root is None:
            return ValidationResult(False, problems, None, path)
        found, meta = validate_root(root, Path(data_root), split, limits, {})
    return ValidationResult(not found, cap_problems(found), meta, path)


def require_valid(path: str | Path, data_root: str | Path, split: str = "test", limits: Limits = Limits()) -> ValidationResult:
    """:func:`validate_submission`, raising :class:`SubmissionError` (all problems) when it is not valid."""
    result = validate_submission(path, data_root, split, limits)
    if not result.ok:
        raise SubmissionError(result.problems, path, result.meta)
    return result
