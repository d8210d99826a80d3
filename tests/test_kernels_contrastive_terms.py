"""kernels/contrastive_terms.py against its plain-autograd reference: values, counts, gradients."""
import pytest
import torch

from dml_core.kernels.contrastive_terms import contrastive_terms, pair_weights, reference_contrastive_terms


def euclidean(x):
    return ((x[:, None] - x[None]) ** 2).sum(-1).sqrt()


# Miner outputs: many pairs (the dense path), few (the gathered path), triplets, none.
MINED = dict(none=None, many_pairs=(400, 400, 500, 500), few_pairs=(5, 5, 7, 7), triplets=(60,) * 3, empty=(0,) * 4)


@pytest.mark.parametrize("squared", [True, False])
@pytest.mark.parametrize("pos_margin", [0.0, 0.5])
@pytest.mark.parametrize("indices", ["none", "many_pairs", "few_pairs", "triplets", "empty"])
@pytest.mark.parametrize("kind", ["random", "one_class", "singletons", "grid"])
def test_contrastive_terms_match_the_reference(rng, edge_batches, random_indices, squared, pos_margin, indices, kind):
    x, y = edge_batches(rng)[kind]
    idx = random_indices(len(y), **MINED)[indices]
    d1, d2 = euclidean(x).requires_grad_(), euclidean(x).requires_grad_()
    margins = dict(pos_margin=pos_margin, neg_margin=2.0, squared=squared)
    ours = contrastive_terms(d1, labels=y, indices=idx, **margins)
    pos_weight, neg_weight = pair_weights(d2, labels=y, indices=idx)
    ref = reference_contrastive_terms(d2, pos_weight=pos_weight, neg_weight=neg_weight, **margins)
    assert ours[1:] == ref[1:]
    torch.testing.assert_close(ours[0], ref[0], rtol=1e-12, atol=1e-12)
    ours[0].backward()
    ref[0].backward()
    torch.testing.assert_close(d1.grad, d2.grad, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("squared", [True, False])
@pytest.mark.parametrize("indices", ["none", "many_pairs", "few_pairs"])
def test_gradcheck(rng, squared, indices, clustered, random_indices):
    x, y = clustered(rng, n=8)
    idx = random_indices(len(y), **MINED)[indices]
    dist = euclidean(x).requires_grad_()
    fn = lambda d: contrastive_terms(d, labels=y, indices=idx, pos_margin=0.3, neg_margin=2.0, squared=squared)[0]  # noqa: E731
    assert torch.autograd.gradcheck(fn, (dist,))
    assert torch.autograd.gradgradcheck(fn, (dist,))
