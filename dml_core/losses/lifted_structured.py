"""The lifted structured loss (Oh Song, Xiang, Jegelka, Savarese, CVPR 2016, eqs. 3-4).

D non-squared Euclidean, P the positive pairs i < j, N(i) = {k : y_k != y_i}, s = scale:
  smooth (eq. 4): J_ij = D_ij + 1/s log(sum_{k in N(i)} exp(s (margin - D_ik)) + sum_{l in N(j)} exp(s (margin - D_jl)))
  hard   (eq. 3): J_ij = D_ij + max(max_{k in N(i)} (margin - D_ik), max_{l in N(j)} (margin - D_jl))
  loss = 1/(2|P|) sum_{(i,j) in P} [J_ij]_+^2.
scale = 1 is eq. 4 as published; as scale -> inf the smooth form tends to the hard one (a larger
scale also lets fewer pairs stay active on the unit sphere). The hard form has no scale: scale != 1
with smooth=False is refused rather than silently ignored.
Terms are t_ij = [J_ij]_+^2 / 2, one per pair i < j, so `mean` is the formula above, `nonzero`
divides by 2 |{J_ij > 0}| instead, and `sum` is 1/2 sum [J_ij]_+^2. A pair whose classes have no
negative in the batch has J = -inf (log of an empty sum): its term is 0.

With indices (a miner's pairs; triplets are split into pairs), P is the mined positive pairs
taken unordered, and N(i) the mined negatives of i: {n : (i, n) is a mined negative pair}.
Everything is one [B, B] pass: the per-row log-sum-exp (max subtracted) of the negatives, then
two row values combined per positive pair, so no [pairs, negatives] matrix is ever built.
"""
from __future__ import annotations

import math

import torch

from ..distances import build_distance
from ..kernels.indices import pair_masks
from ..validation import check_positive
from .base import MetricLoss
from .reducers import Terms
from .registry import LOSSES


def lifted_terms(dist: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor, margin: float, smooth: bool,
                 scale: float = 1.0) -> torch.Tensor:
    """t_ij = [J_ij]_+^2 / 2 for each pair i < j with pos[i, j] or pos[j, i]."""
    i, j = torch.triu(pos | pos.T, diagonal=1).nonzero(as_tuple=True)
    if len(i) == 0:
        return dist.new_zeros(0)
    has_neg = neg.any(1)
    # A pair whose rows have no negative has J = -inf (log 0, or max of nothing): its term is
    # 0. It gets the finite stand-in 0 below, and where() sends it no gradient.
    valid = has_neg[i] | has_neg[j]
    # Scores s (margin - D): x * 1.0 == x and x / 1.0 == x, so scale 1 is the unscaled loss exactly.
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


@LOSSES.register("lifted_structured")
class LiftedStructuredLoss(MetricLoss):
    def __init__(self, margin: float = 1.0, smooth: bool = True, scale: float = 1.0, reduction: str = "mean"):
        super().__init__(reduction)
        self.margin = check_positive(margin, "margin", allow_zero=True)
        self.smooth = bool(smooth)
        self.scale = check_positive(scale, "scale")
        if not math.isfinite(self.scale):
            raise ValueError(f"scale must be finite, got {scale!r} (smooth=False is the scale -> inf limit)")
        if not self.smooth and self.scale != 1.0:
            raise ValueError(f"scale applies to the smooth form only; got scale={scale!r} with smooth=False")
        self.distance = build_distance("euclidean")

    def terms(self, embeddings, labels, indices) -> Terms:
        pos, neg = pair_masks(labels, indices)
        return Terms.of(lifted_terms(self.distance(embeddings), pos, neg, self.margin, self.smooth, self.scale))

    def extra_repr(self) -> str:
        return f"margin={self.margin}, smooth={self.smooth}, scale={self.scale}, reduction={self.reduction!r}"
