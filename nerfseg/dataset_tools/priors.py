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

Layout (split by concern; this module is the registry/writer and re-exports the public names so that
``from nerfseg.dataset_tools.priors import ...`` keeps working): names, seeds and parameters in
:mod:`~nerfseg.dataset_tools.prior_params`, mask operations and the ``gt`` permutation in
:mod:`~nerfseg.dataset_tools.prior_masks`, the per-view simulator in :mod:`~nerfseg.dataset_tools.sim_m2f_view`
(cross-view state in :mod:`~nerfseg.dataset_tools.sim_m2f`), reading GT views and written priors in
:mod:`~nerfseg.dataset_tools.prior_io`, quality reports in :mod:`~nerfseg.dataset_tools.prior_quality`.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nerfseg import spec
from nerfseg.dataset_tools.mask2former import load_predictor  # torch + transformers load lazily inside
from nerfseg.dataset_tools.prior_io import (
    GTViewMaps,
    iter_scene_gt,
    load_prior_json,
    read_prior_frame,
    scene_id_of,
    validate_segments,
)
from nerfseg.dataset_tools.prior_masks import ID_MAX, permute_gt_panoptic
from nerfseg.dataset_tools.prior_params import (
    DEFAULT_PRIOR,
    GT_DERIVED_PRIORS,
    PRIOR_NAMES,
    PRIOR_STREAMS,
    SIM_PRIORS,
    SimM2FParams,
    default_params,
    frame_key,
    frame_rng,
    prior_parameters,
    prior_uses_gt_masks,
    scene_key,
)
from nerfseg.dataset_tools.prior_quality import evaluate_prior_quality, simulated_quality
from nerfseg.dataset_tools.sim_m2f_view import scene_context, simulate_frame, simulate_sim_m2f
from nerfseg.errors import InputError
from nerfseg.io import create_temp_dir, read_png, write_json_atomic, write_panoptic_png

__all__ = [
    "DEFAULT_PRIOR", "GT_DERIVED_PRIORS", "ID_MAX", "PRIOR_NAMES", "PRIOR_STREAMS", "SIM_PRIORS", "FramePredictor",
    "GTViewMaps", "PriorReport", "SimM2FParams", "default_params", "evaluate_prior_quality", "frame_key", "frame_rng",
    "iter_scene_gt", "load_prior_json", "permute_gt_panoptic", "prior_parameters", "prior_uses_gt_masks",
    "read_prior_frame", "scene_context", "scene_id_of", "scene_key", "simulate_frame", "simulate_sim_m2f",
    "simulated_quality", "validate_segments", "write_priors",
]  # fmt: skip


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
FramePredictor = Callable[[GTViewMaps, Callable[[], np.ndarray]], tuple[np.ndarray, list[dict[str, Any]]]]



def _make_predictor(
    prior_name: str, scene_id: str, params: SimM2FParams | None, seed: int, mask2former_path: str | Path | None, scene_dir: Path | None = None
) -> tuple[FramePredictor, dict[str, Any]]:
    if prior_name in SIM_PRIORS:
        p = params or default_params(prior_name)
        if not isinstance(p, SimM2FParams):
            raise TypeError(f"params for {prior_name} must be a SimM2FParams")
        ctx = scene_context(scene_dir, p, seed, scene_id, prior_name) if scene_dir is not None else None

        def sim(fr: GTViewMaps, rgb: Callable[[], np.ndarray]) -> tuple[np.ndarray, list[dict[str, Any]]]:
            return simulate_frame(fr, p, seed, scene_id, prior_name, ctx, rgb)

        return sim, p.to_dict()
    if prior_name == "gt":
        id_max = params.id_max if isinstance(params, SimM2FParams) else ID_MAX

        def gt(fr: GTViewMaps, _rgb: Callable[[], np.ndarray]) -> tuple[np.ndarray, list[dict[str, Any]]]:
            rng = frame_rng(seed, scene_id, fr.name, stream=PRIOR_STREAMS["gt"])
            try:
                return permute_gt_panoptic(fr.panoptic, fr.panoptic_categories, rng, id_max)
            except ValueError as exc:
                raise InputError(f"{scene_id}/{spec.PANOPTIC_DIR}/{fr.name}.png", str(exc)) from None

        return gt, {"id_max": id_max}
    if prior_name == "mask2former":
        if mask2former_path is None:
            raise InputError(None, "the mask2former prior needs the checkpoint folder (--weights PATH)")
        predictor = load_predictor(mask2former_path)

        def m2f(fr: GTViewMaps, rgb: Callable[[], np.ndarray]) -> tuple[np.ndarray, list[dict[str, Any]]]:
            rng = frame_rng(seed, scene_id, fr.name, stream=PRIOR_STREAMS["mask2former"])
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

