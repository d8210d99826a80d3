"""k-nearest-neighbour search on FAISS, in query chunks, with a deterministic tie rule.

Ranking rule (every metric in this package relies on it): reference items are ranked by
their distance to the query, smallest first, and items at exactly the same distance (as
computed in float32) are ranked by their index in the reference set, lowest first. When the
queries are the reference set itself, the query's own row is removed by index, never by
distance: an exact duplicate of the query is an ordinary item at distance 0.

FAISS does not document its order among tied distances, so every search asks for a window
of `margin` extra neighbours, re-sorts it by (distance, index), and recomputes exactly, in
NumPy, the rare rows whose tie group at the cut-off runs to the end of the window (there the
window may hold the wrong members of the tie group).

Distances: "euclidean" and "squared_euclidean" rank identically (FAISS IndexFlatL2 on the
squared distance); "cosine" is 1 - cos, i.e. an inner-product search (IndexFlatIP) on
L2-normalised vectors; "dot" is the inner product itself, larger is closer.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import numpy as np

_KIND = {"euclidean": "l2", "squared_euclidean": "l2", "cosine": "ip", "dot": "ip"}
DISTANCES = tuple(_KIND)
INDEXES = ("flat", "hnsw")

# Entries (queries x neighbours) held at once by one search call; ~50 bytes each in the
# metrics that follow, so the default keeps a chunk near 200 MB whatever the data size.
DEFAULT_MAX_ENTRIES = 4_000_000
DEFAULT_MAX_ROWS = 16_384
# FAISS keeps top-k lists in heaps below k = faiss.cvar.distance_compute_min_k_reservoir
# (100) and in a reservoir from there on; at 60k x 128 the reservoir measured 7% faster at
# k = 64 and 90, and 1.6x faster at k = 1000, so searches from k = 50 on use it.
RESERVOIR_MIN_K = 50


def resolve_distance(distance) -> str:
    """The distance name; a dml_core Distance object is accepted by its registry name."""
    name = getattr(distance, "registry_name", distance)
    if not isinstance(name, str) or name not in _KIND:
        raise ValueError(
            f"distance must be one of {', '.join(DISTANCES)}, got {distance!r}"
            " (for mahalanobis, transform the embeddings first and evaluate with euclidean)"
        )
    return name


def prepare(x: np.ndarray, distance: str, name: str = "embeddings") -> np.ndarray:
    """The float32 vectors FAISS searches: L2-normalised for cosine, unchanged otherwise."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    if distance != "cosine":
        return x
    norms = np.sqrt(np.einsum("ij,ij->i", x, x, dtype=np.float64))
    if (norms == 0).any():
        raise ValueError(f"{name} has an all-zero row: the cosine distance is undefined for it")
    return np.ascontiguousarray(x / norms[:, None], dtype=np.float32)


class KnnSearcher:
    """Exact (index="flat") or approximate (index="hnsw") k-NN over a fixed reference set.

    `search` returns neighbours ranked by the module's rule. With "hnsw" the result is
    approximate (FAISS IndexHNSWFlat, M=32, efSearch >= 2k): the tie rule and the recall
    guarantee hold only for "flat"; benchmarks/eval.py prints the recall loss.
    """

    def __init__(
        self,
        reference: np.ndarray,
        distance: str = "euclidean",
        *,
        index: str = "flat",
        margin: int = 16,
        max_entries: int = DEFAULT_MAX_ENTRIES,
    ):
        import faiss  # core dependency, imported lazily so `import dml_core` stays light

        self.distance = resolve_distance(distance)
        self.kind = _KIND[self.distance]
        if index not in INDEXES:
            raise ValueError(f"index must be one of {', '.join(INDEXES)}, got {index!r}")
        self.index_name = index
        self.reference = prepare(reference, self.distance, "reference")
        self.n, self.d = self.reference.shape
        self.margin = int(margin)
        self.max_entries = int(max_entries)
        metric = faiss.METRIC_L2 if self.kind == "l2" else faiss.METRIC_INNER_PRODUCT
        if index == "flat":
            self.index = faiss.IndexFlatL2(self.d) if self.kind == "l2" else faiss.IndexFlatIP(self.d)
        else:
            self.index = faiss.IndexHNSWFlat(self.d, 32, metric)
            self.index.hnsw.efConstruction = 80
        self.index.add(self.reference)
        self._ref_sq = None
        self.exact_rows = 0  # rows recomputed by the exact tie fallback (for tests and benchmarks)

    def search(self, queries: np.ndarray, k: int, self_ids: np.ndarray | None = None):
        """(distances [m, k], indices [m, k]) of already-prepared float32 queries.

        `self_ids[i]` is query i's own index in the reference (removed from its result).
        Distances are ranking keys: squared L2 for euclidean/squared_euclidean, the negated
        inner product for cosine/dot (so smaller is closer in every case); for "hnsw", a
        missing neighbour has index -1 and distance +inf.
        """
        m = queries.shape[0]
        k_need = k + (self_ids is not None)
        if k < 1 or k_need > self.n:
            raise ValueError(f"k={k} is outside 1..{self.n - (self_ids is not None)}")
        k_search = min(self.n, k_need + self.margin)
        if self.index_name == "hnsw":
            self.index.hnsw.efSearch = max(64, 2 * k_search)
        with _reservoir_from(RESERVOIR_MIN_K):
            dist, ids = self.index.search(queries, k_search)
        key = dist if self.kind == "l2" else -dist
        key[ids < 0] = np.inf
        ids, key = _sort_rows(ids, key)
        if self.index_name == "flat" and k_search < self.n:
            # Items strictly closer than the window's last distance are all in the window;
            # only a tie group reaching the window's end can hide lower-index members.
            ambiguous = key[:, k_need - 1] == key[:, -1]
            if ambiguous.any():
                rows = np.flatnonzero(ambiguous)
                key_x, ids_x = self._exact(queries[rows], k_need)
                key[rows, :k_need] = key_x
                ids[rows, :k_need] = ids_x
                self.exact_rows += rows.size
        ids = ids[:, :k_need]
        key = key[:, :k_need]
        if self_ids is None:
            return key, ids
        is_self = ids == np.asarray(self_ids, dtype=np.int64)[:, None]
        # A query outside its own top k+1 (ties at distance 0 with lower-index duplicates)
        # loses the last entry instead, so every row keeps exactly k neighbours.
        is_self[~is_self.any(axis=1), -1] = True
        keep = ~is_self
        return key[keep].reshape(m, k), ids[keep].reshape(m, k)

    def _exact(self, queries: np.ndarray, k: int):
        """Top-k by (key, index) over the whole reference, in row blocks of bounded size."""
        if self.kind == "l2" and self._ref_sq is None:
            self._ref_sq = np.einsum("ij,ij->i", self.reference, self.reference)
        block = max(1, self.max_entries // self.n)
        keys, idss = [], []
        for s in range(0, queries.shape[0], block):
            q = queries[s : s + block]
            key = q @ self.reference.T
            if self.kind == "l2":
                # FAISS's formula, |q|^2 + |r|^2 - 2 q.r; rounding can take it below 0.
                key *= -2.0
                key += np.einsum("ij,ij->i", q, q)[:, None]
                key += self._ref_sq[None, :]
                np.maximum(key, 0.0, out=key)
            else:
                np.negative(key, out=key)
            kth = np.partition(key, k - 1, axis=1)[:, k - 1 : k]
            below = key < kth
            tied = key == kth
            room = k - below.sum(axis=1, keepdims=True)
            take = below | (tied & (np.cumsum(tied, axis=1) <= room))
            cols = np.nonzero(take)[1].reshape(q.shape[0], k)
            kk = np.take_along_axis(key, cols, axis=1)
            order = np.lexsort((cols, kk), axis=1)
            keys.append(np.take_along_axis(kk, order, axis=1))
            idss.append(np.take_along_axis(cols, order, axis=1).astype(np.int64))
        return np.concatenate(keys), np.concatenate(idss)


@contextmanager
def _reservoir_from(k: int):
    import faiss

    before = faiss.cvar.distance_compute_min_k_reservoir
    faiss.cvar.distance_compute_min_k_reservoir = min(before, k)
    try:
        yield
    finally:
        faiss.cvar.distance_compute_min_k_reservoir = before


def _sort_rows(ids: np.ndarray, key: np.ndarray):
    """Rows ordered by (key, id). FAISS returns rows sorted by key already, so only rows
    holding a tie (or, defensively, out of order) are re-sorted: a full lexsort of every
    row costs ~0.3 s at 60k queries."""
    step = np.diff(key, axis=1)
    redo = (step <= 0).any(axis=1)
    if redo.any():
        r = np.flatnonzero(redo)
        order = np.lexsort((ids[r], key[r]), axis=1)
        ids[r] = np.take_along_axis(ids[r], order, axis=1)
        key[r] = np.take_along_axis(key[r], order, axis=1)
    return ids, key


def query_chunks(
    sizes: np.ndarray, floor: int, *, max_entries: int = DEFAULT_MAX_ENTRIES, max_rows: int = DEFAULT_MAX_ROWS
) -> Iterator[tuple[int, int, int]]:
    """(start, stop, k) chunks of queries whose needed depths `sizes` are sorted ascending.

    Each chunk searches k = max(its largest size, floor) neighbours and holds at most
    `max_entries` query x neighbour entries (always at least one query).
    """
    n = sizes.shape[0]
    s = 0
    while s < n:
        stop = min(n, s + max_rows)
        depth = np.maximum(sizes[s:stop], floor)
        cost = np.arange(1, stop - s + 1) * depth
        e = s + max(1, int(np.searchsorted(cost, max_entries, side="right")))
        yield s, e, int(max(sizes[e - 1], floor))
        s = e


def nearest_neighbors(
    queries,
    reference=None,
    k: int = 1,
    *,
    distance: str = "euclidean",
    index: str = "flat",
    max_entries: int = DEFAULT_MAX_ENTRIES,
):
    """(distances [n, k], indices [n, k]) of each query's k nearest reference items.

    Without `reference`, the queries search each other with themselves excluded by index.
    Ranked by the module's rule (distance, then reference index); distances are the ranking
    keys described in `KnnSearcher.search`. Inputs are NumPy arrays or torch tensors.
    """
    from ._checks import as_embeddings, as_ks

    q = as_embeddings(queries, "queries")
    self_mode = reference is None
    r = q if self_mode else as_embeddings(reference, "reference")
    if r.shape[1] != q.shape[1]:
        raise ValueError(f"reference has dim {r.shape[1]} but queries have dim {q.shape[1]}")
    limit = r.shape[0] - self_mode
    (k,) = as_ks(k, limit, "the reference set minus the query itself" if self_mode else "the reference set", "k")
    searcher = KnnSearcher(r, distance, index=index, max_entries=max_entries)
    qp = searcher.reference if self_mode else prepare(q, searcher.distance, "queries")
    out_d = np.empty((q.shape[0], k), np.float32)
    out_i = np.empty((q.shape[0], k), np.int64)
    step = max(1, min(DEFAULT_MAX_ROWS, max_entries // (k + searcher.margin + 1)))
    for s in range(0, q.shape[0], step):
        e = min(q.shape[0], s + step)
        ids = np.arange(s, e) if self_mode else None
        out_d[s:e], out_i[s:e] = searcher.search(qp[s:e], k, ids)
    return out_d, out_i
