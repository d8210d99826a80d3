"""An MLP for vector inputs (or images flattened)."""
from __future__ import annotations

import math

import torch
from torch import nn

from .registry import BACKBONES


@BACKBONES.register("mlp")
class MLP(nn.Module):
    """Flattens its input, then Linear-ReLU layers of the given widths."""

    convolutional = False  # no 4-D activations: channels-last buys nothing

    def __init__(self, in_features: int | list[int] = 784, hidden: list[int] | tuple[int, ...] = (256, 256)):
        super().__init__()
        if isinstance(in_features, (list, tuple)):
            in_features = math.prod(in_features)
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU(inplace=True)]
            width = h
        self.features = nn.Sequential(*layers)
        self.out_features = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)
