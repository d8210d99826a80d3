"""kernels/lifted_terms.py against its pair-by-pair reference: values and gradients, smooth
and hard, with a scale, on every pair of a batch and on a miner's pairs."""
import numpy as np
import pytest
import torch

from dml_core.kernels.indices import pair_masks
from dml_core.kernels.lifted_terms import lifted_terms, reference_lifted_terms

FORMS = [(True, 1.0), (True, 3.5), (True, 0.4), (False, 1.0)]


def euclidean(x):
    return ((x[:, None] - x[None]) ** 2).sum(-1).sqrt()


# Miner outputs: pairs (repeats, and pairs (i, i) the terms skip), few negatives, triplets, none.
MINED = dict(none=None, pairs=(30, 30, 40, 40), few_negatives=(30, 30, 2, 2), triplets=(20,) * 3, empty=(0,) * 4)


def both(dist, pos, neg, **opts):
    """(kernel, reference) values and their gradients in dist."""
    out = []
    for fn in (lifted_terms, reference_lifted_terms):
        d = dist.clone().requires_grad_()
        terms = fn(d, pos=pos, neg=neg, **opts)
        # Distinct weights, so terms out of order show in the gradient; the zero tie gives d
        # a gradient when there is no term.
        ((terms * torch.arange(1.0, len(terms) + 1, dtype=d.dtype)).sum() + 0 * d.sum()).backward()
        out.append((terms.detach(), d.grad))
    return out


@pytest.mark.parametrize(
    "smooth, scale, margin", [(True, 1.0, 0.0), (True, 3.5, 1.0), (True, 0.4, 4.0), (False, 1.0, 0.0), (False, 1.0, 1.0)]
)
@pytest.mark.parametrize("indices", ["none", "pairs", "few_negatives", "triplets", "empty"])
@pytest.mark.parametrize("kind", ["random", "one_class", "singletons", "grid"])
def test_lifted_terms_match_the_reference(rng, edge_batches, random_indices, smooth, scale, margin, indices, kind):
    x, y = edge_batches(rng)[kind]
    pos, neg = pair_masks(y, random_indices(len(y), **MINED)[indices])
    (ours, grad), (ref, ref_grad) = both(euclidean(x), pos, neg, margin=margin, smooth=smooth, scale=scale)
    assert ours.shape == ref.shape and ours.dtype == torch.float64
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)
    # On the grid, tied maxima make the hard form's gradient one subgradient among several.
    if smooth or kind != "grid":
        torch.testing.assert_close(grad, ref_grad, rtol=1e-10, atol=1e-12)


def test_large_distances_stay_finite_and_exact(clustered):
    # exp(margin - D) underflows in a plain sum at D ~ 1e3; the shifted log-sum-exp does not.
    x, y = clustered(np.random.default_rng(0), n=10)
    pos, neg = pair_masks(y, None)
    for smooth, scale in FORMS:
        (ours, grad), (ref, ref_grad) = both(euclidean(x * 1000), pos, neg, margin=1.0, smooth=smooth, scale=scale)
        assert torch.isfinite(ours).all() and torch.isfinite(grad).all()
        torch.testing.assert_close(ours, ref, rtol=1e-12, atol=0)
        torch.testing.assert_close(grad, ref_grad, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("smooth, scale", FORMS)
@pytest.mark.parametrize("indices", ["none", "pairs"])
def test_gradcheck(rng, clustered, random_indices, smooth, scale, indices):
    x, y = clustered(rng, n=8, classes=3)
    pos, neg = pair_masks(y, random_indices(len(y), **MINED)[indices])
    fn = lambda d: lifted_terms(d, pos=pos, neg=neg, margin=2.0, smooth=smooth, scale=scale)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (euclidean(x).requires_grad_(),))
