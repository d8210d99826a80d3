"""Lifted structured terms over the [B, B] distance matrix (Oh Song, Xiang, Jegelka, Savarese,
CVPR 2016, eqs. 3-4), one per positive pair, without a [pairs, negatives] matrix.

For a positive pair i < j, N(i) = {k : neg[i, k]}, s = scale:
  smooth (eq. 4): J_ij = D_ij + 1/s log(sum_{k in N(i)} exp(s (margin - D_ik)) + sum_{l in N(j)} exp(s (margin - D_jl)))
  hard   (eq. 3): J_ij = D_ij + max(max_{k in N(i)} (margin - D_ik), max_{l in N(j)} (margin - D_jl))
  t_ij = [J_ij]_+^2 / 2.
The log-sum-exp splits into one per row (max subtracted) and a combination of two row values per
pair, so the cost is one [B, B] pass. A pair with no negative on either row has J = -inf (log of
an empty sum, max of nothing): its term is 0.
"""
from __future__ import annotations

import torch


def reference_lifted_terms(
    dist: torch.Tensor, *, pos: torch.Tensor, neg: torch.Tensor, margin: float, smooth: bool, scale: float = 1.0
) -> torch.Tensor:
    """The formula pair by pair and negative by negative, through plain autograd; pairs in
    row-major order of i < j."""
    n = len(dist)
    terms = []
    for i in range(n):
        for j in range(i + 1, n):
            if not (pos[i, j] or pos[j, i]):
                continue
            scores = [margin - dist[i, k] for k in range(n) if neg[i, k]]
            scores += [margin - dist[j, k] for k in range(n) if neg[j, k]]
            if not scores:
                terms.append(dist.new_zeros(()))
                continue
            scores = torch.stack(scores)
            negative_part = torch.logsumexp(scale * scores, 0) / scale if smooth else scores.max()
            terms.append(torch.relu(dist[i, j] + negative_part) ** 2 / 2)
    return torch.stack(terms) if terms else dist.new_zeros(0)


def lifted_terms(
    dist: torch.Tensor, *, pos: torch.Tensor, neg: torch.Tensor, margin: float, smooth: bool, scale: float = 1.0
) -> torch.Tensor:
    """t_ij for each pair i < j with pos[i, j] or pos[j, i], in row-major order."""
    i, j = torch.triu(pos | pos.T, diagonal=1).nonzero(as_tuple=True)
    if len(i) == 0:
        return dist.new_zeros(0)
    has_neg = neg.any(1)
    # A pair whose rows have no negative has J = -inf: it gets the finite stand-in 0 below,
    # and where() sends it no gradient.
    valid = has_neg[i] | has_neg[j]
    # x * 1.0 == x and x / 1.0 == x, so scale 1 is the unscaled loss exactly.
    scores = ((margin - dist) * (scale if smooth else 1.0)).masked_fill(~neg, float("-inf"))
    # Row maxima, -inf for a row without negatives (it then adds exp(-inf) = 0 below).
    best = torch.where(has_neg, scores.amax(1).masked_fill(~has_neg, 0.0), float("-inf"))
    top = torch.where(valid, torch.maximum(best[i], best[j]), 0.0)
    if smooth:
        # log(s_i e^{M_i} + s_j e^{M_j}) with s = sum exp(score - M) and M the row maxima: the
        # largest exponent is 0, so nothing overflows and inner >= 1. M is detached: the
        # log-sum-exp does not depend on the shift.
        shift = best.detach()
        row_sum = torch.exp(scores - shift.masked_fill(~has_neg, 0.0)[:, None]).sum(1)
        top = top.detach()
        inner = row_sum[i] * torch.exp(shift[i] - top) + row_sum[j] * torch.exp(shift[j] - top)
        negative_part = (top + torch.log(torch.where(valid, inner, 1.0))) / scale
    else:
        negative_part = top
    hinge = torch.relu(dist[i, j] + negative_part)
    return torch.where(valid, hinge * hinge / 2, torch.zeros_like(hinge))
