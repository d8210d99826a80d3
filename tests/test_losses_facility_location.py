"""Facility-location loss (Song et al. CVPR 2017): brute force over medoid sets on tiny batches,
greedy and PAM alone, NMI, gradients and edge cases."""
import itertools

import numpy as np
import pytest
import torch
from sklearn.metrics import normalized_mutual_info_score

from dml_core import build_loss
from dml_core.kernels.clustering_search import FacilitySearch, nmi


def pairwise(x):
    x = x.detach().numpy()
    return np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1))


def ref_objective(d, y, medoids, gamma):
    """F(S) + gamma (1 - NMI(g(S), y)); g(S) sends each point to its nearest medoid, ties to the
    lowest index."""
    s = sorted(medoids)
    assign = [s[int(np.argmin([d[i, j] for j in s]))] for i in range(len(d))]
    f = -sum(min(d[i, j] for j in s) for i in range(len(d)))
    return f + gamma * (1 - normalized_mutual_info_score(y, assign, average_method="geometric"))


def ref_oracle(d, y):
    return -sum(min(sum(d[i, j] for i in np.flatnonzero(y == c)) for j in np.flatnonzero(y == c)) for c in np.unique(y))


def ref_exact_loss(x, y, gamma):
    """[max over every medoid set of size K of the augmented objective - F_gt]_+, by brute force."""
    d, y = pairwise(x), y.numpy()
    k = len(np.unique(y))
    best = max(ref_objective(d, y, s, gamma) for s in itertools.combinations(range(len(y)), k))
    return max(best - ref_oracle(d, y), 0.0)


def tiny_case(seed):
    rng = np.random.default_rng(seed)
    n, k = int(rng.integers(5, 10)), int(rng.integers(2, 5))
    return torch.tensor(rng.normal(size=(n, 2))), torch.tensor(rng.integers(0, k, n))


@pytest.mark.parametrize("gamma", [0.3, 1.0, 3.0])
def test_never_exceeds_the_exact_loss_and_mostly_equals_it(gamma):
    loss = build_loss("facility_location", gamma=gamma)
    equal = 0
    for seed in range(60):
        x, y = tiny_case(seed)
        got, exact = float(loss(x, y)), ref_exact_loss(x, y, gamma)
        assert got <= exact + 1e-9, (seed, got, exact)
        equal += abs(got - exact) <= 1e-9
    assert equal >= 0.85 * 60, equal


def test_value_is_the_hinge_of_the_chosen_medoids(clustered):
    x, y = clustered(np.random.default_rng(0), n=30, dim=4, classes=5)
    loss = build_loss("facility_location")
    medoids, score, _, _ = loss.search(loss.distance(x), y)
    d = pairwise(x)
    want = max(ref_objective(d, y.numpy(), medoids.tolist(), 1.0) - ref_oracle(d, y.numpy()), 0.0)
    assert float(loss(x, y)) == pytest.approx(want, rel=1e-9, abs=1e-12)
    assert len(set(medoids.tolist())) == 5


def test_greedy_picks_the_best_addition_each_step(rng, clustered):
    x, y = clustered(rng, n=14, dim=3, classes=4)
    d = pairwise(x)
    search = FacilitySearch(torch.tensor(d), y, 1.0)
    chosen = search.greedy(4).tolist()
    for t in range(4):
        scores = {c: ref_objective(d, y.numpy(), chosen[:t] + [c], 1.0) for c in range(14) if c not in chosen[:t]}
        assert scores[chosen[t]] == pytest.approx(max(scores.values()), abs=1e-9)


def test_swap_scores_equal_the_objective_of_each_swapped_set(rng, clustered):
    x, y = clustered(rng, n=12, dim=2, classes=4)
    d = pairwise(x)
    search = FacilitySearch(torch.tensor(d), y, 0.7)
    medoids = torch.tensor(rng.choice(12, 4, replace=False))
    scores, cand = search.swap_scores(medoids)
    assert scores.shape == (12 - 4, 4)
    for ci, c in enumerate(cand.tolist()):
        for slot in range(4):
            swapped = medoids.tolist()
            swapped[slot] = c
            assert float(scores[ci, slot]) == pytest.approx(ref_objective(d, y.numpy(), swapped, 0.7), abs=1e-9)


def test_one_medoid_swap_scores(clustered):
    x, y = clustered(np.random.default_rng(1), n=6, dim=2, classes=1)
    d = pairwise(x)
    scores, cand = FacilitySearch(torch.tensor(d), y, 1.0).swap_scores(torch.tensor([2]))
    for ci, c in enumerate(cand.tolist()):
        assert float(scores[ci, 0]) == pytest.approx(ref_objective(d, y.numpy(), [c], 1.0), abs=1e-9)


def test_pam_improves_to_a_local_optimum(rng, clustered):
    x, y = clustered(rng, n=16, dim=2, classes=4)
    d = pairwise(x)
    search = FacilitySearch(torch.tensor(d), y, 1.0)
    start = torch.tensor(rng.choice(16, 4, replace=False))
    result = search.pam(start, max_rounds=100).tolist()
    value = ref_objective(d, y.numpy(), result, 1.0)
    assert value >= ref_objective(d, y.numpy(), start.tolist(), 1.0) - 1e-12
    for slot in range(4):  # no single swap improves on the result
        for c in set(range(16)) - set(result):
            swapped = list(result)
            swapped[slot] = c
            assert ref_objective(d, y.numpy(), swapped, 1.0) <= value + 1e-9


def test_more_search_never_lowers_the_loss(rng, clustered):
    x, y = clustered(rng, n=40, dim=4, classes=8)
    greedy_only = float(build_loss("facility_location", pam_rounds=0)(x, y))
    assert float(build_loss("facility_location")(x, y)) >= greedy_only - 1e-12


def test_nmi_matches_scikit_learn_geometric(rng):
    for _ in range(20):
        n = int(rng.integers(2, 30))
        a, b = rng.integers(0, rng.integers(1, 5), n), rng.integers(0, rng.integers(1, 5), n)
        want = normalized_mutual_info_score(a, b, average_method="geometric")
        assert nmi(torch.tensor(a), torch.tensor(b)) == pytest.approx(want, abs=1e-12)
    assert nmi(torch.zeros(5, dtype=torch.int64), torch.zeros(5, dtype=torch.int64)) == 1.0
    assert nmi(torch.zeros(4, dtype=torch.int64), torch.tensor([0, 0, 1, 1])) == 0.0


def test_zero_on_well_separated_clusters():
    rng = np.random.default_rng(0)
    y = torch.tensor(np.repeat(np.arange(5), 6))
    centers = rng.normal(size=(5, 8)) * 50
    x = torch.tensor(centers[y.numpy()] + 0.1 * rng.normal(size=(30, 8)), requires_grad=True)
    loss = build_loss("facility_location")(x, y)
    loss.backward()
    assert loss.item() == 0 and torch.equal(x.grad, torch.zeros_like(x))


def test_gradcheck(clustered):
    x, y = clustered(np.random.default_rng(2), n=10, dim=3, classes=3, spread=2.0)
    loss = build_loss("facility_location")
    assert float(loss(x, y)) > 0
    assert torch.autograd.gradcheck(lambda e: loss(e, y), (x.requires_grad_(),))


@pytest.mark.parametrize("labels", [[0] * 6, list(range(6))], ids=["one_class", "singletons"])
def test_one_class_and_singletons_are_zero_with_zero_gradient(labels, zero_with_zero_gradient):
    zero_with_zero_gradient(build_loss("facility_location"), labels, dtype=torch.float64)


def test_duplicate_embeddings_are_finite():
    # All points equal: every medoid set ties at F = 0, all points go to one medoid, NMI = 0.
    x = torch.ones(6, 3, requires_grad=True)
    loss = build_loss("facility_location", gamma=0.5)(x, torch.tensor([0, 0, 1, 1, 2, 2]))
    loss.backward()
    assert loss.item() == pytest.approx(0.5) and torch.isfinite(x.grad).all()


def test_float32_runs_and_matches_float64(clustered):
    x, y = clustered(np.random.default_rng(3), n=24, dim=4, classes=4)
    loss = build_loss("facility_location")
    np.testing.assert_allclose(float(loss(x.float(), y)), float(loss(x, y)), rtol=1e-5)
