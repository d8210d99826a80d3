"""The figures logged with each trial run: its Recall@K curve and a map of its embeddings.

matplotlib's object API only (no pyplot state), so the flow's task threads can draw them.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .plots import pca_2d


def _k_points(metrics: dict[str, float]) -> tuple[str, list[tuple[int, float]]]:
    """The @K curve of the final metrics: Recall@K for class labels, nDCG@K for continuous."""
    for prefix, label in (("recall@", "Recall@K"), ("ndcg@", "nDCG@K")):
        points = sorted((int(k[len(prefix):]), float(v)) for k, v in metrics.items() if k.startswith(prefix) and k[len(prefix):].isdigit())
        if points:
            return label, points
    return "", []


def recall_figure(metrics: dict[str, float], history: Sequence[dict[str, Any]], title: str):
    """Left: the final Recall@K curve. Right: Recall@1 per epoch (val and eval), when the
    history has it. None without any @K metric."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    label, points = _k_points(metrics)
    if not points:
        return None
    per_epoch = {split: [(row.get("epoch", i), row[f"{split}/recall@1"]) for i, row in enumerate(history) if f"{split}/recall@1" in row]
                 for split in ("val", "eval")}
    per_epoch = {s: p for s, p in per_epoch.items() if p}
    fig = Figure(figsize=(9 if per_epoch else 5, 3.6), dpi=100, layout="constrained")
    axes = fig.subplots(1, 2 if per_epoch else 1, squeeze=False)[0]
    ks, values = zip(*points)
    axes[0].plot(ks, values, marker="o")
    axes[0].set_xscale("log", base=2)
    axes[0].set_xticks(ks, labels=[str(k) for k in ks])
    axes[0].set(xlabel="K", ylabel=label, ylim=(0, 1.02), title=f"{label} (eval)")
    axes[0].grid(alpha=0.3)
    if per_epoch:
        for split, pts in per_epoch.items():
            epochs, vals = zip(*pts)
            axes[1].plot(epochs, vals, marker="o", label=split)
        axes[1].set(xlabel="epoch", ylabel="Recall@1", ylim=(0, 1.02), title="Recall@1 per epoch")
        axes[1].xaxis.set_major_locator(MaxNLocator(integer=True))
        axes[1].legend()
        axes[1].grid(alpha=0.3)
    fig.suptitle(title)
    return fig


def embedding_figure(embeddings: np.ndarray, labels: np.ndarray, title: str, max_points: int = 5000):
    """A PCA scatter of the eval embeddings coloured by class (by value for continuous
    labels). At most `max_points` points, a fixed subsample: same points for every trial."""
    from matplotlib.figure import Figure

    n = len(embeddings)
    rows = np.sort(np.random.default_rng(0).choice(n, max_points, replace=False)) if n > max_points else np.arange(n)
    xy, _ = pca_2d(embeddings[rows])
    lab = np.asarray(labels)[rows]
    fig = Figure(figsize=(5.5, 4.5), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    if lab.ndim == 1 and np.issubdtype(lab.dtype, np.integer):
        classes, codes = np.unique(lab, return_inverse=True)
        cmap = "tab10" if len(classes) <= 10 else "tab20" if len(classes) <= 20 else "nipy_spectral"
        sc = ax.scatter(xy[:, 0], xy[:, 1], c=codes, cmap=cmap, s=8, alpha=0.8, vmin=0, vmax=max(len(classes) - 1, 1))
        if len(classes) <= 20:
            handles = [ax.scatter([], [], color=sc.cmap(sc.norm(i)), s=12, label=str(c)) for i, c in enumerate(classes)]
            ax.legend(handles=handles, title="class", fontsize=7, loc="center left", bbox_to_anchor=(1, 0.5))
    else:
        value = lab if lab.ndim == 1 else lab[:, 0]
        sc = ax.scatter(xy[:, 0], xy[:, 1], c=value.astype(float), cmap="viridis", s=8, alpha=0.8)
        fig.colorbar(sc, ax=ax, label="label")
    ax.set(xlabel="PC 1", ylabel="PC 2", title=title)
    return fig
