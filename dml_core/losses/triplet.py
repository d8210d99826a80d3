"""The triplet margin loss (Weinberger & Saul, JMLR 2009; Schroff, Kalenichenko, Philbin,
FaceNet, CVPR 2015, Sec. 3.1).

    term(a, p, n) = [d_ap - d_an + margin]_+,   d_xy = ||f_x - f_y||^2 by default,

over every triplet y_a = y_p != y_n, a != p of the batch, or over a miner's triplets (pairs
(a, p), (a, n) from a pair miner give every such combination).
"""
from __future__ import annotations

from ..distances import Distance, build_distance
from ..kernels.triplet_terms import triplet_terms
from ..validation import check_positive
from .base import MetricLoss
from .reducers import Terms
from .registry import LOSSES


@LOSSES.register("triplet")
class TripletMarginLoss(MetricLoss):
    def __init__(
        self,
        margin: float = 0.2,
        distance: str | Distance = "squared_euclidean",
        reduction: str = "mean",
    ):
        super().__init__(reduction)
        self.margin = check_positive(margin, "margin", allow_zero=True)
        self.distance = build_distance(distance)

    def terms(self, embeddings, labels, indices) -> Terms:
        dist = self.distance(embeddings)
        return Terms(*triplet_terms(dist, labels=labels, indices=indices, margin=self.margin))

    def margin_ceiling(self, unit: bool) -> float | None:
        """The margin past which training no longer changes: the distance's span S, None where
        it is unbounded. At margin >= S every triplet is active, the term is d_ap - d_an + margin,
        and its gradient does not depend on the margin (Schroff et al. 2015, eq. 1); a miner's
        test d_an - d_ap < margin (or >) is the same for every such margin too."""
        return self.distance.span(unit)

    def extra_repr(self) -> str:
        return f"margin={self.margin}, distance={self.distance!r}, reduction={self.reduction!r}"
