"""NeRF-RCNN RoI heads: the box head (class + per-class AABB refinement) and the 3D mask head.

Reference (Instance-NeRF appendix B): box head on 5^3 RoIs: flatten -> FC 512 -> ReLU -> FC 512 -> ReLU ->
11 class logits and 11 x 6 per-class deltas; mask head on 10^3 RoIs: 4 x (Conv 3^3, 256 ch, ReLU, no norm)
-> ConvTranspose 2^3 /2 -> ReLU -> Conv 1^3 -> 11 channels, i.e. 20^3 mask logits per class. Widths are
arguments so the ``mini`` preset can shrink them.
"""

from __future__ import annotations

from torch import Tensor, nn


class BoxHead(nn.Module):
    """(K, C, n, n, n) RoI features -> (K, num_classes) logits and (K, num_classes * 6) deltas."""

    def __init__(self, in_channels: int, roi_size: int, fc_dim: int, num_classes: int):
        super().__init__()
        self.fc = nn.Sequential(
            nn.Flatten(),
            nn.Linear(in_channels * roi_size**3, fc_dim),
            nn.ReLU(inplace=True),
            nn.Linear(fc_dim, fc_dim),
            nn.ReLU(inplace=True),
        )
        self.cls_score = nn.Linear(fc_dim, num_classes)
        self.bbox_pred = nn.Linear(fc_dim, num_classes * 6)
        nn.init.normal_(self.cls_score.weight, std=0.01)
        nn.init.normal_(self.bbox_pred.weight, std=0.001)
        nn.init.zeros_(self.cls_score.bias)
        nn.init.zeros_(self.bbox_pred.bias)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.fc(x)
        return self.cls_score(h), self.bbox_pred(h)


class MaskHead(nn.Module):
    """(K, C, n, n, n) RoI features -> (K, num_classes, 2n, 2n, 2n) mask logits."""

    def __init__(self, in_channels: int, channels: int, num_convs: int, num_classes: int):
        super().__init__()
        layers: list[nn.Module] = []
        cin = in_channels
        for _ in range(num_convs):
            layers += [nn.Conv3d(cin, channels, 3, padding=1), nn.ReLU(inplace=True)]
            cin = channels
        layers += [nn.ConvTranspose3d(cin, channels, 2, stride=2), nn.ReLU(inplace=True)]
        self.body = nn.Sequential(*layers)
        self.logits = nn.Conv3d(channels, num_classes, 1)
        for m in self.modules():
            if isinstance(m, (nn.Conv3d, nn.ConvTranspose3d)):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.logits.weight, std=0.001)

    def forward(self, x: Tensor) -> Tensor:
        return self.logits(self.body(x))
