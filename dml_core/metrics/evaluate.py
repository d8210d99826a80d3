"""`evaluate`: class-label retrieval and clustering metrics of embeddings (Song et al. CVPR 2017; Musgrave et al. ECCV 2020)."""
from __future__ import annotations

import numpy as np

from ._checks import as_class_labels, query_and_reference, query_ks
from .clustering import clustering_nmi
from .knn import DEFAULT_MAX_ENTRIES, DEFAULT_MAX_ROWS, KnnSearcher, prepare, query_chunks, resolve_distance
from .retrieval import metric_names, per_query_metrics


def same_class_counts(labels: np.ndarray, reference_labels: np.ndarray, self_mode: bool) -> np.ndarray:
    """R of each query: the number of reference items of its class, the query itself excluded."""
    classes, counts = np.unique(reference_labels, return_counts=True)
    pos = np.minimum(np.searchsorted(classes, labels), classes.size - 1)
    r = np.where(classes[pos] == labels, counts[pos], 0)
    return r - 1 if self_mode else r


def matched_queries(r: np.ndarray, self_mode: bool) -> np.ndarray:
    """The queries with R > 0, the only ones scored; ValueError if there are none."""
    scored = np.flatnonzero(r > 0)
    if scored.size == 0:
        raise ValueError(
            "no query has a same-class item in the reference"
            + (" (every class in labels is a singleton)" if self_mode else " (labels and reference_labels share no class)")
        )
    return scored


def retrieval_sums(
    searcher: KnnSearcher,
    qx: np.ndarray,
    query_labels: np.ndarray,
    ref_labels: np.ndarray,
    r: np.ndarray,
    scored: np.ndarray,
    ks: tuple[int, ...],
    *,
    self_mode: bool,
    max_entries: int,
) -> dict[str, float]:
    """Each retrieval metric (``metric_names(ks)``) summed over the `scored` queries `qx`.

    Queries are searched in chunks of at most `max_entries` query x neighbour entries;
    grouping them by R lets each chunk search only as deep as its own largest R.
    """
    order = scored[np.argsort(r[scored], kind="stable")]
    sums = dict.fromkeys(metric_names(ks), 0.0)
    for s, e, k in query_chunks(r[order], max(ks), max_entries=max_entries, max_rows=DEFAULT_MAX_ROWS):
        rows = order[s:e]
        _, ids = searcher.search(qx[rows], k, rows if self_mode else None)
        rel = ref_labels[ids] == query_labels[rows, None]
        if searcher.index_name != "flat":  # an approximate search may miss neighbours: id -1
            rel &= ids >= 0
        for name, values in per_query_metrics(rel, r[rows], ks).items():
            sums[name] += float(values.sum())
    return sums


def evaluate(
    embeddings,
    labels,
    *,
    reference=None,
    reference_labels=None,
    ks=(1, 2, 4, 8),
    distance: str = "euclidean",
    nmi: bool = True,
    seed: int = 0,
    kmeans_restarts: int = 2,
    kmeans_iters: int = 20,
    index: str = "flat",
    max_entries: int = DEFAULT_MAX_ENTRIES,
) -> dict[str, float]:
    """Retrieval and clustering metrics of `embeddings` (the queries) with class `labels`.

    Each query ranks the reference set (or, without `reference`, all the other queries; its
    own row is excluded by index, so exact duplicates of it are ordinary items) by
    `distance` ("euclidean", "squared_euclidean", "cosine" = 1 - cos, or "dot"), ties in
    distance broken by reference index, lowest first. With R = the number of reference items
    of the query's class (itself excluded), the keys are, each a mean over queries:

    - ``recall@K``: 1 if a same-class item is in the top K (the DML papers' Recall@K);
    - ``strict_recall@K``: same-class items in the top K / R (TP / (TP + FN), Manning et al. 2008, sec. 8.3);
    - ``map@K``: AP@k (Manning et al. 2008, sec. 8.4) (mean precision at the same-class positions of the top K);
    - ``precision@1``, ``r_precision`` and ``map@r`` (MAP@R), Musgrave et al., ECCV 2020;
    - ``nmi``: NMI (Song et al. 2017, eq. 9, geometric) of k-means on the queries, as many clusters
      as their classes (spherical, on L2-normalised vectors, for cosine; skipped with
      ``nmi=False``);

    and the counts ``queries`` (queries scored) and ``queries_without_match`` (queries with
    R = 0: a class absent from the reference, or a singleton class without a reference).
    Those are left out of every metric, NMI included; they are never scored 0 or NaN. So a
    singleton class has no R-precision or MAP@R at all; it only shows in the count. If no
    query has a match, ValueError.

    Inputs: torch tensors or NumPy arrays; labels are any integers. The search is exact
    FAISS (float32), in query chunks of at most `max_entries` query x neighbour entries
    (queries grouped by R, each chunk searching to its largest R), so memory stays bounded.
    ``index="hnsw"`` makes it approximate (faster on big sets; see benchmarks/eval.py).
    NMI uses `seed`, `kmeans_restarts` k-means++ seedings and at most `kmeans_iters` Lloyd steps
    (fewer once an iteration leaves the centroids unchanged: the same result, Lloyd 1982).

    Raises ValueError naming the argument for NaN/inf, mismatched lengths or dims, a k in
    `ks` above the number of items a query can retrieve, or an unknown distance.
    """
    queries, query_labels, ref, ref_labels, self_mode = query_and_reference(
        embeddings, labels, reference, reference_labels, as_class_labels
    )
    ks = query_ks(ks, ref.shape[0], self_mode)
    distance = resolve_distance(distance)
    r = same_class_counts(query_labels, ref_labels, self_mode)
    scored = matched_queries(r, self_mode)
    searcher = KnnSearcher(ref, distance, index=index, max_entries=max_entries)
    qx = searcher.reference if self_mode else prepare(queries, distance, "embeddings")
    sums = retrieval_sums(searcher, qx, query_labels, ref_labels, r, scored, ks, self_mode=self_mode, max_entries=max_entries)

    n = scored.size
    out: dict[str, float] = {"queries": n, "queries_without_match": int(queries.shape[0] - n)}
    out.update({name: total / n for name, total in sums.items()})
    if nmi:
        out["nmi"] = clustering_nmi(
            qx[scored],
            query_labels[scored],
            seed=seed,
            restarts=kmeans_restarts,
            niter=kmeans_iters,
            spherical=distance == "cosine",
        )
    return out
