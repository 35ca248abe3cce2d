"""Plain data handed to the evaluator: one frame's GT and prediction, one scene's 3D GT and prediction.

The readers (``nerfseg/evaluation/gt.py`` for the benchmark, ``nerfseg/evaluation/submission.py`` for a method's output)
produce these; the metrics and protocols consume them. Keeping them as small dataclasses of numpy arrays
and dicts means a metric never touches a file, so it can run in any process and be tested on hand-made
arrays.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nerfseg.errors import InputError

#: Semantic label of a void pixel (panoptic id 0, or an id without a segment) in derived semantic maps.
VOID = 255


@dataclass(frozen=True)
class FrameGT:
    """Ground truth of one test view.

    ``panoptic`` holds COCO panoptic segment ids (0 = VOID, rays that hit nothing); ``segments`` maps a
    segment id to ``{"category_id", "iscrowd", "area"}`` (``iscrowd`` defaults to 0; ``area`` is optional
    and, when given, is used instead of the pixel count, as panopticapi does). ``scene_instances`` lists
    every GT thing id of the scene, visible in this frame or not: only the ``instance-nerf`` protocol needs
    it (its FN count includes invisible objects).
    """

    panoptic: np.ndarray
    segments: Mapping[int, Mapping[str, Any]]
    scene_instances: frozenset[int] | set[int] = field(default_factory=frozenset)


@dataclass(frozen=True)
class FramePred:
    """A method's prediction for one test view: panoptic ids and ``{id: {"category_id", ...}}``."""

    panoptic: np.ndarray
    segments: Mapping[int, Mapping[str, Any]]


@dataclass(frozen=True)
class GT3D:
    """3D ground truth of a scene (SPEC 3.1): an instance grid and the class of every instance id.

    ``semantic`` is optional; when absent it is derived from ``instance`` and ``classes`` (id 0 and ids
    without a class are background).
    """

    instance: np.ndarray
    classes: Mapping[int, int]
    semantic: np.ndarray | None = None


@dataclass(frozen=True)
class Pred3D:
    """3D predictions of a scene: either ``masks`` (K, X, Y, Z) booleans, or an ``instance`` grid with the
    ``ids`` of its K instances; plus per-instance ``classes`` (1..10) and ``scores``.

    ``semantic`` is optional; when absent it is painted from the instances in ascending score order, so
    the most confident instance wins a voxel claimed by several.
    """

    classes: Sequence[int] | np.ndarray
    scores: Sequence[float] | np.ndarray
    masks: np.ndarray | None = None
    instance: np.ndarray | None = None
    ids: Sequence[int] | np.ndarray | None = None
    semantic: np.ndarray | None = None


def semantic_from_panoptic(panoptic: np.ndarray, segments: Mapping[int, Mapping[str, Any]], void: int = VOID) -> np.ndarray:
    """Class map (uint8) of a panoptic id map: each segment's ``category_id``; id 0 and unlisted ids -> ``void``.

    Vectorised through a sorted key table (``searchsorted``), so the cost is one pass over the pixels.
    """
    ids = np.asarray(panoptic)
    keys = np.fromiter((int(k) for k in segments), dtype=np.int64, count=len(segments))
    cats = np.fromiter((int(segments[k]["category_id"]) for k in segments), dtype=np.int64, count=len(segments))
    if cats.size and (cats.min() < 0 or cats.max() >= void):
        raise InputError(None, f"category ids must lie in [0, {void}) to build a semantic map")
    order = np.argsort(keys)
    keys, cats = keys[order], cats[order]
    lut_values = np.concatenate([cats, [void]]).astype(np.uint8)
    if keys.size == 0:
        return np.full(ids.shape, void, dtype=np.uint8)
    pos = np.searchsorted(keys, ids)
    pos_c = np.minimum(pos, keys.size - 1)
    hit = (keys[pos_c] == ids) & (ids != 0)
    return np.where(hit, lut_values[pos_c], np.uint8(void)).astype(np.uint8)
