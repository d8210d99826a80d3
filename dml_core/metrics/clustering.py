"""NMI of a k-means clustering of the embeddings against the class labels (Song et al. CVPR 2017, eq. 9).

NMI(Y, C) = I(Y; C) / sqrt(H(Y) H(C)) (Song et al. CVPR 2017, eq. 9; Manning, Raghavan & Schütze 2008, sec. 16.3; scikit-learn's
normalized_mutual_info_score with average_method="geometric"), computed from the contingency
table in NumPy.

k-means: greedy k-means++ seeding (Arthur & Vassilvitskii, SODA 2007), `restarts` seedings
drawn together and the one of lowest potential kept, then Lloyd iterations on FAISS
(faiss.Kmeans, seeded). Restarting the seeding rather than the whole k-means is what makes
this affordable: one Lloyd run at 60k points x 1000 clusters costs about a second, while
the seeding restarts share each pass over the data. Random seeding (FAISS's default, also
pytorch-metric-learning's) regularly puts two centroids in one cluster and one between two
clusters and stays there; D^2 seeding covers well-separated clusters one centroid each, so
they come out with NMI exactly 1. FAISS's own k-means++ option was measured not to do so.
"""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import torch

from ._checks import to_numpy

# k-means++ is sequential in k; seeding on a sample of this many points per cluster (at
# least SEED_MIN_POINTS) bounds its cost while leaving a class of average size rarely
# unsampled (probability ~ exp(-10)). Lloyd's iterations then use every point.
SEED_POINTS_PER_CLUSTER = 10
SEED_MIN_POINTS = 10_000


def normalized_mutual_info(labels_true, labels_pred) -> float:
    """I(Y; C) / sqrt(H(Y) H(C)), natural logs (the base cancels).

    Conventions (scikit-learn's): 1.0 when both labelings have a single group, 0.0 when
    only one of them does. A labeling equal to the other up to renaming gives exactly 1.0.
    """
    a = np.asarray(to_numpy(labels_true, "labels_true")).ravel()
    b = np.asarray(to_numpy(labels_pred, "labels_pred")).ravel()
    if a.shape != b.shape:
        raise ValueError(f"labels_true and labels_pred differ in length: {a.shape[0]} and {b.shape[0]}")
    if a.size == 0:
        raise ValueError("labels_true is empty")
    _, ai = np.unique(a, return_inverse=True)
    _, bi = np.unique(b, return_inverse=True)
    na, nb = int(ai.max()) + 1, int(bi.max()) + 1
    if na == 1 and nb == 1:
        return 1.0
    if na == 1 or nb == 1:
        return 0.0
    cells, nij = np.unique(ai.astype(np.int64) * nb + bi, return_counts=True)
    if cells.size == na == nb:
        return 1.0  # a bijection between groups; the float formula could miss 1 by an ulp
    n = float(a.size)
    ca = np.bincount(ai).astype(np.float64)
    cb = np.bincount(bi).astype(np.float64)
    ii, jj = cells // nb, cells % nb
    nij = nij.astype(np.float64)
    mi = float(np.sum(nij / n * (np.log(nij * n) - np.log(ca[ii] * cb[jj]))))
    ha = float(-np.sum(ca / n * np.log(ca / n)))
    hb = float(-np.sum(cb / n * np.log(cb / n)))
    return float(np.clip(max(mi, 0.0) / np.sqrt(ha * hb), 0.0, 1.0))


@contextmanager
def _one_thread():
    # The seeding is k sequential passes over a few MB: one thread streams it as fast as
    # two, and a multi-threaded small GEMM collapses (x20 measured) when the machine is busy.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def kmeans_plus_plus(
    x: np.ndarray, k: int, *, seed: int = 0, restarts: int = 2, local_trials: int | None = None
) -> np.ndarray:
    """[k, d] initial centroids: the lowest-potential of `restarts` greedy k-means++ seedings.

    Each step draws `local_trials` (default 2 + ln k, as scikit-learn) candidates with
    probability proportional to D^2 and keeps the one that lowers the potential most
    (potential = sum over points of the squared distance to the nearest seed). Plain D^2
    sampling still lands in an already-covered cluster now and then when a cluster is small;
    the greedy choice all but rules that out. The restarts run side by side, so each of the
    k sequential steps is one pass over the data. Seeds come from a sample of
    max(SEED_MIN_POINTS, SEED_POINTS_PER_CLUSTER * k) points when x is larger.
    """
    rng = np.random.default_rng(seed)
    trials = local_trials or 2 + int(np.log(k))
    n = x.shape[0]
    limit = max(SEED_MIN_POINTS, SEED_POINTS_PER_CLUSTER * k)
    xs = x if n <= limit else x[np.sort(rng.choice(n, limit, replace=False))]
    xs = torch.from_numpy(np.ascontiguousarray(xs, dtype=np.float32))
    s = xs.shape[0]
    rows = torch.arange(restarts)
    with _one_thread(), torch.no_grad():
        sq = (xs * xs).sum(dim=1)

        def sq_dist_to(idx: torch.Tensor) -> torch.Tensor:
            d2 = torch.addmm(sq[None, :], xs[idx], xs.T, alpha=-2.0)
            d2 += sq[idx][:, None]
            return d2.clamp_(min=0.0)

        chosen = torch.empty((restarts, k), dtype=torch.int64)
        chosen[:, 0] = torch.from_numpy(rng.integers(s, size=restarts))
        d2 = sq_dist_to(chosen[:, 0])
        for t in range(1, k):
            cs = torch.cumsum(d2, dim=1, dtype=torch.float64)
            u = torch.from_numpy(rng.random((restarts, trials))) * cs[:, -1:]
            cand = torch.searchsorted(cs, u, right=True).clamp_(max=s - 1)
            # All points already coincide with seeds (duplicates): any point will do.
            flat = cs[:, -1] <= 0
            if bool(flat.any()):
                cand[flat] = torch.from_numpy(rng.integers(s, size=(int(flat.sum()), trials)))
            dc = sq_dist_to(cand.reshape(-1)).reshape(restarts, trials, s)
            torch.minimum(dc, d2[:, None, :], out=dc)
            best = dc.sum(dim=2, dtype=torch.float64).argmin(dim=1)
            d2 = dc[rows, best]
            chosen[:, t] = cand[rows, best]
        winner = int(d2.sum(dim=1, dtype=torch.float64).argmin())
        return xs[chosen[winner]].numpy()


def kmeans(
    x,
    k: int,
    *,
    seed: int = 0,
    restarts: int = 2,
    niter: int = 20,
    spherical: bool = False,
) -> np.ndarray:
    """Cluster index (int64 [n]) of each row of x: k-means++ seeding, then FAISS Lloyd."""
    import faiss  # core dependency, imported lazily so `import dml_core` stays light

    x = np.ascontiguousarray(to_numpy(x, "x"), dtype=np.float32)
    n, d = x.shape
    if not 1 <= k <= n:
        raise ValueError(f"k must be in 1..{n} (the number of points), got {k}")
    if k == 1:
        return np.zeros(n, dtype=np.int64)
    init = kmeans_plus_plus(x, k, seed=seed, restarts=restarts)
    km = faiss.Kmeans(
        d,
        k,
        niter=niter,
        seed=int(seed) % (2**31),
        spherical=spherical,
        # FAISS warns below 39 points per centroid; class-sized clusters are often smaller.
        min_points_per_centroid=1,
    )
    km.train(x, init_centroids=init)
    _, assign = km.index.search(x, 1)
    return assign[:, 0].astype(np.int64)


def clustering_nmi(x, labels, *, seed: int = 0, restarts: int = 2, niter: int = 20, spherical: bool = False) -> float:
    """NMI of k-means (as many clusters as classes in `labels`) against `labels`."""
    labels = np.asarray(to_numpy(labels, "labels"))
    k = int(np.unique(labels).size)
    assign = kmeans(x, k, seed=seed, restarts=restarts, niter=niter, spherical=spherical)
    return normalized_mutual_info(labels, assign)
