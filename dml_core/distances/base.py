"""The distance interface: d(x, y=None) -> [n, m] matrix, smaller is closer."""
from __future__ import annotations

import torch

from ..validation import check_embeddings


class Distance:
    """A pairwise distance. `d(x)` compares x with itself; `d(x, y)` rows of x with rows of y.

    Subclasses implement `pairwise(x, y, same)`; `same` is True when y is x, so a subclass can
    make the diagonal exactly zero instead of leaving rounding error there.
    """

    registry_name: str = ""

    def __call__(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        check_embeddings(x, "x")
        if y is None:
            return self.pairwise(x, x, True)
        check_embeddings(y, "y")
        if y.shape[1] != x.shape[1]:
            raise ValueError(f"y has dimension {y.shape[1]} but x has {x.shape[1]}")
        if y.dtype != x.dtype:
            raise ValueError(f"y has dtype {y.dtype} but x has {x.dtype}")
        return self.pairwise(x, y, False)

    def pairwise(self, x: torch.Tensor, y: torch.Tensor, same: bool) -> torch.Tensor:
        raise NotImplementedError

    def span(self, unit: bool) -> float | None:
        """sup d - inf d over pairs of embeddings (of unit norm where `unit`), None where
        unbounded: how far apart two of its values can lie, so a margin on d_an - d_ap past
        it leaves no triplet on the other side."""
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

