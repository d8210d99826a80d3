"""NMI (NumPy, MI / sqrt(H1 H2)) and the seeded k-means behind evaluate()'s `nmi`."""
import math

import numpy as np
import pytest
import torch
from sklearn.metrics import normalized_mutual_info_score

from dml_core.metrics import clustering_nmi, evaluate, kmeans, kmeans_plus_plus, lloyd, normalized_mutual_info


def ref_nmi(a, b):
    """Seed 003 eq. 9 with plain loops: I(Y;C) / sqrt(H(Y) H(C))."""
    n = len(a)
    ca, cb, cab = {}, {}, {}
    for x, y in zip(a, b):
        ca[x] = ca.get(x, 0) + 1
        cb[y] = cb.get(y, 0) + 1
        cab[(x, y)] = cab.get((x, y), 0) + 1
    mi = sum(c / n * math.log(c * n / (ca[x] * cb[y])) for (x, y), c in cab.items())
    ha = -sum(c / n * math.log(c / n) for c in ca.values())
    hb = -sum(c / n * math.log(c / n) for c in cb.values())
    return mi / math.sqrt(ha * hb)


def test_nmi_matches_loop_reference_and_sklearn():
    rng = np.random.default_rng(0)
    for _ in range(10):
        a = rng.integers(0, 6, 300)
        b = np.where(rng.random(300) < 0.6, a, rng.integers(0, 8, 300))
        got = normalized_mutual_info(a, b)
        assert got == pytest.approx(ref_nmi(list(a), list(b)), abs=1e-12)
        assert got == pytest.approx(normalized_mutual_info_score(a, b, average_method="geometric"), abs=1e-12)
        assert 0.1 < got < 0.95


def test_nmi_conventions():
    a = np.array([3, 3, 7, 7, 9, 9])
    assert normalized_mutual_info(a, [1, 1, 0, 0, 5, 5]) == 1.0  # a renaming: exactly 1
    assert normalized_mutual_info([0, 0, 0], [4, 4, 4]) == 1.0  # one group each (sklearn's rule)
    assert normalized_mutual_info([0, 0, 1], [4, 4, 4]) == 0.0
    assert normalized_mutual_info([0, 0, 1, 1], [0, 1, 0, 1]) == pytest.approx(0.0, abs=1e-15)
    with pytest.raises(ValueError, match="differ in length"):
        normalized_mutual_info([0, 1], [0])


def separated(n, classes, dim, seed, spread=40.0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, spread, (classes, dim))
    # Unequal class sizes: 2 to ~60 points each.
    y = np.repeat(np.arange(classes), rng.integers(2, 60, classes))[:n]
    return (centers[y] + rng.normal(0, 1, (len(y), dim))).astype(np.float32), y


@pytest.mark.parametrize("seed", range(5))
def test_separated_clusters_give_exactly_one(seed):
    x, y = separated(2000, 50, 16, seed)
    assert clustering_nmi(x, y, seed=seed) == 1.0
    assert evaluate(x, y, seed=seed)["nmi"] == 1.0


def test_random_seeding_alone_would_not_give_one():
    # Why the seeding matters: FAISS's default random initialisation on the same data.
    import faiss

    x, y = separated(2000, 50, 16, 0)
    km = faiss.Kmeans(16, 50, niter=20, seed=0, min_points_per_centroid=1)
    km.train(x)
    assert normalized_mutual_info(y, km.index.search(x, 1)[1][:, 0]) < 1.0


def test_kmeans_is_deterministic_for_a_seed_and_cosine_is_spherical():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(500, 8)).astype(np.float32)
    y = rng.integers(0, 10, 500)
    np.testing.assert_array_equal(kmeans(x, 10, seed=3), kmeans(x, 10, seed=3))
    a, b = evaluate(x, y, seed=3), evaluate(x, y, seed=3)
    assert a["nmi"] == b["nmi"] and 0 <= a["nmi"] < 0.5
    # Cosine clusters directions: scaling each row must not change the result.
    scaled = x * rng.uniform(0.5, 3.0, (500, 1)).astype(np.float32)
    assert evaluate(scaled, y, distance="cosine", seed=3)["nmi"] == pytest.approx(
        evaluate(x, y, distance="cosine", seed=3)["nmi"], abs=1e-12
    )


def test_nmi_uses_only_queries_with_a_match():
    x, y = separated(300, 6, 8, 2)
    x = np.concatenate([x, np.full((1, 8), 500.0, np.float32)])
    y = np.concatenate([y, [99]])  # a far singleton: not a query, not a cluster of its own
    out = evaluate(x, y)
    assert out["queries_without_match"] == 1 and out["nmi"] == 1.0


def test_kmeans_edge_cases():
    x = np.random.default_rng(2).normal(size=(5, 3)).astype(np.float32)
    np.testing.assert_array_equal(kmeans(x, 1), np.zeros(5))
    assert sorted(kmeans(x, 5).tolist()) == [0, 1, 2, 3, 4]
    dup = np.zeros((6, 3), np.float32)
    assert kmeans(dup, 2).shape == (6,)  # all points equal: no crash, no NaN
    with pytest.raises(ValueError, match="k must be in 1..5"):
        kmeans(x, 6)


@pytest.mark.parametrize("seed", range(5))
def test_closer_separated_clusters_still_give_one(seed):
    # Spread 8: clusters ~45 apart, each ~8 wide. D^2 sampling alone misses a small cluster in
    # most of these draws; the farthest-first traversal seeds every cluster once.
    x, y = separated(2000, 50, 16, seed, spread=8.0)
    assert clustering_nmi(x, y, seed=seed) == 1.0


def test_cell_costs_are_the_within_cell_sums_of_squares():
    from dml_core.metrics.clustering import _cell_costs

    rng = np.random.default_rng(4)
    xs = rng.normal(size=(200, 5)).astype(np.float32)
    near = rng.integers(0, 7, (3, 200))
    got = _cell_costs(torch.from_numpy(xs), torch.from_numpy(near), 7)
    x64 = xs.astype(np.float64)
    for row, cells in enumerate(near):
        want = sum(((x64[cells == c] - x64[cells == c].mean(axis=0)) ** 2).sum() for c in np.unique(cells))
        assert got[row] == pytest.approx(want, rel=1e-9)


def test_seeding_returns_sample_points_and_checks_its_arguments():
    x, y = separated(500, 10, 4, 1)
    for restarts in (1, 2, 3):
        seeds = kmeans_plus_plus(x, 10, seed=2, restarts=restarts)
        assert seeds.shape == (10, 4)
        assert (np.abs(x[None, :, :] - seeds[:, None, :]).sum(axis=2) == 0).any(axis=1).all()
    np.testing.assert_array_equal(kmeans_plus_plus(x, 10, seed=2), kmeans_plus_plus(x, 10, seed=2))
    with pytest.raises(ValueError, match="restarts and local_trials"):
        kmeans_plus_plus(x, 10, restarts=0)


# -- Lloyd's iterations stop at a fixed point ---------------------------------------------------
def blobs(n, k, d, noise, spherical):
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(k, d))[rng.integers(0, k, n)] + noise * rng.normal(size=(n, d))).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True) if spherical else x


@pytest.mark.parametrize("spherical", [False, True])
def test_lloyd_equals_faiss_at_20_iterations_whether_it_stops_early_or_not(spherical):
    # The reference: FAISS's own k-means, 20 iterations in one call, from the same centroids.
    import faiss

    runs = []
    for n, k, d, noise in ((2000, 50, 16, 0.5), (1500, 30, 8, 1.0), (1000, 20, 8, 2.0)):
        x = blobs(n, k, d, noise, spherical)
        init = kmeans_plus_plus(x, k, seed=0)
        got, ran = lloyd(x, init, niter=20, spherical=spherical)
        km = faiss.Kmeans(d, k, niter=20, seed=0, spherical=spherical, min_points_per_centroid=1)
        km.train(x, init_centroids=init)
        np.testing.assert_array_equal(got, km.index.search(x, 1)[1][:, 0])
        runs.append(ran)
    assert min(runs) < 20 and max(runs) == 20  # both paths taken: an early stop and the full 20


def test_lloyd_stops_early_on_separated_clusters_and_later_iterations_change_nothing():
    x, y = separated(2000, 50, 16, 0)
    init = kmeans_plus_plus(x, 50, seed=0)
    assign, ran = lloyd(x, init)
    assert ran <= 3 and normalized_mutual_info(y, assign) == 1.0
    longer, ran_longer = lloyd(x, init, niter=200)
    assert ran_longer == ran
    np.testing.assert_array_equal(longer, assign)


def test_lloyd_without_iterations_assigns_to_the_given_centroids():
    x, _ = separated(300, 6, 4, 1)
    init = kmeans_plus_plus(x, 6, seed=0)
    assign, ran = lloyd(x, init, niter=0)
    nearest = ((x[:, None, :].astype(np.float64) - init[None].astype(np.float64)) ** 2).sum(axis=2).argmin(axis=1)
    assert ran == 0
    np.testing.assert_array_equal(assign, nearest)
