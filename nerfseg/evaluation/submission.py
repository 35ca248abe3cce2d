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

By concern: validation in ``submission_validate.py``, the file readers (and :func:`write_instances3d`) in
``submission_files.py``, problems and errors in ``submission_problems.py``, safe extraction in
``archive.py``; this module reads a submission (:func:`open_submission`) and packs one, and is the place to
import from.
"""

from __future__ import annotations

import contextlib
import tarfile
import zipfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from nerfseg import io, spec
from nerfseg.errors import InputError
from nerfseg.evaluation import types
from nerfseg.evaluation.archive import Limits, archive_kind, member_parts
from nerfseg.evaluation.submission_files import MAX_INSTANCE_ID, MAX_SEGMENT_ID, PNG_SIGNATURE, parse_panoptic_json, parse_segments, read_instances3d
from nerfseg.evaluation.submission_files import read_prediction_png, write_instances3d
from nerfseg.evaluation.submission_problems import MAX_MESSAGE_CHARS, MAX_PROBLEMS, Problem, SubmissionError, ValidationResult, ids_text
from nerfseg.evaluation.submission_validate import META_OPTIONAL_STR, META_REQUIRED, SceneCheck, check_meta, is_ignored_name, materialise
from nerfseg.evaluation.submission_validate import require_valid, validate_root, validate_submission

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
    "META_OPTIONAL_STR",
    "MAX_PROBLEMS",
    "MAX_MESSAGE_CHARS",
    "MAX_INSTANCE_ID",
    "MAX_SEGMENT_ID",
    "PNG_SIGNATURE",
]


class Submission:
    """A submission opened for reading; frames are decoded on demand.

    Obtained from :func:`open_submission`. When it was validated against a benchmark, reads skip the
    checks already made; otherwise each read checks what it decodes and raises InputError on a bad file.
    """

    def __init__(self, root: Path, source: Path, meta: dict[str, Any] | None, checks: dict[str, SceneCheck] | None):
        self.root = root
        self.source = source
        self.meta: dict[str, Any] = meta or {}
        self.validated = checks is not None
        self._checks: dict[str, SceneCheck] = checks or {}

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
        return sorted(e.name for e in self.root.iterdir() if e.is_dir() and not e.is_symlink() and not is_ignored_name(e.name))

    def frames(self, scene: str) -> list[str]:
        """Frame stems with a PNG in ``<scene>/panoptic/``."""
        pan = self._scene_dir(scene) / spec.PANOPTIC_DIR
        return sorted(p.stem for p in pan.glob("*.png")) if pan.is_dir() else []

    def _scene_dir(self, scene: str) -> Path:
        parts, why = member_parts(scene)
        if why or len(parts) != 1:
            raise InputError(self.source, f"invalid scene name {scene!r}")
        return self.root / scene

    def _annotations(self, scene: str) -> dict[str, dict[str, Any]]:
        check = self._checks.get(scene)
        if check is None:
            path = self._scene_dir(scene) / spec.PANOPTIC_JSON
            annotations, problems = parse_panoptic_json(path)
            if any(frame is None for frame, _ in problems):
                raise InputError(path, "; ".join(msg for _, msg in problems))
            check = self._checks[scene] = SceneCheck(None, annotations)
        return check.annotations

    def frame(self, scene: str, name: str) -> tuple[np.ndarray, dict[int, dict[str, Any]]]:
        """(ids uint32 HxW, {segment id: {"category_id": int, "score": float | None}}) of one view."""
        annotations = self._annotations(scene)
        json_path = self._scene_dir(scene) / spec.PANOPTIC_JSON
        if name not in annotations:
            raise InputError(json_path, f"frame {name!r} is not annotated")
        segments, problems = parse_segments(annotations[name])
        if problems:
            raise InputError(json_path, f"frame {name}: " + "; ".join(problems))
        png = self._scene_dir(scene) / spec.PANOPTIC_DIR / f"{name}.png"
        if not png.is_file():
            raise InputError(png, "file not found")
        check = self._checks.get(scene)
        ids = read_prediction_png(png, check.expected_size if check else None)
        if not self.validated:
            present = set(np.unique(ids).tolist()) - {spec.VOID_ID}
            if present != set(segments):
                raise InputError(png, f"PNG ids and panoptic.json ids differ (only in PNG {ids_text(present - set(segments))}, only in JSON {ids_text(set(segments) - present)})")
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
        data, problems = read_instances3d(path, None)
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
    with materialise(path, limits) as (root, problems):
        if root is None:
            raise SubmissionError(problems, path)
        checks: dict[str, SceneCheck] | None = None
        meta: dict[str, Any] | None
        if data_root is not None and validate:
            checks = {}
            found, meta = validate_root(root, Path(data_root), split, limits, checks)
            if found:
                raise SubmissionError(found, path, meta)
        else:
            meta, _ = check_meta(root)
        yield Submission(root, path, meta, checks)


def pack_submission(folder: str | Path, archive: str | Path) -> Path:
    """Pack a submission folder into ``archive`` (``.zip``, ``.tar.gz``/``.tgz`` or ``.tar``), written atomically.

    Members are stored relative to the folder (``meta.json`` at the top), in sorted order, regular files only.
    """
    folder, archive = Path(folder), Path(archive)
    if not (folder / spec.META_JSON).is_file():
        raise InputError(folder, "not a submission folder (no meta.json)")
    kind = archive_kind(archive)
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
