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
from ..kernels import triplet_search
from ..kernels.huge_pages import empty_large
from ..kernels.indices import pairs_to_triplets
from ..kernels.known_gradient import with_gradient
from ..kernels.row_sort import sort_rows
from ..kernels.triplet_search import label_masks
from ..validation import check_positive
from .base import MetricLoss
from .reducers import Terms
from .registry import LOSSES


def all_triplet_terms(dist: torch.Tensor, labels: torch.Tensor, margin: float) -> Terms:
    pos, neg = label_masks(labels)
    n_pos, n_neg = pos.sum(1), neg.sum(1)
    count = int((n_pos * n_neg).sum())
    with torch.no_grad():
        d = dist.detach()
        sorted_neg = sort_rows(d.masked_fill(~neg, float("inf")))
        # c_ap = #{n : d_an < d_ap + m}
        c_ap = torch.searchsorted(sorted_neg, d + margin, right=False).masked_fill_(~pos, 0)
        sorted_pos = sort_rows(d.masked_fill(~pos, float("-inf")))
        # c_an = #{p : d_ap > d_an - m}
        c_an = (len(labels) - torch.searchsorted(sorted_pos, d - margin, right=True)).masked_fill_(~neg, 0)
        active = int(c_ap.sum())
        grad = c_ap.sub_(c_an).to(d.dtype)
        value = torch.dot(grad.reshape(-1), d.reshape(-1)) + margin * active
    return Terms(with_gradient(dist, value, grad), count, active)


def indexed_triplet_terms(dist: torch.Tensor, a, p, n, margin: float) -> Terms:
    """The same linear identity for a miner's triplets: dL/dD is a [B, B] count matrix (active
    triplets per (a, p) minus per (a, n)), much cheaper to build than autograd's scatter of
    two gathers when a margin miner returns millions of triplets."""
    with torch.no_grad():
        flat = dist.detach().reshape(-1)
        cols, cells, total = dist.shape[1], flat.numel(), len(a)
        # Inactive triplets are counted in an extra bin past the matrix, then dropped.
        counts = torch.zeros(cells + 1, dtype=torch.int64, device=dist.device)
        step = max(1, min(total, triplet_search.CHUNK))
        # One workspace for every chunk's temporaries (see triplet_search.expand_ranges).
        flat_ap, flat_an = empty_large((2, step), torch.int64, dist.device)
        d_ap, d_an = empty_large((2, step), dist.dtype, dist.device)
        inactive = torch.empty(step, dtype=torch.bool, device=dist.device)
        ones = torch.ones(step, dtype=torch.int64, device=dist.device)
        n_active = 0
        for start in range(0, total, step):
            k = min(step, total - start)
            ap, an, off = flat_ap[:k], flat_an[:k], inactive[:k]
            torch.mul(a[start : start + k], cols, out=ap)
            torch.add(ap, n[start : start + k], out=an)
            ap.add_(p[start : start + k])
            torch.index_select(flat, 0, ap, out=d_ap[:k])
            torch.index_select(flat, 0, an, out=d_an[:k])
            torch.le(d_ap[:k].sub_(d_an[:k]), -margin, out=off)
            n_off = int(off.sum())
            n_active += k - n_off
            if n_off == k:  # an easy miner's triplets: nothing to count
                continue
            if n_off:
                ap.masked_fill_(off, cells)
                an.masked_fill_(off, cells)
            counts.index_add_(0, ap, ones[:k]).index_add_(0, an, ones[:k], alpha=-1)
        grad = counts[:cells].view_as(dist).to(dist.dtype)
        value = torch.dot(grad.reshape(-1), flat) + margin * n_active
    return Terms(with_gradient(dist, value, grad), total, n_active)


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
