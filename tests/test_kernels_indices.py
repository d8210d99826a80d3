"""kernels/indices.py against its references: pair counts, pair masks, pairs to triplets."""
import pytest
import torch

from dml_core.kernels import triplet_search
from dml_core.kernels.indices import (
    check_indices,
    pair_counts,
    pair_masks,
    pairs_to_triplets,
    reference_pair_counts,
    triplets_to_pairs,
)
from dml_core.kernels.triplet_search import label_masks, reference_triplets_from_masks

EMPTY = torch.empty(0, dtype=torch.int64)


def draw(k, b=7, seed=0):
    return torch.randint(0, b, (k,), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("chunk", [1, 5, 1 << 20])
@pytest.mark.parametrize("k", [0, 1, 40, 500])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_pair_counts_match_the_reference(monkeypatch, chunk, k, dtype):
    monkeypatch.setattr(triplet_search, "CHUNK", chunk)
    rows, cols = draw(k, seed=1), draw(k, seed=2)  # repeats included
    got = pair_counts(rows, cols, (7, 7), dtype)
    assert got.dtype == dtype and torch.equal(got, reference_pair_counts(rows, cols, (7, 7), dtype))


@pytest.mark.parametrize("k", [0, 3, 60])
def test_pairs_to_triplets_and_masks(k):
    a1, p, a2, n = draw(k, seed=3), draw(k, seed=4), draw(k, seed=5), draw(k, seed=6)
    pos, neg = pair_masks(torch.zeros(7, dtype=torch.int64), (a1, p, a2, n))
    assert torch.equal(pos, reference_pair_counts(a1, p, (7, 7), torch.int64) > 0)
    assert torch.equal(neg, reference_pair_counts(a2, n, (7, 7), torch.int64) > 0)
    got = pairs_to_triplets((a1, p, a2, n), 7)
    for g, r in zip(got, reference_triplets_from_masks(pos, neg)):
        assert torch.equal(g, r)
    # Triplets give their (a, p) and (a, n) pairs.
    a1, p, a2, n = triplets_to_pairs(got)
    assert torch.equal(a1, got[0]) and torch.equal(a2, got[0]) and torch.equal(n, got[2])


def test_pair_masks_default_to_every_pair():
    y = torch.tensor([0, 0, 1, 2, 2, 2])
    assert all(torch.equal(m, r) for m, r in zip(pair_masks(y, None), label_masks(y)))


def test_check_indices():
    assert len(check_indices((EMPTY, EMPTY, EMPTY), 3)) == 3
    for bad in [(EMPTY,), (draw(2), draw(3), draw(2)), (torch.tensor([9]),) * 3, (draw(2).int(),) * 3]:
        with pytest.raises(ValueError):
            check_indices(bad, 7)
