"""Log-ratio loss (Kim et al. CVPR 2019) on continuous labels: loop reference, gradcheck, edges."""
import math

import numpy as np
import pytest
import torch

from dml_core import build_loss


def ref_log_ratio(x, y, eps, triplets=None):
    x, y = x.numpy(), y.numpy().reshape(len(y), -1)
    n = len(x)
    d = lambda a, b: math.sqrt(float(np.sum((x[a] - x[b]) ** 2)))
    dy = lambda a, b: math.sqrt(float(np.sum((y[a] - y[b]) ** 2)))
    if triplets is None:
        triplets = [(a, i, j) for a in range(n) for i in range(n) for j in range(n) if len({a, i, j}) == 3]
    # Grouped as (log-ratio of a,i) - (log-ratio of a,j): where the two are equal the term is
    # exactly 0 (any other grouping leaves rounding residue, which `nonzero` would count).
    u = lambda a, b: math.log(d(a, b) + eps) - math.log(dy(a, b) + eps)
    return [(u(a, i) - u(a, j)) ** 2 for a, i, j in triplets]


def data(seed, n=9, dim=3, label_dim=None):
    rng = np.random.default_rng(seed)
    x = torch.tensor(rng.normal(size=(n, dim)))
    shape = (n,) if label_dim is None else (n, label_dim)
    return x, torch.tensor(rng.uniform(0, 10, size=shape))


@pytest.mark.parametrize("reduction", ["mean", "nonzero", "sum"])
@pytest.mark.parametrize("label_dim", [None, 1, 3])
@pytest.mark.parametrize("seed", range(3))
def test_matches_loop_reference(seed, label_dim, reduction, reduce):
    x, y = data(seed, label_dim=label_dim)
    got = build_loss("log_ratio", reduction=reduction)(x, y)
    np.testing.assert_allclose(float(got), reduce(ref_log_ratio(x, y, 1e-6), reduction), rtol=1e-9)


def test_eps_is_inside_each_log(reduce):
    x, y = data(0, n=6)
    for eps in (1e-3, 0.5):
        np.testing.assert_allclose(float(build_loss("log_ratio", eps=eps)(x, y)), reduce(ref_log_ratio(x, y, eps), "mean"), rtol=1e-9)


def test_closed_form_equals_the_dense_triplet_tensor_at_a_larger_batch():
    # The O(B^2) identity against the [B, B, B] tensor built explicitly (B = 40: 59,280 triplets).
    x, y = data(5, n=40, dim=6, label_dim=2)
    d = torch.cdist(x, x)
    dy = torch.cdist(y, y)
    u = torch.log(d + 1e-6) - torch.log(dy + 1e-6)
    t = (u[:, :, None] - u[:, None, :]) ** 2
    idx = torch.arange(40)
    distinct = (idx[:, None, None] != idx[None, :, None]) & (idx[:, None, None] != idx[None, None, :]) & (idx[None, :, None] != idx[None, None, :])
    np.testing.assert_allclose(float(build_loss("log_ratio")(x, y)), float(t[distinct].mean()), rtol=1e-9)


def test_nonzero_counts_exact_ties(reduce):
    # Integer grid embeddings and integer-valued labels: many equal log-ratios (zero terms).
    rng = np.random.default_rng(3)
    x = torch.tensor(rng.integers(0, 2, size=(8, 2)).astype(np.float64))
    y = torch.tensor(rng.integers(0, 3, size=8).astype(np.float64))
    for reduction in ("nonzero", "mean", "sum"):
        got = float(build_loss("log_ratio", reduction=reduction)(x, y))
        np.testing.assert_allclose(got, reduce(ref_log_ratio(x, y, 1e-6), reduction), rtol=1e-9)


def test_with_triplet_indices(reduce):
    x, y = data(1, n=8)
    rng = np.random.default_rng(0)
    trip = [tuple(rng.choice(8, 3, replace=False)) for _ in range(20)]
    idx = tuple(torch.tensor(c, dtype=torch.int64) for c in zip(*trip))
    np.testing.assert_allclose(float(build_loss("log_ratio")(x, y, idx)), reduce(ref_log_ratio(x, y, 1e-6, triplets=trip), "mean"), rtol=1e-9)
    with pytest.raises(ValueError, match="triplet indices"):
        build_loss("log_ratio")(x, y, (idx[0], idx[1], idx[0], idx[2]))


def test_zero_when_distances_are_proportional_to_label_distances():
    y = torch.tensor([0.0, 1.0, 3.0, 7.0, 12.0], dtype=torch.float64)
    x = torch.stack([y * 2.5, torch.zeros(5, dtype=torch.float64)], 1)
    assert float(build_loss("log_ratio", eps=1e-12)(x, y)) == pytest.approx(0.0, abs=1e-15)


@pytest.mark.parametrize("label_dim", [None, 2])
def test_gradcheck(label_dim):
    x, y = data(2, n=6, dim=3, label_dim=label_dim)
    loss = build_loss("log_ratio")
    assert torch.autograd.gradcheck(lambda e: loss(e, y), (x.requires_grad_(),))


def test_duplicates_and_zero_distances_are_finite(reduce):
    x = torch.tensor([[0.0, 0.0], [0.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 2.0]], requires_grad=True)
    y = torch.tensor([1.0, 1.0, 2.0, 3.0, 3.0])  # duplicate labels: d_y = 0 too
    loss = build_loss("log_ratio")(x, y)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(x.grad).all()
    np.testing.assert_allclose(loss.item(), reduce(ref_log_ratio(x.detach().double(), y.double(), 1e-6), "mean"), rtol=1e-5)


def test_float32_close_labels_keep_their_ratio(reduce):
    # Labels near 1e4 differing by 1e-2: the |a|^2 + |b|^2 - 2ab expansion in float32 would
    # lose these distances entirely; the loss computes them from differences in float64.
    x, y = data(4, n=6)
    y = 1e4 + y / 1000
    np.testing.assert_allclose(float(build_loss("log_ratio")(x.float(), y.float())), reduce(ref_log_ratio(x, y.float().double(), 1e-6), "mean"), rtol=1e-4)


def test_fewer_than_three_samples_is_zero_with_zero_gradient(zero_with_zero_gradient):
    zero_with_zero_gradient(build_loss("log_ratio"), [0.5, 1.5])


def test_class_labels_are_refused():
    loss = build_loss("log_ratio")
    x = torch.randn(4, 3)
    with pytest.raises(ValueError, match="labels must be a floating tensor of continuous labels"):
        loss(x, torch.tensor([0, 1, 1, 2]))
    with pytest.raises(ValueError, match=r"labels must have shape \[4\] or \[4, L\]"):
        loss(x, torch.rand(3))
    with pytest.raises(ValueError, match="labels contains NaN"):
        loss(x, torch.tensor([0.0, float("nan"), 1.0, 2.0]))
