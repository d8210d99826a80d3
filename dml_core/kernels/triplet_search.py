"""Vectorised triplet enumeration: pure tensor functions the miners and losses share.

Every margin condition on a triplet (a, p, n) compares d_an with a threshold that depends on
(a, p) only. Sorting each anchor's negatives by distance once ([B, B], O(B^2 log B)) turns
each condition into a contiguous range of that sorted row, found by `searchsorted`. The
triplets are then written straight from the ranges, so time and memory are O(B^2 log B +
number of triplets) and no [B, B, B] tensor is ever built.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from .huge_pages import empty_large
from .row_sort import sort_rows_with_order

#: triplets expanded per step of `expand_ranges`
CHUNK = 1 << 20


class SortedNegatives(NamedTuple):
    """Per anchor row: negative distances ascending (+inf past the last), their columns, count."""

    values: torch.Tensor
    order: torch.Tensor
    count: torch.Tensor


def reference_triplets_from_masks(pos: torch.Tensor, neg: torch.Tensor):
    """Every (a, p, n) with pos[a, p] and neg[a, n], in (a, p, n) order, from the [B, B, B]
    mask that the kernels never build."""
    return (pos[:, :, None] & neg[:, None, :]).nonzero(as_tuple=True)


def reference_count_below(dist, neg, rows, thresholds, *, inclusive: bool) -> torch.Tensor:
    """For each i: #{n : neg[rows_i, n], d[rows_i, n] < thresholds_i} (<= if inclusive)."""
    d = dist[rows]
    below = d <= thresholds[:, None] if inclusive else d < thresholds[:, None]
    return (below & neg[rows]).sum(1)


def reference_expand_ranges(a, p, order, lo, hi):
    """(a_i, p_i, order[a_i, k]) for every pair i and k in [lo_i, hi_i), in that order."""
    counts = (hi - lo).clamp_min(0)
    pair = torch.repeat_interleave(torch.arange(len(a), device=a.device), counts)
    k = lo[pair] + torch.arange(len(pair), device=a.device) - (counts.cumsum(0) - counts)[pair]
    return a[pair], p[pair], order[a[pair], k]


def label_masks(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """pos[i, j]: same class and i != j; neg[i, j]: different class."""
    same = labels[:, None] == labels[None, :]
    neg = ~same
    same.fill_diagonal_(False)
    return same, neg


def sort_negatives(dist: torch.Tensor, neg: torch.Tensor) -> SortedNegatives:
    # Stable sort: among equal distances the lower column comes first, a deterministic order.
    values, order = sort_rows_with_order(dist.masked_fill(~neg, float("inf")))
    return SortedNegatives(values, order, neg.sum(1))


def mask_pairs(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(rows, cols) of the True entries of a [n, m] mask, row-major: `mask.nonzero(as_tuple=True)`.

    On the CPU through NumPy's flatnonzero and one division, 2-3x faster than torch's
    nonzero, which writes [N, 2] and then splits it into columns.
    """
    if mask.device.type != "cpu":
        return mask.nonzero(as_tuple=True)
    flat = np.flatnonzero(mask.numpy())
    rows = empty_large(flat.shape, torch.int64, mask.device)
    cols = empty_large(flat.shape, torch.int64, mask.device)
    r, c = rows.numpy(), cols.numpy()
    np.floor_divide(flat, mask.shape[1], out=r)
    np.subtract(flat, np.multiply(r, mask.shape[1], out=c), out=c)
    return rows, cols


def count_below(
    sorted_neg: SortedNegatives, rows: torch.Tensor, thresholds: torch.Tensor, *, inclusive: bool
) -> torch.Tensor:
    """For each i: the number of row rows[i]'s negatives with d < thresholds[i] (<= if
    inclusive). `rows` ascending (as `nonzero` gives them).

    The thresholds are laid out as a [B, k] matrix, k the most any row has, so one batched
    searchsorted does them all at O(B k log B), not the O(B^2 log B) of searching every
    entry of the distance matrix.
    """
    n_rows = sorted_neg.values.shape[0]
    per_row = torch.bincount(rows, minlength=n_rows)
    width = int(per_row.max()) if len(rows) else 0
    slot = torch.arange(len(rows), device=rows.device) - (torch.cumsum(per_row, 0) - per_row)[rows]
    padded = thresholds.new_full((n_rows, width), float("inf"))
    padded[rows, slot] = thresholds
    return torch.searchsorted(sorted_neg.values, padded, right=inclusive)[rows, slot]


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
    out = empty_large((3, total), torch.int64, device)
    if total == 0:
        return out[0], out[1], out[2]
    ends = torch.cumsum(counts, 0)
    starts = ends - counts
    # Triplet t of pair i reads order.flat[a_i * B + lo_i + (t - starts_i)]: one offset per
    # pair, so the per-triplet work is an add and a gather.
    base = a * order.shape[1] + lo - starts
    flat_order = order.reshape(-1)
    # Pairs go in chunks of about CHUNK triplets, and every per-triplet temporary lives in
    # one workspace reused by all chunks: a fresh buffer of tens of MB costs more in page
    # faults than the gathers that fill it.
    cuts = torch.searchsorted(ends, torch.arange(CHUNK, max(total, CHUNK), CHUNK, device=device), right=True).tolist()
    width = min(total, CHUNK + int(counts.max()))
    work = empty_large((3, width), torch.int64, device)
    pair_of, cells, position = work[0], work[1], torch.arange(width, out=work[2])
    first_pair = 0
    for last_pair in [c for c in cuts if c > 0] + [len(a)]:
        if last_pair <= first_pair:
            continue
        lo_t, hi_t = int(starts[first_pair]), int(ends[last_pair - 1])
        k = hi_t - lo_t
        # pair_of[t] = (pair of triplet lo_t + t) - first_pair: a 1 where each later pair
        # starts (empty pairs stack on the same place), summed up.
        steps = starts[first_pair + 1 : last_pair] - lo_t
        steps = steps[steps < k]
        rel = pair_of[:k].zero_().index_add_(0, steps, torch.ones_like(steps)).cumsum_(0)
        torch.index_select(a[first_pair:last_pair], 0, rel, out=out[0, lo_t:hi_t])
        torch.index_select(p[first_pair:last_pair], 0, rel, out=out[1, lo_t:hi_t])
        torch.index_select(base[first_pair:last_pair] + lo_t, 0, rel, out=cells[:k])
        torch.index_select(flat_order, 0, cells[:k].add_(position[:k]), out=out[2, lo_t:hi_t])
        first_pair = last_pair
    return out[0], out[1], out[2]


def triplets_from_masks(
    pos: torch.Tensor, neg: torch.Tensor, max_triplets: int | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every (a, p, n) with pos[a, p] and neg[a, n]."""
    a, p = mask_pairs(pos)
    # Negatives of each row first, in column order (stable argsort of a 0/1 key).
    order = torch.argsort((~neg).to(torch.uint8), dim=1, stable=True)
    hi = neg.sum(1)[a]
    return expand_ranges(a, p, order, torch.zeros_like(hi), hi, max_triplets)


def empty_triplets(device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    e = torch.empty(0, dtype=torch.int64, device=device)
    return e, e.clone(), e.clone()
