"""The Euclidean distance D(i, j) = ||x_i - y_j||_2."""
from __future__ import annotations

import torch

from ..kernels.expansion import euclidean_matrix
from .base import Distance
from .registry import DISTANCES


@DISTANCES.register("euclidean")
class EuclideanDistance(Distance):
    """||x - y||_2, with a finite (zero) gradient at zero distance."""

    def pairwise(self, x: torch.Tensor, y: torch.Tensor, same: bool) -> torch.Tensor:
        return euclidean_matrix(x, y, same)

    def span(self, unit: bool) -> float | None:
        """2 on the unit sphere (antipodes), unbounded off it."""
        return 2.0 if unit else None
