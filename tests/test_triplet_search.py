"""The pieces under the miners: row sorting, threshold counting, range expansion, buffers."""
import numpy as np
import pytest
import torch

from dml_core import build_distance, build_loss, build_miner
from dml_core.kernels import triplet_search
from dml_core.kernels.huge_pages import empty_large
from dml_core.kernels.row_sort import sort_rows, sort_rows_with_order
from dml_core.kernels.triplet_search import SortedNegatives, count_below, expand_ranges, mask_pairs


def tied_matrix(rng, rows, cols, dtype):
    # Few distinct values, both signs, signed zeros and infinities: every tie-break matters.
    x = rng.integers(-3, 4, size=(rows, cols)).astype(np.float64) / 2
    x[rng.random((rows, cols)) < 0.1] = np.inf
    x[rng.random((rows, cols)) < 0.05] = -np.inf
    x[rng.random((rows, cols)) < 0.1] = -0.0
    return torch.tensor(x, dtype=dtype)


def loop_stable_sort(x):
    values, order = [], []
    for row in x.tolist():
        cols = sorted(range(len(row)), key=lambda j: (row[j], j))
        order.append(cols)
        values.append([row[j] for j in cols])
    return values, order


@pytest.mark.parametrize("shape", [(1, 1), (3, 1), (5, 7), (4, 1025), (2, 64)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("seed", range(3))
def test_sort_rows_with_order_is_a_stable_sort(shape, dtype, seed):
    x = tied_matrix(np.random.default_rng(seed), *shape, dtype)
    values, order = sort_rows_with_order(x)
    ref_values, ref_order = loop_stable_sort(x)
    assert order.dtype == torch.int64 and values.dtype == dtype
    assert order.tolist() == ref_order
    assert values.tolist() == ref_values


def test_sort_rows_with_order_on_empty_and_random_floats():
    assert [t.shape for t in sort_rows_with_order(torch.empty(0, 4))] == [(0, 4), (0, 4)]
    x = torch.randn(50, 300)
    values, order = sort_rows_with_order(x)
    ref_values, ref_order = x.sort(dim=1, stable=True)
    assert torch.equal(order, ref_order) and torch.equal(values, ref_values)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sort_rows_matches_a_loop(dtype):
    x = tied_matrix(np.random.default_rng(4), 6, 33, dtype)
    assert sort_rows(x).tolist() == loop_stable_sort(x)[0]


@pytest.mark.parametrize("inclusive", [True, False])
@pytest.mark.parametrize("seed", range(3))
def test_count_below_matches_a_loop(inclusive, seed):
    rng = np.random.default_rng(seed)
    n_rows, width = 7, 9
    values = torch.tensor(np.sort(rng.integers(0, 5, size=(n_rows, width)).astype(np.float64), axis=1))
    sorted_neg = SortedNegatives(values, torch.zeros(n_rows, width, dtype=torch.int64), torch.full((n_rows,), width))
    # Rows ascending with repeats; row 3 has no pair at all; thresholds tie with the values.
    rows = torch.tensor(sorted(rng.choice([0, 1, 2, 4, 5, 6], size=20).tolist()))
    thresholds = torch.tensor(rng.integers(-1, 6, size=20).astype(np.float64))
    got = count_below(sorted_neg, rows, thresholds, inclusive=inclusive)
    ref = [
        sum(1 for v in values[r].tolist() if (v <= t if inclusive else v < t))
        for r, t in zip(rows.tolist(), thresholds.tolist())
    ]
    assert got.tolist() == ref
    assert count_below(sorted_neg, rows[:0], thresholds[:0], inclusive=inclusive).tolist() == []


@pytest.mark.parametrize("chunk", [1, 3, 1 << 20])
def test_expand_ranges_is_the_same_in_any_chunking(monkeypatch, chunk):
    monkeypatch.setattr(triplet_search, "CHUNK", chunk)
    rng = np.random.default_rng(0)
    order = torch.tensor(np.argsort(rng.random((5, 6)), axis=1))
    a = torch.tensor([0, 0, 1, 3, 3, 4])
    p = torch.tensor([1, 2, 0, 4, 2, 3])
    lo = torch.tensor([0, 2, 1, 0, 6, 5])
    hi = torch.tensor([3, 2, 6, 1, 6, 2])  # empty and reversed ranges give nothing
    got = list(zip(*[t.tolist() for t in expand_ranges(a, p, order, lo, hi)]))
    ref = [(ai, pi, int(order[ai, k])) for ai, pi, l, h in zip(a.tolist(), p.tolist(), lo.tolist(), hi.tolist()) for k in range(l, h)]
    assert got == ref
    with pytest.raises(ValueError, match="max_triplets=2"):
        expand_ranges(a, p, order, lo, hi, max_triplets=2)


@pytest.mark.parametrize("chunk", [1, 5])
@pytest.mark.parametrize("miner", ["semihard", "all_triplets"])
def test_losses_are_the_same_in_any_chunking(monkeypatch, chunk, miner, clustered):
    x, y = clustered(np.random.default_rng(1), n=16)
    idx = build_miner(miner)(x, y)
    for name in ("triplet", "contrastive"):
        for reduction in ("mean", "nonzero"):
            loss = build_loss(name, reduction=reduction)
            x1 = x.clone().requires_grad_()
            whole = loss(x1, y, idx)
            whole.backward()
            with monkeypatch.context() as m:
                m.setattr(triplet_search, "CHUNK", chunk)
                x2 = x.clone().requires_grad_()
                chunked = loss(x2, y, idx)
                chunked.backward()
            torch.testing.assert_close(chunked, whole, rtol=1e-12, atol=0)
            torch.testing.assert_close(x2.grad, x1.grad, rtol=1e-12, atol=1e-15)


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


@pytest.mark.parametrize("shape", [(3,), (3, 5_000_000)])
def test_empty_large_is_an_ordinary_writable_tensor(shape):
    t = empty_large(shape, torch.int64, torch.device("cpu"))
    assert t.shape == shape and t.dtype == torch.int64 and t.is_contiguous()
    t.fill_(7)
    assert int(t.sum()) == 7 * t.numel()


@pytest.mark.parametrize("shape", [(1, 1), (5, 7), (64, 33), (0, 4), (4, 0)])
@pytest.mark.parametrize("density", [0.0, 0.3, 1.0])
def test_mask_pairs_lists_the_true_entries_row_major(shape, density):
    mask = torch.tensor(np.random.default_rng(sum(shape)).random(shape) < density, dtype=torch.bool)
    rows, cols = mask_pairs(mask)
    ref = [(i, j) for i in range(shape[0]) for j in range(shape[1]) if mask[i, j]]
    assert rows.dtype == cols.dtype == torch.int64
    assert list(zip(rows.tolist(), cols.tolist())) == ref
