"""Ranking metrics of relevance lists and rank correlations (average precision, NDCG, rank correlation).

Inputs are NumPy arrays, torch tensors or nested lists. A 2-D input is one ranked list (or
one pair of vectors) per row and gives one value per row; a 1-D input is a single list and
gives a 0-d result. Results are float64, as a tensor when the (first) input is a tensor.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ._checks import check_finite, to_numpy

GAINS = ("linear", "exponential")


def _rows(x: Any, name: str, min_len: int = 1) -> tuple[np.ndarray, bool]:
    """(float64 [m, n] array, was-1-D flag)."""
    a = to_numpy(x, name)
    if a.dtype == np.bool_:
        a = a.astype(np.float64)
    if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise ValueError(f"{name} must hold real numbers, got dtype {a.dtype}")
    if a.ndim not in (1, 2):
        raise ValueError(f"{name} must be 1-D or 2-D, got shape {a.shape}")
    flat = a.ndim == 1
    a = np.atleast_2d(a).astype(np.float64, copy=False)
    if a.shape[1] < min_len:
        raise ValueError(f"{name} rows need at least {min_len} entries, got shape {a.shape}")
    check_finite(a, name)
    return a, flat


def _out(values: np.ndarray, like: Any, flat: bool):
    values = values[0] if flat else values
    if isinstance(like, torch.Tensor):
        return torch.as_tensor(values, dtype=torch.float64)
    return np.float64(values) if flat else values


def _check_k(k: Any, n: int) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    if k > n:
        raise ValueError(f"k={k} is larger than the ranked lists (length {n})")
    return int(k)


def average_precision_at_k(rel, k: int):
    """AP@k of each ranked list, (Manning, Raghavan & Schütze 2008, sec. 8.4).

    AP@k = (1 / H) * sum_{i<=k, rel_i > 0} P(i), with H = #{i <= k : rel_i > 0} and
    P(i) = #{j <= i : rel_j > 0} / i; 0 when the top k holds no relevant item.
    Graded relevance counts as relevant when > 0. Seed 002: 0,1,1,0,1 -> 53/90.
    """
    a, flat = _rows(rel, "rel")
    k = _check_k(k, a.shape[1])
    hit = a[:, :k] > 0
    hits = np.cumsum(hit, axis=1)
    ranks = np.arange(1, k + 1, dtype=np.float64)
    total = np.where(hit, hits / ranks, 0.0).sum(axis=1)
    return _out(total / np.maximum(hits[:, -1], 1), rel, flat)


def ndcg_at_k(rel, k: int, gain: str = "linear"):
    """NDCG@k of each ranked list of graded (or continuous) relevances >= 0 (Järvelin & Kekäläinen, ACM TOIS 2002).

    DCG@k = sum_{i=1..k} g(rel_i) / log2(i + 1), g(r) = r ("linear") or 2^r - 1
    ("exponential"); NDCG@k = DCG@k / IDCG@k where the ideal DCG sorts the whole row by
    relevance, descending, then cuts at k. A row without any relevance > 0 scores 0.
    """
    if gain not in GAINS:
        raise ValueError(f"gain must be one of {', '.join(GAINS)}, got {gain!r}")
    a, flat = _rows(rel, "rel")
    k = _check_k(k, a.shape[1])
    if (a < 0).any():
        raise ValueError("rel must be >= 0 (NDCG's gains assume non-negative relevance)")
    g = a if gain == "linear" else np.exp2(a) - 1.0
    discount = 1.0 / np.log2(np.arange(2, k + 2, dtype=np.float64))
    dcg = g[:, :k] @ discount
    # Only the k largest gains matter for the ideal ranking; partition avoids a full sort.
    if k < a.shape[1]:
        top = -np.partition(-g, k - 1, axis=1)[:, :k]
    else:
        top = g
    ideal = -np.sort(-top, axis=1)[:, :k] @ discount
    out = np.zeros_like(dcg)
    np.divide(dcg, ideal, out=out, where=ideal > 0)
    return _out(out, rel, flat)


def rankdata(a) -> np.ndarray:
    """1-based ranks along the last axis, ties given their average rank (scipy's 'average')."""
    x, flat = _rows(a, "a")
    ranks = average_ranks(x)
    return ranks[0] if flat else ranks


def average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks within each row of a 2-D float array, ties given their average rank."""
    m, n = x.shape
    # Any sort gives the same ranks: a tie group's members sit side by side in every sorted
    # order and each gets the group's mean position. NumPy's default (unstable) sort is ~4x
    # faster than the stable one on float rows, and the rank correlations sort millions.
    order = np.argsort(x, axis=1)
    s = np.take_along_axis(x, order, axis=1)
    starts = np.ones((m, n), dtype=bool)
    np.not_equal(s[:, 1:], s[:, :-1], out=starts[:, 1:])
    pos = np.broadcast_to(np.arange(1, n + 1, dtype=np.float64), (m, n))
    ranks = np.empty((m, n), dtype=np.float64)
    if starts.all():  # no ties (embedding distances, mostly): the ranks are the positions
        np.put_along_axis(ranks, order, pos, axis=1)
        return ranks
    # One id per tie group across all rows (a row always starts a new group).
    group = np.cumsum(starts.ravel()) - 1
    mean = np.bincount(group, weights=pos.ravel()) / np.bincount(group)
    np.put_along_axis(ranks, order, mean[group].reshape(m, n), axis=1)
    return ranks


def pearson_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson's r of each row of `x` with the same row of `y` (2-D, equal shapes); 0 where
    either row is constant."""
    x = x - x.mean(axis=1, keepdims=True)
    y = y - y.mean(axis=1, keepdims=True)
    den = np.sqrt((x * x).sum(axis=1) * (y * y).sum(axis=1))
    num = (x * y).sum(axis=1)
    out = np.zeros_like(num)
    np.divide(num, den, out=out, where=den > 0)
    return np.clip(out, -1.0, 1.0)


def _pair(a, b) -> tuple[np.ndarray, np.ndarray, bool]:
    x, flat = _rows(a, "a", min_len=2)
    y, _ = _rows(b, "b", min_len=2)
    if x.shape != y.shape:
        raise ValueError(f"a and b must have the same shape, got {x.shape} and {y.shape}")
    return x, y, flat


def spearman(a, b):
    """Spearman's rho: the Pearson correlation of the average ranks of a and b, per row.

    rho = cov(rank a, rank b) / (sd(rank a) sd(rank b)) (Spearman 1904; equal to
    scipy.stats.spearmanr). A row where a or b is constant has no defined correlation and
    scores 0 (no monotone association) instead of NaN.
    """
    x, y, flat = _pair(a, b)
    return _out(pearson_rows(average_ranks(x), average_ranks(y)), a, flat)


def kendall_tau(a, b, *, max_block: int = 4_000_000):
    """Kendall's tau-b per row (Kendall 1945; equal to scipy.stats.kendalltau).

    tau_b = (n_c - n_d) / sqrt((n_0 - n_1)(n_0 - n_2)) over the pairs i < j, with n_1, n_2
    the pairs tied in a, in b. O(n^2) per row, computed in blocks of `max_block` pairs; a
    row where a or b is constant scores 0.
    """
    x, y, flat = _pair(a, b)
    m, n = x.shape
    step = max(1, max_block // n)
    out = np.zeros(m)
    for row in range(m):  # O(n^2) pairs per row dominate; rows are few in practice
        xr, yr = x[row], y[row]
        s = tx = ty = 0.0
        for i in range(0, n, step):
            sa = np.sign(xr[i : i + step, None] - xr[None, :])
            sb = np.sign(yr[i : i + step, None] - yr[None, :])
            # Sums over all ordered pairs count each unordered pair twice, which cancels.
            s += float((sa * sb).sum())
            tx += float(np.abs(sa).sum())
            ty += float(np.abs(sb).sum())
        if tx > 0 and ty > 0:
            out[row] = np.clip(s / np.sqrt(tx * ty), -1.0, 1.0)
    return _out(out, a, flat)
