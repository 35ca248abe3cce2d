"""The radiance field: grid encoding -> small geometry MLP -> (density, geo_feat); colour head on
geo_feat + SH(direction).

The split ``geometry`` / ``color`` is the extension point for the methods: Semantic-NeRF puts a class
head on ``geo_feat`` (gradients reach the geometry), DM-NeRF an object-code head on ``geo_feat.detach()``,
Instance-NeRF a second grid + MLP on the positions, all sharing this density. Densities are per metre
(ray parameters are world metres, see :mod:`nerfseg.radiance.scene_box`); positions are normalised.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from nerfseg.config import check_choices, setting_error
from nerfseg.radiance.encodings import GridEncoding, dense_grid, hash_grid, sh_encoding_dim, spherical_harmonics
from nerfseg.radiance.scene_box import SceneBox


class _TruncExp(torch.autograd.Function):
    """exp with the gradient's argument clamped at 15 (Instant-NGP's trunc_exp): avoids inf gradients
    when a raw density spikes early in training, while the forward value stays exact."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        return torch.exp(x)

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return g * torch.exp(x.clamp(max=15))


def trunc_exp(x: torch.Tensor) -> torch.Tensor:
    return _TruncExp.apply(x)


#: grid sizes and counts that are meaningless below 1 (a grid level of 0 cells fails deep inside the encoding)
POSITIVE_SETTINGS = ("num_levels", "features_per_level", "base_resolution", "max_resolution", "dense_resolution",
                     "dense_features", "dense_levels", "geo_feat_dim")


@dataclass
class FieldConfig:
    """Architecture of :class:`RadianceField`; :class:`~nerfseg.radiance.config.RadianceConfig` extends it with
    the training settings, so each architecture setting is declared once."""

    encoding: Literal["hash", "dense"] = "hash"  # "hash" (Instant-NGP) | "dense" (dense grid pyramid, CPU friendly)
    num_levels: int = 16
    features_per_level: int = 2
    log2_table_size: int = 19
    base_resolution: int = 16
    max_resolution: int = 2048
    dense_resolution: int = 128
    dense_features: int = 16
    dense_levels: int = 1
    geo_hidden: int = 64
    geo_layers: int = 1  # hidden layers of the geometry MLP
    geo_feat_dim: int = 15
    color_hidden: int = 64
    color_layers: int = 2  # hidden layers of the colour MLP
    sh_degree: int = 4  # spherical-harmonics bands of the view direction (1..5)
    density_activation: Literal["trunc_exp", "softplus"] = "trunc_exp"
    density_bias: float = 0.0  # added to the raw density before the activation (sets the initial opacity)
    bias: bool = False  # biases in the MLPs (torch-ngp has none)
    #: "auto": numba kernel for the grid levels on CPU (same values as torch, faster); "torch": torch ops only
    grid_kernel: Literal["auto", "torch"] = "auto"

    def __post_init__(self) -> None:
        # checked here, not in RadianceField, so a bad setting fails when the config is built, before any work
        check_choices(self)
        if not 1 <= int(self.sh_degree) <= 5:
            raise setting_error("sh_degree", self.sh_degree, f"sh_degree must be in 1..5, got {self.sh_degree}")
        for key in POSITIVE_SETTINGS:
            if int(getattr(self, key)) < 1:
                raise setting_error(key, getattr(self, key), f"{key} must be >= 1, got {getattr(self, key)}")


def mlp(in_dim: int, hidden: int, layers: int, out_dim: int, bias: bool) -> nn.Sequential:
    """``layers`` hidden ReLU layers of width ``hidden``, then a linear output layer."""
    mods: list[nn.Module] = []
    d = in_dim
    for _ in range(layers):
        mods += [nn.Linear(d, hidden, bias=bias), nn.ReLU(inplace=True)]
        d = hidden
    mods.append(nn.Linear(d, out_dim, bias=bias))
    return nn.Sequential(*mods)


class RadianceField(nn.Module):
    """Density + view-dependent colour over a :class:`SceneBox` (which it carries, so export and
    rendering code need nothing else to go from world metres to the grid)."""

    def __init__(self, config: FieldConfig, box: SceneBox) -> None:
        super().__init__()
        self.config = config
        self.box = box
        aabb = box.aabb_normalised()
        if config.encoding == "hash":
            self.encoding: GridEncoding = hash_grid(
                aabb,
                config.num_levels,
                config.features_per_level,
                config.log2_table_size,
                config.base_resolution,
                config.max_resolution,
            )
        else:  # "dense" (FieldConfig checked the choice)
            self.encoding = dense_grid(aabb, config.dense_resolution, config.dense_features, config.dense_levels)
        self.encoding.kernel = config.grid_kernel
        self.geo_feat_dim = config.geo_feat_dim
        self.geo_mlp = mlp(self.encoding.output_dim, config.geo_hidden, config.geo_layers, 1 + config.geo_feat_dim, config.bias)
        self.sh_dim = sh_encoding_dim(config.sh_degree)
        self.color_mlp = mlp(config.geo_feat_dim + self.sh_dim, config.color_hidden, config.color_layers, 3, config.bias)

    # -- geometry ---------------------------------------------------------------------------------
    def geometry(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised positions (N,3) -> density (N,) per metre and geometry features (N, geo_feat_dim)."""
        h = self.geo_mlp(self.encoding(x))
        return self._activate(h[..., 0]), h[..., 1:]

    def density(self, x: torch.Tensor) -> torch.Tensor:
        return self.geometry(x)[0]

    def _activate(self, raw: torch.Tensor) -> torch.Tensor:
        raw = raw + self.config.density_bias
        if self.config.density_activation == "trunc_exp":
            return trunc_exp(raw)
        return F.softplus(raw)

    # -- appearance -------------------------------------------------------------------------------
    def encode_dirs(self, dirs: torch.Tensor) -> torch.Tensor:
        """SH features of (unnormalised) directions; compute once per ray and index per sample."""
        return spherical_harmonics(dirs, self.config.sh_degree)

    def color(self, geo_feat: torch.Tensor, dirs: torch.Tensor | None = None, dir_enc: torch.Tensor | None = None) -> torch.Tensor:
        """RGB in [0,1] (N,3) from geometry features and either directions (N,3) or their SH encoding."""
        if dir_enc is None:
            if dirs is None:
                raise ValueError("color() needs dirs or dir_enc")
            dir_enc = self.encode_dirs(dirs)
        return torch.sigmoid(self.color_mlp(torch.cat([geo_feat, dir_enc.to(geo_feat.dtype)], dim=-1)))

    def forward(self, x: torch.Tensor, dirs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        sigma, geo = self.geometry(x)
        return sigma, self.color(geo, dirs)

    # -- convenience ------------------------------------------------------------------------------
    def grid_parameters(self) -> list[nn.Parameter]:
        return list(self.encoding.parameters())

    def mlp_parameters(self) -> list[nn.Parameter]:
        return list(self.geo_mlp.parameters()) + list(self.color_mlp.parameters())
