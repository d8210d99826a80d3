"""InfoNCE / NT-Xent (L7a, every negative) and sampled negatives (L7b)."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from pytorch_metric_learning.losses import NTXentLoss

from dml_core import build_loss, build_miner
from dml_core.kernels.infonce_terms import sample_negatives
from dml_core.kernels.triplet_search import label_masks


def cos(a, b):
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def ref_infonce(x, y, t, negatives=None):
    """Loop over ordered positive pairs; negatives(i, pair_number) -> the columns to use."""
    x, y = x.numpy(), y.numpy()
    n = len(y)
    pairs = [(i, j) for i in range(n) for j in range(n) if i != j and y[i] == y[j]]
    terms = []
    for m, (i, j) in enumerate(pairs):
        cols = [k for k in range(n) if y[k] != y[i]] if negatives is None else negatives(m)
        pos = math.exp(cos(x[i], x[j]) / t)
        neg = sum(math.exp(cos(x[i], x[k]) / t) for k in cols)
        terms.append(-math.log(pos / (pos + neg)))
    return terms


@pytest.mark.parametrize("reduction", ["mean", "nonzero", "sum"])
@pytest.mark.parametrize("temperature", [0.05, 0.1, 1.0])
def test_all_negatives_match_loop_reference(rng, temperature, reduction, clustered, reduce):
    x, y = clustered(rng, n=14, dim=4, classes=4)
    got = build_loss("infonce", temperature=temperature, reduction=reduction)(x, y)
    np.testing.assert_allclose(float(got), reduce(ref_infonce(x, y, temperature), reduction), rtol=1e-9)


def test_all_negatives_equal_cross_entropy_computed_another_way(rng, clustered):
    # One cross-entropy row per positive pair (i, j): the scaled cosine row of i with itself and
    # the other positives of i removed (logit -inf), target column j.
    x, y = clustered(rng, n=16, dim=5, classes=4)
    t = 0.2
    logits = F.cosine_similarity(x[:, None, :], x[None, :, :], dim=2) / t
    same = y[:, None] == y[None, :]
    rows, targets = [], []
    for i, j in (same & ~torch.eye(len(y), dtype=torch.bool)).nonzero().tolist():
        drop = same[i].clone()
        drop[j] = False
        rows.append(logits[i].masked_fill(drop, float("-inf")))
        targets.append(j)
    want = F.cross_entropy(torch.stack(rows), torch.tensor(targets))
    np.testing.assert_allclose(float(build_loss("infonce", temperature=t)(x, y)), float(want), rtol=1e-9)


def test_equals_pml_ntxent(rng, clustered):
    x, y = clustered(rng, n=20, dim=6, classes=5)
    np.testing.assert_allclose(
        float(build_loss("infonce", temperature=0.07)(x, y)), float(NTXentLoss(temperature=0.07)(x, y)), rtol=1e-7
    )


def test_sampled_negatives_match_reference_given_the_draws(rng, clustered, reduce):
    x, y = clustered(rng, n=16, dim=4, classes=5)
    k = int(label_masks(y)[1].sum(1).min())
    k = max(1, k - 2)
    loss = build_loss("infonce", temperature=0.1, num_negatives=k, seed=3)
    got = float(loss(x, y))
    # The same draws, from a generator seeded the same way, for the same pairs in the same order.
    pos, neg = label_masks(y)
    i, _ = pos.nonzero(as_tuple=True)
    cols = sample_negatives(neg, anchors=i, k=k, generator=torch.Generator().manual_seed(3), name="num_negatives")
    np.testing.assert_allclose(got, reduce(ref_infonce(x, y, 0.1, negatives=lambda m: cols[m].tolist()), "mean"), rtol=1e-9)


def test_sampling_is_seeded_and_advances(clustered):
    x, y = clustered(np.random.default_rng(0), n=20, dim=4, classes=4)
    a = build_loss("infonce", num_negatives=2, seed=5)
    b = build_loss("infonce", num_negatives=2, seed=5)
    first = [float(a(x, y)) for _ in range(3)]
    assert first == [float(b(x, y)) for _ in range(3)]  # same seed: same sequence
    assert len(set(first)) == 3  # fresh draws on each call
    assert float(build_loss("infonce", num_negatives=2, seed=6)(x, y)) != first[0]


def test_k_equal_to_every_negative_is_the_full_softmax(clustered):
    x, y = clustered(np.random.default_rng(1), n=12, dim=3, classes=3)
    y = torch.arange(3).repeat(4)  # balanced: every anchor has 8 negatives
    full = float(build_loss("infonce")(x, y))
    assert float(build_loss("infonce", num_negatives=8)(x, y)) == pytest.approx(full, rel=1e-12)


def test_too_many_negatives_is_a_value_error_naming_the_option():
    x, y = torch.randn(6, 3), torch.tensor([0, 0, 1, 1, 2, 2])
    with pytest.raises(ValueError, match="num_negatives=5 is larger than the 4 negatives"):
        build_loss("infonce", num_negatives=5)(x, y)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="num_negatives"):
            build_loss("infonce", num_negatives=bad)


@pytest.mark.parametrize("k", [None, 3])
def test_gradcheck(k, clustered):
    x, y = clustered(np.random.default_rng(4), n=9, dim=3, classes=3)
    loss = build_loss("infonce", temperature=0.5, num_negatives=k)

    def f(e):
        loss.generator.manual_seed(0)  # the same draws on every evaluation
        return loss(e, y)

    assert torch.autograd.gradcheck(f, (x.requires_grad_(),))


def test_with_mined_pairs(rng, clustered):
    x, y = clustered(rng, n=12)
    idx = build_miner("all_pairs")(x, y)
    np.testing.assert_allclose(float(build_loss("infonce")(x, y, idx)), float(build_loss("infonce")(x, y)), rtol=1e-12)


@pytest.mark.parametrize("k", [None, 2])
def test_one_class_and_singletons_give_zero_with_zero_gradient(k, zero_with_zero_gradient):
    for labels in ([0, 0, 0, 0], [0, 1, 2, 3]):
        zero_with_zero_gradient(build_loss("infonce", num_negatives=k), labels)


def test_duplicates_and_large_logits_are_finite():
    x = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], requires_grad=True)
    y = torch.tensor([0, 0, 1, 1])  # negatives identical to the anchor, logits up to 1000
    loss = build_loss("infonce", temperature=1e-3)(x, y)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(x.grad).all()
    # pairs (0,1), (1,0): log 2; (2,3): log(1 + 2 e^1000) = 1000 + log 2; (3,2): log 3
    assert loss.item() == pytest.approx((3 * math.log(2) + 1000 + math.log(3)) / 4, rel=1e-5)
