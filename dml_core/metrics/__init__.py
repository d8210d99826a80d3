"""Evaluation of embeddings (Musgrave et al. ECCV 2020; Song et al. CVPR 2017): retrieval, clustering and ranking metrics.

- `evaluate`: Recall@K, strict recall@K, mAP@K, precision@1, R-precision, MAP@R, NMI of
  class-labelled embeddings, on exact FAISS k-NN in bounded query chunks.
- `evaluate_continuous`: NDCG@K and Spearman rank correlation for continuous labels.
- `average_precision_at_k`, `ndcg_at_k`, `spearman`, `kendall_tau`, `rankdata`: functions of
  relevance lists / vectors (NumPy or torch).
- `normalized_mutual_info`, `kmeans`, `lloyd`, `clustering_nmi`; `nearest_neighbors`, `KnnSearcher`;
  `save_embeddings`, `load_embeddings`, `load_metadata` (Parquet).

Only torch and NumPy are imported here; FAISS and pyarrow load when first used.
"""
from .clustering import clustering_nmi, kmeans, kmeans_plus_plus, lloyd, normalized_mutual_info
from .continuous import evaluate_continuous
from .evaluate import evaluate, same_class_counts
from .knn import DISTANCES, KnnSearcher, nearest_neighbors
from .ranking import average_precision_at_k, kendall_tau, ndcg_at_k, rankdata, spearman
from .retrieval import metric_names, per_query_metrics
from .store import load_embeddings, load_metadata, save_embeddings

__all__ = [
    "DISTANCES",
    "KnnSearcher",
    "average_precision_at_k",
    "clustering_nmi",
    "evaluate",
    "evaluate_continuous",
    "kendall_tau",
    "kmeans",
    "kmeans_plus_plus",
    "lloyd",
    "load_embeddings",
    "load_metadata",
    "metric_names",
    "ndcg_at_k",
    "nearest_neighbors",
    "normalized_mutual_info",
    "per_query_metrics",
    "rankdata",
    "same_class_counts",
    "save_embeddings",
    "spearman",
]
