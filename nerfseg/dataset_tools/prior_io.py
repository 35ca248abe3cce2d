"""Reading what priors are made from and what they wrote: a scene's GT views, its seeding id, and a written
prior's panoptic.json and PNGs (checked as COCO panoptic).

Shared by the writer (:mod:`nerfseg.dataset_tools.priors`), the quality report
(:mod:`nerfseg.dataset_tools.prior_quality`) and the consistency statistic (:mod:`nerfseg.dataset_tools.prior_stats`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nerfseg import spec
from nerfseg.errors import InputError
from nerfseg.io import read_panoptic_png, read_png


def scene_id_of(scene_dir: str | Path, info: spec.SceneInfo | None = None) -> str:
    """The scene id that seeds the prior: transforms.json's ``scene_id`` when present, else the folder name.

    The build writes a scene under a temporary folder name and renames it when finished; seeding from the
    folder name would make the prior depend on that temporary name (and the worker's pid).
    """
    path = Path(scene_dir) / spec.TRANSFORMS_JSON
    data = spec.read_json(path)
    sid = data.get("scene_id") if isinstance(data, dict) else None
    if sid is None:
        return (info or spec.load_scene_info(scene_dir)).scene_id
    if not isinstance(sid, str) or not sid:
        raise InputError(path, "scene_id must be a non-empty string", key="scene_id")
    return sid


@dataclass(frozen=True)
class GTViewMaps:
    """The GT maps of one view that the priors are made from."""

    name: str
    split: str
    instance: np.ndarray  # (H, W) uint16
    semantic: np.ndarray  # (H, W) uint8
    panoptic: np.ndarray  # (H, W) uint32 GT panoptic ids (0 = void)
    panoptic_categories: dict[int, int]  # GT segment id -> category


def _gt_categories(scene_dir: Path) -> dict[str, dict[int, int]]:
    """frame stem -> {segment id: category_id} from the scene's GT panoptic.json."""
    path = scene_dir / spec.PANOPTIC_JSON
    data = spec.read_json(path)
    if not isinstance(data, dict) or "annotations" not in data:
        raise InputError(path, "missing key", key="annotations")
    out: dict[str, dict[int, int]] = {}
    for ann in data["annotations"]:
        if "file_name" not in ann or "segments_info" not in ann:
            raise InputError(path, "an annotation lacks file_name or segments_info", key="annotations")
        out[Path(ann["file_name"]).stem] = {int(s["id"]): int(s["category_id"]) for s in ann["segments_info"]}
    return out


def iter_scene_gt(scene_dir: str | Path, info: spec.SceneInfo | None = None) -> Iterable[GTViewMaps]:
    """Yield the GT maps of every view of a built scene, checking sizes against transforms.json."""
    scene_dir = Path(scene_dir)
    info = info or spec.load_scene_info(scene_dir)
    cats = _gt_categories(scene_dir)
    for fr in info.frames:
        inst_p = scene_dir / spec.INSTANCE_DIR / f"{fr.name}.png"
        sem_p = scene_dir / spec.SEMANTIC_DIR / f"{fr.name}.png"
        pan_p = scene_dir / spec.PANOPTIC_DIR / f"{fr.name}.png"
        inst = read_png(inst_p, expect="gray16")
        sem = read_png(sem_p, expect="gray8")
        pan = read_panoptic_png(pan_p)
        for path, arr in ((inst_p, inst), (sem_p, sem), (pan_p, pan)):
            if arr.shape != (info.height, info.width):
                raise InputError(path, f"size {arr.shape[1]}x{arr.shape[0]} differs from transforms.json {info.width}x{info.height}")
        if sem.max() >= spec.NUM_CLASSES:
            raise InputError(sem_p, f"class index {int(sem.max())} outside 0..{spec.NUM_CLASSES - 1}")
        if fr.name not in cats:
            raise InputError(scene_dir / spec.PANOPTIC_JSON, f"no annotation for frame {fr.name}", key="annotations")
        yield GTViewMaps(fr.name, fr.split, inst, sem, pan, cats[fr.name])


# ---------------------------------------------------------------------------------------------
# Reading a prior back (methods and the quality report use this)


def load_prior_json(scene_dir: str | Path, prior_name: str) -> dict[str, Any]:
    """The prior's panoptic.json, with a clear error when the prior was never generated."""
    path = Path(scene_dir) / spec.PRIORS_DIR / prior_name / spec.PANOPTIC_JSON
    if not path.exists():
        raise InputError(path, f"prior '{prior_name}' not found; run `nerfseg priors --prior {prior_name}` first")
    return spec.read_json(path)


def read_prior_frame(scene_dir: str | Path, prior_name: str, frame: str, doc: dict[str, Any] | None = None) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """(ids, segments_info) of one view of a prior, checked: ids in the PNG == ids in the JSON, no id 0."""
    scene_dir = Path(scene_dir)
    doc = doc if doc is not None else load_prior_json(scene_dir, prior_name)
    json_path = scene_dir / spec.PRIORS_DIR / prior_name / spec.PANOPTIC_JSON
    png_path = scene_dir / spec.PRIORS_DIR / prior_name / spec.PANOPTIC_DIR / f"{frame}.png"
    segs = next((a["segments_info"] for a in doc.get("annotations", []) if Path(a["file_name"]).stem == frame), None)
    if segs is None:
        raise InputError(json_path, f"no annotation for frame {frame}", key="annotations")
    ids = read_panoptic_png(png_path)
    validate_segments(ids, segs, png_path)
    return ids, segs


def validate_segments(ids: np.ndarray, segments: list[dict[str, Any]], where: str | Path | None = None) -> None:
    """COCO panoptic consistency of one frame: PNG ids == JSON ids, no segment 0, known categories, areas."""
    png_ids = set(np.unique(ids).tolist()) - {0}
    json_ids = [int(s["id"]) for s in segments]
    if 0 in json_ids:
        raise InputError(where, "segment id 0 is reserved for void")
    if len(set(json_ids)) != len(json_ids):
        raise InputError(where, "duplicate segment ids in segments_info")
    if png_ids != set(json_ids):
        only_png = sorted(png_ids - set(json_ids))[:5]
        only_json = sorted(set(json_ids) - png_ids)[:5]
        raise InputError(where, f"ids in the PNG but not the JSON {only_png}, in the JSON but not the PNG {only_json}")
    for s in segments:
        if not 0 <= int(s["category_id"]) < spec.NUM_CLASSES:
            raise InputError(where, f"segment {s['id']} has unknown category_id {s['category_id']}")
