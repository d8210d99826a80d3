"""Squared and plain Euclidean matrices by the BLAS expansion, with hand-written backward.

||x_i - y_j||^2 = |x_i|^2 + |y_j|^2 - 2 x_i.y_j is one matrix multiply. For an upstream
gradient G = dL/dD over the [n, m] matrix the input gradients are matrix products too:

    dL/dx = 2 (rowsum(G) * x - G y),   dL/dy = 2 (colsum(G) * y - G^T x)   (D = d^2)

and for D = d, the same with G / (2 d) in place of G. Written out, the backward is two
multiplies and a few passes over [n, m]; autograd's chain through the expansion, the clamp,
the diagonal fix and the square root costs about ten passes, and at large batches those
passes (each a fresh [n, m] buffer) cost more than the multiplies.
"""
from __future__ import annotations

import torch

from .huge_pages import empty_large


def reference_squared_euclidean(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """||x_i - y_j||^2 from the differences, through autograd."""
    return ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)


def reference_euclidean(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """||x_i - y_j||, with gradient 0 where it is 0 (the subgradient at the kink)."""
    d2 = reference_squared_euclidean(x, y)
    zero = d2 == 0
    return torch.where(zero, 0.0, d2.masked_fill(zero, 1.0).sqrt())


def _expand(x: torch.Tensor, y: torch.Tensor, same: bool) -> torch.Tensor:
    x2 = (x * x).sum(1, keepdim=True)
    y2 = x2 if same else (y * y).sum(1, keepdim=True)
    d2 = empty_large((x.shape[0], y.shape[0]), x.dtype, x.device)
    torch.addmm(y2.T, x, y.T, alpha=-2.0, out=d2).add_(x2)
    # Rounding can leave tiny negatives where x_i == y_j; clamp them. On the
    # self-comparison the diagonal is exactly 0.
    d2.clamp_(min=0.0)
    if same:
        d2.diagonal().zero_()
    return d2


def _expansion_grad(g: torch.Tensor, x: torch.Tensor, y: torch.Tensor, same: bool, scale: float, needs):
    """Gradients of sum_ij g_ij ||x_i - y_j||^2, times scale, for x and y."""
    if same:
        # x is y: both sides' terms land on x. The diagonal cancels by itself
        # (g_ii x_i from the row sums against g_ii x_i from each product).
        weight = g.sum(1) + g.sum(0)
        gx = torch.addmm(x * (scale * weight)[:, None], g, x, alpha=-scale)
        return gx.addmm_(g.T, x, alpha=-scale), None
    gx = torch.addmm(x * (scale * g.sum(1))[:, None], g, y, alpha=-scale) if needs[0] else None
    gy = torch.addmm(y * (scale * g.sum(0))[:, None], g.T, x, alpha=-scale) if needs[1] else None
    return gx, gy


class _SquaredEuclidean(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, y, same):
        ctx.same = same
        ctx.save_for_backward(x, y)
        return _expand(x, y, same)

    @staticmethod
    def backward(ctx, g):
        x, y = ctx.saved_tensors
        gx, gy = _expansion_grad(g, x, y, ctx.same, 2.0, ctx.needs_input_grad)
        return gx, gy, None


class _Euclidean(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, y, same):
        d = _expand(x, y, same).sqrt_()
        ctx.same = same
        ctx.save_for_backward(x, y, d)
        return d

    @staticmethod
    def backward(ctx, g):
        x, y, d = ctx.saved_tensors
        # d sqrt(u)/du = 1 / (2 sqrt u) is infinite at u = 0 (duplicates, the diagonal);
        # there the gradient is taken as 0, the subgradient of |x - y| at its kink.
        zero = d == 0
        if torch.is_grad_enabled():
            # create_graph=True: no out= buffer (autograd refuses one), and no division by 0
            # whose inf would turn into NaN in the second derivative.
            c = (g / d.masked_fill(zero, 1.0)).masked_fill(zero, 0.0)
        else:
            c = torch.div(g, d, out=empty_large(d.shape, d.dtype, d.device)).masked_fill_(zero, 0.0)
        gx, gy = _expansion_grad(c, x, y, ctx.same, 1.0, ctx.needs_input_grad)
        return gx, gy, None


def squared_euclidean_matrix(x: torch.Tensor, y: torch.Tensor, same: bool) -> torch.Tensor:
    """||x_i - y_j||^2, clamped at 0, exactly 0 on the diagonal when `same` (y is x).
    The gradient is the analytic one, 2 (x_i - y_j), also where rounding was clamped."""
    return _SquaredEuclidean.apply(x, y, same)


def euclidean_matrix(x: torch.Tensor, y: torch.Tensor, same: bool) -> torch.Tensor:
    """||x_i - y_j||, with a zero (finite) gradient where the distance is 0."""
    return _Euclidean.apply(x, y, same)
