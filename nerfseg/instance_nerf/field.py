"""The instance field (paper Eq. 2-12): per-sample instance logits rendered with the FROZEN radiance weights.

Architecture (reference torch-ngp ``network_mask.py``, notes section 6.2): a second grid encoder of its own
over the scene box, concatenated with the frozen radiance field's geometry feature, then an MLP (3 layers,
hidden 64, ReLU) to L logits, where L = kept NeRF-RCNN detections + 1 and logit 0 is the background. The
logits are composited with the density weights *before* any softmax (Σ w_i · logits_i), so a pixel's
prediction is the argmax of the rendered logits.

Why a second encoder: the geometry feature describes density and colour; two identical chairs have the same
feature, so it alone cannot tell them apart. The instance encoder is where the field learns *where* each
instance is. The geometry feature is detached and the radiance field is frozen during this training
(``RadianceTrainer.freeze_radiance``), so the instance loss never moves the geometry.

Loss (:class:`InstanceLoss`): cross-entropy over pixels whose matched label is not -1 (mean) plus the
depth-aware smoothness term on the rendered 8x8 patches (:func:`smoothness_loss`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from nerfseg.radiance.data import RayBatch
from nerfseg.radiance.encodings import dense_grid, hash_grid

HEAD = "instance"
TARGET = "instance_label"
IGNORE = -1


@dataclass
class InstanceFieldConfig:
    """The instance branch's own encoder and MLP (reference: same hash config as the radiance field)."""

    encoding: str = "hash"  # "hash" | "dense"
    num_levels: int = 16
    features_per_level: int = 2
    log2_table_size: int = 19
    base_resolution: int = 16
    max_resolution: int = 2048
    dense_resolution: int = 64
    dense_features: int = 8
    dense_levels: int = 2
    hidden: int = 64
    layers: int = 2  # hidden layers: 2 hidden + output = the reference's 3 linear layers


class InstanceField(nn.Module):
    """(geo_feat (S, G), normalised xyz (S, 3)) -> instance logits (S, L); a head for ``RadianceTrainer``."""

    def __init__(self, config: InstanceFieldConfig, aabb: torch.Tensor, geo_feat_dim: int, num_labels: int) -> None:
        super().__init__()
        if num_labels < 1:
            raise ValueError(f"the instance field needs at least the background label, got {num_labels}")
        self.config = config
        self.num_labels = int(num_labels)
        if config.encoding == "hash":
            self.encoding = hash_grid(aabb, config.num_levels, config.features_per_level, config.log2_table_size, config.base_resolution, config.max_resolution)
        elif config.encoding == "dense":
            self.encoding = dense_grid(aabb, config.dense_resolution, config.dense_features, config.dense_levels)
        else:
            raise ValueError(f"unknown instance encoding {config.encoding!r}; expected 'hash' or 'dense'")
        mods: list[nn.Module] = []
        d = self.encoding.output_dim + geo_feat_dim
        for _ in range(config.layers):
            mods += [nn.Linear(d, config.hidden), nn.ReLU(inplace=True)]
            d = config.hidden
        mods.append(nn.Linear(d, self.num_labels))
        self.mlp = nn.Sequential(*mods)

    def forward(self, geo_feat: torch.Tensor, xyz: torch.Tensor) -> torch.Tensor:
        h = torch.cat([self.encoding(xyz.detach()), geo_feat.detach().to(torch.float32)], dim=-1)
        return self.mlp(h)


def smoothness_loss(logits: torch.Tensor, depth: torch.Tensor, depth_scale: float = 1.0) -> torch.Tensor:
    """Depth-aware smoothness of rendered logits on square patches (paper Eq. 11-12, reference
    ``label_regularization``).

    ``logits`` (P, K, K, L) and ``depth`` (P, K, K) (row-major patches). For horizontal neighbours
    w = exp(-(s·Δdepth)^2) and the term is Σ_pairs Σ_c (Δlogit_c)^2 · w / Σ_pairs Σ_c w, i.e. the
    depth-weighted mean of the squared logit differences over pairs and channels (the reference expands
    the weight over the channels before both sums); the same for vertical neighbours, and the two add.
    A depth edge makes w ~ 0, so two different instances meeting at a depth discontinuity are not pulled
    together, while neighbours on one surface are. ``depth_scale`` s converts depth units (1: metres;
    the reference worked in its normalised scene units, metres x 0.33). The depth carries no gradient.
    """
    if logits.dim() != 4 or depth.shape != logits.shape[:3]:
        raise ValueError(f"logits must be (P,K,K,L) and depth (P,K,K); got {tuple(logits.shape)} and {tuple(depth.shape)}")
    d = depth.detach().to(logits.dtype) * depth_scale
    num = logits.shape[-1]
    total = logits.new_zeros(())
    for axis in (2, 1):  # x (columns), then y (rows)
        n = logits.shape[axis] - 1
        if n <= 0:
            continue
        dl = logits.narrow(axis, 1, n) - logits.narrow(axis, 0, n)
        dd = d.narrow(axis, 1, n) - d.narrow(axis, 0, n)
        w = torch.exp(-dd * dd)
        total = total + (dl.pow(2).sum(-1) * w).sum() / (w.sum() * num).clamp_min(1e-12)
    return total


class InstanceLoss:
    """CE on labelled pixels + ``regularization_weight`` x smoothness on the batch's patches.

    A ``HeadLoss`` for ``RadianceTrainer.add_head``: reads the rendered logits ``outputs[HEAD]``, the
    rendered ``depth`` and the per-pixel target ``batch.extras[TARGET]`` (-1 = unlabelled). The last
    values of both terms are kept for logging.
    """

    def __init__(self, regularization: bool = True, regularization_weight: float = 1.0, depth_scale: float = 1.0) -> None:
        self.regularization = regularization
        self.regularization_weight = float(regularization_weight)
        self.depth_scale = float(depth_scale)
        self.last: dict[str, float] = {}

    def __call__(self, outputs: dict, batch: RayBatch) -> torch.Tensor:
        logits = outputs[HEAD]
        target = batch.extras[TARGET].long()
        valid = target != IGNORE
        if bool(valid.any()):
            ce = F.cross_entropy(logits[valid], target[valid])
        else:
            ce = logits.sum() * 0.0
        loss = ce
        self.last = {"ce": float(ce.detach())}
        if self.regularization and self.regularization_weight > 0:
            if batch.patch_shape is None:
                raise ValueError("the smoothness term needs patch batches (config patch_size > 1)")
            p, k, _ = batch.patch_shape
            reg = smoothness_loss(logits.reshape(p, k, k, -1), outputs["depth"].reshape(p, k, k), self.depth_scale)
            loss = loss + self.regularization_weight * reg
            self.last["smooth"] = float(reg.detach())
        return loss
