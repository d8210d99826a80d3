"""Vectorised triplet enumeration: pure tensor functions the miners and losses share.

Every margin condition on a triplet (a, p, n) compares d_an with a threshold that depends on
(a, p) only. Sorting each anchor's negatives by distance once ([B, B], O(B^2 log B)) turns
each condition into a contiguous range of that sorted row, found by `searchsorted`. The
triplets are then written straight from the ranges, so time and memory are O(B^2 log B +
number of triplets) and no [B, B, B] tensor is ever built.
"""
from __future__ import annotations

from typing import NamedTuple

import torch


class SortedNegatives(NamedTuple):
    """Per anchor row: negative distances ascending (+inf past the last), their columns, count."""

    values: torch.Tensor
    order: torch.Tensor
    count: torch.Tensor


def label_masks(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """pos[i, j]: same class and i != j; neg[i, j]: different class."""
    same = labels[:, None] == labels[None, :]
    neg = ~same
    same.fill_diagonal_(False)
    return same, neg


def sort_negatives(dist: torch.Tensor, neg: torch.Tensor) -> SortedNegatives:
    # Stable sort: among equal distances the lower column comes first, a deterministic order.
    values, order = dist.masked_fill(~neg, float("inf")).sort(dim=1, stable=True)
    return SortedNegatives(values, order, neg.sum(1))


def positive_pairs(pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    a, p = pos.nonzero(as_tuple=True)
    return a, p


def count_below(sorted_neg: SortedNegatives, thresholds: torch.Tensor, *, inclusive: bool) -> torch.Tensor:
    """thresholds [B, k]: per anchor row, the number of its negatives with d_an < threshold
    (<= if inclusive). One batched searchsorted over the sorted rows, [B, k] out."""
    return torch.searchsorted(sorted_neg.values, thresholds.contiguous(), right=inclusive)


def expand_ranges(
    a: torch.Tensor,
    p: torch.Tensor,
    order: torch.Tensor,
    lo: torch.Tensor,
    hi: torch.Tensor,
    max_triplets: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Triplets (a_i, p_i, order[a_i, k]) for every pair i and every k in [lo_i, hi_i)."""
    counts = (hi - lo).clamp_min(0)
    total = int(counts.sum())
    if max_triplets is not None and total > max_triplets:
        raise ValueError(
            f"mining would return {total:,} triplets ({total * 24 / 2**30:.1f} GiB of indices), "
            f"more than max_triplets={max_triplets:,}; raise max_triplets, or use a miner that "
            "returns one triplet per pair (batch_semihard, batch_hard)"
        )
    device = a.device
    rep = torch.repeat_interleave(torch.arange(len(a), device=device), counts, output_size=total)
    # Triplet t of pair i reads order.flat[a_i * B + lo_i + (t - first_t_of_i)]: one offset
    # per pair, so the per-triplet work is a single add and gather.
    base = a * order.shape[1] + lo - (torch.cumsum(counts, 0) - counts)
    n = order.reshape(-1)[torch.arange(total, device=device).add_(base[rep])]
    return a[rep], p[rep], n


def triplets_from_masks(
    pos: torch.Tensor, neg: torch.Tensor, max_triplets: int | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every (a, p, n) with pos[a, p] and neg[a, n]."""
    a, p = positive_pairs(pos)
    # Negatives of each row first, in column order (stable argsort of a 0/1 key).
    order = torch.argsort((~neg).to(torch.uint8), dim=1, stable=True)
    hi = neg.sum(1)[a]
    return expand_ranges(a, p, order, torch.zeros_like(hi), hi, max_triplets)


def empty_triplets(device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    e = torch.empty(0, dtype=torch.int64, device=device)
    return e, e.clone(), e.clone()
