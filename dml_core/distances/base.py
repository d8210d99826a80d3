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

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def squared_euclidean_matrix(x: torch.Tensor, y: torch.Tensor, same: bool) -> torch.Tensor:
    """||x_i - y_j||^2 via the BLAS expansion |x|^2 + |y|^2 - 2 x.y, clamped at 0.

    The expansion is one matrix multiply (fast at large batches) but leaves rounding error
    where x_i == y_j; on the self-comparison the diagonal is set to exactly 0.
    """
    x2 = (x * x).sum(1, keepdim=True)
    y2 = x2 if same else (y * y).sum(1, keepdim=True)
    d2 = torch.addmm(x2 + y2.T, x, y.T, alpha=-2.0).clamp_min(0.0)
    if same:
        d2 = d2.masked_fill(torch.eye(len(x), dtype=torch.bool, device=x.device), 0.0)
    return d2


def safe_sqrt(d2: torch.Tensor) -> torch.Tensor:
    """sqrt with a zero (finite) gradient at 0, where d sqrt(u)/du = 1/(2 sqrt u) is infinite."""
    zero = d2 <= 0
    root = torch.sqrt(torch.where(zero, torch.ones_like(d2), d2))
    return torch.where(zero, torch.zeros_like(root), root)
