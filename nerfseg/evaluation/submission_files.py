"""Reading (and writing) the files of a submission, each one treated as hostile input (SPEC section 4).

The readers never raise on bad content: they return what they could read and the problems found, so that
validation can list every problem of a submission in one round (:mod:`nerfseg.evaluation.submission_validate`)
and :class:`nerfseg.evaluation.submission.Submission` can read frames on demand. The format itself is
defined in the docstring of :mod:`nerfseg.evaluation.submission`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from PIL import Image

from nerfseg import io, spec
from nerfseg.errors import InputError
from nerfseg.evaluation.gt import CLASS_COLUMN_ALIASES, is_int, normalise_instances_table
from nerfseg.evaluation.submission_problems import MAX_LISTED, ids_text, short_repr
from nerfseg.text import printable

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_SEGMENT_ID = (1 << 24) - 1  # COCO panoptic PNGs hold 24-bit ids
MAX_INSTANCE_ID = int(np.iinfo(np.uint16).max)
_MAX_TABLE_BYTES = 64 << 20  # an /instances table never needs more
_MAX_UNCHECKED_VOXELS = 1 << 30  # grid cap when no GT shape is known (unvalidated reads)
_MAX_H5_LINKS = 256  # objects an instances3d.h5 may hold (grids, the table and its columns: about 20)
_MAX_TABLE_COLUMNS = 16  # /instances needs three columns; a few extra are tolerated, not thousands
_MAX_PRODUCED = 1000  # problems one file may produce before its parser stops looking
#: PNG colour types a prediction may have (IHDR byte 25), and their names for messages
_PNG_COLOUR_TYPES = {0: "greyscale", 2: "RGB", 3: "palette", 4: "greyscale+alpha", 6: "RGBA"}


def read_submission_json(path: Path) -> tuple[Any, str | None]:
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


def parse_segments(ann: dict[str, Any]) -> tuple[dict[int, dict[str, Any]], list[str]]:
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
        if not is_int(seg_id):
            problems.append(f"panoptic.json: segments_info[{i}] has no integer 'id' (got {short_repr(seg_id)})")
            continue
        seg_id = int(seg_id)
        if seg_id == spec.VOID_ID:
            problems.append("panoptic.json: id 0 is VOID and cannot be a segment")
            continue
        if not 0 < seg_id <= MAX_SEGMENT_ID:
            problems.append(f"panoptic.json: segment id {short_repr(seg_id)} outside 1..{MAX_SEGMENT_ID}")
            continue
        if seg_id in segments:
            problems.append(f"panoptic.json: duplicate segment id {seg_id}")
            continue
        ok = True
        if not is_int(cat) or not 0 <= int(cat) < spec.NUM_CLASSES:
            problems.append(f"panoptic.json: segment {seg_id} has unknown category id {short_repr(cat)} (valid: 0..{spec.NUM_CLASSES - 1})")
            ok = False
        if score is not None and not _finite_number(score):
            problems.append(f"panoptic.json: segment {seg_id} has score {short_repr(score)}, expected a finite number")
            ok = False
        segments[seg_id] = {"category_id": int(cat) if ok else -1, "score": None if score is None or not ok else float(score)}
    return segments, problems


def parse_panoptic_json(path: Path) -> tuple[dict[str, dict[str, Any]], list[tuple[str | None, str]]]:
    """Annotations of a scene's panoptic.json by frame stem, and (frame or None, problem) pairs."""
    data, why = read_submission_json(path)
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
            problems.append((stem, f"panoptic.json: file_name {short_repr(file_name)} must be '<frame>.png'"))
        image_id = ann.get("image_id", stem)
        if str(image_id) != stem and not (is_int(image_id) and spec.frame_name(int(image_id)) == stem):
            problems.append((stem, f"panoptic.json: image_id {short_repr(image_id)} does not match file_name {short_repr(file_name)}"))
        if stem in out:
            problems.append((stem, "panoptic.json: the frame is annotated twice"))
            continue
        out[stem] = ann
    return out, problems


def read_prediction_png(path: Path, size: tuple[int, int] | None) -> np.ndarray:
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
        return f"links other than hard links are not allowed: {[printable(b, 80) for b in bad[:MAX_LISTED]]}"

    def outside(name: str, obj: Any) -> str | None:
        if isinstance(obj, h5py.Dataset) and (obj.external or obj.is_virtual):
            return name
        return None

    found = f.visititems(outside)
    if found is not None:
        return f"dataset /{printable(found, 80)} stores its data outside the file"
    return None


def read_instances3d(path: Path, gt_shape: tuple[int, int, int] | None) -> tuple[dict[str, Any] | None, list[str]]:
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


_TABLE_COLUMNS = ("id", "score") + CLASS_COLUMN_ALIASES  # the only columns ever read from /instances


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
        problems.append(f"instances3d.h5: duplicate instance ids {ids_text(uniq[counts > 1].tolist())}")
    bad_classes = classes[(classes < 1) | (classes >= spec.NUM_CLASSES)]
    if bad_classes.size:
        problems.append(f"instances3d.h5: unknown class indices {ids_text(set(bad_classes.tolist()))} (instances take 1..{spec.NUM_CLASSES - 1})")
    if grid is not None:
        counts = np.zeros(MAX_INSTANCE_ID + 1, np.int64)
        for slab in grid:  # slab-wise: a full-grid int64 copy would cost 8 bytes per voxel
            counts += np.bincount(slab.reshape(-1), minlength=MAX_INSTANCE_ID + 1)
        present = set(np.flatnonzero(counts[1:]) + 1)
        present = {int(i) for i in present}
        listed = set(ids.tolist())
        if present - listed:
            problems.append(f"instances3d.h5: ids in /grid/instance but not in /instances: {ids_text(present - listed)}")
        if listed - present:
            problems.append(f"instances3d.h5: ids in /instances but not in /grid/instance: {ids_text(listed - present)}")
    if problems:
        return None, problems
    return {"id": ids, "class_index": classes, "score": columns["score"].astype(np.float64)}, []


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
