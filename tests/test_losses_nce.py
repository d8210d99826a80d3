"""Noise-contrastive estimation (L7c): logistic regression of real pairs against noise pairs."""
import math

import numpy as np
import pytest
import torch

from dml_core import build_loss, build_miner
from dml_core.kernels.infonce_terms import sample_negatives
from dml_core.kernels.triplet_search import label_masks


def sigmoid(z):
    return 1 / (1 + math.exp(-z))


def ref_nce(x, y, k, t, noise, normalizer="batch"):
    """-(sum ln h(real) + sum ln(1 - h(noise))) per real pair, averaged; h = sigmoid(s/t - ln Z_i
    - ln(k p_n)), p_n = 1 / (number of negatives of the anchor), Z_i = sum of exp(s/t) over the
    anchor's other items (1 with normalizer "none"); noise(m) -> the noise columns of pair m."""
    x, y = x.numpy(), y.numpy()
    n = len(y)
    cos = lambda a, b: float(x[a] @ x[b] / (np.linalg.norm(x[a]) * np.linalg.norm(x[b])))
    pairs = [(i, j) for i in range(n) for j in range(n) if i != j and y[i] == y[j]]
    terms = []
    for m, (i, j) in enumerate(pairs):
        p_noise = 1 / sum(y[q] != y[i] for q in range(n))
        z = sum(math.exp(cos(i, q) / t) for q in range(n) if q != i) if normalizer == "batch" else 1.0
        c = math.log(z) + math.log(k * p_noise)
        objective = math.log(sigmoid(cos(i, j) / t - c))
        objective += sum(math.log(1 - sigmoid(cos(i, q) / t - c)) for q in noise(m))
        terms.append(-objective)
    return float(np.mean(terms))


def test_every_negative_as_noise_matches_reference(rng, clustered):
    # Balanced classes and k = every negative: the noise set is fixed, no draw involved.
    x, _ = clustered(rng, n=12, dim=4, classes=3)
    y = torch.arange(3).repeat(4)
    neg_of = lambda i: [q for q in range(12) if y[q] != y[i]]
    pairs = [(i, j) for i in range(12) for j in range(12) if i != j and y[i] == y[j]]
    got = build_loss("nce", num_noise=8, temperature=0.5)(x, y)
    np.testing.assert_allclose(float(got), ref_nce(x, y, 8, 0.5, lambda m: neg_of(pairs[m][0])), rtol=1e-9)


@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("temperature", [0.1, 1.0])
def test_sampled_noise_matches_reference_given_the_draws(rng, k, temperature, clustered):
    x, y = clustered(rng, n=16, dim=4, classes=4)
    got = float(build_loss("nce", num_noise=k, temperature=temperature, seed=7)(x, y))
    pos, neg = label_masks(y)
    i, _ = pos.nonzero(as_tuple=True)
    cols = sample_negatives(neg, anchors=i, k=k, generator=torch.Generator().manual_seed(7), name="num_noise")
    np.testing.assert_allclose(got, ref_nce(x, y, k, temperature, lambda m: cols[m].tolist()), rtol=1e-9)


@pytest.mark.parametrize("normalizer", ["batch", "none"])
def test_both_normalizers_match_the_reference(rng, clustered, normalizer):
    x, y = clustered(rng, n=16, dim=4, classes=4)
    got = float(build_loss("nce", num_noise=3, temperature=0.2, seed=7, normalizer=normalizer)(x, y))
    pos, neg = label_masks(y)
    i, _ = pos.nonzero(as_tuple=True)
    cols = sample_negatives(neg, anchors=i, k=3, generator=torch.Generator().manual_seed(7), name="num_noise")
    np.testing.assert_allclose(got, ref_nce(x, y, 3, 0.2, lambda m: cols[m].tolist(), normalizer), rtol=1e-9)
    with pytest.raises(ValueError, match="normalizer must be one of batch, none"):
        build_loss("nce", normalizer="learned")


def test_the_normaliser_moves_the_boundary_above_the_noise():
    """Unnormalised, with k = 8 of 92 negatives, a pair at cosine 0.05 (t = 0.1) is already
    'real' (h > 1/2) and pulls no further; normalised over the batch, a positive is real only
    once its share of the anchor's density beats k p_n, so a barely positive cosine keeps its pull."""
    t, k = 0.1, 8
    x = torch.zeros(96, 2, dtype=torch.float64)
    angles = torch.linspace(0.5, 2.5, 92, dtype=torch.float64)  # negatives spread around
    x[:92] = torch.stack([torch.cos(angles), torch.sin(angles)], 1)
    x[92:] = torch.tensor([[1.0, 0.0], [math.cos(1.5207), math.sin(1.5207)], [1.0, 0.0], [1.0, 0.0]])
    y = torch.cat([torch.arange(92), torch.full((4,), 92)])
    pos, neg = label_masks(y)
    logits = torch.nn.functional.cosine_similarity(x[:, None], x[None], dim=2) / t
    a, b = 92, 93  # cos(a, b) = cos(1.5207) ~ 0.05
    c_none = math.log(k / 92)
    c_batch = c_none + float(torch.logsumexp(logits[a][pos[a] | neg[a]], 0))
    assert float(logits[a, b]) - c_none > 0 > float(logits[a, b]) - c_batch


def test_posterior_is_the_nce_classifier():
    # One real pair, one noise pair, p_n = 1 (one negative), k = 1: h = sigmoid(s/t).
    x = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]], dtype=torch.float64)
    y = torch.tensor([0, 0, 1])
    s01, s02, s12 = 1 / math.sqrt(2), 0.0, 1 / math.sqrt(2)
    # real pairs (0,1) and (1,0); noise for 0 is 2, for 1 is 2
    want = -(math.log(sigmoid(s01)) + math.log(1 - sigmoid(s02)) + math.log(sigmoid(s01)) + math.log(1 - sigmoid(s12))) / 2
    assert float(build_loss("nce", num_noise=1, temperature=1.0, normalizer="none")(x, y)) == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("normalizer", ["batch", "none"])
def test_gradcheck(clustered, normalizer):
    x, y = clustered(np.random.default_rng(1), n=9, dim=3, classes=3)
    loss = build_loss("nce", num_noise=2, temperature=0.5, normalizer=normalizer)

    def f(e):
        loss.generator.manual_seed(0)
        return loss(e, y)

    assert torch.autograd.gradcheck(f, (x.requires_grad_(),))


def test_seeded(clustered):
    x, y = clustered(np.random.default_rng(2), n=16, dim=3, classes=4)
    a, b = build_loss("nce", num_noise=3, seed=1), build_loss("nce", num_noise=3, seed=1)
    assert [float(a(x, y)) for _ in range(2)] == [float(b(x, y)) for _ in range(2)]


def test_too_much_noise_is_a_value_error_naming_the_option():
    x, y = torch.randn(6, 3), torch.tensor([0, 0, 1, 1, 2, 2])
    with pytest.raises(ValueError, match="num_noise=5 is larger than the 4 negatives"):
        build_loss("nce", num_noise=5)(x, y)
    for bad in (0, None, 2.0):
        with pytest.raises(ValueError, match="num_noise"):
            build_loss("nce", num_noise=bad)


@pytest.mark.parametrize("labels", [[0, 0, 0, 0], [0, 1, 2, 3]], ids=["one_class", "singletons"])
def test_nothing_to_contrast_is_zero_with_zero_gradient(labels, zero_with_zero_gradient):
    zero_with_zero_gradient(build_loss("nce", num_noise=1), labels)


def test_duplicates_and_small_temperature_are_finite():
    x = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], requires_grad=True)
    loss = build_loss("nce", num_noise=1, temperature=1e-3)(x, torch.tensor([0, 0, 1, 1]))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(x.grad).all()


def test_with_mined_pairs(rng, clustered):
    x, y = clustered(rng, n=12)
    idx = build_miner("all_pairs")(x, y)
    np.testing.assert_allclose(float(build_loss("nce", num_noise=2)(x, y, idx)), float(build_loss("nce", num_noise=2)(x, y)), rtol=1e-12)
