"""DS-CNN, the MLPerf Tiny keyword-spotting model (Zhang et al. 2017, "Hello Edge").

Input (C, 49, 10) MFCC; conv 64 filters 10x4 stride 2 + BN + ReLU; four blocks of depthwise
3x3 + BN + ReLU + pointwise 64 + BN + ReLU; global average pool; linear to the classes.
"""

from __future__ import annotations

import torch
from torch import nn


def _conv_bn(
    cin: int, cout: int, k: tuple[int, int], stride: int, pad: tuple[int, int], groups: int = 1
) -> list[nn.Module]:
    return [
        nn.Conv2d(cin, cout, k, stride=stride, padding=pad, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    ]


class DSCNN(nn.Module):
    def __init__(self, in_ch: int = 1, num_classes: int = 12, width: float = 1.0) -> None:
        super().__init__()
        c = max(1, round(64 * width))
        layers: list[nn.Module] = _conv_bn(in_ch, c, (10, 4), 2, (5, 1))
        for _ in range(4):
            layers += _conv_bn(c, c, (3, 3), 1, (1, 1), groups=c)  # depthwise
            layers += _conv_bn(c, c, (1, 1), 1, (0, 0))  # pointwise
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
