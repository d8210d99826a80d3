"""A ResNet-style backbone in plain torch (He et al., CVPR 2016), for images larger than 28x28.

torchvision cannot be installed beside our torch build, so the basic-block ResNet is written
here; depths (2, 2, 2, 2) and width 64 give the ResNet-18 layout.
"""
from __future__ import annotations

import torch
from torch import nn

from .pooling import GlobalAvgPool
from .registry import BACKBONES


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


@BACKBONES.register("resnet")
class ResNet(nn.Module):
    convolutional = True  # 4-D activations: channels-last is its default layout

    def __init__(self, in_channels: int = 3, width: int = 64, depths: list[int] | tuple[int, ...] = (2, 2, 2, 2)):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, 7, 2, 3, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, 1),
        )
        blocks, c = [], width
        for stage, depth in enumerate(depths):
            c_out = width * 2**stage
            for i in range(depth):
                blocks.append(BasicBlock(c, c_out, 2 if (i == 0 and stage > 0) else 1))
                c = c_out
        self.blocks = nn.Sequential(*blocks)
        self.pool = GlobalAvgPool()
        self.out_features = c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.blocks(self.stem(x)))
