"""Class-label retrieval metrics of ranked neighbour lists (Song et al. CVPR 2017; Musgrave et al. ECCV 2020).

Input: `rel[q, i]` = 1 when the query's i-th ranked neighbour (i = 1..k) shares its class,
and `r[q]` >= 1 = the number of same-class items in the reference (the query excluded).
All metrics are per query; `evaluate` averages them over the queries with r >= 1.

- recall@K (hit rate, the DML papers' R@K, e.g. Song et al. CVPR 2017 tables):
  1 if sum_{i<=K} rel_i > 0 else 0.
- strict_recall@K (Recall@k = TP / (TP + FN), Manning et al. 2008, sec. 8.3): sum_{i<=K} rel_i / r.
- map@K (AP@k, Manning et al. 2008, sec. 8.4): (1 / sum_{i<=K} rel_i) * sum_{i<=K} rel_i * P(i), with
  P(i) = sum_{j<=i} rel_j / i, and 0 when the top K holds no relevant item;
  0,1,1,0,1 gives (1/2 + 2/3 + 3/5) / 3 = 53/90.
- precision@1: rel_1.
- r_precision (Musgrave, Belongie, Lim, "A Metric Learning Reality Check", ECCV 2020):
  sum_{i<=r} rel_i / r.
- map@r (same paper, MAP@R): (1 / r) * sum_{i<=r} rel_i * P(i).

`rel` must hold at least max(max(ks), max(r)) columns for these to be exact.
"""
from __future__ import annotations

import numpy as np


def per_query_metrics(rel: np.ndarray, r: np.ndarray, ks: tuple[int, ...]) -> dict[str, np.ndarray]:
    """Every metric above, one float64 value per query (row of `rel`)."""
    rel = np.asarray(rel, dtype=bool)
    r = np.asarray(r, dtype=np.int64)
    m, depth = rel.shape
    if m and (r.min() < 1 or max(int(r.max()), max(ks)) > depth):
        raise ValueError("rel needs max(ks) and max(r) columns and every r >= 1")
    hits = np.cumsum(rel, axis=1, dtype=np.int64)
    ranks = np.arange(1, depth + 1, dtype=np.float64)
    # P(i) counted only where rel_i = 1; its running sum gives both AP@K and MAP@R.
    precision_sum = np.cumsum(np.where(rel, hits / ranks, 0.0), axis=1)
    rows = np.arange(m)
    rf = r.astype(np.float64)
    out: dict[str, np.ndarray] = {}
    for k in ks:
        h = hits[:, k - 1]
        out[f"recall@{k}"] = (h > 0).astype(np.float64)
        out[f"strict_recall@{k}"] = h / rf
        out[f"map@{k}"] = precision_sum[:, k - 1] / np.maximum(h, 1)
    out["precision@1"] = rel[:, 0].astype(np.float64)
    out["r_precision"] = hits[rows, r - 1] / rf
    out["map@r"] = precision_sum[rows, r - 1] / rf
    return out


def metric_names(ks: tuple[int, ...]) -> list[str]:
    """The keys of `per_query_metrics`, in report order."""
    names = [f"recall@{k}" for k in ks]
    names += [f"strict_recall@{k}" for k in ks]
    names += [f"map@{k}" for k in ks]
    return names + ["precision@1", "r_precision", "map@r"]
