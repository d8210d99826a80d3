import itertools

import numpy as np
import pytest
import torch

from dml_core import build_distance, build_miner
from dml_core.miners import MINERS


def sqdist(x):
    x = x.numpy()
    n = len(x)
    return np.array([[np.sum((x[i] - x[j]) ** 2) for j in range(n)] for i in range(n)])


def ref_all_triplets(y):
    n = len(y)
    return [(a, p, q) for a in range(n) for p in range(n) for q in range(n) if a != p and y[a] == y[p] and y[q] != y[a]]


def ref_region(x, y, region, margin):
    d = sqdist(x)
    out = []
    for a, p, n in ref_all_triplets(y.numpy()):
        if region == "easy" and d[a, n] >= d[a, p] + margin:
            out.append((a, p, n))
        elif region == "semihard" and d[a, p] < d[a, n] < d[a, p] + margin:
            out.append((a, p, n))
        elif region == "hard" and d[a, n] <= d[a, p]:
            out.append((a, p, n))
    return out


def anchors(y):
    """(a, its positives, its negatives) for every row a of labels y, in index order."""
    for a in range(len(y)):
        yield a, [p for p in range(len(y)) if p != a and y[p] == y[a]], [n for n in range(len(y)) if y[n] != y[a]]


def ref_batch_semihard(x, y):
    d, y = sqdist(x), y.numpy()
    out = []
    for a, pos, negs in anchors(y):
        if not negs:
            continue
        for p in pos:
            best = None
            for n in negs:  # strictly smaller wins: ties go to the lower index
                if d[a, n] > d[a, p] and (best is None or d[a, n] < d[a, best]):
                    best = n
            if best is None:
                for n in negs:
                    if best is None or d[a, n] > d[a, best]:
                        best = n
            out.append((a, p, best))
    return out


def ref_batch_hard(x, y):
    d, y = sqdist(x), y.numpy()
    out = []
    for a, pos, neg in anchors(y):
        if pos and neg:
            p = max(pos, key=lambda j: (d[a, j], -j))
            n = min(neg, key=lambda j: (d[a, j], j))
            out.append((a, p, n))
    return out


def as_set(t):
    return sorted(zip(*[v.tolist() for v in t]))


@pytest.fixture
def inputs(clustered, grid_points):
    """inputs(kind, seed) -> (x, y)."""

    def make(kind, seed):
        rng = np.random.default_rng(seed)
        if kind == "random":
            return clustered(rng)
        if kind == "grid":  # ties and duplicates
            return grid_points(rng)
        if kind == "one_class":
            x, _ = clustered(rng, n=6)
            return x, torch.zeros(6, dtype=torch.int64)
        if kind == "singletons":
            x, _ = clustered(rng, n=6)
            return x, torch.arange(6)
        if kind == "singletons_and_pair":
            x, _ = clustered(rng, n=6)
            return x, torch.tensor([0, 1, 2, 3, 4, 4])
        raise KeyError(kind)

    return make


KINDS = ["random", "grid", "one_class", "singletons", "singletons_and_pair"]
SEEDS = [0, 1, 2]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("seed", SEEDS)
def test_all_triplets(kind, seed, inputs):
    x, y = inputs(kind, seed)
    got = build_miner("all_triplets")(x, y)
    assert all(t.dtype == torch.int64 for t in got)
    assert as_set(got) == sorted(ref_all_triplets(y.numpy()))


@pytest.mark.parametrize("region", ["easy", "semihard", "hard"])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("seed", SEEDS)
def test_margin_regions(region, kind, seed, inputs):
    x, y = inputs(kind, seed)
    margin = 1.0 if kind == "grid" else 0.7  # integer distances on the grid: ties at the margin too
    got = build_miner(region, margin=margin)(x, y)
    assert as_set(got) == sorted(ref_region(x, y, region, margin))


@pytest.mark.parametrize("kind", ["random", "grid"])
@pytest.mark.parametrize("seed", range(6))
def test_regions_partition_all_triplets(kind, seed, inputs):
    x, y = inputs(kind, seed)
    parts = [as_set(build_miner(r, margin=1.0)(x, y)) for r in ("easy", "semihard", "hard")]
    union = sorted(itertools.chain(*parts))
    assert union == as_set(build_miner("all_triplets")(x, y))  # covers, and no triplet twice
    assert len(set(union)) == len(union)
    assert sum(len(p) > 0 for p in parts) >= 2  # a split, not everything in one part


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("seed", SEEDS)
def test_batch_semihard(kind, seed, inputs):
    x, y = inputs(kind, seed)
    assert as_set(build_miner("batch_semihard")(x, y)) == sorted(ref_batch_semihard(x, y))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("seed", SEEDS)
def test_batch_hard(kind, seed, inputs):
    x, y = inputs(kind, seed)
    assert as_set(build_miner("batch_hard")(x, y)) == sorted(ref_batch_hard(x, y))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("seed", SEEDS)
def test_all_pairs(kind, seed, inputs):
    x, y = inputs(kind, seed)
    yn = y.numpy()
    a1, p, a2, n = build_miner("all_pairs")(x, y)
    pos = sorted((i, j) for i in range(len(yn)) for j in range(len(yn)) if i != j and yn[i] == yn[j])
    neg = sorted((i, j) for i in range(len(yn)) for j in range(len(yn)) if yn[i] != yn[j])
    assert as_set((a1, p)) == pos and as_set((a2, n)) == neg


def test_miner_distance_option_changes_the_geometry(clustered):
    rng = np.random.default_rng(0)
    x, y = clustered(rng, n=16)
    d = torch.cdist(x, x)  # plain Euclidean, independently of ours
    a, p, n = build_miner("hard", distance="euclidean")(x, y)
    assert (d[a, n] <= d[a, p] + 1e-12).all()
    a, p, n = build_miner("semihard", margin=0.5, distance="euclidean")(x, y)
    assert ((d[a, n] > d[a, p]) & (d[a, n] < d[a, p] + 0.5)).all()


@pytest.mark.parametrize("seed", SEEDS)
def test_random_one_negative_per_positive_pair(seed, inputs):
    x, y = inputs("random", seed)
    miner = build_miner("random", seed=seed)
    a, p, n = miner(x, y)
    valid = set(ref_all_triplets(y.numpy()))
    assert all(t in valid for t in as_set((a, p, n)))
    pairs = sorted({(i, j) for i, j, _ in valid})
    assert as_set((a, p)) == pairs
    again = build_miner("random", seed=seed)(x, y)
    assert as_set(again) == as_set((a, p, n))  # seeded
    assert as_set(miner(x, y)) != as_set((a, p, n))  # a fresh draw on the next batch


def test_random_num_triplets_is_uniform_over_all_triplets(inputs):
    x, y = inputs("singletons_and_pair", 0)
    y = torch.tensor([0, 0, 0, 1, 1, 2])  # anchors of class 0 have 3 negatives, class 1 four
    valid = ref_all_triplets(y.numpy())
    a, p, n = build_miner("random", num_triplets=20000, seed=1)(x, y)
    counts = {t: 0 for t in valid}
    for t in as_set((a, p, n)):
        counts[t] += 1
    assert len(a) == 20000 and sum(counts.values()) == 20000
    expected = 20000 / len(valid)
    # Each of the 14 triplets is a binomial count; 5 sigma bounds do not fail by chance.
    sigma = np.sqrt(expected)
    assert all(abs(c - expected) < 5 * sigma for c in counts.values()), counts


def ref_distance_weights(x, y, dim, cutoff=0.5, nz=1.4):
    d = np.sqrt(sqdist(x))
    w = np.zeros_like(d)
    for a in range(len(y)):
        for n in range(len(y)):
            if y[n] != y[a] and d[a, n] < nz:
                dc = max(d[a, n], cutoff)
                w[a, n] = dc ** (2 - dim) * (1 - 0.25 * dc**2) ** (-(dim - 3) / 2)
        if w[a].sum() == 0:
            w[a] = [1.0 if y[n] != y[a] else 0.0 for n in range(len(y))]
        w[a] /= max(w[a].sum(), 1e-300)
    return w


@pytest.mark.parametrize("seed", SEEDS)
def test_distance_weighted_weights_and_samples(seed, clustered):
    rng = np.random.default_rng(seed)
    x, y = clustered(rng, n=12, dim=5, spread=0.5)
    x = torch.nn.functional.normalize(x, dim=1)
    miner = build_miner("distance_weighted", seed=seed)
    w = miner.weights(torch.cdist(x, x), y[:, None] != y[None, :], 5).numpy()
    ref = ref_distance_weights(x, y.numpy(), 5)
    w = w / np.maximum(w.sum(1, keepdims=True), 1e-300)
    np.testing.assert_allclose(w, ref, atol=1e-10)
    a, p, n = miner(x, y)
    valid = set(ref_all_triplets(y.numpy()))
    assert all(t in valid for t in as_set((a, p, n)))
    assert as_set((a, p)) == sorted({(i, j) for i, j, _ in valid})
    assert all(ref[i, j] > 0 for i, j in zip(a.tolist(), n.tolist()))


@pytest.mark.parametrize("name", sorted(MINERS.names()))
def test_empty_results_have_the_right_type(name):
    x = torch.randn(4, 3)
    y = torch.zeros(4, dtype=torch.int64)  # one class: no negatives anywhere
    out = build_miner(name)(x, y)
    if name == "all_pairs":
        assert len(out[2]) == 0 and len(out[0]) == 12
    else:
        assert len(out) == 3 and all(len(t) == 0 and t.dtype == torch.int64 for t in out)


def test_max_triplets_refuses_a_huge_output():
    x, y = torch.randn(40, 3), torch.arange(40) % 2
    with pytest.raises(ValueError, match="max_triplets"):
        build_miner("all_triplets", max_triplets=100)(x, y)


@pytest.mark.parametrize("name", sorted(MINERS.names()))
def test_bad_input_names_the_argument(name, refuses_bad_batches):
    refuses_bad_batches(build_miner(name))


def test_a_margin_must_be_positive():
    with pytest.raises(ValueError, match="margin must be > 0"):
        build_miner("easy", margin=0.0)


def sq_matrix(x):
    return build_distance("squared_euclidean")(x).numpy()


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("points", ["grid", "clustered"])
def test_float32_mining_matches_a_loop_on_its_own_matrix(seed, points, clustered, grid_points):
    # float32 takes the packed-key sort; the reference reads the same float32 matrix.
    make = grid_points if points == "grid" else clustered
    x, y = make(np.random.default_rng(seed))
    x = x.float()
    d, yn, n = sq_matrix(x), y.numpy(), len(y)
    triplets = [(a, p, q) for a in range(n) for p in range(n) for q in range(n) if a != p and yn[a] == yn[p] and yn[q] != yn[a]]
    m = 0.5 if points == "grid" else 0.2
    regions = {
        "hard": [t for t in triplets if d[t[0], t[2]] <= d[t[0], t[1]]],
        "semihard": [t for t in triplets if d[t[0], t[1]] < d[t[0], t[2]] < d[t[0], t[1]] + np.float32(m)],
        "easy": [t for t in triplets if d[t[0], t[2]] >= d[t[0], t[1]] + np.float32(m)],
    }
    for region, ref in regions.items():
        got = build_miner(region, margin=m)(x, y)
        assert sorted(zip(*[t.tolist() for t in got])) == sorted(ref), region
    semi = []
    for a, p in sorted({(a, p) for a, p, _ in triplets}):
        negs = [q for q in range(n) if yn[q] != yn[a]]
        farther = [q for q in negs if d[a, q] > d[a, p]]
        pick = min(farther, key=lambda q: (d[a, q], q)) if farther else min(negs, key=lambda q: (-d[a, q], q))
        semi.append((a, p, pick))
    got = build_miner("batch_semihard")(x, y)
    assert sorted(zip(*[t.tolist() for t in got])) == semi
