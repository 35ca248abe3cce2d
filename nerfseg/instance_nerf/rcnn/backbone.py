"""VGG-style 3D CNN with a 4-level FPN (strides s, 2s, 4s, 8s; s = ``base_stride``), the NeRF-RPN "VGG-EF" backbone.

Reference layout (Instance-NeRF appendix B / NeRF-RPN ``vgg_EF``): a stride-4 stem (Conv 7^3 /2 + BN + ReLU +
MaxPool 3^3 /2), then stages of 3^3 Conv + BN + ReLU with a downsampling between stages, and an FPN that turns
C2..C5 into P2..P5 of equal width (1^3 lateral convs, nearest top-down upsampling, 3^3 output convs).
``norm="gn"`` swaps BatchNorm for GroupNorm: at ``mini`` (batch 1, a 1^3 top level on small grids) BatchNorm
statistics are degenerate. The ``strided`` stem (two 3^3 /2 convs) replaces the 7^3 convolution at ``mini``: on a CPU the 7^3 stem
alone would cost more than the rest of the network.

``base_stride`` (the finest level's stride): 4 is the reference's stem for grids of 160 voxels or more; below
160 the reference stem has stride 1 (Conv 7^3 /1, no pooling), so its finest level keeps every voxel. Here 1,
2 or 4: the stem downsamples log2(base_stride) times (``conv7``: the 7^3 conv at stride 2 for s >= 2, the max
pool for s = 4; ``strided``: that many 3^3 /2 convs, s = 1 a single 3^3 /1 conv).

The input is expected zero-padded to a multiple of 32 per axis (``model.pad_grids``), so level ``l`` has
exactly ``shape / stride_l`` cells and cell ``k`` summarises input voxels ``[k s, (k + 1) s)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

STRIDES: tuple[int, int, int, int] = (4, 8, 16, 32)
BASE_STRIDES = (1, 2, 4)


def level_strides(base_stride: int) -> tuple[int, int, int, int]:
    """Strides of the four FPN levels for a finest-level stride ``base_stride``."""
    if int(base_stride) not in BASE_STRIDES:
        raise ValueError(f"base_stride must be one of {BASE_STRIDES}, got {base_stride}")
    b = int(base_stride)
    return (b, 2 * b, 4 * b, 8 * b)


def norm_layer(kind: str, channels: int) -> nn.Module:
    """BatchNorm (reference) or GroupNorm of 8-channel groups (batch-size independent, for batch 1 and tiny grids)."""
    if kind == "bn":
        return nn.BatchNorm3d(channels)
    if kind == "gn":
        return nn.GroupNorm(max(1, channels // 8) if channels % 8 == 0 else 1, channels)
    raise ValueError(f"unknown norm {kind!r}; expected 'bn' or 'gn'")


def conv_bn_relu(cin: int, cout: int, kernel: int = 3, stride: int = 1, norm: str = "bn") -> nn.Sequential:
    return nn.Sequential(
        nn.Conv3d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=False),
        norm_layer(norm, cout),
        nn.ReLU(inplace=True),
    )


class VGGFPN3D(nn.Module):
    """3D VGG backbone + FPN: (B, C_in, X, Y, Z) -> [P2, P3, P4, P5], each (B, fpn_channels, X/s, Y/s, Z/s)."""

    def __init__(
        self,
        in_channels: int = 4,
        stem: str = "conv7",
        stem_channels: int = 64,
        channels: Sequence[int] = (128, 256, 512, 512),
        depths: Sequence[int] = (4, 4, 4, 4),
        fpn_channels: int = 256,
        norm: str = "bn",
        base_stride: int = 4,
    ):
        super().__init__()
        self.strides = level_strides(base_stride)
        if stem == "conv7":
            layers: list[nn.Module] = [conv_bn_relu(in_channels, stem_channels, kernel=7, stride=1 if base_stride == 1 else 2, norm=norm)]
            if base_stride == 4:
                layers.append(nn.MaxPool3d(3, stride=2, padding=1))
            self.stem = nn.Sequential(*layers)
        elif stem == "strided":
            n_down = {1: 0, 2: 1, 4: 2}[int(base_stride)]
            convs = [conv_bn_relu(in_channels if i == 0 else stem_channels, stem_channels, kernel=3, stride=2, norm=norm) for i in range(n_down)]
            self.stem = nn.Sequential(*(convs or [conv_bn_relu(in_channels, stem_channels, kernel=3, stride=1, norm=norm)]))
        else:
            raise ValueError(f"unknown stem {stem!r}")
        stages = []
        cin = stem_channels
        for i, (cout, depth) in enumerate(zip(channels, depths)):
            layers: list[nn.Module] = [] if i == 0 else [nn.MaxPool3d(2, stride=2)]
            for j in range(max(1, int(depth))):
                layers.append(conv_bn_relu(cin if j == 0 else cout, cout, norm=norm))
            stages.append(nn.Sequential(*layers))
            cin = cout
        self.stages = nn.ModuleList(stages)
        self.lateral = nn.ModuleList(nn.Conv3d(c, fpn_channels, 1) for c in channels)
        self.output = nn.ModuleList(nn.Conv3d(fpn_channels, fpn_channels, 3, padding=1) for _ in channels)
        self.out_channels = fpn_channels
        for m in list(self.lateral) + list(self.output):
            nn.init.kaiming_uniform_(m.weight, a=1)
            nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self.stem(x)
        cs = []
        for stage in self.stages:
            x = stage(x)
            cs.append(x)
        top = self.lateral[-1](cs[-1])
        outs = [self.output[-1](top)]
        for i in range(len(cs) - 2, -1, -1):
            lat = self.lateral[i](cs[i])
            top = lat + F.interpolate(top, size=lat.shape[2:], mode="nearest")
            outs.insert(0, self.output[i](top))
        return outs
