"""Small models for the embedded default (8x8 digits)."""

from __future__ import annotations

import math

import torch
from torch import nn


def _ch(c: int, width: float) -> int:
    return max(1, round(c * width))


class DigitsCNN(nn.Module):
    """conv3x3(16) - BN - ReLU - conv3x3(32, stride 2) - BN - ReLU - avgpool - linear."""

    def __init__(self, in_ch: int = 1, num_classes: int = 10, width: float = 1.0) -> None:
        super().__init__()
        c1, c2 = _ch(16, width), _ch(32, width)
        self.features = nn.Sequential(
            nn.Conv2d(in_ch, c1, 3, padding=1, bias=False),
            nn.BatchNorm2d(c1),
            nn.ReLU(inplace=True),
            nn.Conv2d(c1, c2, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(c2),
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.classifier = nn.Linear(c2, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class MLP(nn.Module):
    """Flatten - linear(64) - ReLU - linear(64) - ReLU - linear."""

    def __init__(self, shape: tuple[int, ...], num_classes: int = 10, width: float = 1.0) -> None:
        super().__init__()
        h = _ch(64, width)
        self.net = nn.Sequential(
            nn.Flatten(),
            nn.Linear(math.prod(shape), h),
            nn.ReLU(inplace=True),
            nn.Linear(h, h),
            nn.ReLU(inplace=True),
            nn.Linear(h, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
