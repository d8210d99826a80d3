"""A loss value over the distance matrix whose gradient was computed alongside it.

Losses that are sums of elementwise terms over the [B, B] distance matrix (contrastive,
triplet through its pair counts) know dL/dD in closed form while they compute L: a hinge's
gradient is its indicator, a squared hinge's is twice the hinge. Handing autograd that matrix
directly replaces its chain of elementwise backward passes (where, relu, sub, mul, each a
fresh [B, B] buffer) with one multiply.
"""
from __future__ import annotations

import math
from typing import Callable

import torch


class _KnownGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, dist, value, grad, recompute):
        ctx.grad, ctx.recompute = grad, recompute
        # The upstream factor the stored matrix carries once backward has scaled it in place
        # and handed it out; None while it is still the plain dL/dD.
        ctx.factor = None
        if recompute is not None:
            ctx.save_for_backward(dist)
        return value.clone()

    @staticmethod
    def backward(ctx, g):
        if torch.is_grad_enabled():  # create_graph=True: the gradient must be differentiable
            return _graph_gradient(ctx, g), None, None, None
        if ctx.factor is None and _scales_reversibly(g):
            # The common case, one backward: the upstream factor (1 / count for a mean) is
            # applied in place, as a fresh [B, B] buffer costs more than the multiply.
            ctx.factor = g.detach().clone()
            return ctx.grad.mul_(g), None, None, None
        # A factor of 0 or inf would destroy the matrix for a later backward, and once the
        # matrix is handed out it is never rescaled: a later backward (through a retained
        # graph) gets a fresh one.
        return ctx.grad * _relative(g, ctx.factor), None, None, None


def _scales_reversibly(g: torch.Tensor) -> bool:
    factor = float(g)
    return factor != 0.0 and math.isfinite(factor)


def _relative(g: torch.Tensor, factor: torch.Tensor | None) -> torch.Tensor:
    return g if factor is None else g / factor


def _graph_gradient(ctx, g: torch.Tensor) -> torch.Tensor:
    """dL/dD * g as a function of g and, for a loss with curvature in D, of D."""
    if ctx.recompute is None:
        # Piecewise linear in D: dL/dD is constant where it is defined (d2L/dD2 = 0).
        # A copy: the new graph keeps it, and a later backward may rescale the stored one.
        plain = ctx.grad.clone() if ctx.factor is None else ctx.grad / ctx.factor
        return plain * g
    (dist,) = ctx.saved_tensors
    return torch.autograd.grad(ctx.recompute(dist), dist, g, create_graph=True)[0]


def with_gradient(
    dist: torch.Tensor,
    value: torch.Tensor,
    grad: torch.Tensor,
    recompute: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """`value` (a 0-dim tensor computed without autograd) as a function of `dist` whose
    gradient is `grad` (same shape as dist).

    Any sequence of backward passes works: repeated ones through a retained graph, an
    upstream factor of 0, `torch.autograd.grad`. With `create_graph=True` the gradient is
    differentiable: for a loss piecewise linear in D (recompute None) it is `grad` itself;
    otherwise `recompute(dist)`, the same value through plain differentiable torch, gives it.
    """
    if not dist.requires_grad:
        return value
    return _KnownGradient.apply(dist, value, grad, recompute)
