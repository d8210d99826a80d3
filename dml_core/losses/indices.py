"""Miner outputs as losses consume them: validation, pair <-> triplet conversion, pair counts."""
from __future__ import annotations

import torch

from ..miners import triplet_search

Triplets = tuple[torch.Tensor, torch.Tensor, torch.Tensor]
Pairs = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


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
    a1, p, a2, n = indices
    device = a1.device
    pos = torch.zeros(batch_size, batch_size, dtype=torch.bool, device=device)
    neg = torch.zeros_like(pos)
    pos[a1, p] = True
    neg[a2, n] = True
    return triplet_search.triplets_from_masks(pos, neg)


def pair_counts(rows: torch.Tensor, cols: torch.Tensor, shape: tuple[int, int], dtype: torch.dtype) -> torch.Tensor:
    """[n, m] matrix: how many times each (row, col) occurs in the index lists.

    A loss that is a sum of elementwise terms over listed pairs equals the sum over the matrix
    weighted by these counts, so one pass over [n, m] replaces gathering (and scattering the
    gradient back to) millions of listed entries. Chunks keep the flat indices small.
    """
    cells = shape[0] * shape[1]
    step = max(cells, triplet_search.CHUNK)
    counts = None
    for start in range(0, max(len(rows), 1), step):
        flat = rows[start : start + step] * shape[1]
        chunk = torch.bincount(flat.add_(cols[start : start + step]), minlength=cells)
        counts = chunk if counts is None else counts.add_(chunk)
    return counts.view(shape).to(dtype)
