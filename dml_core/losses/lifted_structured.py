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
The terms come from kernels.lifted_terms in one [B, B] pass.
"""
from __future__ import annotations

import math

from ..distances import build_distance
from ..kernels.indices import pair_masks
from ..kernels.lifted_terms import lifted_terms
from ..validation import check_positive
from .base import MetricLoss
from .reducers import Terms
from .registry import LOSSES


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
        dist = self.distance(embeddings)
        return Terms.of(lifted_terms(dist, pos=pos, neg=neg, margin=self.margin, smooth=self.smooth, scale=self.scale))

    def extra_repr(self) -> str:
        return f"margin={self.margin}, smooth={self.smooth}, scale={self.scale}, reduction={self.reduction!r}"
