"""How a metric is named in tables and plots: one name per metric, everywhere in a report."""
from __future__ import annotations

LABELS = {
    "recall@1": "R@1", "recall@2": "R@2", "recall@4": "R@4", "recall@8": "R@8", "map@r": "MAP@R",
    "r_precision": "R-precision", "nmi": "NMI", "spearman": "Spearman", "ndcg@1": "NDCG@1", "ndcg@2": "NDCG@2",
    "ndcg@4": "NDCG@4", "ndcg@8": "NDCG@8", "precision@1": "P@1", "train/loss": "train loss",
    # A family of metrics over K, as a curve's axis names it.
    "recall": "Recall@K", "ndcg": "NDCG@K", "recall@K": "Recall@K", "ndcg@K": "NDCG@K",
}
_PREFIX = {"recall": "R", "ndcg": "NDCG", "map": "mAP", "precision": "P"}


def label(metric: str) -> str:
    """'recall@1' -> 'R@1', 'map@r' -> 'MAP@R', 'recall' -> 'Recall@K'; unknown names pass through."""
    if metric in LABELS:
        return LABELS[metric]
    name, _, k = metric.partition("@")
    return _PREFIX.get(name, name) + (f"@{k}" if k else "")
