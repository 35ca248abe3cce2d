"""Built-in reference submissions: the GT itself, and a shipped 2D prior on the test views.

Why: the GT submission is the evaluator's end-to-end sanity check (every metric must come out 100; any
other number is a bug in the evaluator or in the data), and the prior submission is the "2D prior"
baseline row of the paper's tables (its Mask2Former row). Both go through the same validator as a
user's submission before they are published, and both are written atomically: built in a temporary
sibling folder, validated, then renamed onto ``out_dir``, so a crash never leaves a half submission.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Any, Callable

import numpy as np

from nerfseg.evaluation.gt import annotations_by_frame, load_gt3d, load_gt_scene
from nerfseg.evaluation.submission import MAX_INSTANCE_ID, SubmissionError, validate_submission, write_instances3d
from nerfseg import io, spec
from nerfseg.errors import InputError

__all__ = ["write_gt_submission", "write_prior_submission", "GT_METHOD", "prior_method_name"]

GT_METHOD = "gt"


def prior_method_name(prior_name: str) -> str:
    """Method name of the 2D-prior baseline row for one prior (``prior-sim-m2f``)."""
    return f"prior-{prior_name}"


def _meta(method: str, description: str, uses_gt_masks: bool, prior: str | None) -> dict[str, Any]:
    return {
        "method": method,
        "description": description,
        "url": "",
        "uses_gt_masks": uses_gt_masks,
        "prior": prior,
        "spec_version": spec.SPEC_VERSION,
        "semantic_only": False,
    }


def _annotation(name: str, segments: list[dict[str, Any]]) -> dict[str, Any]:
    return {"file_name": f"{name}.png", "image_id": name, "segments_info": segments}


def _write_atomically(out_dir: str | Path, data_root: str | Path, split: str, overwrite: bool, fill: Callable[[Path], None]) -> Path:
    """Build a submission in a temp sibling of ``out_dir``, validate it, then rename it into place."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not overwrite:
        raise InputError(out_dir, "already exists; pass overwrite=True to replace it")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = io.create_temp_dir(out_dir.parent, prefix=f".{out_dir.name}.", suffix=".tmp")  # mode follows the umask
    try:
        fill(tmp)
        result = validate_submission(tmp, data_root, split)
        if not result.ok:  # a reference that fails our own validator is a bug: never publish it
            raise SubmissionError(result.problems, out_dir)
        if out_dir.exists():
            old = io.create_temp_dir(out_dir.parent, prefix=f".{out_dir.name}.", suffix=".old")
            os.replace(out_dir, old / "x")
            os.replace(tmp, out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out_dir)
    except BaseException:
        with contextlib.suppress(OSError):
            shutil.rmtree(tmp)
        raise
    return out_dir


def _gt_instances3d(scene_root: Path, path: Path) -> None:
    """The GT grid as a 3D prediction: every instance with at least one voxel, score 1."""
    gt3d = load_gt3d(scene_root)
    grid = gt3d["instance"]
    counts = np.zeros(MAX_INSTANCE_ID + 1, np.int64)
    for slab in grid:
        counts += np.bincount(slab.reshape(-1), minlength=MAX_INSTANCE_ID + 1)
    present = np.flatnonzero(counts[1:]) + 1
    table_ids, table_classes = gt3d["instances"]["id"], gt3d["instances"]["class_index"]
    missing = np.setdiff1d(present, table_ids)
    if missing.size:
        raise InputError(scene_root / spec.GT3D_H5, f"grid ids missing from /instances: {missing[:10].tolist()}")
    keep = np.isin(table_ids, present)
    write_instances3d(path, grid, table_ids[keep], table_classes[keep], np.ones(int(keep.sum()), np.float32), semantic=gt3d["semantic"])


def write_gt_submission(data_root: str | Path, out_dir: str | Path, split: str = "test", *, overwrite: bool = False, with_3d: bool = True) -> Path:
    """Write the GT of ``split``'s scenes (test views) as a submission; every metric on it must be 100.

    The panoptic PNGs are copied byte for byte; each GT segment becomes a prediction with score 1.
    With ``with_3d`` and a gt3d.h5, the GT grid becomes instances3d.h5 (with the GT semantic grid).
    """

    def fill(tmp: Path) -> None:
        for scene in spec.scenes_in_split(data_root, split):
            gt = load_gt_scene(data_root, scene, "test")
            pan = tmp / scene / spec.PANOPTIC_DIR
            pan.mkdir(parents=True)
            annotations = []
            for name in gt.frame_names:
                shutil.copyfile(gt.root / spec.PANOPTIC_DIR / f"{name}.png", pan / f"{name}.png")
                segments = gt.segments(name)
                annotations.append(_annotation(name, [{"id": i, "category_id": s["category_id"], "score": 1.0} for i, s in sorted(segments.items())]))
            io.write_json_atomic(tmp / scene / spec.PANOPTIC_JSON, {"annotations": annotations})
            if with_3d and (gt.root / spec.GT3D_H5).is_file():
                _gt_instances3d(gt.root, tmp / scene / spec.INSTANCES3D_H5)
        io.write_json_atomic(tmp / spec.META_JSON, _meta(GT_METHOD, "The ground truth as a submission (sanity check: every metric is 100).", True, None))

    return _write_atomically(out_dir, data_root, split, overwrite, fill)


def write_prior_submission(data_root: str | Path, prior_name: str, out_dir: str | Path, split: str = "test", *, overwrite: bool = False) -> Path:
    """Write a shipped 2D prior's predictions on the test views as a submission (the 2D-prior baseline).

    Reads ``scenes/<id>/priors/<prior_name>/panoptic/<frame>.png`` and its ``panoptic.json`` (the same
    COCO panoptic form as the GT); segment scores are kept when the prior has them.
    """
    parts = Path(prior_name).parts
    if not prior_name or len(parts) != 1 or parts[0] in (".", ".."):
        raise InputError(None, f"invalid prior name {prior_name!r}")

    def fill(tmp: Path) -> None:
        for scene in spec.scenes_in_split(data_root, split):
            root = spec.scene_dir(data_root, scene)
            info = spec.load_scene_info(root)
            prior_dir = root / spec.PRIORS_DIR / prior_name
            if not prior_dir.is_dir():
                available = sorted(p.name for p in (root / spec.PRIORS_DIR).glob("*") if p.is_dir() and not p.name.startswith("."))
                raise InputError(prior_dir, f"prior {prior_name!r} not found for scene {scene} (available: {available})")
            json_path = prior_dir / spec.PANOPTIC_JSON
            by_frame = annotations_by_frame(spec.read_json(json_path), json_path)
            pan = tmp / scene / spec.PANOPTIC_DIR
            pan.mkdir(parents=True)
            annotations = []
            for frame in info.frames_in("test"):
                name = frame.name
                src = prior_dir / spec.PANOPTIC_DIR / f"{name}.png"
                if not src.is_file():
                    raise InputError(src, "prior PNG of a test view not found")
                if name not in by_frame:
                    raise InputError(json_path, f"test view {name} is not annotated")
                shutil.copyfile(src, pan / f"{name}.png")
                segments = []
                for seg in by_frame[name]["segments_info"]:
                    out = {"id": seg.get("id"), "category_id": seg.get("category_id")}
                    if seg.get("score") is not None:
                        out["score"] = seg["score"]
                    segments.append(out)
                annotations.append(_annotation(name, segments))
            io.write_json_atomic(tmp / scene / spec.PANOPTIC_JSON, {"annotations": annotations})
        description = f"The 2D panoptic prior {prior_name!r} on the test views (the paper's 2D-prior / Mask2Former row)."
        from nerfseg.dataset_tools.priors import prior_uses_gt_masks  # the prior code knows which priors are GT-derived

        io.write_json_atomic(tmp / spec.META_JSON, _meta(prior_method_name(prior_name), description, prior_uses_gt_masks(prior_name), prior_name))

    return _write_atomically(out_dir, data_root, split, overwrite, fill)
