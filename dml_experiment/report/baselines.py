"""C9: fixed metrics on raw pixels, scored exactly like the learned embeddings.

The same evaluation rows as every trial (``stratified_subset(labels, max_items, seed=0)`` of
the eval split) and the same ``dml_core.metrics.evaluate``; only the vectors differ:

- ``raw_euclidean``: the flattened pixels in [0, 1], Euclidean distance (M1);
- ``raw_cosine``: the same pixels, 1 - cos (M2);
- ``raw_mahalanobis``: Mahalanobis distance (M3) with the Ledoit-Wolf shrinkage covariance
  fitted on the TRAINING split; evaluated as Euclidean distance on the whitened pixels
  (``MahalanobisDistance.whiten``), which is the same distance;
- ``raw_pca_whitened``: PCA fitted on the training split, the first 64 components divided by
  the square root of their variance, Euclidean distance;
- ``raw_pca_lda``: a linear metric LEARNED on the training classes, the classic baseline a
  deep metric must beat: PCA to 256 components, then Fisher's linear discriminant analysis
  (Fisher 1936; Belhumeur, Hespanha, Kriegman 1997's "Fisherfaces" PCA-then-LDA) with
  Ledoit-Wolf shrinkage of the within-class scatter, its 64 leading discriminants (as many as
  the learned embedding has dimensions), Euclidean distance; scikit-learn's
  ``PCA`` and ``LinearDiscriminantAnalysis(solver="eigen", shrinkage="auto")``.

The fits see at most ``fit_items`` training images (a stratified subset, seed 0), never an
evaluation image. The records have the shape of a sweep's results.json rows (method raw_*,
seed None, status finished, metrics), so the report treats them like any method.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from ..record import TrialRecord

BASELINES = {
    "raw_euclidean": "raw pixels, Euclidean distance",
    "raw_cosine": "raw pixels, cosine distance (1 - cos)",
    "raw_mahalanobis": "raw pixels, Mahalanobis distance with the Ledoit-Wolf shrinkage covariance of the training split",
    "raw_pca_whitened": "raw pixels, PCA fitted on the training split, {k} whitened components, Euclidean distance",
    "raw_pca_lda": "raw pixels, a linear metric learned on the training classes: PCA to {p} components, then LDA "
                   "(shrunk within-class scatter) to {k} discriminants, Euclidean distance",
}
LDA_PCA_COMPONENTS = 256


def raw_pixels(dataset, rows: np.ndarray, batch: int = 5000) -> np.ndarray:
    """float64 [len(rows), H*W*C] pixels in [0, 1], as the models see them (no augmentation)."""
    out = []
    for s in range(0, len(rows), batch):
        images = dataset.get_batch(rows[s : s + batch]).images
        out.append(images.reshape(len(images), -1).numpy().astype(np.float64))
    return np.concatenate(out) if out else np.zeros((0, 0))


def eval_rows(dataset_dir: str | Path, max_items: int | None, split: str = "eval"):
    """(dataset, rows) of the split, the rows every trial of a sweep is scored on."""
    from dml_core.data import PreparedDataset
    from dml_core.training.embed import stratified_subset

    ds = PreparedDataset(dataset_dir, split)
    return ds, stratified_subset(ds.labels, max_items, seed=0)


def pca_whitener(train: np.ndarray, components: int = 64, eps: float = 1e-8):
    """x -> (x - mean) V_k / sqrt(lambda_k), the k leading principal axes of `train`."""
    mean = train.mean(0)
    centered = train - mean
    cov = centered.T @ centered / max(len(train) - 1, 1)
    vals, vecs = np.linalg.eigh(cov)
    order = np.argsort(vals)[::-1][: min(components, len(vals))]
    vals, vecs = np.maximum(vals[order], 0.0), vecs[:, order]
    keep = vals > eps * max(vals[0], eps)
    proj = vecs[:, keep] / np.sqrt(vals[keep])
    return lambda x: (x - mean) @ proj


def lda_projector(train: np.ndarray, labels: np.ndarray, components: int = 64, pca_components: int = LDA_PCA_COMPONENTS):
    """x -> its leading LDA discriminants after PCA, both fitted on the training images and
    their classes (Fisher 1936 on a PCA subspace, as Belhumeur et al. 1997)."""
    from sklearn.decomposition import PCA
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    pca = PCA(n_components=min(pca_components, *train.shape), svd_solver="full").fit(train)
    reduced = pca.transform(train)
    k = min(components, len(np.unique(labels)) - 1, reduced.shape[1])
    if k < 1:
        raise ValueError(f"LDA needs at least 2 training classes, got {len(np.unique(labels))}")
    lda = LinearDiscriminantAnalysis(solver="eigen", shrinkage="auto", n_components=k).fit(reduced, labels)
    return lambda x: lda.transform(pca.transform(x))


def baseline_vectors(dataset_dir: str | Path, max_items: int | None, *, fit_items: int = 10_000, pca_components: int = 64):
    """{name: (vectors [n, d] float32, distance)} of the baselines on the eval rows, and the
    eval labels [n]."""
    from dml_core.distances import build_distance

    ev, rows = eval_rows(dataset_dir, max_items)
    x = raw_pixels(ev, rows)
    labels = ev.labels[rows]
    tr, train_rows = eval_rows(dataset_dir, fit_items, split="train")
    train = raw_pixels(tr, train_rows)
    train_labels = tr.labels[train_rows]

    maha = build_distance("mahalanobis", data=torch.from_numpy(train), shrinkage="ledoit_wolf")
    whitened = maha.whiten(torch.from_numpy(x)).numpy()
    pca = pca_whitener(train, pca_components)(x)
    vectors = {
        "raw_euclidean": (x, "euclidean"),
        "raw_cosine": (x, "cosine"),
        "raw_mahalanobis": (whitened, "euclidean"),
        "raw_pca_whitened": (pca, "euclidean"),
        "raw_pca_lda": (lda_projector(train, train_labels, pca_components)(x), "euclidean"),
    }
    return {k: (np.ascontiguousarray(v, dtype=np.float32), d) for k, (v, d) in vectors.items()}, labels


def raw_baselines(dataset_dir: str | Path, max_items: int | None, ks=(1, 2, 4, 8), *, fit_items: int = 10_000,
                  pca_components: int = 64, nmi: bool = True) -> list[dict]:
    """The C9 baselines as results.json-shaped records (seed None, no history)."""
    from dml_core.metrics import evaluate

    started = time.perf_counter()

    def config(name, distance):
        return {
            "dataset": str(dataset_dir),
            "baseline": BASELINES[name].format(k=pca_components, p=LDA_PCA_COMPONENTS),
            "distance": distance,
            "eval": {"ks": list(ks), "max_items": max_items, "split": "eval", "nmi": nmi},
            "fit": {"split": "train", "max_items": fit_items, "pca_components": pca_components,
                    **({"lda_pca_components": LDA_PCA_COMPONENTS} if name == "raw_pca_lda" else {})},
        }

    try:
        vectors, labels = baseline_vectors(dataset_dir, max_items, fit_items=fit_items, pca_components=pca_components)
    except Exception as e:  # noqa: BLE001 - a baseline that cannot be computed is reported, not fatal
        return [TrialRecord.fixed(name, error=f"{type(e).__name__}: {e}", config=config(name, None)).row() for name in BASELINES]
    fit_seconds = time.perf_counter() - started
    out = []
    for name, (vec, distance) in vectors.items():
        t0 = time.perf_counter()
        try:
            metrics, error = evaluate(vec, labels, ks=ks, distance=distance, nmi=nmi, seed=0), None
        except Exception as e:  # noqa: BLE001
            metrics, error = {}, f"{type(e).__name__}: {e}"
        seconds = time.perf_counter() - t0 + fit_seconds / len(vectors)
        out.append(TrialRecord.fixed(name, metrics, error=error, seconds=seconds, config=config(name, distance)).row())
    return out
