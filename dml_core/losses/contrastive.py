"""L1: the contrastive loss (Hadsell, Chopra, LeCun, CVPR 2006; seed 003 eq. 1, seeds 000-002).

term(i, j) = y_ij [D_ij - pos_margin]_+^q + (1 - y_ij) [neg_margin - D_ij]_+^q,
q = 2 when squared (seed 003 eq. 1: y D^2 + (1 - y) [alpha - D]_+^2), q = 1 otherwise (seed
000's y d + (1 - y) [alpha - d]_+, with distance="squared_euclidean" for its d = D^2).
pos_margin > 0 is seed 001's positive margin: positives are pulled in only until D <= pos_margin.
By default the terms run over all ordered pairs i != j of the batch.
"""
from __future__ import annotations

import torch

from ..distances import Distance, build_distance
from ..miners.triplet_search import label_masks
from ..validation import check_positive
from .base import MetricLoss
from .indices import triplets_to_pairs
from .reducers import Terms
from .registry import LOSSES


def contrastive_terms(
    d_pos: torch.Tensor, d_neg: torch.Tensor, pos_margin: float, neg_margin: float, squared: bool
) -> torch.Tensor:
    pos = torch.relu(d_pos - pos_margin)
    neg = torch.relu(neg_margin - d_neg)
    if squared:
        pos, neg = pos * pos, neg * neg
    return torch.cat([pos, neg])


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
        if indices is None:
            # Elementwise over the [B, B] matrix with 0/1 masks: no boolean gathers, whose
            # copies and scatter-backward cost more than the loss itself.
            pos, neg = label_masks(labels)
            # Positive pairs are few (m - 1 per row): gather them. Negatives are most of the
            # matrix: one masked elementwise pass, no copy of the selected entries.
            a, p = pos.nonzero(as_tuple=True)
            hinge_pos = torch.relu(dist[a, p] - self.pos_margin)
            hinge_neg = torch.where(neg, torch.relu(self.neg_margin - dist), 0.0)
            if self.squared:
                hinge_pos, hinge_neg = hinge_pos * hinge_pos, hinge_neg * hinge_neg
            total = hinge_pos.sum() + hinge_neg.sum()
            count = len(a) + int(neg.sum())
            # Counting the non-zero terms costs a pass: only the `nonzero` reduction needs it.
            nonzero = int((hinge_pos > 0).sum() + (hinge_neg > 0).sum()) if self.reduction == "nonzero" else 0
            return Terms(total, count, nonzero)
        else:
            a1, p, a2, n = triplets_to_pairs(indices) if len(indices) == 3 else indices
            d_pos, d_neg = dist[a1, p], dist[a2, n]
        return Terms.of(contrastive_terms(d_pos, d_neg, self.pos_margin, self.neg_margin, self.squared))

    def extra_repr(self) -> str:
        return (
            f"pos_margin={self.pos_margin}, neg_margin={self.neg_margin}, "
            f"distance={self.distance!r}, squared={self.squared}, reduction={self.reduction!r}"
        )
