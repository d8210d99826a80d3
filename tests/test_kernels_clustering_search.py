"""kernels/clustering_search.py (the facility-location medoid search) against its references:
NMI from the contingency sums, the augmented objective, and the batched scores of every
greedy addition and every swap."""
import pytest
import torch
from sklearn.metrics import normalized_mutual_info_score

from dml_core.kernels.clustering_search import FacilitySearch, nmi, reference_nmi, reference_objective


def distances(x):
    return ((x[:, None] - x[None]) ** 2).sum(-1).sqrt()


@pytest.fixture
def batches(rng, clustered, grid_points):
    x, y = clustered(rng, n=12)
    g, gy = grid_points(rng, n=10)
    return {
        "random": (x, y),
        "one_class": (x, torch.zeros_like(y)),
        "singletons": (x, torch.arange(len(y))),
        "grid": (g, gy),  # ties, duplicates, zero distances
    }


KINDS = ["random", "one_class", "singletons", "grid"]


@pytest.mark.parametrize("kind", KINDS)
def test_nmi_matches_the_reference_and_scikit_learn(batches, kind):
    _, y = batches[kind]
    gen = torch.Generator().manual_seed(0)
    for pred in (torch.randint(0, 3, (len(y),), generator=gen), torch.zeros_like(y), y, torch.arange(len(y))):
        expected = normalized_mutual_info_score(y.numpy(), pred.numpy(), average_method="geometric")
        assert nmi(pred, y) == pytest.approx(reference_nmi(pred, y), abs=1e-12)
        assert reference_nmi(pred, y) == pytest.approx(expected, abs=1e-12)


# With tied distances the batched scores may send a tied point to another medoid than g(S)
# does, so only F (gamma = 0) is exact there; pam confirms every swap with the objective.
@pytest.mark.parametrize("kind, gamma", [(k, g) for k in KINDS for g in (0.0, 1.0, 5.0) if k != "grid" or g == 0])
def test_swap_scores_are_the_objective_of_each_swapped_set(batches, kind, gamma):
    x, y = batches[kind]
    dist = distances(x)
    search = FacilitySearch(dist, y, gamma)
    medoids = search.greedy(min(3, len(y)))
    assert search.objective(medoids) == pytest.approx(reference_objective(dist, y, medoids, gamma), abs=1e-9)
    scores, cand = search.swap_scores(medoids)
    for ci, c in enumerate(cand.tolist()):
        for slot in range(len(medoids)):
            swapped = medoids.clone()
            swapped[slot] = c
            assert float(scores[ci, slot]) == pytest.approx(reference_objective(dist, y, swapped, gamma), abs=1e-9)


@pytest.mark.parametrize("kind", KINDS)
def test_greedy_adds_the_best_point_each_step(batches, kind):
    x, y = batches[kind]
    dist = distances(x)
    chosen = FacilitySearch(dist, y, 1.0).greedy(3).tolist()
    for t in range(3):
        free = [c for c in range(len(y)) if c not in chosen[:t]]
        best = max(reference_objective(dist, y, torch.tensor(chosen[:t] + [c]), 1.0) for c in free)
        # Ties may pick another point of equal score.
        assert reference_objective(dist, y, torch.tensor(chosen[: t + 1]), 1.0) == pytest.approx(best, abs=1e-9)


def test_class_medoids_minimise_the_within_class_sum(batches):
    x, y = batches["random"]
    dist = distances(x)
    truth = FacilitySearch(dist, y, 1.0).class_medoids()
    for k, cls in enumerate(torch.unique(y).tolist()):
        members = (y == cls).nonzero().squeeze(1)
        sums = dist[members][:, members].sum(0)
        assert float(dist[members, truth[k]].sum()) == pytest.approx(float(sums.min()))
