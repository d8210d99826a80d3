"""Backbone + projection head = the embedding network f(x)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .registry import BACKBONES


class Embedder(nn.Module):
    """f(x) = head(backbone(x)), L2-normalised when `normalize` (losses never normalise)."""

    def __init__(self, backbone: nn.Module, embedding_dim: int, normalize: bool = True):
        super().__init__()
        if embedding_dim < 1:
            raise ValueError(f"embedding_dim must be >= 1, got {embedding_dim}")
        self.backbone = backbone
        self.head = nn.Linear(backbone.out_features, embedding_dim)
        self.normalize = normalize
        self.embedding_dim = embedding_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.head(self.backbone(x))
        # Normalised in float32: under bf16 autocast a bf16 unit vector's norm is off 1 by up
        # to ~4e-3, which the losses on the sphere would see. (A no-op cast in fp32.)
        return F.normalize(z.float(), dim=1) if self.normalize else z


def build_embedder(name: str, embedding_dim: int = 64, normalize: bool = True, **backbone_opts) -> Embedder:
    """build_embedder("small_cnn", embedding_dim=64, in_channels=1) -> Embedder."""
    return Embedder(BACKBONES.build(name, **backbone_opts), embedding_dim, normalize)


def input_options(name: str, options: dict, image_shape) -> dict:
    """A backbone's options plus the input size it takes from the data (H, W, C): the
    channels of a CNN, the flattened size of an MLP. What a trial builds is what a saved
    model is rebuilt with."""
    height, width, channels = (int(d) for d in image_shape)
    opts = dict(options)
    if name in ("small_cnn", "resnet", "timm"):
        opts.setdefault("in_channels", channels)
    if name == "mlp":
        opts.setdefault("in_features", [channels, height, width])
    return opts
