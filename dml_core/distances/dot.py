"""The negated dot product: a similarity turned into a 'smaller is closer' score."""
from __future__ import annotations

import torch

from .base import Distance
from .registry import DISTANCES


@DISTANCES.register("dot")
class DotDistance(Distance):
    """-x.y. Not a metric (it can be negative); N-pair and InfoNCE score with the dot product."""

    def pairwise(self, x: torch.Tensor, y: torch.Tensor, same: bool) -> torch.Tensor:
        return -(x @ y.T)

    def span(self, unit: bool) -> float | None:
        """2 on the unit sphere (-x.y in [-1, 1]), unbounded off it."""
        return 2.0 if unit else None
