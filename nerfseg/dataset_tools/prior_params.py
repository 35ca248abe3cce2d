"""Which 2D priors exist, their random streams and seeds, and the parameters of the simulated ones.

The noise model's knobs (:class:`SimM2FParams`) are documented field by field because they are the benchmark's
definition of the ``sim-m2f`` prior (docs/priors.md); the per-view simulation that reads them is
:mod:`nerfseg.dataset_tools.sim_m2f_view`, the cross-view state :mod:`nerfseg.dataset_tools.sim_m2f`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from nerfseg import spec
from nerfseg.config import SettingError, apply_overrides
from nerfseg.dataset_tools.prior_masks import ID_MAX
from nerfseg.errors import InputError

PRIOR_NAMES: tuple[str, ...] = ("sim-m2f", "sim-m2f-indep", "gt", "mask2former")
#: The simulated priors: ``sim-m2f`` errs consistently across views (nerfseg/dataset_tools/sim_m2f.py), ``sim-m2f-indep``
#: is the earlier model with every error drawn independently per view, kept for comparison.
SIM_PRIORS: tuple[str, ...] = ("sim-m2f", "sim-m2f-indep")
#: separate random streams per prior, so the priors of one frame use unrelated draws; sim-m2f-indep keeps the
#: stream the independent model always used, so it reproduces the earlier sim-m2f files byte for byte.
PRIOR_STREAMS: dict[str, int] = {"sim-m2f": 4, "sim-m2f-indep": 1, "gt": 2, "mask2former": 3}
#: priors made from the ground-truth masks themselves: a method that learns from one is marked uses_gt_masks
GT_DERIVED_PRIORS: frozenset[str] = frozenset({"gt"})


def prior_uses_gt_masks(prior_name: str) -> bool:
    """Whether a prior is derived from the GT masks (written into the prior's panoptic.json, read by methods)."""
    return prior_name in GT_DERIVED_PRIORS


DEFAULT_PRIOR = "sim-m2f"

_NAME_TO_CLASS = spec.CLASS_INDEX_BY_NAME
OTHERFURNITURE = _NAME_TO_CLASS["otherfurniture"]


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
    #: Fitted, with ``spurious_site_detect``, to the paper's multi-view fusion gain (Semantic-NeRF +3.4 mIoU over
    #: Mask2Former) on the 8-test-room demo benchmark: 0.5 gave +0.8, 0.25 +5.6, 0.35 +3.3 (docs/priors.md).
    consistency: float = 0.35
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
    #: correlated across views through the site's latent. 0.6 (the first judgement) made most views report a
    #: site and the fused field keep it everywhere; 0.3 is part of the fusion-gain fit (docs/priors.md).
    spurious_site_detect: float = 0.3
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
        """Inverse of :meth:`to_dict`, also taking a partial dict of overrides of the defaults; unknown keys are an
        error (a typo must not silently use a default)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:  # all unknown keys at once, with the full list: a params file is edited by hand
            raise InputError(source, f"unknown sim-m2f parameter(s) {unknown}; known: {sorted(known)}")
        try:  # the project's one override parser: values are checked and converted by field type
            return apply_overrides(cls(), dict(data))
        except (SettingError, TypeError, ValueError) as exc:
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


def default_params(prior_name: str) -> SimM2FParams:
    """The calibrated parameters of a simulated prior: ``sim-m2f`` (consistent) or ``sim-m2f-indep``."""
    if prior_name == "sim-m2f":
        return SimM2FParams()
    if prior_name == "sim-m2f-indep":
        return SimM2FParams.independent()
    raise InputError(None, f"prior {prior_name!r} has no sim-m2f parameters; expected one of {list(SIM_PRIORS)}")


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

