"""Batch augmentations in plain torch (no torchvision): random crop with padding, horizontal flip.

They act on a whole uint8 batch [B, H, W, C] at once, as gathered from the memory-mapped
shards: one index computation and one gather per batch, instead of a Python call per image.
Random crop with zero padding and flips are the augmentations of the small-image metric
learning setups (CIFAR-style padding 4 on 32 px); the photo benchmarks use the same idea
at a larger scale (Oh Song et al. CVPR 2016 crop 227 of 256 and flip).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch


class RandomCropFlip:
    """Pad by ``padding`` zeros, crop back to H x W at a random offset, flip with prob. 0.5.

    Call with a uint8 (or any dtype) batch [B, H, W, C] and a ``torch.Generator`` for
    reproducible draws; returns a new batch of the same shape.
    """

    def __init__(self, padding: int = 4, flip: bool = True):
        if int(padding) < 0:
            raise ValueError(f"padding must be >= 0, got {padding}")
        self.padding = int(padding)
        self.flip = bool(flip)

    def __repr__(self) -> str:
        return f"RandomCropFlip(padding={self.padding}, flip={self.flip})"

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if images.dim() != 4:
            raise ValueError(f"images must be a batch [B, H, W, C], got shape {tuple(images.shape)}")
        b, h, w, c = images.shape
        p = self.padding
        if p:
            padded = images.new_zeros((b, h + 2 * p, w + 2 * p, c))
            padded[:, p : p + h, p : p + w] = images
            oy = torch.randint(0, 2 * p + 1, (b, 1), generator=generator)
            ox = torch.randint(0, 2 * p + 1, (b, 1), generator=generator)
        else:
            padded = images
            oy = ox = torch.zeros((b, 1), dtype=torch.int64)
        rows = oy + torch.arange(h)  # [B, H]
        cols = ox + torch.arange(w)  # [B, W]
        if self.flip:
            flip = torch.rand((b, 1), generator=generator) < 0.5
            cols = torch.where(flip, cols.flip(1), cols)
        # One gather of B*H*W pixels (of C channels) through a flat index.
        hp, wp = padded.shape[1], padded.shape[2]
        flat = (torch.arange(b).view(b, 1, 1) * (hp * wp) + rows.view(b, h, 1) * wp + cols.view(b, 1, w)).view(-1)
        return padded.reshape(-1, c).index_select(0, flat).view(b, h, w, c)


def default_augmentation(card: dict) -> RandomCropFlip:
    """Crop with padding 1/8 of the image side (4 px for 28 px), flip where the card allows it."""
    side = int(card["image"]["shape"][0])
    return RandomCropFlip(padding=max(1, round(side / 8)), flip=bool(card["augmentation"]["hflip"]))


def to_float(
    images: torch.Tensor,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> torch.Tensor:
    """uint8 [B, H, W, C] -> float32 [B, C, H, W] in [0, 1], then (x - mean) / std if given."""
    x = images.permute(0, 3, 1, 2).to(torch.float32).div_(255.0).contiguous()
    if mean is not None:
        m = torch.as_tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        s = torch.as_tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
        x = x.sub_(m).div_(s)
    return x
