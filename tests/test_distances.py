import numpy as np
import pytest
import torch

from dml_core import build_distance
from dml_core.distances import DISTANCES


def ref_matrix(fn, x, y):
    return np.array([[fn(a, b) for b in y] for a in x])


REFS = {
    "euclidean": lambda a, b: np.sqrt(np.sum((a - b) ** 2)),
    "squared_euclidean": lambda a, b: np.sum((a - b) ** 2),
    "cosine": lambda a, b: 1 - np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)),
    "dot": lambda a, b: -np.dot(a, b),
}


@pytest.mark.parametrize("name", sorted(REFS))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_loop_reference(name, seed):
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=(7, 5)), rng.normal(size=(4, 5))
    d = build_distance(name)
    np.testing.assert_allclose(d(torch.tensor(x)).numpy(), ref_matrix(REFS[name], x, x), atol=1e-10)
    np.testing.assert_allclose(d(torch.tensor(x), torch.tensor(y)).numpy(), ref_matrix(REFS[name], x, y), atol=1e-10)
    # float32 is the default dtype: same values to float32 precision.
    np.testing.assert_allclose(d(torch.tensor(x, dtype=torch.float32)).numpy(), ref_matrix(REFS[name], x, x), atol=1e-4)


@pytest.mark.parametrize("name", sorted(REFS))
def test_gradcheck(name):
    rng = np.random.default_rng(3)
    x = torch.tensor(rng.normal(size=(5, 3)), requires_grad=True)
    y = torch.tensor(rng.normal(size=(4, 3)), requires_grad=True)
    d = build_distance(name)
    assert torch.autograd.gradcheck(lambda a: d(a), (x,))
    assert torch.autograd.gradcheck(lambda a, b: d(a, b), (x, y))
    # one side only: the other needs no gradient
    assert torch.autograd.gradcheck(lambda a: d(a, y.detach()), (x,))
    assert torch.autograd.gradcheck(lambda b: d(x.detach(), b), (y,))


@pytest.mark.parametrize("name", ["euclidean", "squared_euclidean", "cosine"])
def test_duplicates_give_zero_distance_and_finite_gradient(name):
    x = torch.tensor([[1.0, 2.0], [1.0, 2.0], [0.5, -1.0]], dtype=torch.float64, requires_grad=True)
    d = build_distance(name)(x)
    assert (torch.diag(d) == 0).all()
    assert abs(d[0, 1].item()) < 1e-12 and abs(d[1, 0].item()) < 1e-12
    d.sum().backward()
    assert torch.isfinite(x.grad).all()


def test_euclidean_gradient_is_zero_at_zero_distance():
    x = torch.zeros(3, 4, requires_grad=True)
    build_distance("euclidean")(x).sum().backward()
    assert torch.equal(x.grad, torch.zeros(3, 4))


def test_cosine_of_zero_vector_is_one_and_finite():
    x = torch.tensor([[0.0, 0.0], [1.0, 0.0]], requires_grad=True)
    d = build_distance("cosine")(x)
    assert d[0, 1] == 1 and d[0, 0] == 1 and d[1, 1] == 0
    d.sum().backward()
    assert torch.isfinite(x.grad).all()


def mahalanobis_ref(data, shrinkage):
    cov = np.cov(data, rowvar=False)
    p = cov.shape[0]
    cov = (1 - shrinkage) * cov + shrinkage * np.trace(cov) / p * np.eye(p)
    inv = np.linalg.inv(cov)
    return lambda a, b: np.sqrt((a - b) @ inv @ (a - b))


@pytest.mark.parametrize("shrinkage", [0.0, 0.3])
def test_mahalanobis_matches_reference(shrinkage):
    rng = np.random.default_rng(4)
    data = rng.normal(size=(50, 4)) @ rng.normal(size=(4, 4))
    x, y = rng.normal(size=(6, 4)), rng.normal(size=(3, 4))
    d = build_distance("mahalanobis", data=data, shrinkage=shrinkage)
    ref = mahalanobis_ref(data, shrinkage)
    np.testing.assert_allclose(d(torch.tensor(x)).numpy(), ref_matrix(ref, x, x), atol=1e-8)
    np.testing.assert_allclose(d(torch.tensor(x), torch.tensor(y)).numpy(), ref_matrix(ref, x, y), atol=1e-8)
    assert torch.autograd.gradcheck(lambda a: d(a), (torch.tensor(x, requires_grad=True),))


def test_mahalanobis_ledoit_wolf_matches_sklearn():
    from sklearn.covariance import LedoitWolf

    rng = np.random.default_rng(5)
    data = rng.normal(size=(20, 8))
    d = build_distance("mahalanobis", data=data, shrinkage="ledoit_wolf")
    np.testing.assert_allclose(d.covariance.numpy(), LedoitWolf().fit(data).covariance_, atol=1e-10)


def test_mahalanobis_singular_covariance_is_refused_without_shrinkage():
    rng = np.random.default_rng(6)
    data = rng.normal(size=(5, 10))  # fewer samples than dimensions
    with pytest.raises(ValueError, match="singular.*shrinkage"):
        build_distance("mahalanobis", data=data)
    collinear = np.repeat(rng.normal(size=(30, 1)), 3, axis=1)
    with pytest.raises(ValueError, match="singular"):
        build_distance("mahalanobis", data=collinear)
    d = build_distance("mahalanobis", data=data, shrinkage=0.5)
    assert torch.isfinite(d(torch.tensor(data))).all()


def test_mahalanobis_bad_input():
    with pytest.raises(ValueError, match="data"):
        build_distance("mahalanobis")
    with pytest.raises(ValueError, match="shrinkage"):
        build_distance("mahalanobis", data=np.eye(3), shrinkage=2.0)
    d = build_distance("mahalanobis", data=np.random.default_rng(0).normal(size=(10, 3)))
    with pytest.raises(ValueError, match="dimension"):
        d(torch.zeros(2, 4, dtype=torch.float64))


def test_unknown_name_lists_known_names():
    with pytest.raises(ValueError) as e:
        build_distance("manhattan")
    assert "'manhattan'" in str(e.value)
    for name in DISTANCES.names():
        assert name in str(e.value)


def test_unknown_option_is_named():
    with pytest.raises(ValueError, match="'p'"):
        build_distance("euclidean", p=3)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_input_is_refused(bad):
    x = torch.zeros(3, 2)
    x[1, 1] = bad
    with pytest.raises(ValueError, match="x contains NaN"):
        build_distance("euclidean")(x)
    with pytest.raises(ValueError, match="y contains NaN"):
        build_distance("euclidean")(torch.zeros(3, 2), x)


def test_shape_errors_name_the_argument():
    d = build_distance("euclidean")
    with pytest.raises(ValueError, match="x must have shape"):
        d(torch.zeros(3))
    with pytest.raises(ValueError, match="y has dimension"):
        d(torch.zeros(3, 2), torch.zeros(3, 4))


# -- span: how far apart two values of a distance can lie -----------------------------------------
@pytest.mark.parametrize("name, unit, span", [
    ("euclidean", True, 2.0), ("squared_euclidean", True, 4.0), ("cosine", True, 2.0), ("cosine", False, 2.0),
    ("dot", True, 2.0), ("euclidean", False, None), ("squared_euclidean", False, None), ("dot", False, None),
])
def test_a_distance_names_its_span_and_no_pair_exceeds_it(name, unit, span):
    d = build_distance(name)
    assert d.span(unit) == span
    if span is None:
        return
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 8, generator=g, dtype=torch.float64)
    if unit:
        x = x / x.norm(dim=1, keepdim=True)
    else:
        x = x * torch.rand(64, 1, generator=g, dtype=torch.float64) * 5
    # Antipodes reach the span: the first row and its negation.
    both = torch.cat([x, -x[:1]])
    values = d(both)
    assert (values.max() - values.min()).item() <= span + 1e-9
    far = d(x[:1], -x[:1]).item() - d(x[:1], x[:1]).item()
    assert far == pytest.approx(span, abs=1e-9)
