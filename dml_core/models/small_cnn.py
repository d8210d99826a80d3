"""A small CNN for 28x28 grey images (Fashion-MNIST): three conv blocks, global pooling."""
from __future__ import annotations

import torch
from torch import nn

from .fused_block import bn_relu_maxpool
from .pooling import GlobalAvgPool
from .registry import BACKBONES


def conv_block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


@BACKBONES.register("small_cnn")
class SmallCNN(nn.Module):
    """[B, C, H, W] -> [B, 4 * width] features. ~100k parameters at width 32: small enough
    that a quick sweep of many trials trains in minutes on two CPU cores."""

    convolutional = True  # 4-D activations: channels-last is its default layout

    def __init__(self, in_channels: int = 1, width: int = 32):
        super().__init__()
        self.features = nn.Sequential(
            conv_block(in_channels, width),
            nn.MaxPool2d(2),
            conv_block(width, 2 * width),
            nn.MaxPool2d(2),
            conv_block(2 * width, 4 * width),
            GlobalAvgPool(),
        )
        self.out_features = 4 * width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The modules of self.features, with each pooled block's batch norm, ReLU and pooling
        # fused where the kernel applies: in a bf16 step on one CPU thread they are most of
        # the time of the first block, the network's largest activations.
        f = self.features
        for block, pool in ((f[0], f[1]), (f[2], f[3])):
            x = bn_relu_maxpool(block[0](x), block[1], pool)
        return f[5](f[4](x))
