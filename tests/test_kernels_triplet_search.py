"""kernels/triplet_search.py against its references and plain loops: pairs of a mask,
threshold counts, range expansion and triplets from masks, on random and edge cases, in any
chunking (also through the losses that chunk by its CHUNK)."""
import numpy as np
import pytest
import torch

from dml_core import build_loss, build_miner
from dml_core.kernels import triplet_search
from dml_core.kernels.triplet_search import (
    SortedNegatives,
    count_below,
    expand_ranges,
    label_masks,
    mask_pairs,
    reference_count_below,
    reference_expand_ranges,
    reference_triplets_from_masks,
    sort_negatives,
    triplets_from_masks,
)


@pytest.fixture
def batches(rng, edge_batches):
    return edge_batches(rng, one_sample=True)


KINDS = ["random", "one_class", "singletons", "grid", "one_sample"]


def squared(x):
    return ((x[:, None] - x[None]) ** 2).sum(-1)


def same(got, ref):
    assert len(got) == len(ref)
    for g, r in zip(got, ref):
        assert g.dtype == torch.int64 and torch.equal(g, r)


@pytest.mark.parametrize("kind", KINDS)
def test_mask_pairs_and_triplets_from_masks(batches, kind):
    _, y = batches[kind]
    pos, neg = label_masks(y)
    for mask in (pos, neg, torch.zeros(0, 3, dtype=torch.bool)):
        same(mask_pairs(mask), mask.nonzero(as_tuple=True))
    same(triplets_from_masks(pos, neg), reference_triplets_from_masks(pos, neg))


@pytest.mark.parametrize("inclusive", [True, False])
@pytest.mark.parametrize("kind", KINDS)
def test_count_below(batches, kind, inclusive):
    x, y = batches[kind]
    dist = squared(x)
    pos, neg = label_masks(y)
    a, p = mask_pairs(pos)
    # Thresholds at the positives' distances (ties with negatives on the grid) and off them.
    for thresholds in (dist[a, p], dist[a, p] + 0.5):
        got = count_below(sort_negatives(dist, neg), a, thresholds, inclusive=inclusive)
        assert torch.equal(got, reference_count_below(dist, neg, a, thresholds, inclusive=inclusive))


@pytest.mark.parametrize("chunk", [1, 7, 1 << 20])
def test_expand_ranges(monkeypatch, chunk):
    monkeypatch.setattr(triplet_search, "CHUNK", chunk)
    gen = torch.Generator().manual_seed(0)
    b = 9
    order = torch.stack([torch.randperm(b, generator=gen) for _ in range(b)])
    a = torch.sort(torch.randint(0, b, (20,), generator=gen)).values
    p = torch.randint(0, b, (20,), generator=gen)
    lo = torch.randint(0, b, (20,), generator=gen)
    hi = torch.randint(0, b + 1, (20,), generator=gen)  # some empty and reversed ranges
    same(expand_ranges(a, p, order, lo, hi), reference_expand_ranges(a, p, order, lo, hi))
    empty = torch.empty(0, dtype=torch.int64)
    same(expand_ranges(empty, empty, order, empty, empty), reference_expand_ranges(empty, empty, order, empty, empty))
    # Every range empty: an empty mining result.
    same(expand_ranges(a, p, order, hi, hi), reference_expand_ranges(a, p, order, hi, hi))


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


@pytest.mark.parametrize("shape", [(1, 1), (5, 7), (64, 33), (0, 4), (4, 0)])
@pytest.mark.parametrize("density", [0.0, 0.3, 1.0])
def test_mask_pairs_lists_the_true_entries_row_major(shape, density):
    mask = torch.tensor(np.random.default_rng(sum(shape)).random(shape) < density, dtype=torch.bool)
    rows, cols = mask_pairs(mask)
    ref = [(i, j) for i in range(shape[0]) for j in range(shape[1]) if mask[i, j]]
    assert rows.dtype == cols.dtype == torch.int64
    assert list(zip(rows.tolist(), cols.tolist())) == ref
