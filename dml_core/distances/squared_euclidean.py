"""The squared Euclidean distance D^2 (the triplet loss's distance in FaceNet, Schroff et al. 2015)."""
from __future__ import annotations

import torch

from ..kernels.expansion import squared_euclidean_matrix
from .base import Distance
from .registry import DISTANCES


@DISTANCES.register("squared_euclidean")
class SquaredEuclideanDistance(Distance):
    """||x - y||_2^2 (smooth everywhere, so no special case at zero)."""

    def pairwise(self, x: torch.Tensor, y: torch.Tensor, same: bool) -> torch.Tensor:
        return squared_euclidean_matrix(x, y, same)

    def span(self, unit: bool) -> float | None:
        """4 on the unit sphere (antipodes: ||x - y||^2 = 2 - 2 x.y), unbounded off it."""
        return 4.0 if unit else None
