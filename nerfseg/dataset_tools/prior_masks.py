"""Mask operations shared by every 2D prior: COCO ``segments_info`` of an id map, signed distances, smooth noise
fields, touching instances, and the ``gt`` prior's id permutation.

Kept apart from the prior writer (:mod:`nerfseg.dataset_tools.priors`) so that the simulated prior
(:mod:`nerfseg.dataset_tools.sim_m2f_view`) and the real network (:mod:`nerfseg.dataset_tools.mask2former`) share
them without importing each other.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy import ndimage

from nerfseg import spec

#: Largest id a COCO panoptic PNG can hold (R + 256 G + 65536 B); prior ids are drawn from 1..ID_MAX.
ID_MAX = (1 << 24) - 1


def unit_field(shape: tuple[int, int], sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Smooth Gaussian random field with unit standard deviation and correlation length ``sigma`` pixels.

    White noise blurred by a 2D Gaussian of std ``sigma`` has variance 1 / (4 pi sigma^2); dividing by that
    (instead of the sample std) keeps the amplitude independent of the crop size and of the draw.
    """
    noise = rng.standard_normal(shape).astype(np.float32)
    if sigma <= 0:
        return noise
    smooth = ndimage.gaussian_filter(noise, sigma, mode="reflect")
    return smooth * np.float32(2.0 * math.sqrt(math.pi) * sigma)


def signed_distance(mask: np.ndarray) -> np.ndarray:
    """Signed distance to the mask's edge (> 0 inside, < 0 outside, +-1 on the first pixel each side)."""
    if mask.all():
        return np.full(mask.shape, 1e6, np.float32)
    if not mask.any():
        return np.full(mask.shape, -1e6, np.float32)
    return (ndimage.distance_transform_edt(mask) - ndimage.distance_transform_edt(~mask)).astype(np.float32)


def instance_classes(inv: np.ndarray, semantic: np.ndarray, n: int) -> np.ndarray:
    """Majority semantic class of each compact instance index (vectorised joint histogram)."""
    joint = np.bincount(inv * spec.NUM_CLASSES + semantic.ravel().astype(np.int64), minlength=n * spec.NUM_CLASSES)
    return joint.reshape(n, spec.NUM_CLASSES).argmax(axis=1)


def touching_pairs(lab: np.ndarray, min_contact: int) -> list[tuple[int, int]]:
    """Pairs (a < b) of positive labels sharing at least ``min_contact`` 4-neighbour pixel edges."""
    codes = []
    big = np.int64(int(lab.max()) + 1)
    for a, b in ((lab[:, :-1], lab[:, 1:]), (lab[:-1, :], lab[1:, :])):
        m = (a != b) & (a > 0) & (b > 0)
        lo = np.minimum(a[m], b[m]).astype(np.int64)
        hi = np.maximum(a[m], b[m]).astype(np.int64)
        codes.append(lo * big + hi)
    allc = np.concatenate(codes)
    if allc.size == 0:
        return []
    uniq, counts = np.unique(allc, return_counts=True)
    keep = uniq[counts >= max(1, min_contact)]
    return [(int(c // big), int(c % big)) for c in keep]


def coco_segments_info(ids: np.ndarray, category_of: Mapping[int, int], score_of: Mapping[int, float] | None = None) -> list[dict[str, Any]]:
    """COCO segments_info of an id map: area by one bincount over compact labels, bbox by find_objects."""
    uniq, inv = np.unique(ids, return_inverse=True)
    inv = inv.reshape(ids.shape)
    counts = np.bincount(inv.ravel(), minlength=uniq.size)
    boxes = ndimage.find_objects(inv + 1)
    info = []
    for k, sid in enumerate(uniq.tolist()):
        if sid == 0:
            continue
        ys, xs = boxes[k]
        entry = {
            "id": int(sid),
            "category_id": int(category_of[sid]),
            "iscrowd": 0,
            "area": int(counts[k]),
            "bbox": [int(xs.start), int(ys.start), int(xs.stop - xs.start), int(ys.stop - ys.start)],
        }
        if score_of is not None:
            entry["score"] = float(score_of[sid])
        info.append(entry)
    return info


def permute_gt_panoptic(
    panoptic: np.ndarray, categories: Mapping[int, int], rng: np.random.Generator, id_max: int = ID_MAX
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """GT panoptic ids replaced by random per-view ids (1..id_max, no repeats); void stays 0; score 1.

    Why: GT ids are the instance ids, identical in every view, so a method given them would skip the hard part
    (associating 2D segments across views). A permutation keeps the masks perfect but removes that consistency.
    """
    uniq, inv = np.unique(panoptic, return_inverse=True)
    inv = inv.reshape(panoptic.shape)
    nonvoid = [int(u) for u in uniq.tolist() if u != 0]
    missing = [u for u in nonvoid if u not in categories]
    if missing:
        raise ValueError(f"GT panoptic ids {missing[:5]} have no category")
    new = np.zeros(uniq.size, np.uint32)
    draws = rng.choice(id_max, size=len(nonvoid), replace=False) + 1
    k = 0
    category_of, score_of = {}, {}
    for i, u in enumerate(uniq.tolist()):
        if u == 0:
            continue
        new[i] = draws[k]
        category_of[int(draws[k])] = int(categories[u])
        score_of[int(draws[k])] = 1.0
        k += 1
    ids = new[inv]
    return ids, coco_segments_info(ids, category_of, score_of)
