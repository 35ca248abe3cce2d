"""Train and validate NeRF-RCNN on a built benchmark: ``train_rcnn``, ``evaluate_rcnn``, ``load_rcnn``.

A run folder holds ``config.json`` (the resolved ``RCNNConfig``), ``log.jsonl`` (one JSON object per logged
training step and per validation), ``checkpoint_last.pt`` (model, optimiser, schedule, iteration, RNG: enough
to resume exactly), ``checkpoint_best.pt`` (best validation mask AP@0.25, the reference's model selection;
with ``calibrate_mask_threshold`` its mask threshold is then chosen on the val scenes,
:func:`calibrate_mask_threshold`) and ``summary.json``. Validation is 3D mask AP at IoU 0.25 / 0.5 (VOC all-point, greedy by score) computed by
the evaluator's own ``Voxel3D`` accumulator, so training reports the number the benchmark reports.

Optimiser: AdamW with a one-cycle schedule (cosine warm-up from lr/25 over ``onecycle_pct_start`` of the run,
cosine decay to lr/1e4; as torch's OneCycleLR without momentum cycling, written as a LambdaLR so a run of a
handful of steps is valid too) and gradient-norm clipping.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nerfseg.evaluation.metrics.voxel3d import Voxel3D
from nerfseg.evaluation.types import GT3D as EvalGT3D
from nerfseg.evaluation.types import Pred3D
from nerfseg.instance_nerf.rcnn.config import RCNNConfig, preset_config
from nerfseg.instance_nerf.rcnn.data import (
    SceneSample,
    TrainStream,
    collate_samples,
    feature_path,
    grid_to_tensor,
    load_feature_grid,
    resample_gt_instances,
)
from nerfseg.instance_nerf.rcnn.model import (
    Detections,
    NeRFRCNN,
    RCNNTarget,
    pad_grids,
    predict_scene,
)
from nerfseg.errors import InputError
from nerfseg.gt3d import read_gt3d
from nerfseg.io import atomic_path, dumps_json, write_bytes_atomic, write_json_atomic
from nerfseg.progress import Progress
from nerfseg.runs import resolve_device
from nerfseg.spec import GT3D_H5, NUM_CLASSES, scene_dir, scenes_in_split

logger = logging.getLogger(__name__)

CONFIG_JSON = "config.json"
LOG_JSONL = "log.jsonl"
SUMMARY_JSON = "summary.json"
CHECKPOINT_LAST = "checkpoint_last.pt"
CHECKPOINT_BEST = "checkpoint_best.pt"
CHECKPOINT_FORMAT = "nerfseg-rcnn-v1"
#: settings a resumed run may change: they steer logging, I/O and threads, not what is learned
RESUME_FREE = frozenset({"val_every", "checkpoint_every", "log_every", "num_workers", "cpu_threads", "cache_scenes",
                         "calibrate_mask_threshold"})
#: mask thresholds :func:`calibrate_mask_threshold` tries, the reference's 0.5 first (it wins ties)
MASK_THRESHOLD_CANDIDATES = (0.5, 0.4, 0.3, 0.2, 0.15, 0.1)
#: key of the calibration record in a checkpoint
MASK_CALIBRATION = "mask_threshold_calibration"

__all__ = [
    "Detections",
    "NeRFRCNN",
    "RCNNConfig",
    "calibrate_mask_threshold",
    "evaluate_rcnn",
    "load_rcnn",
    "predict_scene",
    "preset_config",
    "torch_device",
    "train_rcnn",
]


def torch_device(device: str | torch.device) -> torch.device:
    """The torch device of a ``device`` setting (:func:`nerfseg.runs.resolve_device`: "auto" is CUDA when available)."""
    return torch.device(resolve_device(str(device)))


def one_cycle(pct_start: float, total: int, div_factor: float = 25.0, final_div_factor: float = 1e4):
    """LR multiplier of step ``t``: cosine rise 1/div -> 1 over ``pct_start`` of ``total``, cosine fall -> 1/(div*final)."""
    warm = max(1, int(round(pct_start * total)))
    start, end = 1.0 / div_factor, 1.0 / (div_factor * final_div_factor)

    def f(t: int) -> float:
        if t < warm:
            a = t / warm
            return start + (1.0 - start) * 0.5 * (1 - math.cos(math.pi * a))
        a = min(1.0, (t - warm) / max(1, total - warm))
        return end + (1.0 - end) * 0.5 * (1 + math.cos(math.pi * a))

    return f


def sample_to_inputs(samples: Sequence[SceneSample], device: torch.device) -> tuple[torch.Tensor, list[tuple[int, int, int]], list[RCNNTarget]]:
    """Batch of samples -> padded (B, 4, X, Y, Z) grids on ``device``, their shapes, and their targets."""
    grids = [grid_to_tensor(s.grid) for s in samples]
    batch, shapes = pad_grids(grids)
    targets = [
        RCNNTarget(
            boxes=torch.from_numpy(np.asarray(s.boxes, dtype=np.float32).reshape(-1, 6)),
            labels=torch.from_numpy(np.asarray(s.labels, dtype=np.int64)),
            ids=torch.from_numpy(np.asarray(s.ids, dtype=np.int64)),
            instance=torch.from_numpy(np.asarray(s.instance, dtype=np.int64)),
            masks=None if s.masks is None else torch.from_numpy(np.ascontiguousarray(s.masks, dtype=bool)),
        ).to(device)
        for s in samples
    ]
    return batch.to(device), shapes, targets


# --------------------------------------------------------------------------------------------- evaluation
def load_eval_scene(data_root: str | Path, scene_id: str, features_dir: str = "features") -> tuple[np.ndarray, EvalGT3D]:
    """A scene's stored radiance grid and its GT at the grid's resolution: the training targets' resampling
    (:func:`nerfseg.instance_nerf.rcnn.data.resample_gt_instances`, max-pooled, so validation sees thin objects too),
    as one label grid (a voxel two instances share goes to the smaller one)."""
    grid = load_feature_grid(feature_path(data_root, scene_id, features_dir))
    gt = read_gt3d(scene_dir(data_root, scene_id) / GT3D_H5)
    _, _, inst = resample_gt_instances(gt, grid.shape[:3])
    present = set(np.unique(inst).tolist())
    classes = {int(r["id"]): int(r["class_index"]) for r in gt.instances if int(r["id"]) in present and 1 <= int(r["class_index"]) < NUM_CLASSES}
    return grid, EvalGT3D(instance=inst.astype(np.int64), classes=classes)


def evaluate_rcnn(model: NeRFRCNN, data_root: str | Path, scene_ids: Sequence[str], device: str | torch.device | None = None) -> dict[str, Any]:
    """3D mask AP@0.25/0.5 (and voxel mIoU) of ``model`` on ``scene_ids``, via the evaluator's ``Voxel3D``."""
    acc = Voxel3D(num_classes=model.config.num_classes, iou_thresholds=(0.25, 0.5))
    t0 = time.perf_counter()
    for sid in scene_ids:
        grid, gt = load_eval_scene(data_root, sid, model.config.features_dir)
        det = predict_scene(model, grid, device)
        acc.update(sid, gt, Pred3D(classes=det.labels, scores=det.scores, masks=det.masks))
    out = acc.compute()
    out["seconds"] = time.perf_counter() - t0
    return out


def detection_recall(
    model: NeRFRCNN,
    data_root: str | Path,
    scene_ids: Sequence[str],
    score_thresholds: Sequence[float] = (0.5, 0.3, 0.1),
    iou_threshold: float = 0.25,
    device: str | torch.device | None = None,
) -> dict[str, Any]:
    """Fraction of GT instances found by a detection with score > t and 3D mask IoU >= ``iou_threshold``, for
    each t, with any class ("any") and with the correct class ("class"); per scene and pooled.

    What Instance-NeRF needs from its detector is recall at the score it keeps (0.5): a missed object can
    only be predicted from the prior (``keep_unmatched_segments``). The GT masks are the pooled training
    targets (:func:`nerfseg.instance_nerf.rcnn.data.resample_gt_instances`) at the stored grid's resolution.
    Each scene row also lists its GT instances (``gt``: id, class, the best mask IoU of any detection, and the
    best score of a detection that hits it with any class / the right class), which says why one was missed.
    """
    out: dict[str, Any] = {"scenes": {}, "iou_threshold": float(iou_threshold)}
    found = {(t, k): 0 for t in score_thresholds for k in ("any", "class")}
    total = 0
    for sid in scene_ids:
        grid = load_feature_grid(feature_path(data_root, sid, model.config.features_dir))
        gt = read_gt3d(scene_dir(data_root, sid) / GT3D_H5)
        ids, masks, _ = resample_gt_instances(gt, grid.shape[:3])
        classes = gt.class_of()
        det = predict_scene(model, grid, device)
        gt_flat = masks.reshape(len(ids), -1).astype(np.float32)
        det_flat = np.asarray(det.masks, dtype=bool).reshape(len(det), -1).astype(np.float32)
        inter = gt_flat @ det_flat.T
        union = gt_flat.sum(1)[:, None] + det_flat.sum(1)[None, :] - inter
        iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        hit = iou >= iou_threshold
        same = np.array([[classes[int(i)] == int(c) for c in det.labels] for i in ids], dtype=bool).reshape(hit.shape)
        scores = np.asarray(det.scores, dtype=np.float64)
        row: dict[str, Any] = {"instances": int(len(ids)), "gt": [
            {"id": int(i), "class": int(classes[int(i)]),
             "best_iou": float(iou[g].max()) if len(det) else 0.0,  # any detection, any score: was it proposed?
             "score_any": float(scores[hit[g]].max()) if hit[g].any() else 0.0,  # best score of a hit, any class
             "score_class": float(scores[hit[g] & same[g]].max()) if (hit[g] & same[g]).any() else 0.0}
            for g, i in enumerate(ids)]}
        for t in score_thresholds:
            keep = np.asarray(det.scores) > t
            for kind, ok in (("any", hit), ("class", hit & same)):
                n = int((ok & keep[None, :]).any(1).sum()) if len(det) else 0
                found[(t, kind)] += n
                row[f"recall_{kind}@{t:g}"] = n / len(ids) if len(ids) else None
        out["scenes"][sid] = row
        total += len(ids)
    out["instances"] = total
    for (t, kind), n in found.items():
        out[f"recall_{kind}@{t:g}"] = n / total if total else None
    return out


# ---------------------------------------------------------------------------------------------- checkpoints
def save_checkpoint(path: Path, model: NeRFRCNN, optimizer: torch.optim.Optimizer | None, scheduler: Any, iteration: int, extra: dict[str, Any]) -> None:
    state = {
        "format": CHECKPOINT_FORMAT,
        "config": model.config.to_dict(),
        "model": model.state_dict(),
        "iteration": int(iteration),
        "torch_rng": torch.get_rng_state(),
        **extra,
    }
    if optimizer is not None:
        state["optimizer"] = optimizer.state_dict()
    if scheduler is not None:
        state["scheduler"] = scheduler.state_dict()
    if torch.cuda.is_available():
        state["cuda_rng"] = torch.cuda.get_rng_state_all()
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def _read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise InputError(path, "checkpoint not found")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises several types for a corrupt or foreign file
        raise InputError(path, f"unreadable checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise InputError(path, f"not a NeRF-RCNN checkpoint (expected format {CHECKPOINT_FORMAT!r})")
    return state


def load_rcnn(checkpoint: str | Path, device: str | torch.device = "cpu") -> NeRFRCNN:
    """Rebuild the model from a checkpoint (its config travels inside) in eval mode."""
    dev = torch_device(device)
    state = _read_checkpoint(checkpoint, dev)
    model = NeRFRCNN(RCNNConfig.from_dict(state["config"])).to(dev)
    model.load_state_dict(state["model"])
    model.eval()
    return model


def calibrate_mask_threshold(
    checkpoint: str | Path,
    data_root: str | Path,
    val_ids: Sequence[str],
    device: str | torch.device = "cpu",
    candidates: Sequence[float] = MASK_THRESHOLD_CANDIDATES,
) -> dict[str, Any]:
    """Choose the checkpoint's ``mask_threshold`` on the val scenes and store it in the checkpoint.

    Each candidate's val mask AP25 / AP50 is measured with the same weights; the first candidate with the
    highest AP25 wins (the reference's 0.5 comes first, so it stays unless another is strictly better). The
    checkpoint is rewritten atomically with the chosen threshold in its config and the record under
    ``MASK_CALIBRATION``, which every later ``load_rcnn`` (Instance-NeRF, ``rcnn_recall.py``) then uses.
    A checkpoint that already holds a record is left alone and its record returned: a model selected on
    val is not selected again. Returns {"chosen", "candidates", "ap25", "ap50", "val_scenes", "seconds"}.
    """
    path = Path(checkpoint)
    state = _read_checkpoint(path)
    if isinstance(state.get(MASK_CALIBRATION), dict):
        return dict(state[MASK_CALIBRATION])
    if not val_ids:
        raise InputError(path, "calibrating the mask threshold needs val scenes")
    dev = torch_device(device)
    t0 = time.perf_counter()
    model = NeRFRCNN(RCNNConfig.from_dict(state["config"])).to(dev)
    model.load_state_dict(state["model"])
    model.eval()
    ap25: list[float] = []
    ap50: list[float] = []
    for threshold in candidates:
        model.config.mask_threshold = float(threshold)
        res = evaluate_rcnn(model, data_root, val_ids, dev)
        ap25.append(-1.0 if res["ap25"] is None or np.isnan(res["ap25"]) else float(res["ap25"]))
        ap50.append(-1.0 if res["ap50"] is None or np.isnan(res["ap50"]) else float(res["ap50"]))
    chosen = float(candidates[int(np.argmax(ap25))])
    record = {"chosen": chosen, "candidates": [float(c) for c in candidates], "ap25": ap25, "ap50": ap50,
              "val_scenes": len(val_ids), "seconds": time.perf_counter() - t0}
    state["config"] = {**state["config"], "mask_threshold": chosen}
    state[MASK_CALIBRATION] = record
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    logger.info("NeRF-RCNN mask threshold %.2f chosen on %d val scenes (AP25 %s)", chosen, len(val_ids),
                ", ".join(f"{c:g}: {a * 100:.1f}" for c, a in zip(candidates, ap25)))
    return record


# ------------------------------------------------------------------------------------------------- training
def _log(path: Path, record: dict[str, Any]) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(dumps_json(record, indent=None) + "\n")


def train_rcnn(
    data_root: str | Path,
    out_dir: str | Path = "runs/rcnn",
    preset: str = "mini",
    device: str | torch.device = "cpu",
    resume: bool = True,
    overrides: dict[str, Any] | None = None,
    progress: bool = True,
    stop_at: int | None = None,
) -> dict[str, Any]:
    """Train NeRF-RCNN on the train scenes of ``data_root``, validate on its val scenes; return the summary.

    ``overrides`` replace preset fields (e.g. ``{"iterations": 50}``). With ``resume`` a run folder that has a
    ``checkpoint_last.pt`` continues from it (same config required); without, the folder starts over.
    ``stop_at`` ends this call after that iteration with a checkpoint (time-sliced or preemptible runs);
    a later call with ``resume`` continues exactly where it stopped (same data order, RoI sampling, weights).

    Returns (and writes to ``summary.json``): iterations, finished, resumed_from, train/val scene counts,
    ap25 / ap50 / voxel_miou of the last validation (None without val scenes), best_ap25 / best_iteration,
    seconds_per_iteration (training steps only), wall_seconds_per_iteration (with loading and validation),
    checkpoint and best_checkpoint paths, grid_settings (the train/val grids' grid.json settings, None if unrecorded).
    """
    data_root = Path(data_root)
    out = Path(out_dir)
    cfg = preset_config(preset, **(overrides or {}))
    dev = torch_device(device)
    train_ids = scenes_in_split(data_root, "train")
    val_ids = scenes_in_split(data_root, "val")
    if not train_ids:
        raise InputError(data_root / "benchmark.json", "the train split has no scenes")
    if cfg.train_scenes:
        if cfg.train_scenes > len(train_ids):
            raise InputError(data_root / "benchmark.json",
                             f"train_scenes={cfg.train_scenes} but the train split has only {len(train_ids)} scenes")
        train_ids = train_ids[: cfg.train_scenes]
    for sid in train_ids + val_ids:  # fail before training, not after an hour of it
        for p in (feature_path(data_root, sid, cfg.features_dir), scene_dir(data_root, sid) / GT3D_H5):
            if not p.exists():
                raise InputError(p, f"missing for scene {sid}")
    from nerfseg.instance_nerf.grids import recorded_grid_settings

    # one grid setting for train and val (raises on a mix); recorded so Instance-NeRF can compare test grids
    grid_settings = recorded_grid_settings(data_root, train_ids + val_ids) if cfg.features_dir == "features" else None
    out.mkdir(parents=True, exist_ok=True)
    threads = torch.get_num_threads()
    if dev.type == "cpu" and cfg.cpu_threads:
        torch.set_num_threads(int(cfg.cpu_threads))
    try:
        return _train(cfg, data_root, out, dev, resume, progress, train_ids, val_ids, stop_at, grid_settings)
    finally:
        torch.set_num_threads(threads)


@dataclass
class _Training:
    """The state of one NeRF-RCNN training: model, optimiser, schedule, position and best validation so far."""

    cfg: RCNNConfig
    out: Path
    dev: torch.device
    model: NeRFRCNN
    optimizer: torch.optim.Optimizer
    scheduler: Any
    start: int = 0
    best_ap25: float = -1.0
    best_iter: int = -1

    @property
    def log_path(self) -> Path:
        return self.out / LOG_JSONL

    def checkpoint(self, path: Path, iteration: int, with_optimizer: bool = True) -> None:
        save_checkpoint(path, self.model, self.optimizer if with_optimizer else None, self.scheduler if with_optimizer else None,
                        iteration, {"best_ap25": self.best_ap25, "best_iteration": self.best_iter})

    def validate(self, data_root: Path, val_ids: list[str], iteration: int) -> dict[str, Any] | None:
        """Val mask AP; a new best (ties go to the later, longer-trained model: with val AP25 at 0 for a whole
        run, "best" must not stay the barely trained first validation) is saved as ``checkpoint_best.pt``."""
        if not val_ids:
            return None
        res = evaluate_rcnn(self.model, data_root, val_ids, self.dev)
        ap25 = -1.0 if res["ap25"] is None or np.isnan(res["ap25"]) else float(res["ap25"])
        _log(self.log_path, {"type": "val", "iteration": iteration, "ap25": res["ap25"], "ap50": res["ap50"], "voxel_miou": res["voxel_miou"], "seconds": res["seconds"]})
        if ap25 >= self.best_ap25:
            self.best_ap25, self.best_iter = ap25, iteration
            self.checkpoint(self.out / CHECKPOINT_BEST, iteration, with_optimizer=False)
        self.model.train()
        return res


def _open_training(cfg: RCNNConfig, out: Path, dev: torch.device, resume: bool) -> _Training:
    """A seeded model, optimiser and schedule, continued from ``checkpoint_last.pt`` when ``resume`` (same config
    but for ``RESUME_FREE``), else a fresh start that removes what an earlier run left."""
    last_path = out / CHECKPOINT_LAST
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    model = NeRFRCNN(cfg).to(dev)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, one_cycle(cfg.onecycle_pct_start, cfg.iterations))
    run = _Training(cfg, out, dev, model, optimizer, scheduler)
    if resume and last_path.exists():
        state = _read_checkpoint(last_path, dev)
        now = cfg.to_dict()
        diff = sorted(k for k in set(now) | set(state["config"]) if k not in RESUME_FREE and state["config"].get(k) != now.get(k))
        if diff:
            raise InputError(last_path, f"written with a different config (differs in {diff}); use --no-resume or another --out")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"].cpu())
        if "cuda_rng" in state and dev.type == "cuda":
            torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda_rng"]])
        run.start = int(state["iteration"])
        run.best_ap25, run.best_iter = float(state.get("best_ap25", -1.0)), int(state.get("best_iteration", -1))
    else:
        for p in (last_path, out / CHECKPOINT_BEST, out / LOG_JSONL, out / SUMMARY_JSON):
            p.unlink(missing_ok=True)
    write_json_atomic(out / CONFIG_JSON, cfg.to_dict())
    return run


def _train(cfg: RCNNConfig, data_root: Path, out: Path, dev: torch.device, resume: bool, progress: bool,
           train_ids: list[str], val_ids: list[str], stop_at: int | None, grid_settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """Open (or resume) the training, run the iterations, validate, write ``summary.json``."""
    run = _open_training(cfg, out, dev, resume)
    logger.debug("NeRF-RCNN: %s preset, iterations %d..%d on %s, %d train / %d val scenes", cfg.preset, run.start,
                 cfg.iterations, dev, len(train_ids), len(val_ids))
    stream = TrainStream(data_root, train_ids, cfg.iterations * cfg.batch_size, cfg.input_resolution, cfg.features_dir, cfg.seed,
                         cfg.flip_prob, cfg.rot90_prob, cfg.cache_scenes, start=run.start * cfg.batch_size)
    # the loader gets its own generator: drawing its base seed from the global one would shift the RoI
    # sampling of a resumed run against an uninterrupted one
    loader = torch.utils.data.DataLoader(stream, batch_size=cfg.batch_size, shuffle=False, num_workers=cfg.num_workers,
                                         collate_fn=collate_samples, persistent_workers=False,
                                         generator=torch.Generator().manual_seed(cfg.seed))
    t_start = time.perf_counter()
    it, step_seconds, last_val = _iterate(run, loader, data_root, val_ids, stop_at, progress)
    trained = it - run.start
    finished = it >= cfg.iterations
    last_path, best_path = out / CHECKPOINT_LAST, out / CHECKPOINT_BEST
    if last_val is None and val_ids and finished:
        last_val = run.validate(data_root, val_ids, it)
    if not val_ids and finished and last_path.exists():
        write_bytes_atomic(best_path, last_path.read_bytes())
    calibration = None
    if finished and val_ids and cfg.calibrate_mask_threshold and best_path.exists():
        calibration = calibrate_mask_threshold(best_path, data_root, val_ids, dev)
        _log(run.log_path, {"type": "mask_threshold", **calibration})
    summary = {
        "out_dir": str(out),
        "preset": cfg.preset,
        "device": str(dev),
        "iterations": it,
        "finished": finished,
        "resumed_from": run.start,
        "train_scenes": len(train_ids),
        "val_scenes": len(val_ids),
        "ap25": None if last_val is None else last_val["ap25"],
        "ap50": None if last_val is None else last_val["ap50"],
        "voxel_miou": None if last_val is None else last_val["voxel_miou"],
        "best_ap25": None if run.best_ap25 < 0 else run.best_ap25,
        "best_iteration": None if run.best_iter < 0 else run.best_iter,
        # the best checkpoint's mask threshold chosen on val (None: not calibrated, the config's applies)
        "mask_threshold": None if calibration is None else calibration["chosen"],
        "mask_threshold_calibration": calibration,
        "seconds_per_iteration": step_seconds / trained if trained else None,  # training steps only
        "wall_seconds_per_iteration": (time.perf_counter() - t_start) / trained if trained else None,
        "checkpoint": str(last_path),
        "best_checkpoint": str(best_path),
        "grid_settings": grid_settings,  # how the train/val grids were made (grid.json), None if unrecorded
    }
    write_json_atomic(out / SUMMARY_JSON, summary)
    return summary


def _iterate(run: _Training, loader: Any, data_root: Path, val_ids: list[str], stop_at: int | None,
             progress: bool) -> tuple[int, float, dict[str, Any] | None]:
    """The training iterations from ``run.start``: step, log every ``log_every``, validate every ``val_every``
    and at the end, checkpoint every ``checkpoint_every``; returns (iteration reached, seconds in steps, last val)."""
    cfg, model, optimizer, scheduler = run.cfg, run.model, run.optimizer, run.scheduler
    model.train()
    it = run.start
    sums: dict[str, float] = {}
    n_sum = 0
    step_seconds = 0.0
    last_val: dict[str, Any] | None = None
    with Progress(cfg.iterations, "NeRF-RCNN", "iteration", enabled=progress, completed=run.start) as bar:
        info: str | None = None
        for samples in loader:
            t0 = time.perf_counter()
            grids, shapes, targets = sample_to_inputs(samples, run.dev)
            losses = model(grids, shapes, targets)
            loss = sum(losses.values())
            if not torch.isfinite(loss):
                raise FloatingPointError(f"non-finite loss at iteration {it}: { {k: float(v) for k, v in losses.items()} }")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            scheduler.step()
            it += 1
            for k, v in losses.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach())
            sums["loss"] = sums.get("loss", 0.0) + float(loss.detach())
            n_sum += 1
            dt = time.perf_counter() - t0
            step_seconds += dt
            if it % cfg.log_every == 0 or it == cfg.iterations:
                rec = {k: v / n_sum for k, v in sums.items()}
                _log(run.log_path, {"type": "train", "iteration": it, "lr": scheduler.get_last_lr()[0], "sec_per_iter": dt, **rec})
                info = " ".join(f"{k}={v:.3f}" for k, v in rec.items())
                sums, n_sum = {}, 0
            bar.advance(info=info)
            is_last = it == cfg.iterations
            if (cfg.val_every > 0 and it % cfg.val_every == 0) or is_last:
                last_val = run.validate(data_root, val_ids, it)
            stop = stop_at is not None and it >= stop_at
            if it % cfg.checkpoint_every == 0 or is_last or stop:
                run.checkpoint(run.out / CHECKPOINT_LAST, it)
            if stop:
                break
    return it, step_seconds, last_val
