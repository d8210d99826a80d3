"""L1: the contrastive loss (Hadsell, Chopra, LeCun, CVPR 2006; seed 003 eq. 1, seeds 000-002).

term(i, j) = y_ij [D_ij - pos_margin]_+^q + (1 - y_ij) [neg_margin - D_ij]_+^q,
q = 2 when squared (seed 003 eq. 1: y D^2 + (1 - y) [alpha - D]_+^2), q = 1 otherwise (seed
000's y d + (1 - y) [alpha - d]_+, with distance="squared_euclidean" for its d = D^2).
pos_margin > 0 is seed 001's positive margin: positives are pulled in only until D <= pos_margin.
By default the terms run over all ordered pairs i != j of the batch; with a miner, over its
pairs (a triplet (a, p, n) gives the pairs (a, p) and (a, n)).

Every term is elementwise in D, so the loss is computed over the [B, B] matrix with 0/1 masks
(all pairs) or pair counts (a miner's pairs, repeats counted), and its gradient dL/dD comes
out of the same passes: the hinge's indicator for q = 1, twice the hinge for q = 2.
"""
from __future__ import annotations

from functools import partial

import torch

from ..distances import Distance, build_distance
from ..kernels.huge_pages import empty_large
from ..kernels.indices import pair_counts, triplets_to_pairs
from ..kernels.known_gradient import with_gradient
from ..kernels.triplet_search import label_masks, mask_pairs
from ..validation import check_positive
from .base import MetricLoss
from .reducers import Terms
from .registry import LOSSES


def hinge(d: torch.Tensor, margin: float, positive: bool, out: torch.Tensor | None = None) -> torch.Tensor:
    """The signed hinge: [d - margin]_+ for positive pairs, -[margin - d]_+ for negative
    ones. Either way the term is |s|^q, and its derivative in d is sign(s) (q = 1) or 2 s
    (q = 2)."""
    s = torch.sub(d, margin, out=out)
    return s.clamp_min_(0.0) if positive else s.clamp_max_(0.0)


def hinge_terms(s: torch.Tensor, weight, squared: bool, want_nonzero: bool) -> tuple[torch.Tensor, torch.Tensor, int]:
    """s: signed hinges (overwritten, all of one sign); weight: term multiplicities, or None
    for all 1. Returns sum w |s|^q, its gradient in d, and sum w [s != 0]."""
    nonzero = 0
    if want_nonzero:
        nonzero = int(torch.count_nonzero(s)) if weight is None else int(weight[s != 0].sum())
    if squared:
        ws = s if weight is None else torch.mul(s, weight, out=empty_large(s.shape, s.dtype, s.device))
        return torch.dot(ws.reshape(-1), s.reshape(-1)), ws.mul_(2.0), nonzero
    value = (s.sum() if weight is None else torch.dot(s.reshape(-1), weight.reshape(-1))).abs()
    grad = s.sign_() if weight is None else s.sign_().mul_(weight)
    return value, grad, nonzero


def dense_side(d, weight, margin: float, positive: bool, squared: bool, want_nonzero: bool):
    """One side's terms over the whole [B, B] matrix, weighted by a mask or by counts."""
    s = hinge(d, margin, positive, out=empty_large(d.shape, d.dtype, d.device))
    if weight.dtype == torch.bool:
        return hinge_terms(s.mul_(weight), None, squared, want_nonzero)
    return hinge_terms(s, weight, squared, want_nonzero)


def sparse_side(d, rows, cols, margin: float, positive: bool, squared: bool, want_nonzero: bool, grad):
    """One side's terms on listed pairs (repeats count); their gradient is added into grad."""
    cells = rows * d.shape[1] + cols
    s = hinge(d.reshape(-1).take(cells), margin, positive)
    value, g, nonzero = hinge_terms(s, None, squared, want_nonzero)
    grad.view(-1).index_add_(0, cells, g)
    return value, nonzero


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
        opts = dict(squared=self.squared, want_nonzero=self.reduction == "nonzero")
        with torch.no_grad():
            d = dist.detach()
            if indices is None:
                pos, neg = label_masks(labels)
                # Negatives are most of the matrix: masked. Positives are few (m - 1 per row).
                v_neg, grad, nz_neg = dense_side(d, neg, self.neg_margin, False, **opts)
                a, p = mask_pairs(pos)
                v_pos, nz_pos = sparse_side(d, a, p, self.pos_margin, True, **opts, grad=grad)
                count = len(a) + int(neg.sum())
            else:
                a1, p, a2, n = triplets_to_pairs(indices) if len(indices) == 3 else indices
                grad, sums = None, []
                for rows, cols, margin, positive in ((a2, n, self.neg_margin, False), (a1, p, self.pos_margin, True)):
                    # Many pairs (all pairs, a triplet miner's repeats): counted into a [B, B]
                    # weight and summed densely. Few: gathered.
                    if len(rows) * 8 >= d.numel():
                        weight = pair_counts(rows, cols, d.shape, d.dtype)
                        value, g, nonzero = dense_side(d, weight, margin, positive, **opts)
                        grad = g if grad is None else grad.add_(g)
                    else:
                        grad = empty_large(d.shape, d.dtype, d.device).zero_() if grad is None else grad
                        value, nonzero = sparse_side(d, rows, cols, margin, positive, **opts, grad=grad)
                    sums.append((value, nonzero))
                (v_neg, nz_neg), (v_pos, nz_pos) = sums
                count = len(a1) + len(a2)
        # Squared hinges have curvature in D: a double backward differentiates the plain form.
        recompute = partial(self.plain_total, labels=labels, indices=indices) if self.squared else None
        return Terms(with_gradient(dist, v_pos + v_neg, grad, recompute), count, nz_pos + nz_neg)

    def plain_total(self, dist: torch.Tensor, labels: torch.Tensor, indices) -> torch.Tensor:
        """The sum of the terms through plain differentiable torch ops."""
        if indices is None:
            pos, neg = label_masks(labels)
        else:
            a1, p, a2, n = triplets_to_pairs(indices) if len(indices) == 3 else indices
            pos = pair_counts(a1, p, dist.shape, dist.dtype)
            neg = pair_counts(a2, n, dist.shape, dist.dtype)
        q = 2 if self.squared else 1
        return (pos * torch.relu(dist - self.pos_margin) ** q).sum() + (neg * torch.relu(self.neg_margin - dist) ** q).sum()

    def extra_repr(self) -> str:
        return (
            f"pos_margin={self.pos_margin}, neg_margin={self.neg_margin}, "
            f"distance={self.distance!r}, squared={self.squared}, reduction={self.reduction!r}"
        )
