"""A loss value over the distance matrix whose gradient was computed alongside it.

Losses that are sums of elementwise terms over the [B, B] distance matrix (contrastive,
triplet through its pair counts) know dL/dD in closed form while they compute L: a hinge's
gradient is its indicator, a squared hinge's is twice the hinge. Handing autograd that matrix
directly replaces its chain of elementwise backward passes (where, relu, sub, mul, each a
fresh [B, B] buffer) with one multiply.
"""
from __future__ import annotations

import torch


class _KnownGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, dist, value, grad):
        # Not save_for_backward: the matrix is an intermediate of ours, rescaled in place below.
        ctx.grad, ctx.applied = grad, None
        return value.clone()

    @staticmethod
    def backward(ctx, g):
        grad = ctx.grad
        # The upstream factor (1 / count for a mean) is applied in place: the matrix is ours
        # and a fresh [B, B] buffer costs more than the multiply. A second backward through
        # a retained graph rescales from the factor applied before.
        grad.mul_(g if ctx.applied is None else g / ctx.applied)
        ctx.applied = g.detach().clone()
        return grad, None, None


def with_gradient(dist: torch.Tensor, value: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """`value` (a 0-dim tensor computed without autograd) as a function of `dist` whose
    gradient is `grad` (same shape as dist)."""
    if not dist.requires_grad:
        return value
    return _KnownGradient.apply(dist, value, grad)
