"""Evaluation with continuous labels (Kim, Sohn & Kwak, CVPR 2019: log-ratio vs triplet/contrastive).

For a query q and a reference item i with labels y_q, y_i (vectors; a scalar label is a
1-vector), the label distance is d_y(q, i) = ||y_q - y_i||_2 and the relevance is

    rel(q, i) = 1 / (1 + d_y(q, i) / relevance_scale),

1 for an identical label and decreasing towards 0 with label distance (our choice: NDCG
(Järvelin & Kekäläinen, ACM TOIS 2002) takes graded relevance but says nothing of how to
grade a continuous label; `relevance_scale` sets the label distance at which relevance
halves). A periodic label such as a rotation angle should be given as (cos, sin) so that
d_y is the chord.

- ``ndcg@K``: NDCG@K (Järvelin & Kekäläinen 2002) of the K nearest neighbours in embedding
  space, with the ideal DCG taken over the whole reference set; `gain` "linear" (rel) or
  "exponential" (2^rel - 1).
- ``spearman``: per query, Spearman's rho between the embedding distances and the label
  distances to every reference item (the query itself excluded), averaged over queries;
  a query whose label distances (or embedding distances) are all equal scores 0.

Ranking and self-exclusion follow `dml_core.metrics.knn` (ties by reference index).

The ranks of the label distances depend on the labels alone: those of the latest labels
scored are kept (see `LABEL_RANK_CACHE_BYTES`), so scoring several embeddings of the same
items (one per seed, one per epoch) ranks them once. The metrics are the same either way.
"""
from __future__ import annotations

import numpy as np

from ._checks import as_continuous_labels, query_and_reference, query_ks
from .knn import DEFAULT_MAX_ENTRIES, KnnSearcher, prepare
from .ranking import GAINS, average_ranks, pearson_rows

# The label-distance ranks of the latest labels scored are kept up to this size (float32).
# 4,800 items take 92 MB, 8,192 the whole budget; larger sets are ranked again on every call.
LABEL_RANK_CACHE_BYTES = 256 * 2**20


def _label_distances(yq: np.ndarray, yr: np.ndarray) -> np.ndarray:
    # Differences, not the |a|^2 + |b|^2 - 2ab expansion: equal labels must give exactly 0.
    d2 = np.zeros((yq.shape[0], yr.shape[0]))
    for dim in range(yq.shape[1]):  # label dimensions are few (angle, pose coordinates)
        diff = yq[:, dim, None] - yr[None, :, dim]
        d2 += diff * diff
    return np.sqrt(d2)


def _embedding_keys(q: np.ndarray, ref64: np.ndarray, ref_sq: np.ndarray | None) -> np.ndarray:
    """A monotone function of the distance (squared L2, or negated inner product), in float64
    so that rounding does not invent or break ties among the ranks."""
    q = q.astype(np.float64)
    s = q @ ref64.T
    if ref_sq is None:
        return -s
    return np.einsum("ij,ij->i", q, q)[:, None] + ref_sq[None, :] - 2.0 * s


def _without_self(a: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """[m, n] -> [m, n - 1]: row i without column rows[i] (the query itself)."""
    m, n = a.shape
    keep = np.ones((m, n), dtype=bool)
    keep[np.arange(m), rows] = False
    return a[keep].reshape(m, n - 1)


class _LabelRanks:
    """Per block of queries, the average ranks of their label distances to the reference.

    They are the same for any embedding of the same items, so the latest labels' ranks are
    kept in the class (one entry per process) and the next call with equal labels reads them.
    Stored as float32, which is exact: average ranks are half-integers below 2^23.
    """

    latest: tuple[tuple, np.ndarray] | None = None

    def __init__(self, yq: np.ndarray, yr: np.ndarray, self_mode: bool):
        self.labels = (self_mode, yq.copy(), yr.copy())
        cols = yr.shape[0] - int(self_mode)
        found = _LabelRanks.latest
        if found is not None and self._same(found[0]):
            self.ranks, self.filled = found[1], True
        else:
            fits = yq.shape[0] * cols * 4 <= LABEL_RANK_CACHE_BYTES and cols < 2**23
            self.ranks, self.filled = (np.empty((yq.shape[0], cols), np.float32) if fits else None), False

    def _same(self, other: tuple) -> bool:
        return other[0] == self.labels[0] and all(
            a.shape == b.shape and np.array_equal(a, b) for a, b in zip(other[1:], self.labels[1:]))

    def block(self, s: int, e: int, dy) -> np.ndarray:
        """float64 ranks of rows s:e; `dy()` gives their label distances (self excluded) when not kept."""
        if self.filled:
            return self.ranks[s:e].astype(np.float64)
        ranks = average_ranks(dy())
        if self.ranks is not None:
            self.ranks[s:e] = ranks
        return ranks

    def keep(self) -> None:
        """Called once every row is ranked: only a complete table is kept."""
        if self.ranks is not None and not self.filled:
            _LabelRanks.latest = (self.labels, self.ranks)


def evaluate_continuous(
    embeddings,
    labels,
    *,
    reference=None,
    reference_labels=None,
    ks=(1, 5, 10),
    distance: str = "euclidean",
    gain: str = "linear",
    relevance_scale: float = 1.0,
    rank_correlation: bool = True,
    max_entries: int = DEFAULT_MAX_ENTRIES,
) -> dict[str, float]:
    """NDCG@K of retrieved neighbours and embedding/label rank correlation (module doc).

    Returns ``ndcg@K`` for each K in `ks`, ``spearman`` (unless rank_correlation=False) and
    ``queries``. Labels: float [n] or [n, L]. Without `reference`, each embedding queries
    the others, itself excluded by index. Bad input (NaN/inf, lengths, k too large, a
    non-positive relevance_scale) raises ValueError naming the argument. Costs O(n_q x n_ref)
    label and embedding distances, computed in bounded row blocks.
    """
    if gain not in GAINS:
        raise ValueError(f"gain must be one of {', '.join(GAINS)}, got {gain!r}")
    if not np.isfinite(relevance_scale) or relevance_scale <= 0:
        raise ValueError(f"relevance_scale must be a finite number > 0, got {relevance_scale!r}")
    queries, yq, ref, yr, self_mode = query_and_reference(
        embeddings, labels, reference, reference_labels, as_continuous_labels
    )
    if yr.shape[1] != yq.shape[1]:
        raise ValueError(f"reference_labels have {yr.shape[1]} dims but labels have {yq.shape[1]}")
    n_ref = ref.shape[0]
    ks = query_ks(ks, n_ref, self_mode)
    if rank_correlation and n_ref - self_mode < 2:
        raise ValueError("rank correlation needs at least 2 reference items per query")

    searcher = KnnSearcher(ref, distance, max_entries=max_entries)
    qx = searcher.reference if self_mode else prepare(queries, searcher.distance, "embeddings")
    ref64 = searcher.reference.astype(np.float64) if rank_correlation else None
    ref_sq = np.einsum("ij,ij->i", ref64, ref64) if rank_correlation and searcher.kind == "l2" else None
    label_ranks = _LabelRanks(yq, yr, self_mode) if rank_correlation else None
    kmax = max(ks)
    discount = 1.0 / np.log2(np.arange(2, kmax + 2, dtype=np.float64))
    ndcg_sum = dict.fromkeys(ks, 0.0)
    rho_sum = 0.0
    # ~10 float64 arrays of [rows, n_ref] live at once in a block.
    step = max(1, min(4096, max_entries // (2 * n_ref)))
    n = queries.shape[0]
    for s in range(0, n, step):
        e = min(n, s + step)
        rows = np.arange(s, e)
        m = e - s
        _, ids = searcher.search(qx[s:e], kmax, rows if self_mode else None)
        dy = _label_distances(yq[s:e], yr)  # once per block: the gains and the rank correlation
        rel = 1.0 / (1.0 + dy / relevance_scale)
        g = rel if gain == "linear" else np.exp2(rel) - 1.0
        if self_mode:
            g[np.arange(m), rows] = 0.0  # gains are > 0 elsewhere, so 0 removes the query from the ideal
        dcg = np.cumsum(np.take_along_axis(g, ids, axis=1) * discount, axis=1)
        top = -np.partition(-g, kmax - 1, axis=1)[:, :kmax] if kmax < n_ref else g
        idcg = np.cumsum(-np.sort(-top, axis=1)[:, :kmax] * discount, axis=1)
        for k in ks:
            ratio = np.zeros(m)
            np.divide(dcg[:, k - 1], idcg[:, k - 1], out=ratio, where=idcg[:, k - 1] > 0)
            ndcg_sum[k] += float(ratio.sum())
        if rank_correlation:
            dist = _embedding_keys(qx[s:e], ref64, ref_sq)
            ry = label_ranks.block(s, e, lambda: _without_self(dy, rows) if self_mode else dy)
            rx = average_ranks(_without_self(dist, rows) if self_mode else dist)
            rho_sum += float(pearson_rows(rx, ry).sum())
    if label_ranks is not None:
        label_ranks.keep()

    out: dict[str, float] = {"queries": n}
    out.update({f"ndcg@{k}": ndcg_sum[k] / n for k in ks})
    if rank_correlation:
        out["spearman"] = rho_sum / n
    return out
