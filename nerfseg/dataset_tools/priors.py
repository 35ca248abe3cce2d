"""2D panoptic priors (SPEC section 6): the noisy per-view predictions that methods learn from instead of GT.

Instance-NeRF (and Panoptic Lifting, Contrastive Lift, ...) never see GT masks on the training views: they lift the
output of a 2D panoptic network (COCO Mask2Former, threshold 0.5, COCO -> NYU40 mapped) into 3D. For the benchmark
to compare methods fairly, every method must see the *same* 2D input, so the benchmark ships it:

* ``sim-m2f`` (default): made from GT by a documented, seeded noise model of a 2D panoptic network
  (:class:`SimM2FParams`, :func:`simulate_sim_m2f`) whose mistakes persist per object across views
  (nerfseg/dataset_tools/sim_m2f.py, docs/priors.md). No weights, no GPU, bit-identical on every machine.
* ``sim-m2f-indep``: the earlier model with every mistake drawn independently per view (kept for comparison).
* ``gt``: the GT panoptic maps with the segment ids permuted per view: an upper bound that still needs matching
  across views (what a method gets from perfect 2D masks but without multi-view consistency).
* ``mask2former``: a real Mask2Former checkpoint run on the RGB views (``nerfseg/dataset_tools/mask2former.py``).

Every prior is written as ``scenes/<id>/priors/<prior>/panoptic/<frame>.png`` (COCO panoptic PNG) plus
``scenes/<id>/priors/<prior>/panoptic.json`` for ALL views (train and test) of the scene; the folder is written to a
temporary name and renamed into place, so a killed run never leaves a prior that looks complete.

Randomness: one ``np.random.Generator`` per (seed, scene, frame) from ``SeedSequence([seed, scene_key, frame_key])``
where ``scene_key`` comes from SHA-256 of the scene id (Python's ``hash`` is salted per process and would make the
prior differ between runs) and ``frame_key`` is the frame number. A frame's prior therefore does not depend on
which other scenes or frames were generated, nor in which order or process.
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from nerfseg.dataset_tools.sim_m2f import (
    CONFUSE,
    HOLE,
    KEY_OBJECT,
    KEY_PAIR,
    MISS,
    PART,
    PART_CLASS,
    SPLIT,
    ObjectLatents,
    SceneContext,
    ViewContext,
    correlated_uniform,
    edge_map,
    site_blobs,
    snap_to_edges,
    split_part_3d,
)
from nerfseg import spec
from nerfseg.errors import InputError
from nerfseg.io import (
    create_temp_dir,
    read_panoptic_png,
    read_png,
    write_json_atomic,
    write_panoptic_png,
)

PRIOR_NAMES: tuple[str, ...] = ("sim-m2f", "sim-m2f-indep", "gt", "mask2former")
#: The simulated priors: ``sim-m2f`` errs consistently across views (nerfseg/dataset_tools/sim_m2f.py), ``sim-m2f-indep``
#: is the earlier model with every error drawn independently per view, kept for comparison.
SIM_PRIORS: tuple[str, ...] = ("sim-m2f", "sim-m2f-indep")
#: separate random streams per prior, so the priors of one frame use unrelated draws; sim-m2f-indep keeps the
#: stream the independent model always used, so it reproduces the earlier sim-m2f files byte for byte.
_STREAM = {"sim-m2f": 4, "sim-m2f-indep": 1, "gt": 2, "mask2former": 3}
#: priors made from the ground-truth masks themselves: a method that learns from one is marked uses_gt_masks
GT_DERIVED_PRIORS: frozenset[str] = frozenset({"gt"})


def prior_uses_gt_masks(prior_name: str) -> bool:
    """Whether a prior is derived from the GT masks (written into the prior's panoptic.json, read by methods)."""
    return prior_name in GT_DERIVED_PRIORS


DEFAULT_PRIOR = "sim-m2f"
#: Largest id a COCO panoptic PNG can hold (R + 256 G + 65536 B); prior ids are drawn from 1..ID_MAX.
ID_MAX = (1 << 24) - 1

_NAME_TO_CLASS = spec.CLASS_INDEX_BY_NAME
_OTHER = _NAME_TO_CLASS["otherfurniture"]


# ---------------------------------------------------------------------------------------------
# The noise model


def _default_confusion() -> dict[str, dict[str, float]]:
    # Rows: true class -> {predicted class: probability}; the rest of the row keeps the true class.
    # Why these pairs: the paper's prior is a COCO network mapped to NYU40 classes (anchors 6.1). COCO has no
    # desk, nightstand or bookshelf-as-thing category, so a desk is seen as "dining table" (-> table), a
    # nightstand as "cabinet-merged" (-> cabinet) or a generic thing (-> otherfurniture), a bookshelf half the
    # time as "cabinet-merged"; armchairs flip between chair and couch; every COCO thing outside the four mapped
    # ones (tv, potted plant, ...) lands in otherfurniture, which therefore absorbs and donates many labels.
    return {
        "cabinet": {"otherfurniture": 0.20, "bookshelf": 0.07, "nightstand": 0.03},
        "bed": {"sofa": 0.06, "otherfurniture": 0.04},
        "chair": {"sofa": 0.10, "otherfurniture": 0.06},
        "sofa": {"chair": 0.12, "bed": 0.04},
        "table": {"desk": 0.06, "otherfurniture": 0.06},
        "bookshelf": {"cabinet": 0.30, "otherfurniture": 0.10},
        "desk": {"table": 0.60, "otherfurniture": 0.05},
        "nightstand": {"cabinet": 0.40, "table": 0.15, "otherfurniture": 0.10},
        "lamp": {"otherfurniture": 0.15},
        "otherfurniture": {"cabinet": 0.12, "table": 0.06},
    }


def _default_spurious_classes() -> dict[str, float]:
    # False positives of a COCO network in rooms are mostly small clutter (tv, vase, potted plant, book...),
    # which the reference mapping sends to otherfurniture, plus lights (-> lamp) and shelves (-> bookshelf).
    return {"otherfurniture": 0.70, "lamp": 0.10, "cabinet": 0.08, "bookshelf": 0.06, "chair": 0.06}


@dataclass(frozen=True)
class SimM2FParams:
    """Parameters of the ``sim-m2f`` prior: what a COCO-trained 2D panoptic network gets wrong, knob by knob.

    Lengths are in pixels of a ``reference_height`` (480, the paper's 640x480) image and scale with the actual
    image height, so a ``mini`` build at lower resolution sees the same relative noise. Probabilities are per
    instance (or per pair / per frame where stated). Every stage can be switched off (probability or amplitude 0)
    so the tests can check each one alone. The defaults are calibrated (docs/priors.md) so that the prior's
    test-view quality is close to the paper's Mask2Former row on 3D-FRONT; :meth:`independent` gives the earlier
    per-view-independent model (nerfseg/dataset_tools/PRIORS.md).
    """

    # --- ids ------------------------------------------------------------------------------------------
    #: Segment ids are drawn uniformly without replacement from 1..id_max per view. A 2D network numbers its
    #: segments per image (query order), so the same chair has unrelated ids in two views: methods must solve
    #: the cross-view association themselves. A large range also makes accidental equal ids across views rare.
    id_max: int = ID_MAX

    # --- misses (false negatives) ---------------------------------------------------------------------
    #: Probability of missing even a large, fully visible instance (occlusion, odd viewpoint, dark texture):
    #: real networks lose some objects regardless of size.
    miss_base: float = 0.08
    #: Extra miss probability for a vanishingly small instance; decays as exp(-area_fraction / miss_small_area).
    #: Mask2Former predicts masks at 1/4 resolution and its queries favour large objects: small ones vanish.
    miss_small: float = 0.9
    #: Area fraction (instance pixels / image pixels) at which the small-instance term has fallen to 1/e.
    miss_small_area: float = 0.05
    #: Extra miss probability for an instance touching the image border (truncated: only a part is visible,
    #: which a network trained on whole objects recognises badly).
    miss_truncated: float = 0.15
    #: Instances smaller than this (pixels at reference height) are always missed; also the smallest segment the
    #: prior keeps after boundary noise (a network's post-processing drops tiny masks).
    min_area_px: int = 64
    #: A missed instance's pixels become void (no query claimed them) with this probability, else they are
    #: absorbed by the background stuff segment (the usual "it's part of the wall/floor" failure).
    missed_void_prob: float = 0.3

    # --- merges ---------------------------------------------------------------------------------------
    #: Probability that two touching instances of the SAME class are predicted as one segment (rows of chairs,
    #: a bed and its nightstand-like headboard parts, a desk and a table pushed together).
    merge_prob_same: float = 0.7
    #: Probability of merging touching instances of SIMILAR classes (a pair listed in ``confusion`` in either
    #: direction, e.g. a desk against a cabinet). The merged segment takes the class of the larger member.
    merge_prob_similar: float = 0.3
    #: Minimum shared boundary (pixels at reference height) for two instances to count as touching.
    merge_min_contact_px: int = 12

    # --- class confusion ------------------------------------------------------------------------------
    #: Row = true class name, value = {predicted class name: probability}; each row sums to <= 1, the rest keeps
    #: the true class. Drawn independently per segment and view (a network is not consistent across views).
    confusion: dict[str, dict[str, float]] = field(default_factory=_default_confusion)

    # --- spurious segments (false positives) ----------------------------------------------------------
    #: Expected number (Poisson mean) of spurious blobs per view on the background (clutter, pictures, rugs and
    #: reflections that a COCO network calls "tv", "potted plant", "rug" ... and the mapping sends to a class).
    spurious_per_frame: float = 1.5
    #: Range of a spurious blob's area as a fraction of the image (drawn log-uniformly).
    spurious_area_min: float = 0.002
    spurious_area_max: float = 0.03
    #: Class distribution of spurious blobs (class name -> weight, normalised).
    spurious_classes: dict[str, float] = field(default_factory=_default_spurious_classes)
    #: Probability that an instance is split in two segments (a part - cushions, a headboard, a table top - gets
    #: its own query). The part is 15-45 % of the instance, cut by a random straight line. High by default:
    #: splits and same-class merges cost PQ but no mIoU, which is how the paper's prior reaches PQ 22.5 with
    #: mIoU 31.6 (misses and confusions alone lower both together; see nerfseg/dataset_tools/PRIORS.md).
    split_prob: float = 0.85
    #: Probability that a split-off part keeps the instance's class (else it draws from the confusion row, or
    #: becomes otherfurniture when the row is empty).
    split_same_class_prob: float = 0.8

    # --- boundary noise -------------------------------------------------------------------------------
    #: Standard deviation (pixels) of the smooth random field added to each segment's signed distance before
    #: re-thresholding: contours wobble by about this much, independently per segment (and per view).
    boundary_amplitude_px: float = 12.0
    #: Correlation length (pixels) of that field: small values give ragged edges, large values bulges.
    boundary_sigma_px: float = 10.0
    #: Mean signed growth (pixels) of thing masks: negative = eroded. Upsampled low-resolution mask logits shrink
    #: objects and lose thin parts (chair legs, lamp stems).
    thing_bias_px: float = -2.5
    #: Per-segment standard deviation of that growth (random erosion or dilation of the whole mask).
    bias_std_px: float = 3.0
    #: Growth (pixels) of the background stuff segment, which has its own boundary noise like any segment.
    stuff_bias_px: float = 0.0
    #: Gaussian blur (pixels) of the signed distance before thresholding: rounds corners and removes structures
    #: thinner than about twice this, like a mask head working at 1/4 resolution.
    mask_smooth_px: float = 3.0

    # --- scores ---------------------------------------------------------------------------------------
    #: Detection threshold of the simulated network: every kept segment scores at least this (the paper ran
    #: Mask2Former with --confidence-threshold 0.5).
    score_threshold: float = 0.5
    #: Mean / std of the score of a correct detection (right class, from a real instance).
    score_true_mean: float = 0.88
    #: Mean score of a detection whose class was confused (networks are less sure of the classes they mix up).
    score_confused_mean: float = 0.72
    #: Mean score of spurious blobs and split-off parts.
    score_spurious_mean: float = 0.62
    score_std: float = 0.08

    # --- consistency across views (nerfseg/dataset_tools/sim_m2f.py; docs/priors.md) --------------------------
    #: Correlation strength: the share of variance that every per-object decision (miss, hole-or-background,
    #: split, confusion target, part class), every touching pair's merge and every spurious site's detection
    #: takes from a latent drawn once per scene for that object (Gaussian copula). 0 = independent draws per
    #: view (the ``sim-m2f-indep`` model); 1 = the decision is a deterministic function of object and viewpoint.
    #: Calibrated on the multi-view fusion gain (docs/priors.md).
    consistency: float = 0.5
    #: Share of the latent that is the same from every viewpoint; the rest is a smooth random function of the
    #: direction from the object's centre to the camera, so nearby views agree and far-apart views may not.
    #: With ``consistency = view_invariance = 1`` an object has the same class in every view that sees it.
    #: Needs object centres (gt3d.h5) and cameras; without them the latent is view-invariant.
    view_invariance: float = 0.5
    #: Angle (degrees) between two viewing directions at which the view-dependent part's correlation has
    #: fallen to exp(-1/2) = 0.61 (Gaussian kernel on the unit sphere).
    view_corr_deg: float = 45.0
    #: Cut split-off parts with a fixed 3D plane per object (random normal, ``part`` fraction of the AABB
    #: extent) so that the same physical part is split off in every view; needs depth and gt3d.h5 boxes, else
    #: a per-object line in the image (with consistency > 0) or a random line per view.
    split_plane_3d: bool = True
    #: Expected number (Poisson mean, per scene) of spurious sites: points on background surfaces, drawn from
    #: the depth of random views, that the network takes for an object whenever it sees them (replaces the
    #: per-view blobs of ``spurious_per_frame``). Needs depth maps and cameras.
    spurious_sites: float = 14.0
    #: Probability that a view that sees a site (in the image, not occluded, on background) reports it;
    #: correlated across views through the site's latent.
    spurious_site_detect: float = 0.6
    #: Range (metres) of a site's radius, drawn log-uniformly: its segment is the background surface within it.
    spurious_radius_min_m: float = 0.15
    spurious_radius_max_m: float = 0.5
    #: Width (pixels at reference height) of the band around every noisy boundary that is re-grown by a
    #: watershed on the RGB + depth edge map: boundaries snap to the strongest image edge within it (a mask
    #: head follows edges). 0 = off (free-form noisy boundaries).
    snap_band_px: float = 8.0
    #: Weight of the log-depth gradient against the RGB gradient in that edge map.
    edge_depth_weight: float = 1.0

    #: Image height at which the pixel lengths above are given.
    reference_height: int = 480

    def __post_init__(self) -> None:
        probs = (
            "miss_base", "miss_small", "miss_truncated", "missed_void_prob", "merge_prob_same", "merge_prob_similar",
            "split_prob", "split_same_class_prob", "score_threshold", "consistency", "view_invariance", "spurious_site_detect",
        )  # fmt: skip
        for name in probs:
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"SimM2FParams.{name} = {value} is not a probability in [0, 1]")
        for name in ("miss_small_area", "boundary_sigma_px", "spurious_area_min", "spurious_area_max", "spurious_radius_min_m", "spurious_radius_max_m"):
            if getattr(self, name) <= 0:
                raise ValueError(f"SimM2FParams.{name} must be > 0")
        for name in ("spurious_per_frame", "boundary_amplitude_px", "bias_std_px", "mask_smooth_px", "score_std", "min_area_px", "spurious_sites", "snap_band_px", "edge_depth_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"SimM2FParams.{name} must be >= 0")
        if self.spurious_area_min > self.spurious_area_max:
            raise ValueError("SimM2FParams.spurious_area_min must be <= spurious_area_max")
        if self.spurious_radius_min_m > self.spurious_radius_max_m:
            raise ValueError("SimM2FParams.spurious_radius_min_m must be <= spurious_radius_max_m")
        if not 0.0 < self.view_corr_deg <= 180.0:
            raise ValueError("SimM2FParams.view_corr_deg must lie in (0, 180]")
        if not 1 <= self.id_max <= ID_MAX:
            raise ValueError(f"SimM2FParams.id_max must lie in [1, {ID_MAX}] (COCO panoptic PNG ids)")
        if self.reference_height <= 0:
            raise ValueError("SimM2FParams.reference_height must be > 0")
        for true_name, row in self.confusion.items():
            _class_index(true_name, "confusion")
            total = 0.0
            for pred_name, p in row.items():
                _class_index(pred_name, f"confusion[{true_name}]")
                if pred_name == "background":
                    raise ValueError("SimM2FParams.confusion: an object cannot be confused with background (use misses)")
                if p < 0:
                    raise ValueError(f"SimM2FParams.confusion[{true_name}][{pred_name}] = {p} < 0")
                total += p
            if total > 1.0 + 1e-9:
                raise ValueError(f"SimM2FParams.confusion[{true_name}] sums to {total:.3f} > 1")
        if not self.spurious_classes or any(w < 0 for w in self.spurious_classes.values()) or sum(self.spurious_classes.values()) <= 0:
            raise ValueError("SimM2FParams.spurious_classes needs non-negative weights with a positive sum")
        for name in self.spurious_classes:
            if _class_index(name, "spurious_classes") == spec.BACKGROUND:
                raise ValueError("SimM2FParams.spurious_classes: background is not an object class")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (recorded in the prior's panoptic.json and in benchmark.json)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str | Path | None = None) -> SimM2FParams:
        """Inverse of :meth:`to_dict`; unknown keys are an error (a typo must not silently use a default)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(source, f"unknown sim-m2f parameter(s) {unknown}; known: {sorted(known)}")
        try:
            return cls(**dict(data))
        except (TypeError, ValueError) as exc:
            raise InputError(source, f"invalid sim-m2f parameters: {exc}") from None

    def replace(self, **changes: Any) -> SimM2FParams:
        return SimM2FParams.from_dict({**self.to_dict(), **changes})

    @classmethod
    def disabled(cls, **enable: Any) -> SimM2FParams:
        """Every noise stage off (the prior equals GT up to ids and scores); ``enable`` switches stages back on.

        Used by the tests to measure one noise component at a time.
        """
        off: dict[str, Any] = {
            "miss_base": 0.0, "miss_small": 0.0, "miss_truncated": 0.0, "min_area_px": 0, "merge_prob_same": 0.0,
            "merge_prob_similar": 0.0, "confusion": {}, "spurious_per_frame": 0.0, "split_prob": 0.0,
            "boundary_amplitude_px": 0.0, "thing_bias_px": 0.0, "bias_std_px": 0.0, "stuff_bias_px": 0.0, "mask_smooth_px": 0.0,
            "spurious_sites": 0.0, "snap_band_px": 0.0,
        }  # fmt: skip
        off.update(enable)
        return cls(**off)

    @classmethod
    def independent(cls, **changes: Any) -> SimM2FParams:
        """The ``sim-m2f-indep`` model: the earlier calibrated defaults, every error independent per view.

        Its values are frozen here (not derived from the new defaults) so that recalibrating ``sim-m2f`` never
        changes the comparison prior; with stream 1 it reproduces the earlier ``sim-m2f`` files byte for byte.
        """
        return cls(**{**_INDEPENDENT_MODEL, **changes})


#: The earlier (independent) model's calibrated values (nerfseg/dataset_tools/PRIORS.md), plus the new stages off.
_INDEPENDENT_MODEL: dict[str, Any] = {
    "miss_base": 0.06, "miss_small": 0.9, "miss_small_area": 0.05, "miss_truncated": 0.15, "min_area_px": 64,
    "missed_void_prob": 0.3, "merge_prob_same": 0.7, "merge_prob_similar": 0.3, "merge_min_contact_px": 12,
    "spurious_per_frame": 1.5, "spurious_area_min": 0.002, "spurious_area_max": 0.03, "split_prob": 0.55,
    "split_same_class_prob": 0.8, "boundary_amplitude_px": 8.0, "boundary_sigma_px": 10.0, "thing_bias_px": -2.5,
    "bias_std_px": 3.0, "stuff_bias_px": 0.0, "mask_smooth_px": 3.0,
    "consistency": 0.0, "split_plane_3d": False, "spurious_sites": 0.0, "snap_band_px": 0.0,
}  # fmt: skip


def _class_index(name: str, where: str) -> int:
    if name not in _NAME_TO_CLASS:
        raise ValueError(f"SimM2FParams.{where}: unknown class {name!r}; known: {list(spec.CLASS_NAMES)}")
    return _NAME_TO_CLASS[name]


# Segment kinds decide the score distribution.
_TRUE, _CONFUSED, _SPURIOUS, _STUFF = 0, 1, 2, 3
_VOID = -1  # GT void (rays that hit nothing) and final void
_MISSED_VOID = -2  # a missed instance that leaves a hole: noised like a segment, then set to void


def _confusion_matrix(params: SimM2FParams) -> np.ndarray:
    """(11, 11) row-stochastic matrix P[true, pred] from the params' name table."""
    mat = np.eye(spec.NUM_CLASSES)
    for true_name, row in params.confusion.items():
        t = _NAME_TO_CLASS[true_name]
        for pred_name, p in row.items():
            mat[t, _NAME_TO_CLASS[pred_name]] += p
            mat[t, t] -= p
    return mat


def _unit_field(shape: tuple[int, int], sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Smooth Gaussian random field with unit standard deviation and correlation length ``sigma`` pixels.

    White noise blurred by a 2D Gaussian of std ``sigma`` has variance 1 / (4 pi sigma^2); dividing by that
    (instead of the sample std) keeps the amplitude independent of the crop size and of the draw.
    """
    noise = rng.standard_normal(shape).astype(np.float32)
    if sigma <= 0:
        return noise
    smooth = ndimage.gaussian_filter(noise, sigma, mode="reflect")
    return smooth * np.float32(2.0 * math.sqrt(math.pi) * sigma)


def _signed_distance(mask: np.ndarray) -> np.ndarray:
    """Signed distance to the mask's edge (> 0 inside, < 0 outside, +-1 on the first pixel each side)."""
    if mask.all():
        return np.full(mask.shape, 1e6, np.float32)
    if not mask.any():
        return np.full(mask.shape, -1e6, np.float32)
    return (ndimage.distance_transform_edt(mask) - ndimage.distance_transform_edt(~mask)).astype(np.float32)


def _instance_classes(inv: np.ndarray, semantic: np.ndarray, n: int) -> np.ndarray:
    """Majority semantic class of each compact instance index (vectorised joint histogram)."""
    joint = np.bincount(inv * spec.NUM_CLASSES + semantic.ravel().astype(np.int64), minlength=n * spec.NUM_CLASSES)
    return joint.reshape(n, spec.NUM_CLASSES).argmax(axis=1)


def _touching_pairs(lab: np.ndarray, min_contact: int) -> list[tuple[int, int]]:
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


def simulate_sim_m2f(
    instance: np.ndarray,
    semantic: np.ndarray,
    params: SimM2FParams | None = None,
    rng: np.random.Generator | None = None,
    *,
    void: np.ndarray | None = None,
    view: ViewContext | None = None,
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """One view's ``sim-m2f`` prediction from its GT instance and semantic maps.

    Stages, in this order (each documented on :class:`SimM2FParams`): misses -> merges of touching instances ->
    split-off parts -> class confusion -> spurious blobs on the background (per view) and at the scene's
    spurious sites -> boundary noise of every segment (background stuff included) -> snapping of the
    boundaries to image edges -> drop of tiny segments -> random ids and scores.

    ``void`` (optional bool mask, GT panoptic id 0) stays void. ``view`` (:class:`nerfseg.dataset_tools.sim_m2f.ViewContext`)
    carries the scene's per-object latents and the view's geometry and pixels: without it every decision is
    an independent draw from ``rng`` (as ``sim-m2f-indep``), the sites and the edge snapping are skipped.
    With ``params.consistency = 0`` the draws consume ``rng`` exactly as without it. Returns the (H, W)
    uint32 panoptic id map (0 = void) and COCO ``segments_info`` (id, category_id, iscrowd, area, bbox, score).
    """
    params = params or SimM2FParams()
    rng = rng if rng is not None else np.random.default_rng(0)
    instance = np.asarray(instance)
    semantic = np.asarray(semantic)
    if instance.ndim != 2 or instance.shape != semantic.shape:
        raise ValueError(f"instance {instance.shape} and semantic {semantic.shape} maps must be equal 2D shapes")
    if semantic.size and int(semantic.max()) >= spec.NUM_CLASSES:
        raise ValueError(f"semantic map has class {int(semantic.max())} >= {spec.NUM_CLASSES}")
    h, w = instance.shape
    npix = h * w
    scale = h / params.reference_height
    void_mask = np.zeros((h, w), bool) if void is None else np.asarray(void, bool)

    # Compact labels: 0 = background stuff, 1..n-1 = instances, _VOID for GT void.
    uniq, inv = np.unique(instance, return_inverse=True)
    inv = inv.reshape(-1)
    has_bg = uniq.size > 0 and uniq[0] == 0
    if not has_bg:  # keep index 0 for stuff even when no pixel is background
        uniq = np.concatenate([[0], uniq])
        inv = inv + 1
    n = uniq.size
    cls = _instance_classes(inv, semantic, n)
    cls[0] = spec.BACKGROUND
    bad = np.flatnonzero(cls[1:] == spec.BACKGROUND) + 1
    if bad.size:
        raise ValueError(f"instance id {int(uniq[bad[0]])} has no object class in the semantic map (majority class 0)")
    area = np.bincount(inv, minlength=n).astype(np.int64)
    lab = inv.reshape(h, w).astype(np.int32)
    lab[void_mask] = _VOID

    # Per-object latents (None: independent draws). Index k of every per-instance array is GT id uniq[k].
    rho = params.consistency if view is not None else 0.0
    dirs = view.directions(uniq) if (view is not None and rho > 0) else None

    def latent(purpose: int) -> np.ndarray | None:
        return view.latents.values(KEY_OBJECT, uniq, dirs, purpose) if (view is not None and rho > 0) else None

    # 1. misses ------------------------------------------------------------------------------------
    border = np.concatenate([instance[0], instance[-1], instance[:, 0], instance[:, -1]])
    touches = np.isin(uniq, border)
    frac = area / npix
    p_keep = (
        (1 - params.miss_base)
        * (1 - params.miss_small * np.exp(-frac / params.miss_small_area))
        * (1 - params.miss_truncated * touches)
    )
    u_miss = correlated_uniform(rng.random(n), latent(MISS), rho)
    u_void = correlated_uniform(rng.random(n), latent(HOLE), rho)
    missed = (u_miss >= p_keep) | (area < params.min_area_px * scale * scale)
    missed[0] = False
    remap = np.arange(n, dtype=np.int32)
    remap[missed] = np.where(u_void[missed] < params.missed_void_prob, _MISSED_VOID, 0)

    # 2. merges of touching instances (union-find over the kept ones) -------------------------------
    conf_mat = _confusion_matrix(params)
    parent = np.arange(n)

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = int(parent[i])
        return i

    kept_lab = np.where(lab >= 0, remap[np.maximum(lab, 0)], _VOID)
    pairs = _touching_pairs(kept_lab, round(params.merge_min_contact_px * scale))
    u_merge = rng.random(len(pairs))
    if pairs and view is not None and rho > 0:  # a pair's merge persists (view-invariant pair latent)
        keys = np.sort(uniq[np.array(pairs)], axis=1)
        u_merge = correlated_uniform(u_merge, view.latents.values(KEY_PAIR, keys, None, 0), rho)
    for (a, b), u in zip(pairs, u_merge):
        ca, cb = cls[a], cls[b]
        if ca == cb:
            p = params.merge_prob_same
        elif conf_mat[ca, cb] > 0 or conf_mat[cb, ca] > 0:
            p = params.merge_prob_similar
        else:
            p = 0.0
        if u < p:
            ra, rb = find(a), find(b)
            if ra != rb:
                # the root is the larger member so the merged segment takes its class
                if area[ra] < area[rb] or (area[ra] == area[rb] and rb < ra):
                    ra, rb = rb, ra
                parent[rb] = ra
    roots = np.array([find(i) for i in range(n)], dtype=np.int32)
    remap = np.where(remap > 0, roots[np.maximum(remap, 0)], remap)
    seg = np.where(lab >= 0, remap[np.maximum(lab, 0)], _VOID).astype(np.int32)  # labels: index into seg table

    # Segment table (index = label value >= 0): class and kind.
    seg_cls: list[int] = [int(c) for c in cls]
    seg_kind: list[int] = [_STUFF] + [_TRUE] * (n - 1)
    live = sorted(int(i) for i in np.unique(seg) if i > 0)

    # 3. split-off parts ---------------------------------------------------------------------------
    u_split = rng.random(len(live))
    lat_split, lat_part, lat_part_cls = latent(SPLIT), latent(PART), latent(PART_CLASS)
    if live and lat_split is not None:
        u_split = correlated_uniform(u_split, lat_split[live], rho)
    if live:
        objs = ndimage.find_objects(np.maximum(seg, 0))
        for s, u in zip(live, u_split):
            if u >= params.split_prob:
                continue
            sl = objs[s - 1]
            sub = seg[sl] == s
            ys, xs = np.nonzero(sub)
            theta = rng.uniform(0.0, math.pi)
            q = rng.uniform(0.15, 0.45)
            part = split_part_3d(view, int(uniq[s]), sub, sl) if params.split_plane_3d else None
            if part is None:
                if rho > 0 and view is not None:  # the same cut of this object in every view (image-space fallback)
                    obj = view.latents.object(int(uniq[s]))
                    theta, q = obj.theta2d, obj.part_q
                proj = xs * math.cos(theta) + ys * math.sin(theta)
                part = proj < np.quantile(proj, q)
            if part.sum() < params.min_area_px * scale * scale or part.all():
                continue
            new = len(seg_cls)
            u_same = rng.random()
            if lat_part is not None:
                u_same = float(correlated_uniform(np.array([u_same]), lat_part[s : s + 1], rho)[0])
            if u_same < params.split_same_class_prob:
                new_cls = seg_cls[s]
            else:
                row = conf_mat[seg_cls[s]].copy()
                row[seg_cls[s]] = 0.0
                if row.sum() <= 0:
                    new_cls = _OTHER
                elif lat_part_cls is None:
                    new_cls = int(rng.choice(spec.NUM_CLASSES, p=row / row.sum()))
                else:
                    u_pc = correlated_uniform(np.array([rng.random()]), lat_part_cls[s : s + 1], rho)[0]
                    new_cls = int(min(np.searchsorted(np.cumsum(row / row.sum()), u_pc, side="right"), spec.NUM_CLASSES - 1))
            seg_cls.append(new_cls)
            seg_kind.append(_SPURIOUS)
            seg_box = seg[sl]
            seg_box[ys[part], xs[part]] = new

    # 4. class confusion (every object segment, independently) --------------------------------------
    cum = np.cumsum(conf_mat, axis=1)
    u_conf = rng.random(len(seg_cls))
    lat_conf = latent(CONFUSE)
    if lat_conf is not None:  # the confusion target persists per object (split-off parts are not _TRUE)
        u_conf[:n] = correlated_uniform(u_conf[:n], lat_conf, rho)
    for s in range(1, len(seg_cls)):
        if seg_kind[s] != _TRUE:
            continue
        pred = int(np.searchsorted(cum[seg_cls[s]], u_conf[s], side="right"))
        pred = min(pred, spec.NUM_CLASSES - 1)
        if pred != seg_cls[s]:
            seg_cls[s] = pred
            seg_kind[s] = _CONFUSED

    # 5. spurious blobs on the background ----------------------------------------------------------
    n_spur = int(rng.poisson(params.spurious_per_frame)) if params.spurious_per_frame > 0 else 0
    if n_spur:
        names = sorted(params.spurious_classes)
        weights = np.array([params.spurious_classes[k] for k in names], float)
        yy, xx = np.mgrid[0:h, 0:w]
        for _ in range(n_spur):
            stuff_px = np.flatnonzero(seg.ravel() == 0)
            if stuff_px.size == 0:
                break
            centre = int(stuff_px[rng.integers(stuff_px.size)])
            cy, cx = divmod(centre, w)
            a = math.exp(rng.uniform(math.log(params.spurious_area_min), math.log(params.spurious_area_max))) * npix
            aspect = math.exp(rng.uniform(-0.7, 0.7))
            rx, ry = math.sqrt(a / math.pi * aspect), math.sqrt(a / math.pi / aspect)
            theta = rng.uniform(0.0, math.pi)
            c, s_ = math.cos(theta), math.sin(theta)
            dx, dy = xx - cx, yy - cy
            blob = ((dx * c + dy * s_) / rx) ** 2 + ((-dx * s_ + dy * c) / ry) ** 2 <= 1.0
            blob &= seg == 0
            cls_pick = _NAME_TO_CLASS[names[int(rng.choice(len(names), p=weights / weights.sum()))]]
            if blob.sum() < max(1, params.min_area_px * scale * scale):
                continue
            seg[blob] = len(seg_cls)
            seg_cls.append(cls_pick)
            seg_kind.append(_SPURIOUS)

    # 5b. spurious segments at the scene's fixed 3D sites ----------------------------------------------
    if view is not None and view.sites is not None and params.spurious_sites > 0:
        u_sites = rng.random(len(view.sites.points))
        for blob, cls_pick in site_blobs(view, seg == 0, u_sites, params):
            blob &= seg == 0
            if blob.sum() < max(1, params.min_area_px * scale * scale):
                continue
            seg[blob] = len(seg_cls)
            seg_cls.append(cls_pick)
            seg_kind.append(_SPURIOUS)

    # 6. boundary noise: argmax over segments of (smoothed signed distance + growth + smooth random field) ----
    amp = params.boundary_amplitude_px * scale
    sigma = params.boundary_sigma_px * scale
    smooth = params.mask_smooth_px * scale
    noisy = (amp > 0) or (params.bias_std_px > 0) or (params.thing_bias_px != 0) or (params.stuff_bias_px != 0) or (smooth > 0)
    if noisy:
        seg = _boundary_noise(seg, params, scale, amp, sigma, smooth, rng)
    # 6b. boundaries snap to the strongest RGB / depth edge nearby (a mask head follows image edges) --------
    if params.snap_band_px > 0 and view is not None:
        edges = edge_map(view.rgb, view.depth, params.edge_depth_weight)
        if edges is not None:
            if edges.shape != seg.shape:
                raise ValueError(f"RGB/depth {edges.shape} and instance {seg.shape} maps differ in size")
            seg = snap_to_edges(seg, edges, params.snap_band_px * scale)
    seg[void_mask] = _VOID
    seg[seg == _MISSED_VOID] = _VOID

    # 7. drop tiny segments, 8. ids and scores ------------------------------------------------------
    counts = np.bincount(np.maximum(seg, -1).ravel() + 1, minlength=len(seg_cls) + 1)[1:]
    min_keep = max(1.0, params.min_area_px * scale * scale)
    present = [s for s in range(len(seg_cls)) if counts[s] > 0]
    tiny = [s for s in present if s > 0 and counts[s] < min_keep]
    if tiny:
        seg[np.isin(seg, tiny)] = _VOID
        present = [s for s in present if s not in set(tiny)]
    ids_for = np.zeros(len(seg_cls) + 1, np.uint32)  # index label + 1 (void -> 0)
    if present:
        new_ids = rng.choice(params.id_max, size=len(present), replace=False) + 1
        ids_for[np.array(present) + 1] = new_ids.astype(np.uint32)
    ids = ids_for[seg + 1]
    means = {_TRUE: params.score_true_mean, _STUFF: params.score_true_mean, _CONFUSED: params.score_confused_mean, _SPURIOUS: params.score_spurious_mean}
    u_score = rng.standard_normal(len(present))
    category_of, score_of = {}, {}
    for s, z in zip(present, u_score):
        sid = int(ids_for[s + 1])
        category_of[sid] = seg_cls[s]
        score_of[sid] = round(float(np.clip(means[seg_kind[s]] + params.score_std * z, params.score_threshold, 1.0)), 4)
    return ids, _segments_info(ids, category_of, score_of)


def _boundary_noise(
    seg: np.ndarray, params: SimM2FParams, scale: float, amp: float, sigma: float, smooth: float, rng: np.random.Generator
) -> np.ndarray:
    """Perturb every segment's edge: label = argmax_s [blur(sd_s) + growth_s + amp * field_s].

    Each segment gets its own field and growth, so a boundary shared by two segments moves by half the difference
    of their values (a shared field would cancel out). Work is done on each segment's bounding box padded by the
    largest possible displacement; the number of segments per view is small (tens), the pixels are vectorised.
    """
    h, w = seg.shape
    best = np.full((h, w), -np.inf, np.float32)
    out = seg.copy()
    shifted = seg + 3  # -2 -> 1, -1 -> 2, 0 -> 3, k -> k + 3: positive labels for find_objects
    objs = ndimage.find_objects(shifted)
    labels = [lv for lv in range(len(objs)) if objs[lv] is not None and lv + 1 != 2]  # skip GT void
    growth = rng.standard_normal(len(labels)) * params.bias_std_px * scale
    for li, sd_extra in zip(labels, growth):
        label = li + 1 - 3
        if label == 0:
            bias = params.stuff_bias_px * scale
        elif label == _MISSED_VOID:
            bias = sd_extra
        else:
            bias = params.thing_bias_px * scale + sd_extra
        pad = math.ceil(abs(bias) + 3.0 * amp + 2.0 * smooth + 2.0)
        sl = objs[li]
        y0, y1 = max(sl[0].start - pad, 0), min(sl[0].stop + pad, h)
        x0, x1 = max(sl[1].start - pad, 0), min(sl[1].stop + pad, w)
        mask = seg[y0:y1, x0:x1] == label
        val = _signed_distance(mask)
        if smooth > 0:
            val = ndimage.gaussian_filter(val, smooth, mode="nearest")
        val += np.float32(bias)
        if amp > 0:
            val += np.float32(amp) * _unit_field(val.shape, sigma, rng)
        win = val > best[y0:y1, x0:x1]
        best[y0:y1, x0:x1] = np.where(win, val, best[y0:y1, x0:x1])
        out[y0:y1, x0:x1] = np.where(win, label, out[y0:y1, x0:x1])
    return out


def _segments_info(ids: np.ndarray, category_of: Mapping[int, int], score_of: Mapping[int, float] | None = None) -> list[dict[str, Any]]:
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


# ---------------------------------------------------------------------------------------------
# The gt prior


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
    return ids, _segments_info(ids, category_of, score_of)


# ---------------------------------------------------------------------------------------------
# Seeds, scene frames, writing


def scene_key(scene_id: str) -> int:
    """64-bit integer from the scene id (SHA-256, stable across processes and machines, unlike ``hash``)."""
    return int.from_bytes(hashlib.sha256(scene_id.encode("utf-8")).digest()[:8], "little")


def frame_key(name: str) -> int:
    """Frame number of a zero-padded frame stem; non-numeric stems fall back to a SHA-256 key."""
    return int(name) if name.isdigit() else scene_key("frame:" + name)


def frame_rng(seed: int, scene_id: str, frame: str, stream: int = 0) -> np.random.Generator:
    """The generator of one (seed, scene, frame): independent of generation order, process and machine.

    ``stream`` separates priors (sim-m2f and gt of the same frame use unrelated draws).
    """
    return np.random.default_rng(np.random.SeedSequence([int(seed), scene_key(scene_id), frame_key(frame), int(stream)]))


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


def prior_parameters(prior_name: str, params: SimM2FParams | None = None, seed: int | None = None) -> dict[str, Any]:
    """The settings a prior is generated with, as recorded in benchmark.json (``prior_params``)."""
    if prior_name in SIM_PRIORS:
        record: dict[str, Any] = {"model": prior_name, "params": (params or default_params(prior_name)).to_dict()}
    elif prior_name == "gt":
        record = {"model": "gt", "params": {"id_max": (params.id_max if params else ID_MAX)}}
    elif prior_name == "mask2former":
        record = {"model": "mask2former", "params": {"threshold": 0.5, "mapping": "nerfseg/data/coco_to_classes.json"}}
    else:
        raise InputError(None, f"unknown prior {prior_name!r}; expected one of {list(PRIOR_NAMES)}")
    if seed is not None:
        record["seed"] = int(seed)
    return record


@dataclass(frozen=True)
class FrameGT:
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


def iter_scene_gt(scene_dir: str | Path, info: spec.SceneInfo | None = None) -> Iterable[FrameGT]:
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
        yield FrameGT(fr.name, fr.split, inst, sem, pan, cats[fr.name])


@dataclass(frozen=True)
class PriorReport:
    """What :func:`write_priors` did for one scene."""

    scene_id: str
    prior: str
    path: Path  # scenes/<id>/priors/<prior>
    frames: int
    segments: int  # total segments over all frames
    seconds: float
    seed: int
    params: dict[str, Any]


#: (frame GT, rgb loader) -> (ids, segments_info)
FramePredictor = Callable[[FrameGT, Callable[[], np.ndarray]], tuple[np.ndarray, list[dict[str, Any]]]]


def default_params(prior_name: str) -> SimM2FParams:
    """The calibrated parameters of a simulated prior: ``sim-m2f`` (consistent) or ``sim-m2f-indep``."""
    if prior_name == "sim-m2f":
        return SimM2FParams()
    if prior_name == "sim-m2f-indep":
        return SimM2FParams.independent()
    raise InputError(None, f"prior {prior_name!r} has no sim-m2f parameters; expected one of {list(SIM_PRIORS)}")


def _uses_context(p: SimM2FParams) -> bool:
    return p.consistency > 0 or p.spurious_sites > 0 or p.snap_band_px > 0 or p.split_plane_3d


def scene_context(
    scene_dir: str | Path, params: SimM2FParams, seed: int, scene_id: str, prior_name: str = "sim-m2f", info: spec.SceneInfo | None = None
) -> SceneContext | None:
    """The per-scene state of a simulated prior (latents, 3D boxes, cameras, spurious sites); None when the
    parameters use none of it (then every view is simulated from its own maps and random stream alone)."""
    if not _uses_context(params):
        return None
    latents = ObjectLatents(seed, scene_key(scene_id), _STREAM[prior_name], params.view_corr_deg, params.view_invariance)
    return SceneContext(scene_dir, latents, params, info)


def simulate_frame(
    fr: FrameGT, params: SimM2FParams, seed: int, scene_id: str, prior_name: str, ctx: SceneContext | None, rgb: Callable[[], np.ndarray]
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """One view of a simulated prior exactly as :func:`write_priors` writes it (also used by the calibration)."""
    rng = frame_rng(seed, scene_id, fr.name, stream=_STREAM[prior_name])
    view = None
    if ctx is not None:
        view = ctx.view(fr.name, rgb() if params.snap_band_px > 0 else None, ctx.depth(fr.name))
    try:
        return simulate_sim_m2f(fr.instance, fr.semantic, params, rng, void=fr.panoptic == 0, view=view)
    except ValueError as exc:
        raise InputError(f"{scene_id}/{spec.INSTANCE_DIR}/{fr.name}.png", str(exc)) from None


def _make_predictor(
    prior_name: str, scene_id: str, params: SimM2FParams | None, seed: int, mask2former_path: str | Path | None, scene_dir: Path | None = None
) -> tuple[FramePredictor, dict[str, Any]]:
    if prior_name in SIM_PRIORS:
        p = params or default_params(prior_name)
        if not isinstance(p, SimM2FParams):
            raise TypeError(f"params for {prior_name} must be a SimM2FParams")
        ctx = scene_context(scene_dir, p, seed, scene_id, prior_name) if scene_dir is not None else None

        def sim(fr: FrameGT, rgb: Callable[[], np.ndarray]) -> tuple[np.ndarray, list[dict[str, Any]]]:
            return simulate_frame(fr, p, seed, scene_id, prior_name, ctx, rgb)

        return sim, p.to_dict()
    if prior_name == "gt":
        id_max = params.id_max if isinstance(params, SimM2FParams) else ID_MAX

        def gt(fr: FrameGT, _rgb: Callable[[], np.ndarray]) -> tuple[np.ndarray, list[dict[str, Any]]]:
            rng = frame_rng(seed, scene_id, fr.name, stream=_STREAM["gt"])
            try:
                return permute_gt_panoptic(fr.panoptic, fr.panoptic_categories, rng, id_max)
            except ValueError as exc:
                raise InputError(f"{scene_id}/{spec.PANOPTIC_DIR}/{fr.name}.png", str(exc)) from None

        return gt, {"id_max": id_max}
    if prior_name == "mask2former":
        if mask2former_path is None:
            raise InputError(None, "the mask2former prior needs the checkpoint folder (--weights PATH)")
        from nerfseg.dataset_tools.mask2former import (
            load_predictor,  # lazy: torch + transformers
        )

        predictor = load_predictor(mask2former_path)

        def m2f(fr: FrameGT, rgb: Callable[[], np.ndarray]) -> tuple[np.ndarray, list[dict[str, Any]]]:
            rng = frame_rng(seed, scene_id, fr.name, stream=_STREAM["mask2former"])
            return predictor.predict(rgb(), rng)

        return m2f, predictor.params()
    raise InputError(None, f"unknown prior {prior_name!r}; expected one of {list(PRIOR_NAMES)}")


def _clean_stale(priors_dir: Path, prior_name: str) -> None:
    """Remove temp/old folders a killed earlier run of the same prior left behind."""
    if not priors_dir.is_dir():
        return
    for p in priors_dir.glob(f".{prior_name}.*"):
        if p.is_dir() and (p.name.endswith(".tmp") or p.name.endswith(".old")):
            shutil.rmtree(p, ignore_errors=True)


def write_priors(
    scene_dir: str | Path,
    prior_name: str,
    params: SimM2FParams | None = None,
    seed: int = 0,
    mask2former_path: str | Path | None = None,
) -> PriorReport:
    """Write ``<scene>/priors/<prior>/`` (panoptic PNGs of ALL views + panoptic.json), replacing it atomically.

    The folder is built under a temporary name next to its final place and renamed when complete; a previous
    version is renamed away first and deleted after, so readers never see a mix of two runs.
    """
    t0 = time.perf_counter()
    scene_dir = Path(scene_dir)
    if prior_name not in PRIOR_NAMES:
        raise InputError(None, f"unknown prior {prior_name!r}; expected one of {list(PRIOR_NAMES)}")
    info = spec.load_scene_info(scene_dir)
    scene_id = scene_id_of(scene_dir, info)
    predict, record = _make_predictor(prior_name, scene_id, params, seed, mask2former_path, scene_dir)
    priors_dir = scene_dir / spec.PRIORS_DIR
    priors_dir.mkdir(parents=True, exist_ok=True)
    _clean_stale(priors_dir, prior_name)
    final = priors_dir / prior_name
    tmp = create_temp_dir(priors_dir, prefix=f".{prior_name}.", suffix=".tmp")  # umask-respecting, unlike mkdtemp
    try:
        annotations, images = [], []
        n_segments = 0
        for fr in iter_scene_gt(scene_dir, info):
            rgb_path = scene_dir / spec.IMAGES_DIR / f"{fr.name}.png"
            ids, segments = predict(fr, lambda p=rgb_path: read_png(p, expect="rgb"))
            write_panoptic_png(tmp / spec.PANOPTIC_DIR / f"{fr.name}.png", ids)
            images.append({"id": fr.name, "file_name": f"{fr.name}.png", "width": info.width, "height": info.height, "split": fr.split})
            annotations.append({"file_name": f"{fr.name}.png", "image_id": fr.name, "segments_info": segments})
            n_segments += len(segments)
        doc = {
            "info": {"description": f"nerfseg 2D prior '{prior_name}' for scene {scene_id}", "spec_version": spec.SPEC_VERSION},
            "prior": prior_name,
            "uses_gt_masks": prior_uses_gt_masks(prior_name),
            "scene_id": scene_id,
            "seed": int(seed),
            "params": record,
            "images": images,
            "annotations": annotations,
            "categories": spec.category_info(),
        }
        write_json_atomic(tmp / spec.PANOPTIC_JSON, doc)
        old = None
        if final.exists():
            old = create_temp_dir(priors_dir, prefix=f".{prior_name}.", suffix=".old")
            os.replace(final, old / "prior")
        os.replace(tmp, final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return PriorReport(scene_id, prior_name, final, len(images), n_segments, time.perf_counter() - t0, int(seed), record)


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


# ---------------------------------------------------------------------------------------------
# Quality of a prior against GT (what the prior would score as a method: the paper's "Mask2Former" row)


def evaluate_prior_quality(
    scene_dirs: Iterable[str | Path],
    prior_name: str,
    split: str = "test",
    protocol: str = spec.DEFAULT_PROTOCOL,
    verbose: bool = True,
) -> dict[str, Any]:
    """Score a written prior against GT on the ``split`` views of the given scenes with the evaluator's own
    accumulators (nerfseg.evaluation.protocols), so the number is the one ``nerfseg eval`` would give the prior.

    Returns ``{"prior", "split", "protocol", "num_scenes", "num_frames", "overall": {pq_things, sq_things,
    rq_things, pq_all, pq_stuff, miou, miou_dataset, pq_scene_things}, "per_scene": {...}, "per_class":
    {class: {iou, pq, tp, fp, fn}}, "report": <the full protocol report>}`` (fractions in [0, 1], None when
    undefined). ``verbose`` prints a one-line summary.
    """
    from nerfseg.evaluation.gt import (
        load_gt_scene,  # lazy: the evaluator is only needed for the report
    )
    from nerfseg.evaluation.protocols import get_protocol
    from nerfseg.evaluation.types import FrameGT as EvalFrameGT
    from nerfseg.evaluation.types import FramePred

    acc = get_protocol(protocol).new_accumulator()
    scene_dirs = [Path(d) for d in scene_dirs]
    for sdir in scene_dirs:
        gt = load_gt_scene(sdir.parent.parent, sdir.name, split)
        doc = load_prior_json(sdir, prior_name)
        for name in gt.frame_names:
            pred_ids, pred_segs = read_prior_frame(sdir, prior_name, name, doc)
            gt_ids, gt_segs = gt.frame(name)
            acc.update_frame(
                sdir.name, name, EvalFrameGT(gt_ids, gt_segs, gt.thing_ids), FramePred(pred_ids, {int(s["id"]): s for s in pred_segs})
            )
    report = acc.compute()
    summ, details = report["summary"], report["details"]
    overall = {
        "pq_things": summ.get("pq_things"),
        "sq_things": summ.get("sq_things"),
        "rq_things": summ.get("rq_things"),
        "pq_all": details.get("pq_all", {}).get("pq"),
        "pq_stuff": summ.get("pq_stuff"),
        "miou": summ.get("miou"),
        "miou_dataset": summ.get("miou_dataset"),
        "pq_scene_things": summ.get("pq_scene_things"),
    }
    per_scene = {
        sid: {
            "num_frames": s.get("num_frames"),
            "pq_things": s.get("pq_things"),
            "pq_all": s.get("pq"),
            "pq_stuff": s.get("pq_stuff"),
            "miou": s.get("miou"),
        }
        for sid, s in report["per_scene"].items()
    }
    per_class = {name: {k: row.get(k) for k in ("iou", "pq", "sq", "rq", "tp", "fp", "fn")} for name, row in report["per_class"].items()}
    out = {
        "prior": prior_name,
        "split": split,
        "protocol": report["protocol"],
        "num_scenes": report["counts"]["num_scenes"],
        "num_frames": report["counts"]["num_frames"],
        "overall": overall,
        "per_scene": per_scene,
        "per_class": per_class,
        "report": report,
    }
    if verbose:

        def pct(v: Any) -> str:
            return "-" if v is None else f"{100 * v:.1f}"

        print(
            f"prior {prior_name} on {out['num_frames']} {split} views of {out['num_scenes']} scenes ({out['protocol']}): "
            f"PQ things {pct(overall['pq_things'])} (SQ {pct(overall['sq_things'])}, RQ {pct(overall['rq_things'])}), "
            f"PQ all {pct(overall['pq_all'])}, PQ stuff {pct(overall['pq_stuff'])}, mIoU {pct(overall['miou'])}, "
            f"PQ^scene things {pct(overall['pq_scene_things'])}"
        )
    return out


def simulated_quality(
    scene_dirs: Iterable[str | Path],
    params: SimM2FParams | None = None,
    seeds: Iterable[int] = (0,),
    split: str = "test",
    protocol: str = spec.DEFAULT_PROTOCOL,
    prior: str = "sim-m2f",
) -> dict[str, Any]:
    """Quality of ``prior`` (``sim-m2f`` or ``sim-m2f-indep``) with ``params`` for several seeds, simulated in
    memory (nothing is written).

    The calibration tool behind docs/priors.md (and nerfseg/dataset_tools/PRIORS.md): the prior of one seed is a small sample (a few hundred
    instances on the demo benchmark), so the defaults are tuned on the mean over seeds. Each seed gives exactly
    the prior :func:`write_priors` would write with that seed. Returns ``{"per_seed": [{seed, pq_things,
    sq_things, rq_things, pq_stuff, miou, miou_dataset}], "mean": {...}, "num_frames": n}``.
    """
    from nerfseg.evaluation.gt import load_gt_scene
    from nerfseg.evaluation.protocols import get_protocol
    from nerfseg.evaluation.types import FrameGT as EvalFrameGT
    from nerfseg.evaluation.types import FramePred

    params = params or default_params(prior)
    frames = []
    scenes = []
    for sdir in (Path(d) for d in scene_dirs):
        gt = load_gt_scene(sdir.parent.parent, sdir.name, split)
        names = set(gt.frame_names)
        sid = scene_id_of(sdir)
        scenes.append((sdir, sid))
        for fr in iter_scene_gt(sdir):
            if fr.name in names:
                ids, segs = gt.frame(fr.name)
                rgb_path = sdir / spec.IMAGES_DIR / f"{fr.name}.png"
                rgb = read_png(rgb_path, expect="rgb") if (params.snap_band_px > 0 and rgb_path.exists()) else None
                frames.append((sdir.name, sid, fr, EvalFrameGT(ids, segs, gt.thing_ids), rgb))
    keys = ("pq_things", "sq_things", "rq_things", "pq_stuff", "miou", "miou_dataset")
    per_seed = []
    for seed in seeds:
        acc = get_protocol(protocol).new_accumulator()
        ctxs = {sid: scene_context(sdir, params, seed, sid, prior) for sdir, sid in scenes}
        for folder, sid, fr, egt, rgb in frames:
            ids, segs = simulate_frame(fr, params, seed, sid, prior, ctxs[sid], lambda r=rgb: r)
            acc.update_frame(folder, fr.name, egt, FramePred(ids, {int(s["id"]): s for s in segs}))
        summary = acc.compute()["summary"]
        per_seed.append({"seed": int(seed), **{k: summary[k] for k in keys}})
    mean = {k: (float(np.mean([r[k] for r in per_seed if r[k] is not None])) if any(r[k] is not None for r in per_seed) else None) for k in keys}
    return {"per_seed": per_seed, "mean": mean, "num_frames": len(frames), "params": params.to_dict()}
