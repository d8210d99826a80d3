"""kernels/known_gradient.py: a value with a precomputed dL/dD behaves as autograd through
the plain function it stands for, in every sequence of backward passes."""
import pytest
import torch

from dml_core.kernels.known_gradient import with_gradient

WEIGHT = torch.randn(5, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))


def linear(d):
    return (WEIGHT * d).sum()


def quadratic(d):
    return (WEIGHT * torch.relu(d - 0.5) ** 2).sum()


def known(fn, curved):
    """fn's value with its gradient computed by hand, as a loss kernel does."""

    def apply(d):
        with torch.no_grad():
            grad = WEIGHT.clone() if not curved else 2 * WEIGHT * torch.relu(d - 0.5)
            value = fn(d)
        return with_gradient(d, value, grad, fn if curved else None)

    return apply


CASES = {"linear": (linear, False), "quadratic": (quadratic, True)}


def dist():
    return torch.rand(5, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1)).requires_grad_()


@pytest.mark.parametrize("case", sorted(CASES))
def test_gradcheck_and_gradgradcheck(case):
    fn, curved = CASES[case]
    assert torch.autograd.gradcheck(known(fn, curved), (dist(),))
    assert torch.autograd.gradgradcheck(known(fn, curved), (dist(),))


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("factors", [(0.0, 1.0), (1.0, 1.0), (2.0, 0.0, -3.0), (0.0, 0.0), (0.5, 0.0, 0.0, 4.0)])
def test_backward_sequences_match_the_reference(case, factors):
    fn, curved = CASES[case]
    grads = []
    # The reference is fn itself through autograd.
    for f in (known(fn, curved), fn):
        d = dist()
        value = f(d)
        for factor in factors:
            (value * factor).backward(retain_graph=True)
        grads.append(d.grad)
    torch.testing.assert_close(grads[0], grads[1], equal_nan=True)


def test_without_grad_the_value_passes_through():
    d = dist().detach()
    value = torch.tensor(3.0, dtype=torch.float64)
    assert with_gradient(d, value, torch.zeros_like(d)) is value
