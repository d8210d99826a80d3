"""kernels/triplet_terms.py against its plain-autograd reference: values, counts, gradients."""
import pytest
import torch

from dml_core.kernels.triplet_search import label_masks, reference_triplets_from_masks
from dml_core.kernels.indices import pairs_to_triplets
from dml_core.kernels.triplet_terms import (
    all_triplet_terms,
    indexed_triplet_terms,
    reference_triplet_terms,
    triplet_terms,
)


def squared_distances(x):
    return ((x[:, None] - x[None]) ** 2).sum(-1)


def agree(ours_fn, ref_fn, dist):
    d1, d2 = dist.clone().requires_grad_(), dist.clone().requires_grad_()
    ours, ref = ours_fn(d1), ref_fn(d2)
    assert ours[1:] == ref[1:]  # count, active
    torch.testing.assert_close(ours[0], ref[0], rtol=1e-12, atol=1e-12)
    if ref[1]:
        ours[0].backward()
        ref[0].backward()
        torch.testing.assert_close(d1.grad, d2.grad, rtol=0, atol=0)


@pytest.mark.parametrize("margin", [0.0, 0.2, 1.0])
@pytest.mark.parametrize("kind", ["random", "one_class", "singletons", "grid"])
def test_all_triplets_match_the_reference(rng, edge_batches, margin, kind):
    x, y = edge_batches(rng)[kind]
    dist = squared_distances(x)
    a, p, n = reference_triplets_from_masks(*label_masks(y))
    agree(
        lambda d: all_triplet_terms(d, labels=y, margin=margin),
        lambda d: reference_triplet_terms(d, a=a, p=p, n=n, margin=margin),
        dist,
    )


@pytest.mark.parametrize("margin", [0.0, 0.5])
@pytest.mark.parametrize("kind", ["random", "grid"])
def test_listed_triplets_match_the_reference(rng, edge_batches, margin, kind):
    x, y = edge_batches(rng)[kind]
    dist = squared_distances(x)
    gen = torch.Generator().manual_seed(0)
    # Any listed triplets, repeats included; and none at all.
    a, p, n = (torch.randint(0, len(y), (300,), generator=gen) for _ in range(3))
    agree(
        lambda d: indexed_triplet_terms(d, a=a, p=p, n=n, margin=margin),
        lambda d: reference_triplet_terms(d, a=a, p=p, n=n, margin=margin),
        dist,
    )
    none = torch.empty(0, dtype=torch.int64)
    assert indexed_triplet_terms(dist, a=none, p=none, n=none, margin=margin)[1:] == (0, 0)


@pytest.mark.parametrize("indices", ["none", "triplets", "pairs"])
@pytest.mark.parametrize("kind", ["random", "one_class", "grid"])
def test_triplet_terms_take_every_miner_output(rng, edge_batches, indices, kind):
    # None: every triplet of the batch; pairs (a1, p, a2, n): every (a, p, n) they form.
    x, y = edge_batches(rng)[kind]
    dist = squared_distances(x)
    gen = torch.Generator().manual_seed(2)
    draw = lambda: torch.randint(0, len(y), (40,), generator=gen)  # noqa: E731
    idx = {"none": None, "triplets": (draw(), draw(), draw()), "pairs": (draw(), draw(), draw(), draw())}[indices]
    if idx is None:
        a, p, n = reference_triplets_from_masks(*label_masks(y))
    else:
        a, p, n = pairs_to_triplets(idx, len(y)) if len(idx) == 4 else idx
    agree(
        lambda d: triplet_terms(d, labels=y, indices=idx, margin=0.5),
        lambda d: reference_triplet_terms(d, a=a, p=p, n=n, margin=0.5),
        dist,
    )


def test_gradcheck(rng, clustered):
    x, y = clustered(rng, n=8)
    dist = squared_distances(x).requires_grad_()
    a, p, n = reference_triplets_from_masks(*label_masks(y))
    assert torch.autograd.gradcheck(lambda d: all_triplet_terms(d, labels=y, margin=0.3)[0], (dist,))
    assert torch.autograd.gradcheck(lambda d: indexed_triplet_terms(d, a=a, p=p, n=n, margin=0.3)[0], (dist,))
    # Piecewise linear: a double backward gives the zero second derivative.
    assert torch.autograd.gradgradcheck(lambda d: all_triplet_terms(d, labels=y, margin=0.3)[0], (dist,))
