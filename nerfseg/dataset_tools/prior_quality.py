"""Quality of a 2D prior against GT, scored by the evaluator's own accumulators (what the prior would score as a
method: the paper's "Mask2Former" row), for a prior on disk or simulated in memory for calibration."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from nerfseg import spec
from nerfseg.dataset_tools.prior_io import iter_scene_gt, load_prior_json, read_prior_frame, scene_id_of
from nerfseg.dataset_tools.prior_params import SimM2FParams, default_params
from nerfseg.dataset_tools.sim_m2f_view import scene_context, simulate_frame
from nerfseg.io import read_png

logger = logging.getLogger(__name__)


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
    undefined). ``verbose`` logs a one-line summary (INFO).
    """
    from nerfseg.evaluation.gt import (
        load_gt_scene,  # lazy: the evaluator is only needed for the report
    )
    from nerfseg.evaluation.protocols import get_protocol
    from nerfseg.evaluation.types import FrameGT, FramePred

    acc = get_protocol(protocol).new_accumulator()
    scene_dirs = [Path(d) for d in scene_dirs]
    for sdir in scene_dirs:
        gt = load_gt_scene(sdir.parent.parent, sdir.name, split)
        doc = load_prior_json(sdir, prior_name)
        for name in gt.frame_names:
            pred_ids, pred_segs = read_prior_frame(sdir, prior_name, name, doc)
            gt_ids, gt_segs = gt.frame(name)
            acc.update_frame(
                sdir.name, name, FrameGT(gt_ids, gt_segs, gt.thing_ids), FramePred(pred_ids, {int(s["id"]): s for s in pred_segs})
            )
    out = _quality_summary(acc.compute(), prior_name, split)
    overall = out["overall"]
    if verbose:

        def pct(v: Any) -> str:
            return "-" if v is None else f"{100 * v:.1f}"

        logger.info(
            f"prior {prior_name} on {out['num_frames']} {split} views of {out['num_scenes']} scenes ({out['protocol']}): "
            f"PQ things {pct(overall['pq_things'])} (SQ {pct(overall['sq_things'])}, RQ {pct(overall['rq_things'])}), "
            f"PQ all {pct(overall['pq_all'])}, PQ stuff {pct(overall['pq_stuff'])}, mIoU {pct(overall['miou'])}, "
            f"PQ^scene things {pct(overall['pq_scene_things'])}"
        )
    return out


def _quality_summary(report: dict[str, Any], prior_name: str, split: str) -> dict[str, Any]:
    """The protocol report reduced to the rows the prior's quality table shows (see :func:`evaluate_prior_quality`)."""
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
    return {
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
    from nerfseg.evaluation.types import FrameGT, FramePred

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
                frames.append((sdir.name, sid, fr, FrameGT(ids, segs, gt.thing_ids), rgb))
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
