"""Reading and strictly validating submissions (SPEC section 4): a folder, a ``.zip`` or a ``.tar.gz``.

The submission format (this module is its definition; SPEC section 4 is the summary)::

    <submission>/
      meta.json                        {"method": str (required, non-empty),
                                        "uses_gt_masks": bool (required),
                                        "spec_version": "1" (required),
                                        "description": str, "url": str, "paper": str, "code": str (optional:
                                                          the leaderboard links "paper" and "code", and "url" as
                                                          the project page, when they are http(s) URLs),
                                        "prior": str | null (optional: the 2D prior the method learnt from),
                                        "semantic_only": bool (optional, default false: a semantic method such
                                                          as Semantic-NeRF whose instance metrics are shown as "-")}
      <scene_id>/panoptic/<frame>.png  COCO panoptic PNG (8-bit RGB, id = R + 256 G + 65536 B, 0 = VOID),
                                       one per TEST view of the scene, the size transforms.json says
      <scene_id>/panoptic.json         COCO panoptic predictions, as panopticapi reads them:
                                       {"annotations": [{"file_name": "0007.png", "image_id": "0007",
                                         "segments_info": [{"id": int 1..2^24-1, "category_id": int 0..10,
                                                            "score": float (optional)}, ...]}, ...]}
                                       (extra keys such as area, bbox, iscrowd, images, categories are ignored)
      <scene_id>/instances3d.h5        optional 3D predictions on the grid of the scene's gt3d.h5:
                                       /grid/instance  (X,Y,Z) uint16 instance ids, 0 = no instance
                                       /grid/semantic  (X,Y,Z) uint8 class index 0..10 (optional; without it a
                                                       voxel's class is its instance's class, 0 where id 0)
                                       /instances      table, a compound dataset or a group of columns:
                                                       id (int 1..65535), class_index (int 1..10), score (float)
                                       At least one grid; /instances is required with /grid/instance.

Why this strict: a leaderboard must never record half of a broken submission, and a submitter must
learn every problem in one round, so validation collects ALL problems (each naming scene, frame and
problem) instead of stopping at the first. Archives are opened defensively: no member may escape the
extraction folder, be a link or a device, or expand past the size limits, checked from the headers
before anything is written and again by counting the bytes actually written (nerfseg/evaluation/archive.py, which
also bounds header sizes, member counts and the expansion ratio before any of them costs memory).
Problems are capped (:data:`MAX_PROBLEMS`, then a count) and every name in them is escaped.
"""

from __future__ import annotations

import contextlib
import math
import os
import stat
import tarfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import h5py
import numpy as np
from PIL import Image

from nerfseg.evaluation import archive, types
from nerfseg.evaluation.archive import Limits
from nerfseg.evaluation.gt import _CLASS_COLUMN_ALIASES, _is_int, gt3d_grid_shape, normalise_instances_table
from nerfseg import io, spec
from nerfseg.errors import InputError, NerfsegError
from nerfseg.text import has_control, printable

__all__ = [
    "Limits",
    "Problem",
    "ValidationResult",
    "SubmissionError",
    "Submission",
    "validate_submission",
    "require_valid",
    "open_submission",
    "pack_submission",
    "write_instances3d",
    "META_REQUIRED",
]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_SEGMENT_ID = (1 << 24) - 1  # COCO panoptic PNGs hold 24-bit ids
MAX_INSTANCE_ID = int(np.iinfo(np.uint16).max)
#: meta.json keys that must be present, and their types
META_REQUIRED: dict[str, type] = {"method": str, "uses_gt_masks": bool, "spec_version": str}
_META_OPTIONAL_STR = ("description", "url", "paper", "code")
_SCENE_ENTRIES = {spec.PANOPTIC_DIR, spec.PANOPTIC_JSON, spec.INSTANCES3D_H5}
_MAX_LISTED = 10  # ids listed in one message
_MAX_TABLE_BYTES = 64 << 20  # an /instances table never needs more
_MAX_UNCHECKED_VOXELS = 1 << 30  # grid cap when no GT shape is known (unvalidated reads)
_MAX_H5_LINKS = 256  # objects an instances3d.h5 may hold (grids, the table and its columns: about 20)
_MAX_TABLE_COLUMNS = 16  # /instances needs three columns; a few extra are tolerated, not thousands
_MAX_PRODUCED = 1000  # problems one file may produce before its parser stops looking
#: PNG colour types a prediction may have (IHDR byte 25), and their names for messages
_PNG_COLOUR_TYPES = {0: "greyscale", 2: "RGB", 3: "palette", 4: "greyscale+alpha", 6: "RGBA"}


def _ignored(name: str) -> bool:
    """Hidden files and macOS archive debris are skipped, not reported: they carry no prediction."""
    return name.startswith(".") or name in ("__MACOSX", "Thumbs.db", "desktop.ini")


def _short(value: Any, limit: int = 60) -> str:
    """repr of a user-supplied value, cut short: a message must stay readable whatever was submitted."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _ids_text(ids: Any) -> str:
    ids = sorted(ids)
    more = f" and {len(ids) - _MAX_LISTED} more" if len(ids) > _MAX_LISTED else ""
    return f"{ids[:_MAX_LISTED]}{more}"


# ---------------------------------------------------------------------------------------------
# Results


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


def _capped(problems: list[Problem], limit: int = MAX_PROBLEMS) -> list[Problem]:
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
        self.problems = _capped(list(problems))
        self.source = None if source is None else Path(source)
        #: meta.json as validation read it (None when unreadable): what a leaderboard records, never a re-read
        self.meta = meta
        super().__init__(_problems_text(self.problems, self.source))


# ---------------------------------------------------------------------------------------------
# Safe extraction (nerfseg.evaluation.archive does it; these names stay here for the code that imports them)

_Writer = archive._Writer
_Abort = archive.ArchiveAbort
_member_parts = archive.member_parts
_archive_kind = archive.archive_kind


def _find_root(folder: Path) -> Path:
    """The folder holding meta.json: the top level, or the single folder an archive tool wrapped it in.

    This is the only rule for where meta.json is: validation reads it here, and the leaderboard records the
    meta that validation read (never a second search through the archive, which might find another one).
    """
    if (folder / spec.META_JSON).exists():
        return folder
    entries = [e for e in folder.iterdir() if not _ignored(e.name)]
    if len(entries) == 1 and entries[0].is_dir() and not entries[0].is_symlink() and (entries[0] / spec.META_JSON).is_file():
        return entries[0]
    return folder


@contextlib.contextmanager
def _materialise(path: str | Path, limits: Limits) -> Iterator[tuple[Path | None, list[Problem]]]:
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
        problems = _capped([Problem(None, None, msg) for msg in found])
        yield (None if problems else _find_root(tmp)), problems


# ---------------------------------------------------------------------------------------------
# Checks of the content


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


def _check_meta(root: Path) -> tuple[dict[str, Any] | None, list[Problem]]:
    path = root / spec.META_JSON
    if not path.is_file():
        return None, [Problem(None, None, "meta.json is missing")]
    meta, why = _read_json(path)
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
        bad.append(f"'spec_version' is {_short(version)}, this benchmark is spec version {spec.SPEC_VERSION!r}")
    for key in _META_OPTIONAL_STR:
        if key in meta and meta[key] is not None and not isinstance(meta[key], str):
            bad.append(f"'{key}' must be a string")
    if "prior" in meta and meta["prior"] is not None and not isinstance(meta["prior"], str):
        bad.append("'prior' must be a string or null")
    if "semantic_only" in meta and not isinstance(meta["semantic_only"], bool):
        bad.append("'semantic_only' must be true or false")
    # Text that a leaderboard stores and shows: a JSON "\udcff" escape decodes to a lone surrogate, which no
    # database or page can encode; a method name is one line.
    for key in ("method", "prior", *_META_OPTIONAL_STR):
        value = meta.get(key)
        if not isinstance(value, str):
            continue
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            bad.append(f"'{key}' is not valid text (it holds a lone surrogate escape such as \\udcff)")
            continue
        if key in ("method", "prior") and has_control(value):
            bad.append(f"'{key}' must be one line of printable text (got {_short(value)})")
    return meta, [Problem(None, None, f"meta.json: {b}") for b in bad]


def _read_json(path: Path) -> tuple[Any, str | None]:
    """JSON of a submission file, or the reason it cannot be read (never an exception: input is hostile)."""
    try:
        return spec.read_json(path), None
    except InputError as exc:
        return None, exc.problem
    except (ValueError, RecursionError) as exc:  # over-long integers, absurd nesting
        return None, f"unreadable JSON ({type(exc).__name__}: {str(exc)[:200]})"


def _finite_number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def _parse_segments(ann: dict[str, Any]) -> tuple[dict[int, dict[str, Any]], list[str]]:
    """A prediction's ``segments_info`` -> ({id: {category_id, score}}, problems)."""
    segments: dict[int, dict[str, Any]] = {}
    problems: list[str] = []
    info = ann.get("segments_info")
    if not isinstance(info, list):
        return segments, ["panoptic.json: 'segments_info' must be a list"]
    for i, seg in enumerate(info):
        if len(problems) >= _MAX_PRODUCED:
            problems.append(f"panoptic.json: ... and more problems in segments_info (stopped after {_MAX_PRODUCED})")
            break
        if not isinstance(seg, dict):
            problems.append(f"panoptic.json: segments_info[{i}] is not an object")
            continue
        seg_id, cat, score = seg.get("id"), seg.get("category_id"), seg.get("score")
        if not _is_int(seg_id):
            problems.append(f"panoptic.json: segments_info[{i}] has no integer 'id' (got {_short(seg_id)})")
            continue
        seg_id = int(seg_id)
        if seg_id == spec.VOID_ID:
            problems.append("panoptic.json: id 0 is VOID and cannot be a segment")
            continue
        if not 0 < seg_id <= MAX_SEGMENT_ID:
            problems.append(f"panoptic.json: segment id {_short(seg_id)} outside 1..{MAX_SEGMENT_ID}")
            continue
        if seg_id in segments:
            problems.append(f"panoptic.json: duplicate segment id {seg_id}")
            continue
        ok = True
        if not _is_int(cat) or not 0 <= int(cat) < spec.NUM_CLASSES:
            problems.append(f"panoptic.json: segment {seg_id} has unknown category id {_short(cat)} (valid: 0..{spec.NUM_CLASSES - 1})")
            ok = False
        if score is not None and not _finite_number(score):
            problems.append(f"panoptic.json: segment {seg_id} has score {_short(score)}, expected a finite number")
            ok = False
        segments[seg_id] = {"category_id": int(cat) if ok else -1, "score": None if score is None or not ok else float(score)}
    return segments, problems


def _parse_panoptic_json(path: Path) -> tuple[dict[str, dict[str, Any]], list[tuple[str | None, str]]]:
    """Annotations of a scene's panoptic.json by frame stem, and (frame or None, problem) pairs."""
    data, why = _read_json(path)
    if why is not None:
        return {}, [(None, f"panoptic.json: {why}")]
    if not isinstance(data, dict) or not isinstance(data.get("annotations"), list):
        return {}, [(None, "panoptic.json must be an object with an 'annotations' list (COCO panoptic form)")]
    out: dict[str, dict[str, Any]] = {}
    problems: list[tuple[str | None, str]] = []
    for i, ann in enumerate(data["annotations"]):
        if len(problems) >= _MAX_PRODUCED:
            problems.append((None, f"panoptic.json: ... and more problems in 'annotations' (stopped after {_MAX_PRODUCED})"))
            break
        if not isinstance(ann, dict) or not isinstance(ann.get("file_name"), str) or not ann["file_name"]:
            problems.append((None, f"panoptic.json: annotations[{i}] has no 'file_name' string"))
            continue
        file_name = ann["file_name"]
        stem = Path(file_name).stem
        if Path(file_name).suffix.lower() != ".png" or "/" in file_name or "\\" in file_name:
            problems.append((stem, f"panoptic.json: file_name {_short(file_name)} must be '<frame>.png'"))
        image_id = ann.get("image_id", stem)
        if str(image_id) != stem and not (_is_int(image_id) and spec.frame_name(int(image_id)) == stem):
            problems.append((stem, f"panoptic.json: image_id {_short(image_id)} does not match file_name {_short(file_name)}"))
        if stem in out:
            problems.append((stem, "panoptic.json: the frame is annotated twice"))
            continue
        out[stem] = ann
    return out, problems


def _read_prediction_png(path: Path, size: tuple[int, int] | None) -> np.ndarray:
    """Decode a prediction PNG to uint32 ids; raises InputError with the reason (checked before decoding)."""
    with open(path, "rb") as fh:
        head = fh.read(len(PNG_SIGNATURE) + 25)
    if head[: len(PNG_SIGNATURE)] != PNG_SIGNATURE:
        raise InputError(path, "not a PNG file")
    # The header, read here and not through PIL: PIL opens a 16-bit RGB PNG as 8-bit RGB, dropping the low
    # byte of every channel, so a wrong file would be scored (or rejected for ids it never held).
    if len(head) < 33 or head[12:16] != b"IHDR":
        raise InputError(path, "corrupt PNG (no IHDR header chunk)")
    bit_depth, colour_type = head[24], head[25]
    if colour_type not in (2, 6) or bit_depth != 8:
        kind = _PNG_COLOUR_TYPES.get(colour_type, f"colour type {colour_type}")
        raise InputError(path, f"PNG is {bit_depth}-bit {kind}; a COCO panoptic PNG is 8-bit RGB "
                               "(id = R + 256 G + 65536 B; an alpha channel is ignored)")
    try:
        with Image.open(path) as img:
            if img.format != "PNG":
                raise InputError(path, f"not a PNG file (format {img.format})")
            if size is not None and img.size != size:
                raise InputError(path, f"image is {img.size[0]}x{img.size[1]}, the view is {size[0]}x{size[1]} (transforms.json w x h)")
            if img.mode not in ("RGB", "RGBA"):
                raise InputError(path, f"PNG mode is {img.mode}; a COCO panoptic PNG is 8-bit RGB")
            img.load()
            arr = np.asarray(img)
    except InputError:
        raise
    except Exception as exc:  # PIL raises many types for corrupt data
        raise InputError(path, f"corrupt PNG ({type(exc).__name__}: {exc})") from None
    return io.rgb2id(arr[..., :3])


def _hard_links_only(f: h5py.File) -> str | None:
    """HDF5 soft/external links and external or virtual storage could read files outside the submission.

    The walk is bounded (:data:`_MAX_H5_LINKS`): an instances3d.h5 holds a handful of objects, and a file of
    hundreds of thousands of tiny datasets would otherwise cost time and memory before any check ran.
    """
    bad: list[str] = []
    count = 0

    def visit(name: str, link: Any) -> str | None:
        nonlocal count
        count += 1
        if count > _MAX_H5_LINKS:
            return name  # stops the walk
        if not isinstance(link, h5py.HardLink):
            bad.append(name)
        return None

    f.visititems_links(visit)
    if count > _MAX_H5_LINKS:
        return f"the file holds more than {_MAX_H5_LINKS} objects (an instances3d.h5 needs a handful)"
    if bad:
        return f"links other than hard links are not allowed: {[printable(b, 80) for b in bad[:_MAX_LISTED]]}"

    def outside(name: str, obj: Any) -> str | None:
        if isinstance(obj, h5py.Dataset) and (obj.external or obj.is_virtual):
            return name
        return None

    found = f.visititems(outside)
    if found is not None:
        return f"dataset /{printable(found, 80)} stores its data outside the file"
    return None


def _read_instances3d(path: Path, gt_shape: tuple[int, int, int] | None) -> tuple[dict[str, Any] | None, list[str]]:
    """Read and check a submission's instances3d.h5; returns (data or None, problems)."""
    try:
        f = h5py.File(path, "r")
    except Exception as exc:
        return None, [f"instances3d.h5 is not a readable HDF5 file ({type(exc).__name__})"]
    problems: list[str] = []
    try:
        with f:
            why = _hard_links_only(f)
            if why:
                return None, [f"instances3d.h5: {why}"]
            grids: dict[str, np.ndarray | None] = {"instance": None, "semantic": None}
            for key, max_itemsize in (("instance", 2), ("semantic", 1)):
                if f"grid/{key}" not in f:
                    continue
                ds = f[f"grid/{key}"]
                if not isinstance(ds, h5py.Dataset) or ds.ndim != 3:
                    problems.append(f"instances3d.h5: /grid/{key} must be an (X,Y,Z) dataset")
                elif ds.dtype.kind != "u" or ds.dtype.itemsize > max_itemsize:
                    problems.append(f"instances3d.h5: /grid/{key} is {ds.dtype}, expected {'uint16' if key == 'instance' else 'uint8'}")
                elif gt_shape is not None and tuple(ds.shape) != tuple(gt_shape):
                    problems.append(f"instances3d.h5: /grid/{key} has shape {tuple(ds.shape)}, the GT grid of gt3d.h5 is {tuple(gt_shape)}")
                elif ds.size > _MAX_UNCHECKED_VOXELS:
                    problems.append(f"instances3d.h5: /grid/{key} has {ds.size} voxels, more than {_MAX_UNCHECKED_VOXELS}")
                else:
                    grids[key] = ds[()]
            if grids["instance"] is not None and grids["semantic"] is not None and grids["instance"].shape != grids["semantic"].shape:
                problems.append(f"instances3d.h5: /grid/instance {grids['instance'].shape} and /grid/semantic {grids['semantic'].shape} differ in shape")
            if "grid/instance" not in f and "grid/semantic" not in f:
                problems.append("instances3d.h5: has neither /grid/instance nor /grid/semantic")
            sem = grids["semantic"]
            if sem is not None and sem.size and int(sem.max()) >= spec.NUM_CLASSES:
                problems.append(f"instances3d.h5: /grid/semantic holds class {int(sem.max())}, valid classes are 0..{spec.NUM_CLASSES - 1}")
            table: dict[str, np.ndarray] | None = None
            if "grid/instance" in f:
                if "instances" not in f:
                    problems.append("instances3d.h5: /instances table is missing")
                else:
                    table, table_problems = _check_instances_table(f["instances"], path, grids["instance"])
                    problems += table_problems
    except Exception as exc:  # h5py raises OSError/TypeError/ValueError/KeyError on odd files
        problems.append(f"instances3d.h5 is malformed ({type(exc).__name__}: {exc})")
    if problems:
        return None, problems
    return {"instance": grids["instance"], "semantic": grids["semantic"], "instances": table}, []


_TABLE_COLUMNS = ("id", "score") + _CLASS_COLUMN_ALIASES  # the only columns ever read from /instances


def _read_submission_table(node: Any) -> tuple[dict[str, np.ndarray] | None, str | None]:
    """Read /instances (a compound dataset or a group of columns) after checking every declared size.

    Why not :func:`nerfseg.evaluation.gt._read_table` (right for the trusted GT): it reads every column before it
    compares their lengths, so a 300 KB file holding a group of many gzip-compressed columns costs GBs.
    Here the shapes, dtypes, column count and total declared bytes are checked from the headers first,
    and only the columns the metrics use are read.
    """
    if isinstance(node, h5py.Dataset):
        names = node.dtype.names
        if not names:
            return None, "/instances must be a compound dataset or a group of columns"
        if node.ndim != 1 or node.shape[0] > MAX_INSTANCE_ID:
            return None, f"/instances has shape {node.shape}; a table holds at most {MAX_INSTANCE_ID} rows"
        wanted = [n for n in names if n in _TABLE_COLUMNS]
        for n in wanted:
            sub = node.dtype.fields[n][0]
            if sub.kind not in "biuf" or sub.shape:
                return None, f"/instances field {printable(n)!r} is {sub}, expected a number per row"
        if not wanted:
            return {}, None
        if node.shape[0] * sum(node.dtype.fields[n][0].itemsize for n in wanted) > _MAX_TABLE_BYTES:
            return None, f"/instances is larger than {_MAX_TABLE_BYTES} bytes"
        data = node.fields(wanted)[()] if len(wanted) > 1 else {wanted[0]: node.fields(wanted[0])[()]}
        return {n: np.asarray(data[n]).reshape(-1) for n in wanted}, None
    if not isinstance(node, h5py.Group):
        return None, "/instances must be a compound dataset or a group of columns"
    keys = list(node.keys())
    if len(keys) > _MAX_TABLE_COLUMNS:
        return None, f"/instances has {len(keys)} members, at most {_MAX_TABLE_COLUMNS} columns are allowed"
    declared: dict[str, h5py.Dataset] = {}
    rows: set[int] = set()
    for key in keys:
        ds = node.get(key)
        if not isinstance(ds, h5py.Dataset):
            continue
        needed = key in _TABLE_COLUMNS  # only these are read; others (an aabb, say) only need the same length
        if ds.ndim == 0 or (needed and ds.ndim != 1) or ds.shape[0] > MAX_INSTANCE_ID:
            return None, (f"/instances column {printable(key)!r} has shape {ds.shape}; a column holds at most "
                          f"{MAX_INSTANCE_ID} scalars")
        rows.add(int(ds.shape[0]))
        if needed:
            if ds.dtype.kind not in "biuf":
                return None, f"/instances column {printable(key)!r} is {ds.dtype}, expected numbers"
            declared[key] = ds
    if len(rows) > 1:
        return None, f"/instances columns have different lengths {sorted(rows)}"
    if sum(ds.shape[0] * ds.dtype.itemsize for ds in declared.values()) > _MAX_TABLE_BYTES:
        return None, f"/instances is larger than {_MAX_TABLE_BYTES} bytes"
    return {key: np.asarray(ds[()]) for key, ds in declared.items()}, None


def _check_instances_table(node: Any, path: Path, grid: np.ndarray | None) -> tuple[dict[str, np.ndarray] | None, list[str]]:
    raw, why = _read_submission_table(node)
    if why is not None or raw is None:
        return None, [f"instances3d.h5: {why}"]
    try:
        columns = normalise_instances_table(raw, path)
    except InputError as exc:
        return None, [f"instances3d.h5: /instances {exc.problem}"]
    problems: list[str] = []
    if "score" not in columns:
        problems.append("instances3d.h5: /instances has no 'score' column")
    elif columns["score"].dtype.kind not in "fiu" or columns["score"].ndim != 1 or not np.all(np.isfinite(columns["score"].astype(np.float64))):
        problems.append("instances3d.h5: /instances 'score' must be finite numbers")
    ids, classes = columns["id"], columns["class_index"]
    if ids.ndim != 1 or classes.ndim != 1:
        return None, problems + ["instances3d.h5: /instances columns must be one-dimensional"]
    if ids.size and (ids.min() < 1 or ids.max() > MAX_INSTANCE_ID):
        problems.append(f"instances3d.h5: /instances ids must lie in 1..{MAX_INSTANCE_ID}")
    uniq, counts = np.unique(ids, return_counts=True)
    if np.any(counts > 1):
        problems.append(f"instances3d.h5: duplicate instance ids {_ids_text(uniq[counts > 1].tolist())}")
    bad_classes = classes[(classes < 1) | (classes >= spec.NUM_CLASSES)]
    if bad_classes.size:
        problems.append(f"instances3d.h5: unknown class indices {_ids_text(set(bad_classes.tolist()))} (instances take 1..{spec.NUM_CLASSES - 1})")
    if grid is not None:
        counts = np.zeros(MAX_INSTANCE_ID + 1, np.int64)
        for slab in grid:  # slab-wise: a full-grid int64 copy would cost 8 bytes per voxel
            counts += np.bincount(slab.reshape(-1), minlength=MAX_INSTANCE_ID + 1)
        present = set(np.flatnonzero(counts[1:]) + 1)
        present = {int(i) for i in present}
        listed = set(ids.tolist())
        if present - listed:
            problems.append(f"instances3d.h5: ids in /grid/instance but not in /instances: {_ids_text(present - listed)}")
        if listed - present:
            problems.append(f"instances3d.h5: ids in /instances but not in /grid/instance: {_ids_text(listed - present)}")
    if problems:
        return None, problems
    return {"id": ids, "class_index": classes, "score": columns["score"].astype(np.float64)}, []


@dataclass
class _SceneCheck:
    """What validation learnt about one scene, kept so that reading it later is cheap."""

    expected_size: tuple[int, int] | None = None
    annotations: dict[str, dict[str, Any]] = field(default_factory=dict)


def _validate_scene(root: Path, scene: str, data_root: Path, limits: Limits, oversize: set[Path], checks: dict[str, _SceneCheck]) -> list[Problem]:
    sub = root / scene
    info = spec.load_scene_info(spec.scene_dir(data_root, scene))  # a broken benchmark raises InputError
    size = (info.width, info.height)
    check = checks.setdefault(scene, _SceneCheck(expected_size=size))
    expected = [f.name for f in info.frames_in("test")]
    problems: list[Problem] = []

    for entry in sorted(sub.iterdir()):
        if entry.name not in _SCENE_ENTRIES and not _ignored(entry.name):
            problems.append(Problem(scene, None, f"unexpected entry {entry.name!r} (a scene holds panoptic/, panoptic.json, instances3d.h5)"))

    pngs: dict[str, Path] = {}
    pan_dir = sub / spec.PANOPTIC_DIR
    if not pan_dir.is_dir() or pan_dir.is_symlink():
        problems.append(Problem(scene, None, "panoptic/ folder is missing"))
    else:
        for entry in sorted(pan_dir.iterdir()):
            if _ignored(entry.name):
                continue
            if entry.suffix.lower() != ".png" or not entry.is_file():
                problems.append(Problem(scene, entry.stem, f"unexpected entry panoptic/{entry.name} (frames are <frame>.png files)"))
            else:
                pngs[entry.stem] = entry

    annotations: dict[str, dict[str, Any]] = {}
    json_path = sub / spec.PANOPTIC_JSON
    if not json_path.is_file():
        problems.append(Problem(scene, None, "panoptic.json is missing"))
        json_ok = False
    elif json_path in oversize:
        json_ok = False  # already reported as too big
    else:
        annotations, json_problems = _parse_panoptic_json(json_path)
        problems += [Problem(scene, frame, msg) for frame, msg in json_problems]
        json_ok = not any(frame is None for frame, _ in json_problems)
    check.annotations = annotations

    expected_set = set(expected)
    for name in sorted(set(pngs) - expected_set):
        problems.append(Problem(scene, name, "extra frame: panoptic/ has a PNG for a view that is not a test view of this scene"))
    if json_ok:
        for name in sorted(set(annotations) - expected_set):
            problems.append(Problem(scene, name, "extra frame: panoptic.json annotates a view that is not a test view of this scene"))

    for name in expected:
        png = pngs.get(name)
        if png is None:
            problems.append(Problem(scene, name, f"missing frame: panoptic/{name}.png is not in the submission"))
        ann = annotations.get(name)
        if json_ok and ann is None:
            problems.append(Problem(scene, name, "missing frame: panoptic.json has no annotation for this test view"))
        segments: dict[int, dict[str, Any]] | None = None
        if ann is not None:
            segments, seg_problems = _parse_segments(ann)
            problems += [Problem(scene, name, msg) for msg in seg_problems]
        if png is None or png in oversize:
            continue
        try:
            ids = _read_prediction_png(png, size)
        except InputError as exc:
            problems.append(Problem(scene, name, f"panoptic/{name}.png: {exc.problem}"))
            continue
        if segments is None:
            continue
        present = set(np.unique(ids).tolist()) - {spec.VOID_ID}
        listed = set(segments)
        if present - listed:
            problems.append(Problem(scene, name, f"ids in the PNG but not in panoptic.json: {_ids_text(present - listed)}"))
        if listed - present:
            problems.append(Problem(scene, name, f"ids in panoptic.json but not in the PNG: {_ids_text(listed - present)}"))

    h5_path = sub / spec.INSTANCES3D_H5
    if h5_path.exists() and h5_path not in oversize:
        gt_shape = gt3d_grid_shape(spec.scene_dir(data_root, scene))
        _, h5_problems = _read_instances3d(h5_path, gt_shape)
        problems += [Problem(scene, None, msg) for msg in h5_problems]
    return problems


def _validate_root(root: Path, data_root: Path, split: str, limits: Limits, checks: dict[str, _SceneCheck]) -> tuple[list[Problem], dict[str, Any] | None]:
    problems, oversize = _scan_files(root, limits)
    meta, meta_problems = _check_meta(root) if (root / spec.META_JSON) not in oversize else (None, [])
    problems = meta_problems + problems
    expected = spec.scenes_in_split(data_root, split)
    present: list[str] = []
    for entry in sorted(root.iterdir()):
        if entry.name == spec.META_JSON or _ignored(entry.name):
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


# ---------------------------------------------------------------------------------------------
# Public API


def validate_submission(path: str | Path, data_root: str | Path, split: str = "test", limits: Limits = Limits()) -> ValidationResult:
    """Check a submission (folder, .zip or .tar.gz) against the benchmark at ``data_root``.

    ``split`` is the SCENE split (train/val/test of benchmark.json); inside each scene only the test
    views are expected. Every problem is reported; nothing is written except a temporary extraction
    folder that is removed before returning. Problems of the benchmark itself raise InputError.
    """
    path = Path(path)
    with _materialise(path, limits) as (root, problems):
        if root is None:
            return ValidationResult(False, problems, None, path)
        found, meta = _validate_root(root, Path(data_root), split, limits, {})
    return ValidationResult(not found, _capped(found), meta, path)


def require_valid(path: str | Path, data_root: str | Path, split: str = "test", limits: Limits = Limits()) -> ValidationResult:
    """:func:`validate_submission`, raising :class:`SubmissionError` (all problems) when it is not valid."""
    result = validate_submission(path, data_root, split, limits)
    if not result.ok:
        raise SubmissionError(result.problems, path, result.meta)
    return result


class Submission:
    """A submission opened for reading; frames are decoded on demand.

    Obtained from :func:`open_submission`. When it was validated against a benchmark, reads skip the
    checks already made; otherwise each read checks what it decodes and raises InputError on a bad file.
    """

    def __init__(self, root: Path, source: Path, meta: dict[str, Any] | None, checks: dict[str, _SceneCheck] | None):
        self.root = root
        self.source = source
        self.meta: dict[str, Any] = meta or {}
        self.validated = checks is not None
        self._checks: dict[str, _SceneCheck] = checks or {}

    @property
    def method(self) -> str:
        return str(self.meta.get("method", ""))

    @property
    def semantic_only(self) -> bool:
        """True for a semantic method (its instance metrics are shown as "-")."""
        return bool(self.meta.get("semantic_only", False))

    @property
    def uses_gt_masks(self) -> bool:
        return bool(self.meta.get("uses_gt_masks", False))

    def scenes(self) -> list[str]:
        return sorted(e.name for e in self.root.iterdir() if e.is_dir() and not e.is_symlink() and not _ignored(e.name))

    def frames(self, scene: str) -> list[str]:
        """Frame stems with a PNG in ``<scene>/panoptic/``."""
        pan = self._scene_dir(scene) / spec.PANOPTIC_DIR
        return sorted(p.stem for p in pan.glob("*.png")) if pan.is_dir() else []

    def _scene_dir(self, scene: str) -> Path:
        parts, why = _member_parts(scene)
        if why or len(parts) != 1:
            raise InputError(self.source, f"invalid scene name {scene!r}")
        return self.root / scene

    def _annotations(self, scene: str) -> dict[str, dict[str, Any]]:
        check = self._checks.get(scene)
        if check is None:
            path = self._scene_dir(scene) / spec.PANOPTIC_JSON
            annotations, problems = _parse_panoptic_json(path)
            if any(frame is None for frame, _ in problems):
                raise InputError(path, "; ".join(msg for _, msg in problems))
            check = self._checks[scene] = _SceneCheck(None, annotations)
        return check.annotations

    def frame(self, scene: str, name: str) -> tuple[np.ndarray, dict[int, dict[str, Any]]]:
        """(ids uint32 HxW, {segment id: {"category_id": int, "score": float | None}}) of one view."""
        annotations = self._annotations(scene)
        json_path = self._scene_dir(scene) / spec.PANOPTIC_JSON
        if name not in annotations:
            raise InputError(json_path, f"frame {name!r} is not annotated")
        segments, problems = _parse_segments(annotations[name])
        if problems:
            raise InputError(json_path, f"frame {name}: " + "; ".join(problems))
        png = self._scene_dir(scene) / spec.PANOPTIC_DIR / f"{name}.png"
        if not png.is_file():
            raise InputError(png, "file not found")
        check = self._checks.get(scene)
        ids = _read_prediction_png(png, check.expected_size if check else None)
        if not self.validated:
            present = set(np.unique(ids).tolist()) - {spec.VOID_ID}
            if present != set(segments):
                raise InputError(png, f"PNG ids and panoptic.json ids differ (only in PNG {_ids_text(present - set(segments))}, only in JSON {_ids_text(set(segments) - present)})")
        return ids, segments

    def frame_pred(self, scene: str, name: str) -> types.FramePred:
        """One view as the metrics take it (:class:`nerfseg.evaluation.types.FramePred`)."""
        ids, segments = self.frame(scene, name)
        return types.FramePred(ids, segments)

    def pred3d(self, scene: str) -> types.Pred3D | None:
        """The scene's 3D predictions as the 3D metrics take them (:class:`nerfseg.evaluation.types.Pred3D`), or None."""
        data = self.instances3d(scene)
        if data is None:
            return None
        table = data["instances"]
        if table is None:  # a semantic grid only
            return types.Pred3D(classes=np.zeros(0, np.int64), scores=np.zeros(0), semantic=data["semantic"])
        return types.Pred3D(classes=table["class_index"], scores=table["score"], instance=data["instance"], ids=table["id"], semantic=data["semantic"])

    def has_instances3d(self, scene: str) -> bool:
        return (self._scene_dir(scene) / spec.INSTANCES3D_H5).is_file()

    def instances3d(self, scene: str) -> dict[str, Any] | None:
        """3D predictions of a scene, or None when it has no instances3d.h5.

        ``{"instance": (X,Y,Z) uint16 | None, "semantic": (X,Y,Z) uint8 | None,
        "instances": {"id", "class_index", "score"} arrays | None}``.
        """
        path = self._scene_dir(scene) / spec.INSTANCES3D_H5
        if not path.is_file():
            return None
        data, problems = _read_instances3d(path, None)
        if data is None:
            raise InputError(path, "; ".join(problems))
        return data


@contextlib.contextmanager
def open_submission(
    path: str | Path, data_root: str | Path | None = None, split: str = "test", limits: Limits = Limits(), validate: bool = True
) -> Iterator[Submission]:
    """Open a submission (folder, .zip, .tar.gz) for reading; an archive is extracted once, safely.

    With ``data_root`` (and ``validate``), the submission is validated first and an invalid one raises
    :class:`SubmissionError` listing every problem, so an evaluator never records a partial result.
    The temporary extraction folder is removed when the context exits.
    """
    path = Path(path)
    with _materialise(path, limits) as (root, problems):
        if root is None:
            raise SubmissionError(problems, path)
        checks: dict[str, _SceneCheck] | None = None
        meta: dict[str, Any] | None
        if data_root is not None and validate:
            checks = {}
            found, meta = _validate_root(root, Path(data_root), split, limits, checks)
            if found:
                raise SubmissionError(found, path, meta)
        else:
            meta, _ = _check_meta(root)
        yield Submission(root, path, meta, checks)


def pack_submission(folder: str | Path, archive: str | Path) -> Path:
    """Pack a submission folder into ``archive`` (``.zip``, ``.tar.gz``/``.tgz`` or ``.tar``), written atomically.

    Members are stored relative to the folder (``meta.json`` at the top), in sorted order, regular files only.
    """
    folder, archive = Path(folder), Path(archive)
    if not (folder / spec.META_JSON).is_file():
        raise InputError(folder, "not a submission folder (no meta.json)")
    kind = _archive_kind(archive)
    if kind is None or archive.name.lower().endswith((".bz2", ".xz")):
        raise InputError(archive, "archive name must end in .zip, .tar.gz, .tgz or .tar")
    tar_mode = "w" if archive.name.lower().endswith(".tar") else "w:gz"
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink())
    with io.atomic_path(archive) as tmp:
        if kind == "zip":
            with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
                for p in files:
                    zf.write(p, p.relative_to(folder).as_posix())
        else:
            with tarfile.open(tmp, tar_mode) as tf:
                for p in files:
                    tf.add(p, p.relative_to(folder).as_posix(), recursive=False)
    return archive


def write_instances3d(
    path: str | Path,
    instance: np.ndarray | None,
    ids: np.ndarray | None = None,
    class_index: np.ndarray | None = None,
    score: np.ndarray | None = None,
    semantic: np.ndarray | None = None,
) -> Path:
    """Write a scene's ``instances3d.h5`` in the submission format (module docstring), atomically.

    ``instance`` is the (X,Y,Z) id grid on the scene's gt3d.h5 grid (0 = no instance) and ``ids``,
    ``class_index``, ``score`` describe its instances; ``semantic`` is the optional class grid.
    """
    if instance is None and semantic is None:
        raise ValueError("write_instances3d needs an instance grid, a semantic grid or both")
    path = Path(path)
    with io.atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["format"] = "nerfseg instances3d v1"
        f.attrs["spec_version"] = spec.SPEC_VERSION
        grid = f.create_group("grid")
        grid.attrs["sampling"] = "voxel centres of the gt3d.h5 grid"
        if instance is not None:
            if ids is None or class_index is None or score is None:
                raise ValueError("an instance grid needs ids, class_index and score")
            inst = np.asarray(instance)
            if inst.ndim != 3 or (inst.size and (inst.min() < 0 or inst.max() > MAX_INSTANCE_ID)):
                raise ValueError("instance grid must be (X,Y,Z) with ids in 0..65535")
            grid.create_dataset("instance", data=inst.astype(np.uint16), compression="gzip", compression_opts=4, shuffle=True)
            table = np.zeros(len(ids), dtype=[("id", "<u2"), ("class_index", "u1"), ("score", "<f4")])
            table["id"], table["class_index"], table["score"] = ids, class_index, score
            f.create_dataset("instances", data=table)
        if semantic is not None:
            grid.create_dataset("semantic", data=np.asarray(semantic).astype(np.uint8), compression="gzip", compression_opts=4, shuffle=True)
    return path
