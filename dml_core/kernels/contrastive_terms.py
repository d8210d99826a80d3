"""Contrastive-loss sums over the [B, B] distance matrix, with dL/dD from the same passes.

The terms (Hadsell, Chopra, LeCun, CVPR 2006, eq. 4, with a positive margin):
    pos_ij [D_ij - pos_margin]_+^q + neg_ij [neg_margin - D_ij]_+^q,   q = 2 if squared else 1.
Every term is elementwise in D, so the loss is a sum over the matrix weighted by the pairs'
multiplicities: 0/1 masks (all pairs) or pair counts (a miner's pairs, repeats counted).
Its gradient comes out of the passes that compute it: the hinge's sign for q = 1, twice the
hinge for q = 2, handed to autograd as a known gradient. Each function returns (total,
count, nonzero): the differentiable sum, the number of terms, and how many are > 0.
"""
from __future__ import annotations

import torch

from .huge_pages import empty_large
from .indices import pair_counts, triplets_to_pairs
from .known_gradient import with_gradient
from .triplet_search import label_masks, mask_pairs


def reference_contrastive_terms(dist, *, pos_weight, neg_weight, pos_margin: float, neg_margin: float, squared: bool):
    """sum_ij pos_ij [D_ij - pos_margin]_+^q + neg_ij [neg_margin - D_ij]_+^q, q = 2 if
    squared else 1, through plain autograd; the weights are [B, B] pair multiplicities."""
    q = 2 if squared else 1
    pos_terms, neg_terms = torch.relu(dist - pos_margin) ** q, torch.relu(neg_margin - dist) ** q
    total = (pos_weight * pos_terms).sum() + (neg_weight * neg_terms).sum()
    nonzero = (pos_weight * (pos_terms > 0)).sum() + (neg_weight * (neg_terms > 0)).sum()
    return total, int(pos_weight.sum() + neg_weight.sum()), int(nonzero)


def pair_weights(dist: torch.Tensor, *, labels: torch.Tensor, indices) -> tuple[torch.Tensor, torch.Tensor]:
    """[B, B] multiplicities of the positive and negative pairs: every ordered pair i != j by
    default, else a miner's pairs (a triplet (a, p, n) gives (a, p) and (a, n))."""
    if indices is None:
        return label_masks(labels)
    a1, p, a2, n = triplets_to_pairs(indices) if len(indices) == 3 else indices
    return pair_counts(a1, p, dist.shape, dist.dtype), pair_counts(a2, n, dist.shape, dist.dtype)


def hinge(d: torch.Tensor, margin: float, positive: bool, out: torch.Tensor | None = None) -> torch.Tensor:
    """The signed hinge: [d - margin]_+ for positive pairs, -[margin - d]_+ for negative
    ones. Either way the term is |s|^q, and its derivative in d is sign(s) (q = 1) or 2 s
    (q = 2)."""
    s = torch.sub(d, margin, out=out)
    return s.clamp_min_(0.0) if positive else s.clamp_max_(0.0)


def hinge_terms(s: torch.Tensor, weight, squared: bool) -> tuple[torch.Tensor, torch.Tensor, int]:
    """s: signed hinges (overwritten, all of one sign); weight: term multiplicities, or None
    for all 1. Returns sum w |s|^q, its gradient in d, and sum w [s != 0]."""
    # The count costs a pass over s, however the loss reduces: a comparison and a sum or a dot
    # product are the cheapest exact ones (weights are integers, exact in a float dot < 2^24).
    active = s != 0
    if weight is None:
        nonzero = int(active.sum())
    else:
        nonzero = int(torch.dot(weight.reshape(-1), active.reshape(-1).to(weight.dtype)))
    if squared:
        ws = s if weight is None else torch.mul(s, weight, out=empty_large(s.shape, s.dtype, s.device))
        return torch.dot(ws.reshape(-1), s.reshape(-1)), ws.mul_(2.0), nonzero
    value = (s.sum() if weight is None else torch.dot(s.reshape(-1), weight.reshape(-1))).abs()
    grad = s.sign_() if weight is None else s.sign_().mul_(weight)
    return value, grad, nonzero


def dense_side(d, weight, margin: float, positive: bool, squared: bool):
    """One side's terms over the whole [B, B] matrix, weighted by a mask or by counts."""
    s = hinge(d, margin, positive, out=empty_large(d.shape, d.dtype, d.device))
    if weight.dtype == torch.bool:
        return hinge_terms(s.mul_(weight), None, squared)
    return hinge_terms(s, weight, squared)


def sparse_side(d, rows, cols, margin: float, positive: bool, squared: bool, grad):
    """One side's terms on listed pairs (repeats count); their gradient is added into grad."""
    cells = rows * d.shape[1] + cols
    s = hinge(d.reshape(-1).take(cells), margin, positive)
    value, g, nonzero = hinge_terms(s, None, squared)
    grad.view(-1).index_add_(0, cells, g)
    return value, nonzero


def contrastive_terms(dist, *, labels, indices, pos_margin: float, neg_margin: float, squared: bool):
    """The terms over all ordered pairs i != j (indices None) or over a miner's pairs."""
    with torch.no_grad():
        d = dist.detach()
        if indices is None:
            pos, neg = label_masks(labels)
            # Negatives are most of the matrix: masked. Positives are few (m - 1 per row).
            v_neg, grad, nz_neg = dense_side(d, neg, neg_margin, False, squared=squared)
            a, p = mask_pairs(pos)
            v_pos, nz_pos = sparse_side(d, a, p, pos_margin, True, squared=squared, grad=grad)
            count = len(a) + int(neg.sum())
        else:
            a1, p, a2, n = triplets_to_pairs(indices) if len(indices) == 3 else indices
            grad, sums = None, []
            for rows, cols, margin, positive in ((a2, n, neg_margin, False), (a1, p, pos_margin, True)):
                # Many pairs (all pairs, a triplet miner's repeats): counted into a [B, B]
                # weight and summed densely. Few: gathered.
                if len(rows) * 8 >= d.numel():
                    weight = pair_counts(rows, cols, d.shape, d.dtype)
                    value, g, nonzero = dense_side(d, weight, margin, positive, squared=squared)
                    grad = g if grad is None else grad.add_(g)
                else:
                    grad = empty_large(d.shape, d.dtype, d.device).zero_() if grad is None else grad
                    value, nonzero = sparse_side(d, rows, cols, margin, positive, squared=squared, grad=grad)
                sums.append((value, nonzero))
            (v_neg, nz_neg), (v_pos, nz_pos) = sums
            count = len(a1) + len(a2)

    def recompute(d: torch.Tensor) -> torch.Tensor:
        pos_weight, neg_weight = pair_weights(d, labels=labels, indices=indices)
        value, _, _ = reference_contrastive_terms(
            d, pos_weight=pos_weight, neg_weight=neg_weight, pos_margin=pos_margin, neg_margin=neg_margin, squared=squared
        )
        return value

    # Squared hinges have curvature in D: a double backward differentiates the plain form.
    return with_gradient(dist, v_pos + v_neg, grad, recompute if squared else None), count, nz_pos + nz_neg
