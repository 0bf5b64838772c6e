"""CIFAR ResNets: ResNet-18 (He et al. 2016, the CIFAR variant: 3x3 stem, no max-pool,
widths 64-512, basic blocks 2-2-2-2) and ResNet-20 (3 stages of 3 basic blocks, 16-64)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    def __init__(self, in_ch: int, num_classes: int, widths: list[int], blocks: list[int]) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_ch, widths[0], 3, 1, 1, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
        )
        layers: list[nn.Module] = []
        cin = widths[0]
        for i, (w, n) in enumerate(zip(widths, blocks, strict=True)):
            for j in range(n):
                layers.append(BasicBlock(cin, w, 2 if (j == 0 and i > 0) else 1))
                cin = w
        self.layers = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.layers(self.stem(x))), 1))


def resnet18_cifar(in_ch: int = 3, num_classes: int = 10, width: float = 1.0) -> CifarResNet:
    widths = [max(1, round(c * width)) for c in (64, 128, 256, 512)]
    return CifarResNet(in_ch, num_classes, widths, [2, 2, 2, 2])


def resnet20_cifar(in_ch: int = 3, num_classes: int = 10, width: float = 1.0) -> CifarResNet:
    widths = [max(1, round(c * width)) for c in (16, 32, 64)]
    return CifarResNet(in_ch, num_classes, widths, [3, 3, 3])
