"""Miner outputs as losses consume them: validation, pair <-> triplet conversion, pair masks
and counts."""
from __future__ import annotations

import torch

from . import triplet_search
from .huge_pages import empty_large

Triplets = tuple[torch.Tensor, torch.Tensor, torch.Tensor]
Pairs = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


def reference_pair_counts(rows, cols, shape: tuple[int, int], dtype: torch.dtype) -> torch.Tensor:
    """counts[r, c] = #{i : (rows_i, cols_i) = (r, c)}."""
    counts = torch.zeros(shape, dtype=dtype, device=rows.device)
    return counts.index_put_((rows, cols), torch.ones(len(rows), dtype=dtype, device=rows.device), accumulate=True)


def check_indices(indices, batch_size: int) -> tuple[torch.Tensor, ...]:
    """A tuple of 3 (triplets) or 4 (pairs) int64 tensors, 1-D, valid row numbers."""
    if not isinstance(indices, (tuple, list)) or len(indices) not in (3, 4):
        raise ValueError(
            "indices must be a miner's output: (anchor, positive, negative) or (a1, p, a2, n)"
        )
    out = []
    for i, t in enumerate(indices):
        if not isinstance(t, torch.Tensor) or t.dim() != 1 or t.dtype != torch.int64:
            raise ValueError(f"indices[{i}] must be a 1-D int64 tensor")
        if t.numel():
            low, high = torch.aminmax(t)
            if int(low) < 0 or int(high) >= batch_size:
                raise ValueError(f"indices[{i}] holds a row outside [0, {batch_size})")
        out.append(t)
    lengths = [len(t) for t in out]
    if len(out) == 3 and len(set(lengths)) != 1:
        raise ValueError(f"triplet indices must have equal lengths, got {lengths}")
    if len(out) == 4 and (lengths[0] != lengths[1] or lengths[2] != lengths[3]):
        raise ValueError(f"pair indices must come as (a1, p) and (a2, n) of equal lengths, got {lengths}")
    return tuple(out)


def triplets_to_pairs(indices: Triplets) -> Pairs:
    """Each triplet (a, p, n) gives the positive pair (a, p) and the negative pair (a, n)."""
    a, p, n = indices
    return a, p, a, n


def pairs_to_triplets(indices: Pairs, batch_size: int) -> Triplets:
    """Every (a, p, n) where (a, p) is a given positive pair and (a, n) a given negative pair."""
    return triplet_search.triplets_from_masks(*_masks(*indices, batch_size))


def pair_masks(labels: torch.Tensor, indices) -> tuple[torch.Tensor, torch.Tensor]:
    """[B, B] masks of the positive pairs (ordered, i != j) and negative pairs: every pair of
    the batch by default, else a miner's pairs (triplets (a, p, n) give (a, p) and (a, n))."""
    if indices is None:
        return triplet_search.label_masks(labels)
    return _masks(*(triplets_to_pairs(indices) if len(indices) == 3 else indices), len(labels))


def _masks(a1, p, a2, n, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    pos = torch.zeros(batch_size, batch_size, dtype=torch.bool, device=a1.device)
    neg = torch.zeros_like(pos)
    pos[a1, p] = True
    neg[a2, n] = True
    return pos, neg


def pair_counts(rows: torch.Tensor, cols: torch.Tensor, shape: tuple[int, int], dtype: torch.dtype) -> torch.Tensor:
    """[n, m] matrix: how many times each (row, col) occurs in the index lists.

    A loss that is a sum of elementwise terms over listed pairs equals the sum over the matrix
    weighted by these counts, so one pass over [n, m] replaces gathering (and scattering the
    gradient back to) millions of listed entries. Counts are exact up to 2^24 per cell in
    float32.
    """
    counts = empty_large(shape, dtype, rows.device).zero_()
    flat_counts = counts.view(-1)
    step = max(1, min(len(rows), triplet_search.CHUNK))
    work = empty_large((step,), torch.int64, rows.device)
    ones = torch.ones(step, dtype=dtype, device=rows.device)
    for start in range(0, len(rows), step):
        k = min(step, len(rows) - start)
        flat = torch.mul(rows[start : start + k], shape[1], out=work[:k]).add_(cols[start : start + k])
        flat_counts.index_add_(0, flat, ones[:k])
    return counts
