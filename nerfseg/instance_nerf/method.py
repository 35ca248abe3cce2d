"""Instance-NeRF (Liu et al., ICCV 2023) as a nerfseg method: ``nerfseg train --method instance-nerf``.

Stages of :meth:`InstanceNeRF.fit`, run through :class:`nerfseg.runs.WorkFolder` (named ``radiance``, ``grid``,
``detect``, ``match``, ``stage1``, ``refine``, ``stage2``, ``render_test``; each cached in the scene's work
folder, so a killed run resumes at the stage it was in; the method config is stored and a different config
starts over; each stage's seconds go into the fit summary):

1. **Radiance field**: reuse ``<data>/radiance/<scene>/checkpoint.pt`` written by ``nerfseg grids`` when it
   exists (the same field the grid came from), else train one in ``<work>/radiance``.
2. **Grid**: ``<data>/features/<scene>.npz`` when it exists, else exported from the field to ``<work>/grid.npz``.
3. **NeRF-RCNN** on the grid: detections with score > ``score_threshold`` (0.5), best first; instance
   id k+1 = k-th kept detection, class = its NeRF-RCNN label. The checkpoint is ``rcnn_checkpoint`` or
   ``<data>/../runs/rcnn/checkpoint_best.pt``; when neither exists and ``rcnn_train_if_missing``, grids are
   built for the train/val scenes and NeRF-RCNN is trained there first (logged, it takes a while).
4. **2D-3D matching** (paper 3.3.1): the kept 3D masks projected into every train view, occluded by the
   field's rendered depth; each prior segment takes the instance of highest IoU (> 0.05), background
   segments become 0 and the rest -1 (ignored). With ``keep_unmatched_segments`` (off: the paper drops them)
   unmatched thing segments are lifted into extra 3D instances first and the views matched again; with
   ``unlabel_background_under_instances`` (off: the paper keeps them 0) background pixels under a projected
   kept instance become -1.
5. **Instance field, stage 1** (paper Eq. 2-12): :class:`nerfseg.instance_nerf.field.InstanceField` head on the frozen
   field, cross-entropy + depth-aware smoothness (``regularization``) on 8x8 patches.
6. **Refinement + stage 2** (paper 3.3.2, ``refinement``): preliminary masks of the train views rendered,
   each instance refined (edge-aware guided filter, or CascadePSP with ``refiner_weights``), recomposed, and
   the field trained further on them, on the pixels the matching labelled only (unlabelled pixels stay -1,
   :func:`nerfseg.instance_nerf.pipeline.stage2_targets`). One learning-rate schedule spans both stages.

:meth:`predict` renders the test views at the dataset resolution; :meth:`write_extras` queries the field at
the voxel centres of the scene's gt3d.h5 grid for ``instances3d.h5``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from nerfseg.instance_nerf.field import (
    HEAD,
    TARGET,
    InstanceField,
    InstanceFieldConfig,
    InstanceLoss,
)
from nerfseg.instance_nerf.grids import (
    CHECKPOINT,
    build_grids,
    detector_grid_mismatch,
    feature_file,
    grid_settings,
    load_radiance,
    shared_radiance_checkpoint,
    stored_radiance_config,
    train_radiance,
)
from nerfseg.instance_nerf.pipeline import (
    KeptDetections,
    gt3d_detections,
    keep_detections,
    lift_unmatched_segments,
    make_refiner,
    match_train_views,
    refine_train_views,
    render_train_views,
    stage2_targets,
)
from nerfseg import spec
from nerfseg.cameras import Intrinsics
from nerfseg.config import apply_overrides
from nerfseg.errors import InputError
from nerfseg.gt3d import read_gt3d
from nerfseg.methods import FramePrediction, Method, SceneData
from nerfseg.radiance.config import RadianceConfig
from nerfseg.radiance.config import preset as radiance_preset
from nerfseg.radiance.export import export_radiance_grid
from nerfseg.radiance.trainer import RadianceTrainer
from nerfseg.runs import FIT_SUMMARY, TEST_RENDERS, WorkFolder, resolve_device

logger = logging.getLogger(__name__)

__all__ = ["DETECTIONS", "FIT_SUMMARY", "MATCHED", "REFINED", "InstanceNeRF", "InstanceNeRFConfig", "instance_panoptic", "make_config", "query_instance_grid"]

DETECTIONS = "detections.npz"
MATCHED = "matched.npz"
REFINED = "refined.npz"
INSTANCE_DIR = "instance"
STAGE1 = "stage1.pt"
#: the caches of a fit, removed when the config changes (radiance/ resumes by its own config check)
FIT_FILES = (DETECTIONS, MATCHED, REFINED, STAGE1, f"{INSTANCE_DIR}/{CHECKPOINT}", f"{INSTANCE_DIR}/train_log.jsonl")
#: segment id of the one background stuff segment of every predicted view (as the GT's)
BACKGROUND_SEGMENT_ID = spec.GT_BACKGROUND_SEGMENT_ID


@dataclass
class InstanceNeRFConfig:
    """Instance-NeRF settings. ``radiance`` is used only when no ``nerfseg grids`` field is reused."""

    FLAT_SETTINGS = ("radiance",)  # `--set steps=500` means radiance.steps (no annotation: not a field)

    preset: str = "mini"
    radiance: RadianceConfig = field(default_factory=lambda: radiance_preset("mini"))
    field: InstanceFieldConfig = field(default_factory=InstanceFieldConfig)
    grid_resolution: int = 64  # longest side of a grid exported here (when <data>/features has none)
    # NeRF-RCNN
    #: a NeRF-RCNN checkpoint to use; None: <data>/../runs/rcnn/checkpoint_best.pt (checked when set)
    rcnn_checkpoint: str | None = dataclasses.field(default=None, metadata={"path": "input"})
    rcnn_train_if_missing: bool = True
    rcnn_preset: str = "mini"
    #: "rcnn" (the method) | "gt3d": an ORACLE that takes the scene's gt3d.h5 instances as detections (GT class,
    #: score 1), to measure the stages after detection on their own; its submission is marked uses_gt_masks
    detector: Literal["rcnn", "gt3d"] = "rcnn"
    score_threshold: float = 0.5  # reference: keep detections with score > 0.5
    max_instances: int = 64
    # matching
    iou_threshold: float = 0.05
    occlusion_tolerance_voxels: float = 2.0
    #: False (paper): prior segments no kept 3D instance matched are unlabelled (dropped). True: they are lifted
    #: into extra 3D instances with the rendered depth, merged across views, class from the prior
    #: (:func:`nerfseg.instance_nerf.pipeline.lift_unmatched_segments`): what a user of a weak detector would try
    keep_unmatched_segments: bool = False
    #: False (paper): a prior background segment stays background (0) under a kept 3D instance, so where the
    #: prior missed an object its views outvote the detection. True: those pixels become unlabelled (-1)
    #: (:func:`nerfseg.instance_nerf.matching.match_prior_to_instances`)
    unlabel_background_under_instances: bool = False
    #: matching and refinement render every train view at 1/this resolution per side, upsampled back
    #: (:func:`nerfseg.instance_nerf.pipeline.render_train_views`); 1 = the training resolution (reference)
    view_render_downscale: int = 1
    # instance field training
    stage1_steps: int = 600
    stage2_steps: int = 300
    batch_rays: int = 1024  # rays per step, as patch_size x patch_size patches
    patch_size: int = 8
    lr: float = 1e-2
    lr_final_ratio: float = 0.1  # reference: lr x 0.1^(step/steps)
    regularization: bool = True
    regularization_weight: float = 1.0
    regularization_depth_scale: float = 1.0  # depth unit of the smoothness weight (1 = metres)
    refinement: bool = True
    #: CascadePSP weights (checked when set); None: EdgeAwareRefiner
    refiner_weights: str | None = dataclasses.field(default=None, metadata={"path": "input"})
    checkpoint_every: int = 200
    # 3D export
    extras_alpha_threshold: float = 0.5  # a voxel is matter when one voxel-length of it has this opacity
    device: str = "auto"
    seed: int = 0

    @property
    def total_steps(self) -> int:
        return self.stage1_steps + (self.stage2_steps if self.refinement else 0)


def _presets() -> dict[str, dict[str, Any]]:
    return {
        # CPU: the radiance mini preset (as `nerfseg grids --preset mini`), a small instance encoder,
        # 600 + 300 steps of 64 4x4 patches. Not the reference's 8x8: with a CPU-sized batch, 16 8x8
        # patches are only 16 places per step and the field learnt nothing but background in 250 steps of
        # a tiny room, while 4x4 patches (4x the places, same smoothness term) learnt the instances
        # (train-view accuracy 0.94 vs 0.89 in a controlled 300-step run; uniform rays: 0.975). Start lr
        # 3e-2, not 1e-2: with the reference's x0.1 decay over a 900-step schedule, 1e-2 left the field at
        # background only after 250 steps (tiny room, oracle detections), 3e-2 labelled 69 % of the
        # instance pixels (accuracy 0.93 on labelled pixels)
        "mini": dict(
            radiance=radiance_preset("mini").replace(steps=1500, checkpoint_every=500),
            field=InstanceFieldConfig(num_levels=8, log2_table_size=17, base_resolution=16, max_resolution=512, hidden=64, layers=2),
            grid_resolution=64,
            stage1_steps=600,
            stage2_steps=300,
            batch_rays=1024,
            patch_size=4,
            lr=3e-2,
            rcnn_preset="mini",
            # every train view is rendered twice (matching depth, preliminary masks); half resolution
            # quarters the cost of the two stages that dominated a CPU run (timings in the README)
            view_render_downscale=2,
        ),
        # the reference: torch-ngp field, 4096 rays as 64 8x8 patches, 25k + 20k steps (paper), 256 grids
        "paper": dict(
            radiance=radiance_preset("paper").replace(checkpoint_every=5000),
            field=InstanceFieldConfig(),
            grid_resolution=256,
            stage1_steps=25_000,
            stage2_steps=20_000,
            batch_rays=4096,
            rcnn_preset="paper",
            checkpoint_every=2500,
        ),
    }


def make_config(preset: str, **overrides: Any) -> InstanceNeRFConfig:
    """Preset + overrides (:func:`nerfseg.config.apply_overrides`): a method field, ``field.KEY`` (instance
    encoder/MLP), ``radiance.KEY``, or a bare radiance key. Unknown keys raise (a typo must not silently do nothing)."""
    table = _presets()
    if preset not in table:
        raise InputError(None, f"unknown preset {preset!r} for instance-nerf; choose from {sorted(table)}")
    cfg = apply_overrides(InstanceNeRFConfig(preset=preset, **table[preset]), overrides)
    if cfg.detector not in ("rcnn", "gt3d"):
        raise InputError(None, f"unknown detector {cfg.detector!r}; expected 'rcnn' or 'gt3d' (oracle)")
    if cfg.view_render_downscale < 1:
        raise InputError(None, f"view_render_downscale must be >= 1, got {cfg.view_render_downscale}")
    if cfg.stage1_steps < 0 or cfg.stage2_steps < 0 or cfg.patch_size < 2 or cfg.batch_rays < cfg.patch_size**2:
        raise InputError(None, "need stage steps >= 0, patch_size >= 2 and batch_rays >= patch_size^2")
    return cfg


def data_root_of(scene: SceneData) -> Path:
    """The benchmark root of a scene folder (``<root>/scenes/<id>``)."""
    return scene.path.parent.parent


def default_rcnn_checkpoint(data_root: Path) -> Path:
    return Path(data_root).resolve().parent / "runs" / "rcnn" / "checkpoint_best.pt"


@dataclass
class _FitState:
    """What the stages of one fit hand on to each other."""

    scene: SceneData
    work: WorkFolder
    resume: bool
    summary: dict[str, Any]
    ckpt: Path = Path()  # the radiance checkpoint the instance field builds on
    kept: KeptDetections | None = None  # type: ignore[assignment]
    labels: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # (F,H,W) matched train-view labels
    depths: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))


class InstanceNeRF(Method):
    name = "instance-nerf"
    description = "Instance-NeRF: NeRF-RCNN 3D masks matched to the 2D prior, an instance field on the frozen NeRF, mask refinement."
    url = "https://github.com/lyclyc52/Instance_NeRF"

    config: InstanceNeRFConfig

    @classmethod
    def make_config(cls, preset: str, **overrides: Any) -> InstanceNeRFConfig:
        return make_config(preset, **overrides)

    def __init__(self, config: InstanceNeRFConfig) -> None:
        super().__init__(config)
        self._trainer: RadianceTrainer | None = None  # the instance trainer of the last fit (reused by predict)
        self._trainer_dir: Path | None = None

    # ------------------------------------------------------------------------------------------
    # stage helpers
    @property
    def device(self) -> str:
        return resolve_device(self.config.device)

    def _radiance_checkpoint(self, scene: SceneData, work: Path, resume: bool) -> tuple[Path, str]:
        """Stage 1: the radiance checkpoint to build on, and where it came from."""
        shared = shared_radiance_checkpoint(scene.path)
        if shared.exists():
            return shared, "nerfseg grids"
        trainer = train_radiance(scene.path, self.config.radiance, work / "radiance", self.device, resume=resume,
                                 progress=True)  # a bar on a terminal, periodic lines in a log (nerfseg.progress)
        return work / "radiance" / CHECKPOINT, f"trained here ({trainer.step} steps)"

    def _grid(self, scene: SceneData, work: Path, ckpt: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
        """Stage 2: the scene's radiance grid (X,Y,Z,4) and its box."""
        path = feature_file(data_root_of(scene), scene.scene_id)
        source = "features/"
        if not path.exists():
            path = work / "grid.npz"
            source = "exported here"
            if not path.exists():
                trainer = load_radiance(ckpt, scene.path, self.device)
                export_radiance_grid(trainer.field, scene.info.room_bbox, self.config.grid_resolution, path, trainer.occupancy)
        try:
            with np.load(path) as d:
                grid = d["rgbsigma"].astype(np.float32)
                lo = np.asarray(d["bbox_min"], dtype=np.float64) if "bbox_min" in d.files else np.asarray(scene.info.room_bbox[0], dtype=np.float64)
                hi = np.asarray(d["bbox_max"], dtype=np.float64) if "bbox_max" in d.files else np.asarray(scene.info.room_bbox[1], dtype=np.float64)
        except (OSError, KeyError, ValueError) as exc:
            raise InputError(path, f"unreadable radiance grid ({exc})") from None
        if grid.ndim != 4 or grid.shape[-1] != 4:
            raise InputError(path, f"rgbsigma must be (X,Y,Z,4), got {grid.shape}", key="rgbsigma")
        return grid, lo, hi, source

    def _rcnn_path(self, scene: SceneData) -> Path:
        """The NeRF-RCNN checkpoint: configured, default, or trained now (explicitly logged)."""
        root = data_root_of(scene)
        if self.config.rcnn_checkpoint:
            path = Path(self.config.rcnn_checkpoint)
            if not path.exists():
                raise InputError(path, "rcnn_checkpoint not found")
            return path
        path = default_rcnn_checkpoint(root)
        if path.exists():
            return path
        if not self.config.rcnn_train_if_missing:
            raise InputError(path, "no NeRF-RCNN checkpoint: run `nerfseg grids` and `nerfseg train-rcnn`, or --set rcnn_checkpoint=PATH")
        from nerfseg.instance_nerf.rcnn.train import train_rcnn

        ids = spec.scenes_in_split(root, "train") + spec.scenes_in_split(root, "val")
        logger.warning("no NeRF-RCNN checkpoint at %s: building grids for %d train/val scenes and training NeRF-RCNN (%s) on them now",
                       path, len(ids), self.config.rcnn_preset)
        build_grids(root, grid_settings(self.config.preset, device=self.config.device), scenes=ids)
        summary = train_rcnn(root, path.parent, preset=self.config.rcnn_preset, device=self.device, progress=True)
        logger.info("NeRF-RCNN trained: %s iterations, val AP25 %s", summary["iterations"], summary["ap25"])
        return path

    def prepare_shared(self, scene: SceneData) -> None:
        """The NeRF-RCNN checkpoint every scene shares, trained now if missing (once, before workers start)."""
        if self.config.detector == "rcnn":
            self._rcnn_path(scene)

    def radiance_config_used(self, scene: SceneData) -> RadianceConfig:
        """The shared ``nerfseg grids`` field's stored settings when it exists (stage 1 reuses it), else ours."""
        shared = shared_radiance_checkpoint(scene.path)
        return stored_radiance_config(shared) if shared.exists() else self.config.radiance

    @property
    def uses_gt_masks(self) -> bool:  # type: ignore[override]
        """The gt3d detector is an oracle: its instances are the scene's GT (the submission is flagged)."""
        return self.config.detector == "gt3d"

    def fingerprint_inputs(self, scene: SceneData) -> dict[str, Any]:
        """Files besides the config that change the predictions: the NeRF-RCNN checkpoint (when detecting
        with it) and a radiance field or grid shared by ``nerfseg grids`` (hashes; None when absent)."""
        from nerfseg.runs import file_digest

        root = data_root_of(scene)
        rcnn = None
        if self.config.detector == "rcnn":
            rcnn = file_digest(self.config.rcnn_checkpoint or default_rcnn_checkpoint(root))
        return {
            "rcnn_checkpoint": rcnn,
            "shared_radiance": file_digest(shared_radiance_checkpoint(scene.path)),
            "shared_grid": file_digest(feature_file(root, scene.scene_id)),
        }

    def _detect(self, scene: SceneData, grid: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[KeptDetections, str]:
        if self.config.detector == "gt3d":
            det = gt3d_detections(scene.path / spec.GT3D_H5, grid.shape[:3], lo, hi)
            return keep_detections(det, lo, hi, 0.5, self.config.max_instances), "gt3d oracle"
        from nerfseg.instance_nerf.rcnn.model import predict_scene
        from nerfseg.instance_nerf.rcnn.train import load_rcnn

        path = self._rcnn_path(scene)
        model = load_rcnn(path, self.device)
        det = predict_scene(model, grid)
        kept = keep_detections(det, lo, hi, self.config.score_threshold, self.config.max_instances)
        return kept, str(path)

    def _instance_config(self, ckpt: Path) -> RadianceConfig:
        cfg = self.config
        return stored_radiance_config(ckpt).replace(
            steps=max(cfg.total_steps, 1),
            batch_rays=cfg.batch_rays,
            patch_size=cfg.patch_size,
            lr=cfg.lr,
            lr_final_ratio=cfg.lr_final_ratio,
            checkpoint_every=cfg.checkpoint_every,
            occ_warmup_steps=0,
            warmup_march_factor=1.0,
            eval_every=0,
            log_every=max(1, min(50, cfg.total_steps // 10 or 1)),
            seed=cfg.seed,
        )

    def setup(self, trainer: RadianceTrainer, num_labels: int) -> None:
        """Register the instance head on a trainer and freeze the radiance part."""
        cfg = self.config
        head = InstanceField(cfg.field, trainer.field.box.aabb_normalised(), trainer.field.geo_feat_dim, num_labels)
        loss = InstanceLoss(cfg.regularization, cfg.regularization_weight, cfg.regularization_depth_scale)
        trainer.add_head(HEAD, head, loss=loss, weight=1.0, detach_weights=True, lr=cfg.lr)
        trainer.freeze_radiance(True)

    def _instance_trainer(self, scene: SceneData, work: Path, ckpt: Path, num_labels: int, targets: np.ndarray, resume: bool) -> RadianceTrainer:
        out = work / INSTANCE_DIR
        own = out / CHECKPOINT
        extra = {TARGET: targets}
        if resume and own.exists():
            trainer = RadianceTrainer.resume(own, device=self.device, out_dir=out, scene_dir=scene.path, setup=lambda t: self.setup(t, num_labels), extra=extra, progress=True)
            logger.info("%s: instance field resumed at step %d/%d", scene.scene_id, trainer.step, self.config.total_steps)
            return trainer
        for name in (CHECKPOINT, "train_log.jsonl"):
            (out / name).unlink(missing_ok=True)
        trainer = load_radiance(ckpt, scene.path, self.device, self._instance_config(ckpt), out_dir=out, extra=extra)
        trainer.progress = True  # the instance field's training reports progress like any radiance training
        self.setup(trainer, num_labels)
        return trainer

    # ------------------------------------------------------------------------------------------
    # the fit: named stages of the scene's work folder, each cached there
    def work_folder(self, scene: SceneData, work_dir: Path) -> WorkFolder:
        return WorkFolder(work_dir, self.config, owned=FIT_FILES, label=scene.scene_id)

    def fit(self, scene: SceneData, work_dir: Path, resume: bool = True) -> dict[str, Any]:
        cfg = self.config
        work = self.work_folder(scene, work_dir)
        done = work.cached_summary() if resume else None
        if done is not None:
            return done
        work.open(resume)  # a stored run of another config is not continued: its caches describe another pipeline
        st = _FitState(scene, work, resume, {"preset": cfg.preset, "regularization": cfg.regularization, "refinement": cfg.refinement})
        st.ckpt, st.summary["radiance_source"] = work.stage("radiance", lambda: self._radiance_checkpoint(scene, work.path, resume))
        self._detect_stage(st)
        self._match_stage(st)
        trainer = work.stage("stage1", lambda: self._train_stage1(st))
        st.summary["stage1_loss"] = self._last_losses(trainer)
        if cfg.refinement:
            work.stage("refine", lambda: self._refine(st, trainer), outputs=(REFINED,), load=lambda: None)
            work.stage("stage2", lambda: trainer.train(steps=cfg.total_steps - trainer.step) if trainer.step < cfg.total_steps else None)
            st.summary["stage2_loss"] = self._last_losses(trainer)
        if trainer.step == 0:
            trainer.save_checkpoint()  # zero steps: the untrained head still has to be stored for predict
        self._trainer, self._trainer_dir = trainer, work.path
        work.stage("render_test", lambda: work.write_npz(TEST_RENDERS, dict(self._render_test(trainer, scene))))
        st.summary.update(steps=trainer.step, instance_train_seconds=trainer.train_seconds, seconds=dict(work.seconds), device=self.device)
        return work.write_summary(st.summary)

    def _detect_stage(self, st: _FitState) -> None:
        """Stages ``grid`` and ``detect``: the kept 3D instances (cached in ``DETECTIONS``); ``grid`` runs inside
        ``detect`` only when the detections are not cached, so ``detect``'s seconds include it."""
        cfg, work, scene = self.config, st.work, st.scene

        def detect() -> KeptDetections:
            grid, lo, hi, gsrc = work.stage("grid", lambda: self._grid(scene, work.path, st.ckpt))
            kept, rcnn = self._detect(scene, grid, lo, hi)
            kept.save(work.path / DETECTIONS)
            st.summary.update(grid_source=gsrc, grid_shape=list(grid.shape[:3]), rcnn_checkpoint=rcnn)
            mismatch = detector_grid_mismatch(rcnn, data_root_of(scene), scene.scene_id) if cfg.detector == "rcnn" else None
            if mismatch:
                logger.warning("%s: %s", scene.scene_id, mismatch)
                st.summary["grid_settings_warning"] = mismatch
            return kept

        def cached() -> KeptDetections:
            st.summary["grid_source"] = "cached"
            return KeptDetections.load(work.path / DETECTIONS)

        st.kept = work.stage("detect", detect, outputs=(DETECTIONS,), load=cached)
        source = "gt3d oracle instances (uses GT)" if cfg.detector == "gt3d" else f"NeRF-RCNN instances kept (score > {cfg.score_threshold})"
        logger.info("%s: %d %s", scene.scene_id, len(st.kept), source)

    def _match_stage(self, st: _FitState) -> None:
        """Stage ``match``: every train view's prior segments labelled with a kept instance (cached in ``MATCHED``)."""
        cfg, work = self.config, st.work

        def cached() -> tuple[np.ndarray, np.ndarray, int]:
            m = work.read_npz(MATCHED)
            return m["labels"].astype(np.int64), m["depth"], int(m["unmatched_added"]) if "unmatched_added" in m else 0

        st.labels, st.depths, added = work.stage("match", lambda: self._match(st), outputs=(MATCHED,), load=cached)
        kept, labels = st.kept, st.labels
        st.summary.update(instances=len(kept), instance_classes=kept.labels.tolist(), instance_scores=[round(float(s), 4) for s in kept.scores])
        if cfg.keep_unmatched_segments:
            st.summary["instances_from_unmatched_segments"] = added
        st.summary["matched_fraction"] = {
            "unlabelled": float(np.mean(labels < 0)),
            "background": float(np.mean(labels == 0)),
            "instance": float(np.mean(labels > 0)),
        }

    def _match(self, st: _FitState) -> tuple[np.ndarray, np.ndarray, int]:
        """Render the train views' depth, project the kept masks, label the prior segments (paper 3.3.1)."""
        cfg, scene, kept = self.config, st.scene, st.kept
        render = load_radiance(st.ckpt, scene.path, self.device)
        depths = np.stack([out["depth"] for _, out in render_train_views(render, downscale=cfg.view_render_downscale)]).astype(np.float32)
        tol = cfg.occlusion_tolerance_voxels * float(np.mean((kept.bbox_max - kept.bbox_min) / np.asarray(kept.masks.shape[1:] or (1, 1, 1))))
        bg_rule = cfg.unlabel_background_under_instances
        labels = match_train_views(render, scene, kept, depths, tol if len(kept) else None, cfg.iou_threshold, bg_rule).astype(np.int64)
        added = 0
        if cfg.keep_unmatched_segments:
            kept, added = lift_unmatched_segments(render, scene, kept, labels, depths)
            logger.info("%s: %d instances lifted from unmatched prior segments (keep_unmatched_segments)", scene.scene_id, added)
            if added:
                st.kept = kept
                kept.save(st.work.path / DETECTIONS)
                labels = match_train_views(render, scene, kept, depths, tol, cfg.iou_threshold, bg_rule).astype(np.int64)
        st.work.write_npz(MATCHED, {"labels": labels.astype(np.int16), "depth": depths, "unmatched_added": np.int64(added)})
        return labels, depths, added

    def _train_stage1(self, st: _FitState) -> RadianceTrainer:
        """Stage ``stage1``: the instance field on the matched labels (or, resumed after refinement, on the refined ones)."""
        work = st.work
        targets = stage2_targets(work.read_npz(REFINED)["labels"], st.labels) if work.has(REFINED) else st.labels
        trainer = self._instance_trainer(st.scene, work.path, st.ckpt, len(st.kept) + 1, torch.from_numpy(targets), st.resume)
        if trainer.step < self.config.stage1_steps:
            trainer.train(steps=self.config.stage1_steps - trainer.step)
        return trainer

    def _refine(self, st: _FitState, trainer: RadianceTrainer) -> None:
        """Stage ``refine`` (paper 3.3.2): refined preliminary masks become the targets of stage 2 (cached in ``REFINED``)."""
        refined, rendered = refine_train_views(trainer, HEAD, make_refiner(self.config.refiner_weights, self.device), self.config.view_render_downscale)
        st.summary["refinement_changed_fraction"] = float(np.mean(refined != rendered))
        refined = stage2_targets(refined, st.labels)  # unlabelled pixels stay out of the loss
        st.work.write_npz(REFINED, {"labels": refined.astype(np.int16), "rendered": rendered.astype(np.int16)})
        trainer.rays.add_extra(TARGET, torch.from_numpy(refined))

    @staticmethod
    def _last_losses(trainer: RadianceTrainer) -> dict[str, float]:
        spec_ = trainer.head_specs[HEAD]
        return dict(getattr(spec_.loss, "last", {}))

    # ------------------------------------------------------------------------------------------
    # prediction
    def _render_test(self, trainer: RadianceTrainer, scene: SceneData) -> Iterator[tuple[str, np.ndarray]]:
        i = scene.info
        intr = Intrinsics(i.width, i.height, i.fl_x, i.fl_y, i.cx, i.cy)
        for fr in scene.info.frames_in("test"):
            out = trainer.render_view(np.asarray(fr.transform_matrix, dtype=np.float32), intr, heads=[HEAD])
            yield fr.name, out[HEAD].argmax(-1).astype(np.uint16)

    def _load_trained(self, scene: SceneData, work: Path) -> tuple[RadianceTrainer, KeptDetections]:
        kept = KeptDetections.load(work / DETECTIONS)
        if self._trainer is not None and self._trainer_dir == work:
            return self._trainer, kept
        own = work / INSTANCE_DIR / CHECKPOINT
        if not own.exists():
            raise InputError(own, "no trained instance field: run fit() first")
        trainer = RadianceTrainer.resume(own, device=self.device, out_dir=work / INSTANCE_DIR, scene_dir=scene.path, setup=lambda t: self.setup(t, len(kept) + 1), progress=False)
        self._trainer, self._trainer_dir = trainer, work
        return trainer, kept

    def predict(self, scene: SceneData, work_dir: Path) -> Iterator[FramePrediction]:
        folder = self.work_folder(scene, work_dir)
        work = folder.path
        kept = KeptDetections.load(work / DETECTIONS)
        if folder.cached_summary() is not None:
            renders = folder.read_npz(TEST_RENDERS)
        else:
            trainer, kept = self._load_trained(scene, work)
            renders = dict(self._render_test(trainer, scene))
        for name in scene.frame_names("test"):
            if name not in renders:
                raise InputError(work / TEST_RENDERS, f"no rendered instance map for test view {name}; re-run fit")
            yield FramePrediction(name, *instance_panoptic(renders[name], kept))

    def write_extras(self, scene: SceneData, work_dir: Path, scene_out: Path) -> None:
        from nerfseg.evaluation.submission import write_instances3d

        work = Path(work_dir)
        trainer, kept = self._load_trained(scene, work)
        gt = read_gt3d(scene.path / spec.GT3D_H5)
        grid = query_instance_grid(trainer, kept, gt.instance.shape, gt.bbox_min, gt.bbox_max, self.config.extras_alpha_threshold)
        # the table lists the instances the grid holds (an instance the field never wins anywhere is no prediction)
        ids = np.array([i for i in np.unique(grid).tolist() if i != 0], dtype=np.int64)
        write_instances3d(Path(scene_out) / spec.INSTANCES3D_H5, grid, ids, kept.labels[ids - 1].astype(np.int64), kept.scores[ids - 1].astype(np.float32))


def instance_panoptic(ids: np.ndarray, kept: KeptDetections) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Rendered instance ids (0 background, k+1 detection k) -> panoptic map and segments.

    Instance k+1 keeps its id in every view (scene-consistent), class and score from NeRF-RCNN; the
    background becomes the one stuff segment ``BACKGROUND_SEGMENT_ID`` (category 0), as in the GT.
    """
    ids = np.asarray(ids).astype(np.uint32)
    out = np.where(ids == 0, np.uint32(BACKGROUND_SEGMENT_ID), ids).astype(np.uint32)
    present = np.unique(out)
    segments = []
    for i in present.tolist():
        if i == BACKGROUND_SEGMENT_ID:
            segments.append({"id": int(i), "category_id": spec.BACKGROUND, "score": 1.0})
        else:
            segments.append({"id": int(i), "category_id": int(kept.labels[i - 1]), "score": float(kept.scores[i - 1])})
    return out, segments


@torch.no_grad()
def query_instance_grid(
    trainer: RadianceTrainer, kept: KeptDetections, shape: tuple[int, ...], bbox_min: np.ndarray, bbox_max: np.ndarray, alpha_threshold: float = 0.5, chunk: int = 1 << 16
) -> np.ndarray:
    """(X,Y,Z) uint16 instance ids of the field at the voxel centres of a grid (gt3d.h5 convention).

    A voxel gets the argmax instance of the field when it holds matter: its alpha over one voxel length,
    1 - exp(-sigma * voxel), exceeds ``alpha_threshold``, or a kept NeRF-RCNN mask covers it (the field
    sees surfaces, the solid GT also counts object interiors, which the RCNN masks were trained to fill).
    Elsewhere 0. Chunks of whole x-slices bound the memory.
    """
    from nerfseg.instance_nerf.matching import resolve_instance_masks
    from nerfseg.instance_nerf.rcnn.data import resample_labels_nearest

    shape = tuple(int(s) for s in shape)
    lo, hi = np.asarray(bbox_min, dtype=np.float64), np.asarray(bbox_max, dtype=np.float64)
    size = (hi - lo) / np.asarray(shape, dtype=np.float64)
    voxel = float(size.max())
    support = np.zeros(shape, dtype=bool)
    if len(kept):
        support = resample_labels_nearest(resolve_instance_masks(kept.masks, kept.scores, -np.inf), shape) > 0
    field_ = trainer.field
    head = trainer.heads[HEAD]
    field_.eval()
    head.eval()
    dev = next(head.parameters()).device
    axes = [torch.tensor(lo[a] + (np.arange(shape[a]) + 0.5) * size[a], dtype=torch.float32) for a in range(3)]
    yy, zz = torch.meshgrid(axes[1], axes[2], indexing="ij")
    out = np.zeros(shape, dtype=np.uint16)
    slab = max(1, chunk // max(1, shape[1] * shape[2]))
    for x0 in range(0, shape[0], slab):
        xs = axes[0][x0 : x0 + slab]
        pts = torch.stack([xs[:, None, None].expand(-1, *yy.shape), yy.expand(len(xs), -1, -1), zz.expand(len(xs), -1, -1)], -1).reshape(-1, 3)
        pts_n = field_.box.normalise_points(pts.to(dev))
        sigma, geo = field_.geometry(pts_n)
        occupied = trainer.occupancy.occupied(pts_n)
        alpha = torch.where(occupied, 1.0 - torch.exp(-sigma.float() * voxel), torch.zeros_like(sigma.float()))
        labels = head(geo, pts_n).argmax(-1)
        block = labels.reshape(len(xs), shape[1], shape[2]).cpu().numpy().astype(np.uint16)
        matter = (alpha > alpha_threshold).reshape(len(xs), shape[1], shape[2]).cpu().numpy() | support[x0 : x0 + len(xs)]
        out[x0 : x0 + len(xs)] = np.where(matter, block, 0)
    return out
