"""``RCNNConfig``: every setting of NeRF-RCNN (architecture, proposal stage, RoI heads, training) in one dataclass.

Two presets: ``paper`` follows the reference (Instance-NeRF appendix B and its ``nerf_rcnn`` scripts: VGG-EF
backbone with a 7^3/s2 stem, FPN 256, FCOS proposals, 512 RoIs per scene, lr 1e-3, wd 1e-2, clip 0.1, 200 epochs)
for a GPU; ``mini`` shrinks every width and the grid for a CPU (its step cost: ``benchmarks/rcnn_speed.py``).
A run writes its resolved config as JSON next to its outputs, and a checkpoint carries it so
``load_rcnn`` can rebuild the model without being told the preset.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Literal

from nerfseg.config import apply_overrides, check_choices, from_preset, setting_error
from nerfseg.errors import InputError

#: JSON has no infinity; the last FCOS size range ends here ("no upper bound").
OPEN_END = 1.0e8


@dataclass
class RCNNConfig:
    """NeRF-RCNN settings. Lengths are in voxels of the model's input grid unless said otherwise."""

    preset: str = "mini"
    # ---- input -------------------------------------------------------------------------------------------
    #: resample each feature grid so its longest side is this many voxels (None: use the stored grid as is)
    input_resolution: int | None = 64
    #: folder of ``<scene>.npz`` radiance grids, relative to the data root
    features_dir: str = "features"
    in_channels: int = 4
    # ---- backbone (VGG-style + FPN, strides s/2s/4s/8s) ---------------------------------------------------
    #: "conv7": Conv 7^3 /2 + BN + ReLU + MaxPool 3^3 /2 (reference VGG-EF); "strided": 3^3 /2 convs (cheap)
    stem: Literal["conv7", "strided"] = "strided"
    #: stride of the finest FPN level (1, 2 or 4); 4, the reference's at >= 160 voxels, loads old checkpoints
    base_stride: int = 4
    stem_channels: int = 16
    #: output widths of the four stages (C2..C5, strides s, 2s, 4s, 8s)
    backbone_channels: tuple[int, int, int, int] = (16, 32, 64, 64)
    #: 3^3 conv + BN + ReLU blocks per stage
    backbone_depths: tuple[int, int, int, int] = (1, 1, 1, 1)
    fpn_channels: int = 32
    #: "bn" (reference, needs batch statistics) or "gn" (GroupNorm: batch 1 and tiny grids)
    backbone_norm: Literal["bn", "gn"] = "gn"
    # ---- proposals (FCOS, class-agnostic AABB) -------------------------------------------------------------
    rpn_num_convs: int = 2
    #: FCOS levels take locations whose largest regression distance lies in [r_i, r_{i+1}] (voxels);
    #: reference at 160^3: -1, 16, 32, 64, inf; scaled with the input resolution at ``mini``
    rpn_size_ranges: tuple[float, ...] = (-1.0, 6.4, 12.8, 25.6, OPEN_END)
    rpn_center_radius: float = 1.5
    rpn_focal_alpha: float = 0.25
    rpn_focal_gamma: float = 2.0
    rpn_pre_nms_top_n_train: int = 500
    rpn_pre_nms_top_n_test: int = 500
    rpn_post_nms_top_n_train: int = 200
    #: proposals handed to the RoI heads at test time (the reference evaluates the first 20 RoIs per scene)
    rpn_post_nms_top_n_test: int = 50
    rpn_nms_thresh: float = 0.3
    rpn_min_size: float = 1e-3
    # ---- RoI heads -----------------------------------------------------------------------------------------
    num_classes: int = 11
    #: box edge that maps to FPN level ``roi_canonical_level`` (reference: 160 = its grid resolution)
    roi_canonical_size: float = 64.0
    roi_canonical_level: int = 4
    box_roi_size: int = 5
    mask_roi_size: int = 10
    box_fc_dim: int = 128
    mask_channels: int = 32
    mask_num_convs: int = 4
    box_coder_weights: tuple[float, float, float, float, float, float] = (10.0, 10.0, 10.0, 5.0, 5.0, 5.0)
    rois_per_scene: int = 64
    positive_fraction: float = 0.25
    fg_iou_thresh: float = 0.25
    append_gt_boxes: bool = True
    box_score_thresh: float = 0.01
    box_min_size: float = 0.01
    box_nms_thresh: float = 0.15
    detections_per_scene: int = 100
    #: a voxel is in a detection's mask when the pasted sigmoid reaches this (reference 0.5); see
    #: ``calibrate_mask_threshold``
    mask_threshold: float = 0.5
    #: when a run with val scenes finishes, set ``mask_threshold`` in ``checkpoint_best.pt`` to the candidate
    #: (``train.MASK_THRESHOLD_CANDIDATES``) with the highest val mask AP25, 0.5 unless another is strictly
    #: better. Why: the mask head learns soft targets (the trilinear crop of the GT mask), and a thin object
    #: (a chair's legs and seat fill about a quarter of its box) never reaches 0.5: at mini the chairs were
    #: detected (box IoU 0.4-0.8, score > 0.9) with empty masks. Off at ``paper`` (the reference's 0.5)
    calibrate_mask_threshold: bool = True
    # ---- training ------------------------------------------------------------------------------------------
    #: 4000 at mini: val AP25 on 25 demo rooms still rose from 0.15 at 1500 iterations to 0.28 at 4000
    iterations: int = 4000
    #: 2 at mini: torch's CPU conv is fast (oneDNN) only for batches > 1: 2 scenes cost about 1 (rcnn_speed.py)
    batch_size: int = 2
    lr: float = 1e-3
    weight_decay: float = 1e-2
    onecycle_pct_start: float = 0.2
    grad_clip: float = 1.0
    flip_prob: float = 0.5
    rot90_prob: float = 0.5
    val_every: int = 100
    checkpoint_every: int = 100
    log_every: int = 10
    num_workers: int = 0
    #: torch CPU threads (None: torch's default); 1 at mini, fastest on a busy 2-core machine (rcnn_speed.py --threads)
    cpu_threads: int | None = 1
    #: train on the first N train scenes only (0: all); measures how AP grows with the number of rooms
    #: (docs/instance-nerf.md) without building a data set per size
    train_scenes: int = 0
    #: keep loaded training scenes in memory (small data sets only)
    cache_scenes: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        self.backbone_channels = tuple(int(c) for c in self.backbone_channels)  # type: ignore[assignment]
        self.backbone_depths = tuple(int(d) for d in self.backbone_depths)  # type: ignore[assignment]
        self.rpn_size_ranges = tuple(float(r) for r in self.rpn_size_ranges)
        self.box_coder_weights = tuple(float(w) for w in self.box_coder_weights)  # type: ignore[assignment]
        for key in ("backbone_channels", "backbone_depths"):
            if len(getattr(self, key)) != 4:
                raise setting_error(key, getattr(self, key), f"{key} needs 4 entries (4 FPN levels)")
        if int(self.base_stride) not in (1, 2, 4):
            raise setting_error("base_stride", self.base_stride, f"base_stride must be 1, 2 or 4, got {self.base_stride}")
        self.base_stride = int(self.base_stride)
        if len(self.rpn_size_ranges) != 5:
            raise setting_error("rpn_size_ranges", self.rpn_size_ranges, "rpn_size_ranges needs 5 bounds (4 FPN levels)")
        check_choices(self)  # stem, backbone_norm
        if int(self.train_scenes) < 0:
            raise setting_error("train_scenes", self.train_scenes, "train_scenes must be >= 0 (0: every train scene)")
        if self.num_classes < 2:
            raise setting_error("num_classes", self.num_classes, "num_classes counts the background and must be >= 2")

    def to_dict(self) -> dict[str, Any]:
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RCNNConfig:
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise InputError(None, f"unknown NeRF-RCNN config keys {unknown}")
        return cls(**data)

    def replace(self, **overrides: Any) -> RCNNConfig:
        """A copy with ``overrides`` applied, converted and checked by :func:`nerfseg.config.apply_overrides`."""
        return apply_overrides(self, overrides)


def _mini() -> RCNNConfig:
    # stride 2: a chair is 3 cells wide on the finest level of a 64-voxel grid, 1-2 at 4 (docs/instance-nerf.md)
    return RCNNConfig(preset="mini", base_stride=2)


def _paper() -> RCNNConfig:
    """The reference scale: 160^3-ish grids (longest side kept as exported), VGG-EF widths, FPN 256; 30k steps
    at batch 4 on one GPU visit as many scenes as the reference's 200 epochs at batch 16 over ~700 rooms."""
    return RCNNConfig(
        preset="paper",
        input_resolution=None,
        stem="conv7",
        stem_channels=64,
        backbone_channels=(128, 256, 512, 512),
        backbone_depths=(4, 4, 4, 4),
        fpn_channels=256,
        backbone_norm="bn",
        rpn_num_convs=4,
        rpn_size_ranges=(-1.0, 16.0, 32.0, 64.0, OPEN_END),
        rpn_pre_nms_top_n_train=2500,
        rpn_pre_nms_top_n_test=2500,
        rpn_post_nms_top_n_train=2500,
        rpn_post_nms_top_n_test=20,
        roi_canonical_size=160.0,
        box_fc_dim=512,
        mask_channels=256,
        rois_per_scene=512,
        iterations=30000,
        batch_size=4,
        grad_clip=0.1,
        val_every=2000,
        checkpoint_every=1000,
        log_every=50,
        num_workers=4,
        cpu_threads=None,
        cache_scenes=False,
        calibrate_mask_threshold=False,
    )


PRESETS = {"mini": _mini, "paper": _paper}


def preset_config(name: str, **overrides: Any) -> RCNNConfig:
    """The named preset with ``overrides`` applied."""
    config = from_preset(PRESETS, name, "NeRF-RCNN")
    return config.replace(**overrides) if overrides else config


__all__ = ["OPEN_END", "PRESETS", "RCNNConfig", "preset_config"]
