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
    # In place: addmm keeps its inputs for backward, not its output, so clamping and zeroing
    # the diagonal there save two passes over the [n, m] matrix.
    d2 = torch.addmm(x2 + y2.T, x, y.T, alpha=-2.0).clamp_(min=0.0)
    if same:
        d2.diagonal().zero_()
    return d2


class _SafeSqrt(torch.autograd.Function):
    @staticmethod
    def forward(ctx, d2):
        root = d2.clamp_min(0.0).sqrt_()
        ctx.save_for_backward(root)
        return root

    @staticmethod
    def backward(ctx, grad):
        (root,) = ctx.saved_tensors
        # d sqrt(u)/du = 1 / (2 sqrt u), taken as 0 where u = 0 (its subgradient at the kink
        # of |x - y|), so duplicates and the diagonal give finite gradients.
        return torch.where(root > 0, grad / (2.0 * root), torch.zeros((), dtype=grad.dtype, device=grad.device))


def safe_sqrt(d2: torch.Tensor) -> torch.Tensor:
    """sqrt with a zero (finite) gradient at 0, where d sqrt(u)/du = 1/(2 sqrt u) is infinite.
    One fused forward pass and one backward pass (a where-based version costs six)."""
    return _SafeSqrt.apply(d2)
