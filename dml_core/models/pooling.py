"""Global average pooling that keeps the gradient in the activations' layout."""
from __future__ import annotations

import torch
from torch import nn


class GlobalAvgPool(nn.Module):
    """[B, C, H, W] -> [B, C]: the mean over H and W, computed as sum(x) / (H W). Unlike
    AdaptiveAvgPool2d and mean, whose backward writes a new NCHW gradient, the backward of sum
    broadcasts the gradient as a view, so the last ReLU's backward reads it in the activations'
    own layout: against a channels-last activation an NCHW gradient takes torch's strided
    path, about 12x slower on CPU, a tenth of a bf16 step of the width-16 network."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.sum(dim=(2, 3)) * (1.0 / (x.shape[2] * x.shape[3]))
