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

import torch

from ..distances import Distance, build_distance
from ..miners.triplet_search import label_masks
from ..validation import check_positive
from .base import MetricLoss
from .indices import pair_counts, triplets_to_pairs
from .known_gradient import with_gradient
from .reducers import Terms
from .registry import LOSSES


def hinge_terms(
    h: torch.Tensor, weight: torch.Tensor | None, squared: bool, sign: float, want_nonzero: bool
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """h: the hinge [.]_+ (overwritten); weight: term multiplicities (None: all 1).
    Returns sum w h^q, its gradient w.r.t. D (the hinge's inner derivative is `sign`), and
    sum w [h > 0]."""
    if squared:
        wh = h if weight is None else h * weight
        value = torch.dot(wh.reshape(-1), h.reshape(-1))
        nonzero = 0
        if want_nonzero:
            nonzero = int(torch.count_nonzero(h)) if weight is None else int(weight[h > 0].sum())
        return value, wh.mul_(2.0 * sign), nonzero
    value = h.sum() if weight is None else torch.dot(h.reshape(-1), weight.reshape(-1))
    grad = h.sign_() if weight is None else h.sign_().mul_(weight)
    nonzero = int(grad.sum()) if want_nonzero else 0
    return value, grad.mul_(sign), nonzero


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
        want_nonzero = self.reduction == "nonzero"
        with torch.no_grad():
            d = dist.detach()
            if indices is None:
                pos, neg = label_masks(labels)
                # Positives are few (m - 1 per row): gathered. Negatives are most of the matrix:
                # masked in place.
                a, p = pos.nonzero(as_tuple=True)
                h_neg = torch.rsub(d, self.neg_margin).clamp_min_(0.0).mul_(neg)
                v_neg, grad, nz_neg = hinge_terms(h_neg, None, self.squared, -1.0, want_nonzero)
                h_pos = (d[a, p] - self.pos_margin).clamp_min_(0.0)
                v_pos, g_pos, nz_pos = hinge_terms(h_pos, None, self.squared, 1.0, want_nonzero)
                grad[a, p] = g_pos
                count = len(a) + int(neg.sum())
            else:
                a1, p, a2, n = triplets_to_pairs(indices) if len(indices) == 3 else indices
                w_pos = pair_counts(a1, p, d.shape, d.dtype)
                w_neg = pair_counts(a2, n, d.shape, d.dtype)
                h_neg = torch.rsub(d, self.neg_margin).clamp_min_(0.0)
                v_neg, grad, nz_neg = hinge_terms(h_neg, w_neg, self.squared, -1.0, want_nonzero)
                h_pos = (d - self.pos_margin).clamp_min_(0.0)
                v_pos, g_pos, nz_pos = hinge_terms(h_pos, w_pos, self.squared, 1.0, want_nonzero)
                grad += g_pos
                count = len(a1) + len(a2)
        return Terms(with_gradient(dist, v_pos + v_neg, grad), count, nz_pos + nz_neg)

    def extra_repr(self) -> str:
        return (
            f"pos_margin={self.pos_margin}, neg_margin={self.neg_margin}, "
            f"distance={self.distance!r}, squared={self.squared}, reduction={self.reduction!r}"
        )
