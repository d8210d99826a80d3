"""L2: the triplet margin loss (Weinberger & Saul 2009; Schroff et al., FaceNet, CVPR 2015).

term(a, p, n) = [d_ap - d_an + margin]_+ with d = D^2 by default (seed 003 eq. 2), over all
triplets y_a = y_p != y_n, a != p by default, or over a miner's triplets.

The all-triplets default never builds the triplets. The hinge is linear where it is active,
so sum_{a,p,n} [d_ap - d_an + m]_+ = sum_ap c_ap d_ap - sum_an c_an d_an + m * N_active, where
c_ap counts the negatives active for (a, p) and c_an the positives active for (a, n). Both
counts come from sorting each anchor's row once, so value and gradient are exact in O(B^2)
memory, at batch sizes where B^3 triplets would not fit.
"""
from __future__ import annotations

import torch

from ..distances import Distance, build_distance
from ..miners.triplet_search import label_masks
from ..validation import check_positive
from .base import MetricLoss
from .indices import pairs_to_triplets
from .reducers import Terms
from .registry import LOSSES


def all_triplet_terms(dist: torch.Tensor, labels: torch.Tensor, margin: float) -> Terms:
    pos, neg = label_masks(labels)
    n_pos, n_neg = pos.sum(1), neg.sum(1)
    count = int((n_pos * n_neg).sum())
    with torch.no_grad():
        d = dist.detach()
        sorted_neg = d.masked_fill(~neg, float("inf")).sort(1).values
        # c_ap = #{n : d_an < d_ap + m}
        c_ap = torch.searchsorted(sorted_neg, d + margin, right=False).masked_fill_(~pos, 0)
        sorted_pos = d.masked_fill(~pos, float("-inf")).sort(1).values
        # c_an = #{p : d_ap > d_an - m}
        c_an = (len(labels) - torch.searchsorted(sorted_pos, d - margin, right=True)).masked_fill_(~neg, 0)
        active = int(c_ap.sum())
    total = (c_ap.to(dist.dtype) * dist).sum() - (c_an.to(dist.dtype) * dist).sum() + margin * active
    return Terms(total, count, active)


def indexed_triplet_terms(dist: torch.Tensor, a, p, n, margin: float) -> Terms:
    """The same linear identity for a miner's triplets: the gradient reaching dist is a
    [B, B] count matrix built with two index_adds, much cheaper than autograd's scatter of
    two gathers when a margin miner returns millions of triplets."""
    with torch.no_grad():
        flat = dist.detach().reshape(-1)
        ap, an = a * dist.shape[1] + p, a * dist.shape[1] + n
        active = (flat[ap] - flat[an] + margin) > 0
        w = active.to(dist.dtype)
        weight = torch.zeros_like(flat).index_add_(0, ap, w).index_add_(0, an, -w)
        n_active = int(active.sum())
    return Terms((weight.view_as(dist) * dist).sum() + margin * n_active, len(a), n_active)


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
        if indices is None:
            return all_triplet_terms(dist, labels, self.margin)
        a, p, n = pairs_to_triplets(indices, len(labels)) if len(indices) == 4 else indices
        return indexed_triplet_terms(dist, a, p, n, self.margin)

    def extra_repr(self) -> str:
        return f"margin={self.margin}, distance={self.distance!r}, reduction={self.reduction!r}"
