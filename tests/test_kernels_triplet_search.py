"""kernels/triplet_search.py against its references: pairs of a mask, threshold counts,
range expansion and triplets from masks, on random and edge cases."""
import pytest
import torch

from dml_core.kernels import triplet_search
from dml_core.kernels.triplet_search import (
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
