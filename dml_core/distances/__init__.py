"""Pairwise distances. `build_distance(name, **opts)` -> d(x, y=None)."""
from __future__ import annotations

from ..kernels.expansion import euclidean_matrix, squared_euclidean_matrix
from .base import Distance
from .cosine import CosineDistance
from .dot import DotDistance
from .euclidean import EuclideanDistance
from .mahalanobis import MahalanobisDistance
from .registry import DISTANCES
from .squared_euclidean import SquaredEuclideanDistance


def build_distance(name: str | Distance, **opts) -> Distance:
    """A distance by its params.yaml name; a Distance instance passes through unchanged."""
    if isinstance(name, Distance):
        if opts:
            raise ValueError(f"options {sorted(opts)} given with a built distance {name!r}")
        return name
    return DISTANCES.build(name, **opts)


__all__ = [
    "DISTANCES",
    "CosineDistance",
    "Distance",
    "DotDistance",
    "EuclideanDistance",
    "MahalanobisDistance",
    "SquaredEuclideanDistance",
    "build_distance",
    "euclidean_matrix",
    "squared_euclidean_matrix",
]
