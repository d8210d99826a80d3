"""Triplet-loss sums over the [B, B] distance matrix, without building the triplets.

The terms are the triplet hinges [d_ap - d_an + m]_+ (Schroff, Kalenichenko, Philbin, FaceNet,
CVPR 2015, Sec. 3.1). A hinge is linear where it is active, so

    sum_{a,p,n} [d_ap - d_an + m]_+ = sum_ap c_ap d_ap - sum_an c_an d_an + m * N_active,

where c_ap counts the negatives active for (a, p) and c_an the positives active for (a, n).
The count matrix c_ap - c_an is dL/dD, handed to autograd as a known gradient. Each function
returns (total, count, active): the differentiable sum, the number of triplets, and how many
of them are > 0.
"""
from __future__ import annotations

import torch

from . import triplet_search
from .huge_pages import empty_large
from .indices import pairs_to_triplets
from .known_gradient import with_gradient
from .row_sort import sort_rows
from .triplet_search import label_masks


def reference_triplet_terms(dist: torch.Tensor, *, a: torch.Tensor, p: torch.Tensor, n: torch.Tensor, margin: float):
    """The formula on listed triplets, through plain autograd."""
    terms = torch.relu(dist[a, p] - dist[a, n] + margin)
    return terms.sum(), len(terms), int((terms > 0).sum())


def all_triplet_terms(dist: torch.Tensor, *, labels: torch.Tensor, margin: float):
    """Over every triplet y_a = y_p != y_n, a != p. Sorting each anchor's row once gives both
    counts by binary search: O(B^2 log B) time, O(B^2) memory, at batch sizes where B^3
    triplets would not fit."""
    pos, neg = label_masks(labels)
    count = int((pos.sum(1) * neg.sum(1)).sum())
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
    return with_gradient(dist, value, grad), count, active


def indexed_triplet_terms(dist: torch.Tensor, *, a: torch.Tensor, p: torch.Tensor, n: torch.Tensor, margin: float):
    """Over a miner's triplets: the same identity with the counts binned per cell, much
    cheaper than autograd's scatter of two gathers when a margin miner returns millions."""
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
    return with_gradient(dist, value, grad), total, n_active


def triplet_terms(dist: torch.Tensor, *, labels: torch.Tensor, indices, margin: float):
    """Over every triplet of the batch (indices None), a miner's triplets, or every (a, p, n)
    of a pair miner's positive pairs (a, p) and negative pairs (a, n)."""
    if indices is None:
        return all_triplet_terms(dist, labels=labels, margin=margin)
    a, p, n = pairs_to_triplets(indices, len(labels)) if len(indices) == 4 else indices
    return indexed_triplet_terms(dist, a=a, p=p, n=n, margin=margin)
