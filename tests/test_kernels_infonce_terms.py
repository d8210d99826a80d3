"""kernels/infonce_terms.py against its pair-by-pair references: cosine logits, the negatives
drawn per pair, InfoNCE and NCE terms (values and gradients) on the edge batches and mined
pairs, every negative or k drawn ones."""
import numpy as np
import pytest
import torch

from dml_core.kernels.indices import pair_masks
from dml_core.kernels.infonce_terms import (
    batch_log_normalizer,
    reference_batch_log_normalizer,
    cosine_logits,
    infonce_terms,
    nce_terms,
    reference_cosine_logits,
    reference_infonce_terms,
    reference_nce_terms,
    reference_sample_negatives,
    sample_negatives,
)
from dml_core.kernels.triplet_search import label_masks

KINDS = ["random", "one_class", "singletons", "grid"]


# Miner outputs: pairs (repeats, pairs (i, i)), triplets, none.
MINED = dict(none=None, pairs=(30, 30, 60, 60), triplets=(20,) * 3, empty=(0,) * 4)


def fewest_negatives(pos, neg) -> int:
    """The most negatives every anchor of a positive pair has (what k may be); 1 where no
    anchor or no negative at all leaves nothing to draw."""
    anchors = pos.nonzero(as_tuple=True)[0]
    return int(neg.sum(1)[anchors].min()) if len(anchors) and bool(neg.any()) else 1


def agree(kernel, reference, logits, seed=None, **opts):
    """Values and gradients in the logits of the kernel and the reference, the draws (if any)
    from generators seeded alike."""
    out = []
    for fn in (kernel, reference):
        d = logits.clone().requires_grad_()
        extra = {} if seed is None else {"generator": torch.Generator().manual_seed(seed)}
        terms = fn(d, **opts, **extra)
        # Distinct weights, so terms out of order show in the gradient; the zero tie gives d
        # a gradient when there is no term.
        ((terms * torch.arange(1.0, len(terms) + 1, dtype=d.dtype)).sum() + 0 * d.sum()).backward()
        out.append((terms.detach(), d.grad))
    (ours, grad), (ref, ref_grad) = out
    assert ours.shape == ref.shape
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kind", KINDS)
def test_cosine_logits_match_the_reference(rng, edge_batches, kind):
    x, _ = edge_batches(rng)[kind]
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    ours, ref = cosine_logits(x1, temperature=0.3), reference_cosine_logits(x2, temperature=0.3)
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)
    weight = torch.randn(ours.shape, dtype=x.dtype, generator=torch.Generator().manual_seed(0))
    (ours * weight).sum().backward()
    (ref * weight).sum().backward()
    # The cosine of a zero vector (on the grid) is 0 in both, with a gradient in that vector
    # that is undefined (each clamps the norm its own way); the others' gradients agree.
    rows = x.norm(dim=1) > 0
    torch.testing.assert_close(x1.grad[rows], x2.grad[rows], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("indices", ["none", "pairs", "triplets"])
@pytest.mark.parametrize("kind", KINDS)
def test_sampled_negatives_match_the_reference(rng, edge_batches, random_indices, kind, indices):
    _, y = edge_batches(rng)[kind]
    pos, neg = pair_masks(y, random_indices(len(y), **MINED)[indices])
    anchors = pos.nonzero(as_tuple=True)[0]
    k = int(neg.sum(1)[anchors].min()) if len(anchors) else 1
    if k == 0:
        with pytest.raises(ValueError, match="num_noise=1 is larger than the 0 negatives"):
            sample_negatives(neg, anchors=anchors, k=1, generator=torch.Generator(), name="num_noise")
        return
    ours = sample_negatives(neg, anchors=anchors, k=k, generator=torch.Generator().manual_seed(4), name="k")
    ref = reference_sample_negatives(neg, anchors=anchors, k=k, generator=torch.Generator().manual_seed(4))
    assert ours.dtype == torch.int64 and torch.equal(ours, ref)


def test_sample_negatives_draws_distinct_negatives_uniformly():
    y = torch.tensor([0, 0, 1, 1, 1, 2, 2, 3])
    pos, neg = label_masks(y)
    a, _ = pos.nonzero(as_tuple=True)
    gen = torch.Generator().manual_seed(0)
    counts = torch.zeros(len(y), len(y))
    for _ in range(2000):
        cols = sample_negatives(neg, anchors=a, k=3, generator=gen, name="num_negatives")
        assert neg[a[:, None], cols].all()
        assert (cols.sort(1).values.diff(dim=1) > 0).all()  # distinct within a row
        counts.index_put_((a[:, None].expand_as(cols), cols), torch.ones_like(cols, dtype=torch.float), accumulate=True)
    # Anchor 0 has one positive pair and 6 negatives: each is drawn with probability 3/6.
    freq = counts[0, 2:] / 2000
    np.testing.assert_allclose(freq.numpy(), 0.5, atol=0.05)


@pytest.mark.parametrize("drawn", [False, True])
@pytest.mark.parametrize("indices", ["none", "pairs", "triplets", "empty"])
@pytest.mark.parametrize("kind", KINDS)
def test_infonce_terms_match_the_reference(rng, edge_batches, random_indices, kind, indices, drawn):
    x, y = edge_batches(rng)[kind]
    pos, neg = pair_masks(y, random_indices(len(y), **MINED)[indices])
    k = fewest_negatives(pos, neg) if drawn else None
    if k == 0:
        with pytest.raises(ValueError, match="num_negatives"):
            infonce_terms(cosine_logits(x, temperature=0.5), pos=pos, neg=neg, num_negatives=1, generator=torch.Generator())
        return
    opts = dict(pos=pos, neg=neg, num_negatives=k)
    agree(infonce_terms, reference_infonce_terms, cosine_logits(x, temperature=0.5), seed=2 if drawn else None, **opts)


@pytest.mark.parametrize("indices", ["none", "pairs", "triplets", "empty"])
@pytest.mark.parametrize("kind", KINDS)
def test_nce_terms_match_the_reference(rng, edge_batches, random_indices, kind, indices):
    x, y = edge_batches(rng)[kind]
    pos, neg = pair_masks(y, random_indices(len(y), **MINED)[indices])
    k = fewest_negatives(pos, neg)
    if k == 0:
        with pytest.raises(ValueError, match="num_noise"):
            nce_terms(cosine_logits(x, temperature=0.5), pos=pos, neg=neg, num_noise=1, generator=torch.Generator())
        return
    agree(nce_terms, reference_nce_terms, cosine_logits(x, temperature=0.5), seed=3, pos=pos, neg=neg, num_noise=k)
    # With the batch normaliser ln Z_i (a constant per anchor here: its own test is below).
    log_z = reference_batch_log_normalizer(cosine_logits(x, temperature=0.5), pos=pos, neg=neg).detach()
    agree(nce_terms, reference_nce_terms, cosine_logits(x, temperature=0.5), seed=3, pos=pos, neg=neg, num_noise=k,
          log_z=log_z)


@pytest.mark.parametrize("indices", ["none", "pairs", "triplets", "empty"])
@pytest.mark.parametrize("kind", KINDS)
def test_the_batch_normalizer_matches_the_reference(rng, edge_batches, random_indices, kind, indices):
    x, y = edge_batches(rng)[kind]
    pos, neg = pair_masks(y, random_indices(len(y), **MINED)[indices])
    out = []
    for fn in (batch_log_normalizer, reference_batch_log_normalizer):
        d = cosine_logits(x, temperature=0.5).detach().requires_grad_()
        z = fn(d, pos=pos, neg=neg)
        ((z * torch.arange(1.0, len(z) + 1, dtype=d.dtype)).sum() + 0 * d.sum()).backward()
        out.append((z.detach(), d.grad))
    torch.testing.assert_close(out[0][0], out[1][0], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(out[0][1], out[1][1], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("k", [None, 2])
def test_gradcheck(clustered, k):
    x, y = clustered(np.random.default_rng(4), n=9, dim=3, classes=3)
    pos, neg = label_masks(y)

    def infonce(e):
        logits = cosine_logits(e, temperature=0.5)
        return infonce_terms(logits, pos=pos, neg=neg, num_negatives=k, generator=torch.Generator().manual_seed(0))

    def nce(e):
        logits = cosine_logits(e, temperature=0.5)
        return nce_terms(logits, pos=pos, neg=neg, num_noise=k or 3, generator=torch.Generator().manual_seed(0))

    assert torch.autograd.gradcheck(infonce, (x.clone().requires_grad_(),))
    assert torch.autograd.gradcheck(nce, (x.clone().requires_grad_(),))

    def nce_normalised(e):
        logits = cosine_logits(e, temperature=0.5)
        log_z = batch_log_normalizer(logits, pos=pos, neg=neg)
        return nce_terms(logits, pos=pos, neg=neg, num_noise=k or 3, generator=torch.Generator().manual_seed(0), log_z=log_z)

    assert torch.autograd.gradcheck(nce_normalised, (x.clone().requires_grad_(),))
