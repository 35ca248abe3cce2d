"""Radiance-core configuration: one flat dataclass (the field's settings inherited from ``FieldConfig``) with named presets.

``mini`` is tuned for a 2-core laptop CPU (a demo scene at 256x192 in about four minutes), ``paper``
follows the torch-ngp stage-1 setting Instance-NeRF used (hash grid 16 levels x 2 features, 2^19
table, SH degree 4, 30k steps of 4096 rays, Adam lr 1e-2 decayed x0.1) and expects a GPU.
A run writes its resolved config as JSON next to its outputs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

from nerfseg.config import from_preset, setting_error
from nerfseg.errors import InputError
from nerfseg.radiance.field import FieldConfig


@dataclass
class RadianceConfig(FieldConfig):
    """Every radiance setting: the field's architecture (inherited from :class:`FieldConfig`) plus scene,
    sampling, optimisation and bookkeeping. The defaults are the ``paper`` values."""

    preset: str = "custom"
    #: exp(-3) = 0.05 /m: a nearly transparent start grows density where views agree, not as fog at each camera
    density_bias: float = -3.0
    # -- scene and sampling --
    downscale: int = 1  # integer image downscale (mini may train below the dataset resolution)
    bbox_margin: float = 0.05  # metres added around room_bbox so walls on its faces are inside the field
    march_resolution: int = 512  # samples per longest side of the box: step = longest side / this
    #: metres along the optical axis before the first sample, against floaters painted onto a camera (demo: >= 0.3 m)
    min_near: float = 0.2
    early_stop_eps: float = 1e-4  # transmittance below which samples are dropped before the grad pass
    occ_resolution: int = 128  # occupancy cells on the longest side
    occ_update_every: int = 16
    occ_warmup_steps: int = 256  # all cells count as occupied before this step
    warmup_march_factor: float = 1.0  # before occ_warmup_steps march with a step this many times coarser
    occ_decay: float = 0.95
    occ_alpha_threshold: float = 0.01  # a cell is occupied when one step through it has alpha above this
    #: colour behind the last sample in training; "black" is what the demo renderer shows where a ray hits nothing
    background: Literal["black", "white", "random"] = "black"
    #: if set, replaces ``background`` before occ_warmup_steps ("" = no change)
    warmup_background: Literal["", "black", "white", "random"] = ""
    # -- optimisation --
    steps: int = 30000
    batch_rays: int = 4096
    patch_size: int = 0  # > 0: sample batch_rays // patch_size^2 square patches instead of single rays
    lr: float = 1e-2
    lr_final_ratio: float = 0.1  # lr decays exponentially to lr * this at `steps`
    adam_betas: tuple[float, float] = (0.9, 0.99)
    adam_eps: float = 1e-15
    mlp_weight_decay: float = 1e-6
    distortion_weight: float = 0.0  # mip-NeRF 360 distortion loss (t in metres), against fog and floaters
    tv_weight: float = 0.0  # total variation on dense grid levels
    #: L1 between rendered and the train views' depth maps (metres, where a map has a value). Off in the
    #: papers' recipes; a short CPU run gets the room's geometry from it (docs/performance.md section 4).
    #: Depth is GT, so a method run with it is flagged uses_gt_masks (docs/contract.md)
    depth_weight: float = 0.0
    tv_samples: int = 65536  # random cells per step for the TV estimate (0 = every cell)
    seed: int = 0
    # -- bookkeeping --
    log_every: int = 50
    eval_every: int = 0  # steps between test-PSNR evaluations during training (0 = off)
    eval_views: int = 4  # test views rendered by those evaluations (all views in evaluate())
    checkpoint_every: int = 0  # steps between checkpoints (0 = only at the end of train())
    render_chunk: int = 8192  # rays per chunk when rendering whole views
    compile: bool = False  # torch.compile the MLPs' forwards (off: on a CPU mini step ~3% faster, after ~4 s of compiling)

    def __post_init__(self) -> None:
        super().__post_init__()  # the architecture's checks, and the Literal choices of every field
        if int(self.downscale) < 1:
            raise setting_error("downscale", self.downscale, f"downscale must be a positive integer, got {self.downscale}")
        if int(self.patch_size) < 0:
            raise setting_error("patch_size", self.patch_size, f"patch_size must be >= 0 (0: single rays), got {self.patch_size}")

    def field_config(self) -> FieldConfig:
        names = {f.name for f in fields(FieldConfig)}
        return FieldConfig(**{k: v for k, v in asdict(self).items() if k in names})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RadianceConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:  # a stored config (checkpoint, run folder) from another version
            raise InputError(None, f"unknown RadianceConfig keys: {sorted(unknown)}")
        data = dict(data)
        if "adam_betas" in data:
            data["adam_betas"] = tuple(data["adam_betas"])
        return cls(**data)

    def replace(self, **changes: Any) -> "RadianceConfig":
        return dataclasses.replace(self, **changes)

    def first_occupancy_update(self) -> int:
        """The training step after which the occupancy grid is first updated (the trainer updates after step
        ``s`` when ``s >= occ_warmup_steps`` and ``s % occ_update_every == 0``). A field trained for fewer
        steps was marched coarsely throughout and never pruned: its exported grid has fog everywhere."""
        every = max(1, int(self.occ_update_every))
        start = max(1, int(self.occ_warmup_steps))
        return -(-start // every) * every


def _mini() -> RadianceConfig:
    """CPU: a 100-view 256x192 room in about four minutes on 2 cores (the synthetic room of ``benchmarks/radiance_speed.py``)."""
    return RadianceConfig(
        preset="mini",
        num_levels=8,  # 16^3..512^3: the coarse levels fit dense, the fine ones hash into a 2^17 table
        log2_table_size=17,
        max_resolution=512,
        geo_hidden=32,
        color_hidden=32,
        color_layers=1,
        sh_degree=1,  # the demo rooms are diffuse; view dependence lets an under-fitted field paint views on fog
        march_resolution=256,
        occ_resolution=64,
        occ_warmup_steps=200,
        warmup_march_factor=4.0,  # nothing is skipped before the occupancy grid exists, so march coarsely
        steps=1500,
        batch_rays=2048,
        lr=2e-2,
        render_chunk=4096,
    )


def _paper() -> RadianceConfig:
    """The defaults (torch-ngp's "ngp" network, Instance-NeRF's stage-1 ``--iters 30000 --lr 1e-2``) on a GPU."""
    return RadianceConfig(preset="paper", march_resolution=1024, render_chunk=65536)


PRESETS = {"mini": _mini, "paper": _paper}


def preset(name: str) -> RadianceConfig:
    """A fresh copy of a named configuration (``mini`` for CPU, ``paper`` for a GPU)."""
    return from_preset(PRESETS, name, "radiance")
