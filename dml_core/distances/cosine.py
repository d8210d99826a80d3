"""The cosine distance 1 - x.y / (|x| |y|)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import Distance
from .registry import DISTANCES


@DISTANCES.register("cosine")
class CosineDistance(Distance):
    """1 - cos(x, y), in [0, 2]. A zero vector has cosine 0 with everything (distance 1)."""

    def pairwise(self, x: torch.Tensor, y: torch.Tensor, same: bool) -> torch.Tensor:
        xn = F.normalize(x, dim=1)
        yn = xn if same else F.normalize(y, dim=1)
        d = 1.0 - xn @ yn.T
        if same:
            # A non-zero vector is at distance exactly 0 from itself, not 1e-7 away.
            nonzero = (x != 0).any(1)
            d = d.masked_fill(torch.diag(nonzero), 0.0)
        return d

    def span(self, unit: bool) -> float | None:
        """2 whatever the norms: 1 - cos lies in [0, 2]."""
        return 2.0
