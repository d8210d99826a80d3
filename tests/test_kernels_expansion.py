"""kernels/expansion.py (the BLAS expansion with hand-written backward) against the
difference form through autograd: values, first and second derivatives."""
import pytest
import torch

from dml_core.kernels.expansion import (
    euclidean_matrix,
    reference_euclidean,
    reference_squared_euclidean,
    squared_euclidean_matrix,
)

KERNELS = {"squared": (squared_euclidean_matrix, reference_squared_euclidean), "plain": (euclidean_matrix, reference_euclidean)}


@pytest.fixture
def inputs(rng, clustered, grid_points):
    """inputs(kind) -> (x, y, same): random, self-comparison, duplicates, one row, zero vectors."""

    def make(kind):
        x, _ = clustered(rng, n=9, dim=4)
        g, _ = grid_points(rng, n=9)  # duplicates: zero distances off the diagonal
        return {
            "random": (x, x[:5] + 0.5, False),
            "self": (x, x, True),
            "duplicates": (g, g, True),
            "one_row": (x[:1], x[:1], True),
            "zero_vectors": (torch.zeros(3, 4, dtype=torch.float64), x[:2], False),
        }[kind]

    return make


@pytest.mark.parametrize("name", sorted(KERNELS))
@pytest.mark.parametrize("kind", ["random", "self", "duplicates", "one_row", "zero_vectors"])
def test_values_and_gradients_match_the_reference(inputs, name, kind):
    kernel, reference = KERNELS[name]
    x, y, same = inputs(kind)
    weight = torch.randn(len(x), len(y), dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    grads = []
    for fn in (lambda a, b: kernel(a, a if same else b, same), reference):
        a, b = x.clone().requires_grad_(), y.clone().requires_grad_()
        d = fn(a, a if same else b)
        (d * weight).sum().backward()
        grads.append((d.detach(), a.grad, None if same else b.grad))
    (d1, ga1, gb1), (d2, ga2, gb2) = grads
    torch.testing.assert_close(d1, d2, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(ga1, ga2, rtol=1e-9, atol=1e-9)
    if not same:
        torch.testing.assert_close(gb1, gb2, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", sorted(KERNELS))
@pytest.mark.parametrize("same", [True, False])
def test_gradcheck_and_gradgradcheck(rng, name, same, clustered):
    kernel = KERNELS[name][0]
    x, _ = clustered(rng, n=6, dim=3)
    a, b = x.clone().requires_grad_(), (x[:4] + 0.3).requires_grad_()
    fn = (lambda u: kernel(u, u, True)) if same else (lambda u, v: kernel(u, v, False))
    args = (a,) if same else (a, b)
    assert torch.autograd.gradcheck(fn, args)
    assert torch.autograd.gradgradcheck(fn, args)
