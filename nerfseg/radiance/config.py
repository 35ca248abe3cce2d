"""Radiance-core configuration: one flat dataclass with named presets.

``mini`` is tuned for a 2-core laptop CPU (a demo scene at 256x192 in about ten minutes), ``paper``
follows the torch-ngp stage-1 setting Instance-NeRF used (hash grid 16 levels x 2 features, 2^19
table, SH degree 4, 30k steps of 4096 rays, Adam lr 1e-2 decayed x0.1) and expects a GPU.
A run writes its resolved config as JSON next to its outputs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, fields
from typing import Any

from nerfseg.radiance.field import FieldConfig


@dataclass
class RadianceConfig:
    preset: str = "custom"
    # -- field (see FieldConfig) --
    encoding: str = "hash"
    num_levels: int = 16
    features_per_level: int = 2
    log2_table_size: int = 19
    base_resolution: int = 16
    max_resolution: int = 2048
    dense_resolution: int = 128
    dense_features: int = 16
    dense_levels: int = 1
    geo_hidden: int = 64
    geo_layers: int = 1
    geo_feat_dim: int = 15
    color_hidden: int = 64
    color_layers: int = 2
    sh_degree: int = 4
    density_activation: str = "trunc_exp"
    # added to the raw density before trunc_exp: exp(-3) = 0.05 /m starts the field nearly transparent, so
    # density grows where views agree instead of as fog near each camera (the failure seen with ~1 /m)
    density_bias: float = -3.0
    bias: bool = False
    grid_kernel: str = "auto"  # "auto": numba kernel for the grid encoding on CPU (same values); "torch": reference
    # -- scene and sampling --
    downscale: int = 1  # integer image downscale (mini may train below the dataset resolution)
    bbox_margin: float = 0.05  # metres added around room_bbox so walls on its faces are inside the field
    march_resolution: int = 512  # samples per longest side of the box: step = longest side / this
    # metres: rays start this far from the camera. The demo cameras keep 0.3 m from every surface, and a
    # near plane is the usual cure for inside-out scenes' floaters painted right in front of a camera
    # (Instance-NeRF's torch-ngp used min_near 0.2 in its scaled units, about 0.6 m)
    min_near: float = 0.2  # (along the optical axis: 0.3 m at up to 48 degrees off-axis is still seen)
    early_stop_eps: float = 1e-4  # transmittance below which samples are dropped before the grad pass
    occ_resolution: int = 128  # occupancy cells on the longest side
    occ_update_every: int = 16
    occ_warmup_steps: int = 256  # all cells count as occupied before this step
    warmup_march_factor: float = 1.0  # before occ_warmup_steps march with a step this many times coarser
    occ_decay: float = 0.95
    occ_alpha_threshold: float = 0.01  # a cell is occupied when one step through it has alpha above this
    # colour behind the last sample in training: "black" (what the demo renderer shows where a ray hits
    # nothing) | "white" | "random" (forces opaque surfaces, but on rooms with large plain walls it first
    # grows uniform fog everywhere); warmup_background, if set, replaces it before occ_warmup_steps
    background: str = "black"
    warmup_background: str = ""
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
    tv_samples: int = 65536  # random cells per step for the TV estimate (0 = every cell)
    seed: int = 0
    # -- bookkeeping --
    log_every: int = 50
    eval_every: int = 0  # steps between test-PSNR evaluations during training (0 = off)
    eval_views: int = 4  # test views rendered by those evaluations (all views in evaluate())
    checkpoint_every: int = 0  # steps between checkpoints (0 = only at the end of train())
    render_chunk: int = 8192  # rays per chunk when rendering whole views
    compile: bool = False  # torch.compile the MLPs (off: compile time dominates short CPU runs)

    def field_config(self) -> FieldConfig:
        names = {f.name for f in fields(FieldConfig)}
        return FieldConfig(**{k: v for k, v in asdict(self).items() if k in names})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RadianceConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown RadianceConfig keys: {sorted(unknown)}")
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
    # CPU: a small hash pyramid (its 16^3..64^3 levels are dense, the finer ones hashed), tiny MLPs and
    # view-independent colour (SH degree 1: the demo scenes are diffuse, and view dependence lets an
    # under-fitted field paint each training view on fog in front of its camera). The first
    # occ_warmup_steps march 4x coarser with nothing skipped while the low initial density
    # (density_bias) lets every sample along a ray compete for the pixel; then the occupancy grid
    # (threshold: alpha 0.01 per 1/256 of the room) skips empty space. Background black (see `background`).
    return RadianceConfig(
        preset="mini",
        encoding="hash",
        num_levels=8,
        features_per_level=2,
        log2_table_size=17,
        base_resolution=16,
        max_resolution=512,
        geo_hidden=32,
        geo_layers=1,
        geo_feat_dim=15,
        color_hidden=32,
        color_layers=1,
        sh_degree=1,
        density_bias=-3.0,
        march_resolution=256,
        occ_resolution=64,
        occ_update_every=16,
        occ_warmup_steps=200,
        warmup_march_factor=4.0,
        steps=1500,  # ~10 min on 2 CPU cores for a 100-view 256x192 demo room
        batch_rays=2048,
        lr=2e-2,
        render_chunk=4096,
    )


def _paper() -> RadianceConfig:
    # torch-ngp "ngp" network and Instance-NeRF's stage-1 command (--iters 30000 --lr 1e-2, 4096 rays)
    return RadianceConfig(
        preset="paper",
        encoding="hash",
        num_levels=16,
        features_per_level=2,
        log2_table_size=19,
        base_resolution=16,
        max_resolution=2048,
        geo_hidden=64,
        geo_layers=1,
        geo_feat_dim=15,
        color_hidden=64,
        color_layers=2,
        sh_degree=4,
        march_resolution=1024,
        occ_resolution=128,
        occ_warmup_steps=256,
        steps=30000,
        batch_rays=4096,
        lr=1e-2,
        render_chunk=65536,
    )


PRESETS = {"mini": _mini, "paper": _paper}


def preset(name: str) -> RadianceConfig:
    """A fresh copy of a named configuration (``mini`` for CPU, ``paper`` for a GPU)."""
    if name not in PRESETS:
        raise ValueError(f"unknown radiance preset {name!r}; expected one of {sorted(PRESETS)}")
    return PRESETS[name]()
