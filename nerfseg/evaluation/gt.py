"""Reading the benchmark's ground truth for evaluation (SPEC section 3): panoptic frames and the 3D grid.

Why lazy: a test split can hold thousands of 640x480 views. A :class:`GTScene` parses the scene's
``transforms.json`` and ``panoptic.json`` once (small) and decodes a frame's PNG only when a metric
asks for it, so an evaluator streams frames through its accumulators without holding a scene in memory.

Every malformed or missing file raises :class:`~nerfseg.errors.InputError` naming the file and the
problem: a broken benchmark is a different failure from a broken submission, and must not be reported
as the submitter's fault.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import h5py
import numpy as np

from nerfseg.evaluation import types
from nerfseg import io, spec
from nerfseg.errors import InputError
from nerfseg.gt3d import read_gt3d

__all__ = ["GTScene", "load_gt_scene", "load_gt3d", "load_gt3d_for_eval", "gt3d_grid_shape", "annotations_by_frame", "VIEW_SPLITS"]

#: View splits inside a scene. ``val`` views are the test views (SPEC 3: "val = test views").
VIEW_SPLITS = ("train", "test", "val")


def is_int(value: Any) -> bool:
    """An integer from JSON or numpy, but not a bool (JSON ``true`` must not pass as id 1)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def annotations_by_frame(data: Any, path: Path) -> dict[str, dict[str, Any]]:
    """Index a COCO panoptic JSON's ``annotations`` by frame stem (``"0007"``).

    The stem comes from ``file_name`` (``"0007.png"``, a folder prefix is allowed); an annotation
    without one falls back to ``image_id``. Duplicates raise: two answers for one frame are ambiguous.
    """
    if not isinstance(data, dict) or not isinstance(data.get("annotations"), list):
        raise InputError(path, "expected a JSON object with an 'annotations' list (COCO panoptic form)", key="annotations")
    out: dict[str, dict[str, Any]] = {}
    for i, ann in enumerate(data["annotations"]):
        if not isinstance(ann, dict):
            raise InputError(path, f"annotation {i} is not an object", key="annotations")
        if isinstance(ann.get("file_name"), str) and ann["file_name"]:
            stem = Path(ann["file_name"]).stem
        elif "image_id" in ann and isinstance(ann["image_id"], (str, int)) and not isinstance(ann["image_id"], bool):
            stem = ann["image_id"] if isinstance(ann["image_id"], str) else spec.frame_name(ann["image_id"])
        else:
            raise InputError(path, f"annotation {i} has neither 'file_name' nor 'image_id'", key="annotations")
        if not isinstance(ann.get("segments_info"), list):
            raise InputError(path, f"annotation of frame {stem} has no 'segments_info' list", key="annotations")
        if stem in out:
            raise InputError(path, f"frame {stem} is annotated twice", key="annotations")
        out[stem] = ann
    return out


def _gt_segments(ann: dict[str, Any], frame: str, path: Path) -> dict[int, dict[str, int]]:
    """GT ``segments_info`` -> {id: {category_id, iscrowd, area}} with the contract's checks."""
    segments: dict[int, dict[str, int]] = {}
    for seg in ann["segments_info"]:
        if not isinstance(seg, dict) or not is_int(seg.get("id")) or not is_int(seg.get("category_id")):
            raise InputError(path, f"frame {frame}: segment {seg!r} lacks an integer 'id' or 'category_id'", key="segments_info")
        seg_id, cat = int(seg["id"]), int(seg["category_id"])
        if seg_id <= 0 or seg_id >= 1 << 24:
            raise InputError(path, f"frame {frame}: segment id {seg_id} outside 1..2^24-1 (0 is VOID)", key="segments_info")
        if not 0 <= cat < spec.NUM_CLASSES:
            raise InputError(path, f"frame {frame}: segment {seg_id} has unknown category_id {cat}", key="segments_info")
        if seg_id in segments:
            raise InputError(path, f"frame {frame}: duplicate segment id {seg_id}", key="segments_info")
        area = seg.get("area")
        iscrowd = seg.get("iscrowd", 0)
        if not is_int(area) or area < 0:
            raise InputError(path, f"frame {frame}: segment {seg_id} lacks a non-negative integer 'area'", key="segments_info")
        segments[seg_id] = {"category_id": cat, "iscrowd": int(bool(iscrowd)), "area": int(area)}
    return segments


@dataclass
class GTScene:
    """One benchmark scene's 2D panoptic GT for one view split; frames are decoded on demand."""

    scene_id: str
    root: Path  #: the scene folder ``<data_root>/scenes/<scene_id>``
    info: spec.SceneInfo
    split: str  #: the view split whose frames ``frame_names`` lists ("test" or "train")
    frame_names: tuple[str, ...]
    #: every GT thing segment id of the scene (over ALL views, not only ``split``) -> its class index;
    #: a thing's segment id is its instance id, so these are the scene's instance ids.
    thing_classes: dict[int, int] = field(repr=False)
    _annotations: dict[str, dict[str, Any]] = field(repr=False)

    @property
    def thing_ids(self) -> frozenset[int]:
        """All GT thing instance ids of the scene (visible in at least one view)."""
        return frozenset(self.thing_classes)

    @property
    def height(self) -> int:
        return self.info.height

    @property
    def width(self) -> int:
        return self.info.width

    @property
    def panoptic_json(self) -> Path:
        return self.root / spec.PANOPTIC_JSON

    def __len__(self) -> int:
        return len(self.frame_names)

    def _png(self, folder: str, name: str) -> Path:
        if name not in self._annotations:
            raise InputError(self.panoptic_json, f"frame {name!r} is not annotated in scene {self.scene_id}")
        return self.root / folder / f"{name}.png"

    def _check_shape(self, arr: np.ndarray, path: Path) -> np.ndarray:
        if arr.shape[:2] != (self.height, self.width):
            raise InputError(path, f"image is {arr.shape[1]}x{arr.shape[0]} but transforms.json says {self.width}x{self.height}")
        return arr

    def segments(self, name: str) -> dict[int, dict[str, int]]:
        """{segment id: {category_id, iscrowd, area}} of one view from panoptic.json, without decoding the PNG."""
        if name not in self._annotations:
            raise InputError(self.panoptic_json, f"frame {name!r} is not annotated in scene {self.scene_id}")
        return _gt_segments(self._annotations[name], name, self.panoptic_json)

    def frame(self, name: str, check: bool = False) -> tuple[np.ndarray, dict[int, dict[str, int]]]:
        """(panoptic ids uint32 HxW, {segment id: {category_id, iscrowd, area}}) of one view.

        ``area`` is the GT JSON's field, as panopticapi uses it (it does not recount GT pixels).
        ``check=True`` also verifies that the PNG's ids and the JSON's ids agree (one ``np.unique``).
        """
        path = self._png(spec.PANOPTIC_DIR, name)
        ids = self._check_shape(io.read_panoptic_png(path), path)
        segments = self.segments(name)
        if check:
            present = set(np.unique(ids).tolist()) - {spec.VOID_ID}
            if present != set(segments):
                raise InputError(
                    path,
                    f"PNG ids and panoptic.json ids differ: only in PNG {sorted(present - set(segments))[:10]}, "
                    f"only in JSON {sorted(set(segments) - present)[:10]}",
                )
        return ids, segments

    def frame_gt(self, name: str) -> types.FrameGT:
        """One view as the metrics take it (:class:`nerfseg.evaluation.types.FrameGT`, with the scene's thing ids)."""
        ids, segments = self.frame(name)
        return types.FrameGT(ids, segments, self.thing_ids)

    def semantic(self, name: str) -> np.ndarray:
        """uint8 HxW class indices 0..10 of one view (``semantic/<frame>.png``)."""
        path = self._png(spec.SEMANTIC_DIR, name)
        return self._check_shape(io.read_png(path, expect="gray8"), path)

    def instance(self, name: str) -> np.ndarray:
        """uint16 HxW instance ids (0 = background) of one view (``instance/<frame>.png``)."""
        path = self._png(spec.INSTANCE_DIR, name)
        return self._check_shape(io.read_png(path, expect="gray16"), path)

    def frames(self) -> Iterator[tuple[str, np.ndarray, dict[int, dict[str, int]]]]:
        """Iterate ``(name, ids, segments)`` over the split's views in order."""
        for name in self.frame_names:
            ids, segments = self.frame(name)
            yield name, ids, segments


def load_gt_scene(data_root: str | Path, scene_id: str, split: str = "test") -> GTScene:
    """Open scene ``scene_id`` of a built benchmark for evaluation on its ``split`` views.

    ``split`` is a VIEW split ("test" = held-out views, "val" means the same views, "train" the rest);
    the frame order is the order of transforms.json.
    """
    if split not in VIEW_SPLITS:
        raise InputError(None, f"unknown view split {split!r}; expected one of {VIEW_SPLITS}")
    root = spec.scene_dir(data_root, scene_id)
    if not root.is_dir():
        raise InputError(root, f"scene folder of {scene_id!r} not found")
    info = spec.load_scene_info(root)
    view_split = "test" if split == "val" else split
    names = tuple(f.name for f in info.frames_in(view_split))
    json_path = root / spec.PANOPTIC_JSON
    annotations = annotations_by_frame(spec.read_json(json_path), json_path)
    missing = [n for n in names if n not in annotations]
    if missing:
        raise InputError(json_path, f"{len(missing)} {view_split} frame(s) of transforms.json are not annotated: {missing[:10]}")
    thing_classes: dict[int, int] = {}
    for stem, ann in annotations.items():
        for seg_id, seg in _gt_segments(ann, stem, json_path).items():
            if seg["category_id"] == spec.BACKGROUND:
                continue
            previous = thing_classes.setdefault(seg_id, seg["category_id"])
            if previous != seg["category_id"]:
                raise InputError(json_path, f"instance {seg_id} has class {previous} in one frame and {seg['category_id']} in frame {stem}")
    return GTScene(scene_id, root, info, view_split, names, thing_classes, annotations)


# ---------------------------------------------------------------------------------------------
# 3D GT (SPEC 3.1)

#: names the class column of an /instances table may have (the GT's and submissions' readers accept the same)
CLASS_COLUMN_ALIASES = ("class_index", "class", "semantic", "label", "class_id")


def _decode_strings(columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    for name, col in list(columns.items()):
        if col.dtype.kind in ("S", "O"):
            columns[name] = np.array([v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in col.reshape(-1)], dtype=object).reshape(col.shape)
    return columns


def _structured_columns(table: np.ndarray) -> dict[str, np.ndarray]:
    """A structured array as {field: column}, byte strings decoded."""
    return _decode_strings({name: np.asarray(table[name]) for name in table.dtype.names or ()})


def _read_table(node: Any, path: Path) -> dict[str, np.ndarray]:
    """An h5 table as {column: array}: a compound dataset (fields) or a group of equal-length datasets."""
    columns: dict[str, np.ndarray] = {}
    if isinstance(node, h5py.Dataset) and node.dtype.names:
        columns = _structured_columns(np.asarray(node[()]).reshape(-1))
    elif isinstance(node, h5py.Group):
        for name, ds in node.items():
            if isinstance(ds, h5py.Dataset):
                columns[name] = np.asarray(ds[()])
        columns = _decode_strings(columns)
    else:
        raise InputError(path, "expected a compound dataset or a group of column datasets", key="/instances")
    lengths = {len(c) for c in columns.values()}
    if len(lengths) > 1:
        raise InputError(path, f"columns have different lengths {sorted(lengths)}", key="/instances")
    return columns


def normalise_instances_table(columns: dict[str, np.ndarray], path: Path, key: str = "/instances") -> dict[str, np.ndarray]:
    """Require ``id`` and a class column; expose the class column as ``class_index`` whatever its alias."""
    if "id" not in columns:
        raise InputError(path, "table has no 'id' column", key=key)
    for alias in CLASS_COLUMN_ALIASES:
        if alias in columns:
            columns.setdefault("class_index", columns[alias])
            break
    else:
        raise InputError(path, f"table has no class column (one of {CLASS_COLUMN_ALIASES})", key=key)
    for name in ("id", "class_index"):
        if columns[name].dtype.kind not in "iu":
            raise InputError(path, f"column {name!r} is {columns[name].dtype}, expected integers", key=key)
    columns["id"] = columns["id"].astype(np.int64)
    columns["class_index"] = columns["class_index"].astype(np.int64)
    return columns


def gt3d_grid_shape(scene_dir: str | Path) -> tuple[int, int, int]:
    """(X, Y, Z) of ``gt3d.h5``'s grids without reading them (what a 3D submission must match)."""
    path = Path(scene_dir) / spec.GT3D_H5
    try:
        with h5py.File(path, "r") as f:
            ds = f.get("/grid/instance")
            if not isinstance(ds, h5py.Dataset) or ds.ndim != 3:
                raise InputError(path, "missing or not a 3D dataset", key="/grid/instance")
            return tuple(int(s) for s in ds.shape)  # type: ignore[return-value]
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    except OSError as exc:
        raise InputError(path, f"not a readable HDF5 file ({exc})") from None


def load_gt3d(scene_dir: str | Path) -> dict[str, Any]:
    """Read ``<scene>/gt3d.h5`` (SPEC 3.1) through the one reader (:func:`nerfseg.gt3d.read_gt3d`) and check it.

    Returns ``{"instance": (X,Y,Z) uint16, "semantic": (X,Y,Z) uint8, "instances": {column: array}
    (``id``, ``class_index``, ``aabb``, ``obb``, ... with strings decoded), "classes": {id: class index},
    "bbox_min": (3,), "bbox_max": (3,), "bbox": (2, 3) float64, "resolution": int (longest side),
    "mode": "solid" | "surface", "gt3d": the :class:`nerfseg.gt3d.GT3D` itself}``.
    """
    path = Path(scene_dir) / spec.GT3D_H5
    try:
        gt = read_gt3d(path)
    except InputError:
        raise
    except Exception as exc:  # a group where a table belongs, odd dtypes: still the file's fault
        raise InputError(path, f"malformed gt3d.h5 ({type(exc).__name__}: {exc})") from None
    for key, grid, kinds in (("instance", gt.instance, "u"), ("semantic", gt.semantic, "ui")):
        if grid.dtype.kind not in kinds:
            raise InputError(path, f"expected an integer grid, got dtype {grid.dtype}", key=f"/grid/{key}")
    if gt.instance.size and int(gt.instance.max()) > np.iinfo(np.uint16).max:
        raise InputError(path, "instance ids exceed uint16", key="/grid/instance")
    if gt.semantic.size and (int(gt.semantic.min()) < 0 or int(gt.semantic.max()) >= spec.NUM_CLASSES):
        raise InputError(path, f"class indices outside 0..{spec.NUM_CLASSES - 1}", key="/grid/semantic")
    table = gt.instances
    if not isinstance(table, np.ndarray) or table.dtype.names is None or table.ndim != 1:
        raise InputError(path, "expected a one-dimensional compound table", key="/instances")
    columns = normalise_instances_table(_structured_columns(table), path)
    bbox = []
    for key, value in (("bbox_min", gt.bbox_min), ("bbox_max", gt.bbox_max)):
        value = np.asarray(value, dtype=np.float64).reshape(-1)
        if value.shape != (3,) or not np.all(np.isfinite(value)):
            raise InputError(path, f"expected 3 finite numbers, got {value.tolist()}", key=key)
        bbox.append(value)
    if np.any(bbox[1] <= bbox[0]):
        raise InputError(path, f"bbox_max {bbox[1].tolist()} is not above bbox_min {bbox[0].tolist()}", key="bbox_max")
    return {
        "instance": gt.instance.astype(np.uint16, copy=False),
        "semantic": gt.semantic.astype(np.uint8, copy=False),
        "instances": columns,
        "classes": dict(zip(columns["id"].tolist(), columns["class_index"].tolist())),
        "bbox_min": bbox[0],
        "bbox_max": bbox[1],
        "bbox": np.stack(bbox),
        "resolution": gt.resolution,
        "mode": gt.mode,
        "gt3d": gt,
    }


def load_gt3d_for_eval(scene_dir: str | Path) -> types.GT3D:
    """The scene's 3D GT as the 3D metrics take it (:class:`nerfseg.evaluation.types.GT3D`)."""
    gt = load_gt3d(scene_dir)
    return types.GT3D(instance=gt["instance"], classes=gt["classes"], semantic=gt["semantic"])
