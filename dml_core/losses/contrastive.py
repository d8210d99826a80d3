"""The contrastive loss (Hadsell, Chopra, LeCun, CVPR 2006, eq. 4).

    term(i, j) = y_ij [D_ij - pos_margin]_+^q + (1 - y_ij) [neg_margin - D_ij]_+^q,

y_ij = 1 for a positive pair, q = 2 when squared (Hadsell et al.'s form, up to their factor
1/2), q = 1 otherwise. pos_margin > 0 pulls positives in only until D <= pos_margin (the
positive margin of pytorch-metric-learning's ContrastiveLoss; Musgrave, Belongie, Lim 2020).
By default the terms run over all ordered pairs i != j of the batch; with a miner, over its
pairs (a triplet (a, p, n) gives the pairs (a, p) and (a, n)), repeats counted.
"""
from __future__ import annotations

from ..distances import Distance, build_distance
from ..kernels.contrastive_terms import contrastive_terms
from ..validation import check_positive
from .base import MetricLoss
from .reducers import Terms
from .registry import LOSSES


@LOSSES.register("contrastive")
class ContrastiveLoss(MetricLoss):
    def __init__(
        self,
        pos_margin: float = 0.0,
        neg_margin: float = 1.0,
        distance: str | Distance = "euclidean",
        squared: bool = True,
        reduction: str = "mean",
    ):
        super().__init__(reduction)
        self.pos_margin = check_positive(pos_margin, "pos_margin", allow_zero=True)
        self.neg_margin = check_positive(neg_margin, "neg_margin")
        self.distance = build_distance(distance)
        self.squared = bool(squared)

    def terms(self, embeddings, labels, indices) -> Terms:
        dist = self.distance(embeddings)
        return Terms(
            *contrastive_terms(
                dist,
                labels=labels,
                indices=indices,
                pos_margin=self.pos_margin,
                neg_margin=self.neg_margin,
                squared=self.squared,
            )
        )

    def extra_repr(self) -> str:
        return (
            f"pos_margin={self.pos_margin}, neg_margin={self.neg_margin}, "
            f"distance={self.distance!r}, squared={self.squared}, reduction={self.reduction!r}"
        )
