"""NMI of a k-means clustering of the embeddings against the class labels (Song et al. CVPR 2017, eq. 9).

NMI(Y, C) = I(Y; C) / sqrt(H(Y) H(C)) (Song et al. CVPR 2017, eq. 9; Manning, Raghavan & Schütze 2008, sec. 16.3; scikit-learn's
normalized_mutual_info_score with average_method="geometric"), computed from the contingency
table in NumPy.

k-means = a seeding, then Lloyd's iterations (Lloyd 1982) on FAISS (Johnson, Douze & Jégou
2019; faiss.Clustering, seeded), at most `niter` = 20 of them by default: pytorch-metric-
learning's FaissKMeans runs FAISS's k-means for 20 iterations too. Ours stop earlier at a fixed
point: once an iteration leaves the centroids as they were, the assignment no longer changes,
and neither does any later iteration (each is a deterministic function of the centroids), so
the result is exactly that of all 20. An objective tolerance (stop when the k-means cost moves
by less than 1e-4) may stop before the assignment settles, and so change the NMI.

The seeding is what makes well-separated clusters come out with NMI exactly 1. Random seeding
(FAISS's default, also pytorch-metric-learning's) regularly puts two centroids in one cluster
and one between two clusters, and Lloyd stays there. Two seedings are drawn side by side, in
the same pass over the data at each of the k steps:

- k-means++ (Arthur & Vassilvitskii, SODA 2007): each new seed drawn with probability
  proportional to D(p)^2, the squared distance from p to its nearest seed so far;
- the farthest-first traversal (Gonzalez 1985): each new seed is the point of largest D(p).
  If every cluster is narrower than the gap between any two clusters, it puts exactly one seed
  in each: while a cluster has none, its points are farther from every seed than any point of a
  covered cluster is from its own. D^2 sampling gives no such guarantee: a small cluster carries
  little of the D^2 mass, so it is often missed.

Kept is the seeding whose Voronoi cells, each replaced by its mean, cost the least:
cost = sum_c sum_{p in c} |p - mean_c|^2 = sum_p |p|^2 - sum_c |S_c|^2 / n_c (S_c, n_c: the
sum and count of cell c), i.e. the k-means objective after Lloyd's first centroid update, in
O(n d). On separated clusters the traversal's cells are the clusters themselves, which is the
cheapest partition whenever the clusters are the k-means optimum; Lloyd then stays there. The
seeds' potential sum_p D(p)^2 would be the wrong yardstick: the traversal seeds clusters at
their edges, so its potential is high even when its partition is exact. Where the data hold
outliers the traversal seeds them; the k-means++ seeding then usually has the cheaper cells.
"""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import torch

from ._checks import to_numpy

# A seeding is sequential in k; seeding on a sample of this many points per cluster (at
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


def kmeans_plus_plus(x, k: int, *, seed: int = 0, restarts: int = 2, local_trials: int = 1) -> np.ndarray:
    """[k, d] initial centroids: of `restarts` seedings drawn side by side, the one whose cells cost least.

    restarts >= 2: restarts - 1 k-means++ seedings and one farthest-first traversal;
    restarts = 1: one k-means++ seeding. Each seeding starts from a uniformly drawn point. A
    k-means++ step draws `local_trials` candidates with probability proportional to D^2 and
    keeps the one that lowers the potential sum_p D(p)^2 most (scikit-learn's greedy variant,
    2 + ln k trials there; 1 = Arthur & Vassilvitskii's D^2 sampling). The default is 1: the
    traversal is what covers separated clusters, which extra trials only made likelier, at the
    price of one pass over the data per trial. A seeding's cost is that of its Voronoi cells
    replaced by their means, sum_p |p|^2 - sum_c |S_c|^2 / n_c (see the module docstring).
    Seeds and costs come from a sample of max(SEED_MIN_POINTS, SEED_POINTS_PER_CLUSTER * k)
    points when x is larger.
    """
    if restarts < 1 or local_trials < 1:
        raise ValueError(f"restarts and local_trials must be >= 1, got {restarts} and {local_trials}")
    rng = np.random.default_rng(seed)
    xs = _sample(np.asarray(x), k, rng)
    with _one_thread(), torch.no_grad():
        chosen, near = _seedings(xs, k, rng, max(restarts - 1, 1), local_trials, farthest=restarts >= 2)
        winner = int(np.argmin(_cell_costs(xs, near, k)))
        return xs[chosen[winner]].numpy()


def _sample(x: np.ndarray, k: int, rng: np.random.Generator) -> torch.Tensor:
    n = x.shape[0]
    limit = max(SEED_MIN_POINTS, SEED_POINTS_PER_CLUSTER * k)
    xs = x if n <= limit else x[np.sort(rng.choice(n, limit, replace=False))]
    return torch.from_numpy(np.ascontiguousarray(xs, dtype=np.float32))


def _seedings(xs: torch.Tensor, k: int, rng, sampled: int, trials: int, farthest: bool):
    """([R, k] seed rows, [R, s] nearest-seed index of each point), R = sampled (+ 1 traversal).

    Rows 0..sampled-1 are k-means++ seedings, the last (if `farthest`) the farthest-first
    traversal. All rows' candidates go through one matrix product per step, so a step is one
    pass over the sample. D^2 = |p|^2 - 2 p.c + |c|^2, clamped at 0 against rounding.
    """
    s = xs.shape[0]
    sq = (xs * xs).sum(dim=1)
    # [d, s] contiguous: the product of a few rows with it streams memory in order (~1.7x
    # faster than with xs.T on the 2 x 128 @ 128 x 10000 step, measured).
    xt = xs.T.contiguous()

    def sq_dist_to(idx: torch.Tensor) -> torch.Tensor:
        d2 = torch.addmm(sq[None, :], xs[idx], xt, alpha=-2.0)
        d2 += sq[idx][:, None]
        return d2.clamp_(min=0.0)

    rows = sampled + int(farthest)
    chosen = torch.empty((rows, k), dtype=torch.int64)
    chosen[:, 0] = torch.from_numpy(rng.integers(s, size=rows))
    d2 = sq_dist_to(chosen[:, 0])
    near = torch.zeros((rows, s), dtype=torch.int64)
    for t in range(1, k):
        cand = _d2_candidates(d2[:sampled], trials, rng)
        idx = torch.cat([cand.reshape(-1), d2[sampled:].argmax(dim=1)])
        dc = sq_dist_to(idx)
        if trials > 1:
            dc, idx = _greedy_pick(dc, idx, d2, sampled, trials)
        near.masked_fill_(dc < d2, t)  # ties stay with the older seed
        d2 = torch.minimum(dc, d2)
        chosen[:, t] = idx
    return chosen, near


def _greedy_pick(dc: torch.Tensor, idx: torch.Tensor, d2: torch.Tensor, sampled: int, trials: int):
    """Of each k-means++ row's `trials` candidates, the one that leaves the lowest potential sum_p D(p)^2."""
    m = sampled * trials
    dk = torch.minimum(dc[:m].view(sampled, trials, -1), d2[:sampled, None, :])
    best = dk.sum(dim=2, dtype=torch.float64).argmin(dim=1)
    pick = torch.arange(sampled) * trials + best
    return torch.cat([dc[pick], dc[m:]]), torch.cat([idx[pick], idx[m:]])


def _d2_candidates(d2: torch.Tensor, trials: int, rng) -> torch.Tensor:
    """[rows, trials] point indices drawn with probability proportional to each row of d2."""
    cs = torch.cumsum(d2, dim=1, dtype=torch.float64)
    u = torch.from_numpy(rng.random((d2.shape[0], trials))) * cs[:, -1:]
    cand = torch.searchsorted(cs, u, right=True).clamp_(max=d2.shape[1] - 1)
    # All points already coincide with seeds (duplicates): any point will do.
    flat = cs[:, -1] <= 0
    if bool(flat.any()):
        cand[flat] = torch.from_numpy(rng.integers(d2.shape[1], size=(int(flat.sum()), trials)))
    return cand


def _cell_costs(xs: torch.Tensor, near: torch.Tensor, k: int) -> np.ndarray:
    """Per row of `near`: sum_c sum_{p in c} |p - mean_c|^2 = sum_p |p|^2 - sum_c |S_c|^2 / n_c, in float64."""
    x64 = xs.double()
    total = float((x64 * x64).sum())
    out = []
    for cells in near:
        sums = torch.zeros((k, xs.shape[1]), dtype=torch.float64).index_add_(0, cells, x64)
        counts = torch.bincount(cells, minlength=k).clamp_(min=1)
        out.append(total - float(((sums * sums).sum(dim=1) / counts).sum()))
    return np.asarray(out)


def kmeans(
    x,
    k: int,
    *,
    seed: int = 0,
    restarts: int = 2,
    niter: int = 20,
    spherical: bool = False,
) -> np.ndarray:
    """Cluster index (int64 [n]) of each row of x: `kmeans_plus_plus` seeding, then `lloyd`
    (at most `niter` FAISS Lloyd iterations, stopping at a fixed point)."""
    x = np.ascontiguousarray(to_numpy(x, "x"), dtype=np.float32)
    n, d = x.shape
    if not 1 <= k <= n:
        raise ValueError(f"k must be in 1..{n} (the number of points), got {k}")
    if k == 1:
        return np.zeros(n, dtype=np.int64)
    init = kmeans_plus_plus(x, k, seed=seed, restarts=restarts)
    return lloyd(x, init, niter=niter, seed=seed, spherical=spherical)[0]


def lloyd(x, init, *, niter: int = 20, seed: int = 0, spherical: bool = False) -> tuple[np.ndarray, int]:
    """(cluster index int64 [n] of each row of x, iterations run): Lloyd's iterations (Lloyd
    1982) on FAISS from the centroids `init` [k, d], at most `niter`, one FAISS iteration at a
    time so that they stop at a fixed point (an iteration that leaves the centroids bit for bit
    as they were: the module docstring says why that is exactly the `niter`-iteration result).
    FAISS's iteration, empty clusters split as it splits them; `spherical` renormalises the
    centroids (inner-product assignment), for cosine.
    """
    import faiss  # core dependency, imported lazily so `import dml_core` stays light

    x = np.ascontiguousarray(to_numpy(x, "x"), dtype=np.float32)
    init = np.ascontiguousarray(init, dtype=np.float32)
    d, k = x.shape[1], init.shape[0]
    params = faiss.ClusteringParameters()
    # One iteration per train() call (none for niter=0: the index then holds `init`); each
    # call starts from the centroids the previous one left in `clus.centroids`.
    params.niter, params.seed, params.spherical = min(niter, 1), int(seed) % (2**31), spherical
    # FAISS warns below 39 points per centroid; class-sized clusters are often smaller.
    params.min_points_per_centroid = 1
    clus = faiss.Clustering(d, k, params)
    index = faiss.IndexFlatIP(d) if spherical else faiss.IndexFlatL2(d)
    faiss.copy_array_to_vector(init.ravel(), clus.centroids)
    before, runs = init.ravel(), 0
    while True:
        clus.train(x, index)
        runs += params.niter
        after = faiss.vector_float_to_array(clus.centroids)
        if runs >= niter or np.array_equal(after, before):
            break
        before = after
    _, assign = index.search(x, 1)
    return assign[:, 0].astype(np.int64), runs


def clustering_nmi(x, labels, *, seed: int = 0, restarts: int = 2, niter: int = 20, spherical: bool = False) -> float:
    """NMI of k-means (as many clusters as classes in `labels`) against `labels`."""
    labels = np.asarray(to_numpy(labels, "labels"))
    k = int(np.unique(labels).size)
    assign = kmeans(x, k, seed=seed, restarts=restarts, niter=niter, spherical=spherical)
    return normalized_mutual_info(labels, assign)
