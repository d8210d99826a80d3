"""N-pair-mc loss: TF-addons' constants, a loop reference (with a temperature), PML, gradcheck and edge cases."""
import math

import numpy as np
import pytest
import torch
from pytorch_metric_learning.distances import DotProductSimilarity
from pytorch_metric_learning.losses import NPairsLoss

from dml_core import build_loss
from dml_core.losses.npair import first_two_per_class

# tensorflow_addons/losses/tests/npairs_test.py: anchors f and positives fp, 4 classes.
TFA_F = [[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]]
TFA_LOSS = 0.253856  # log(1 + 2 e^-2 + e^-4), the same for every row


def interleaved(f, fp):
    """Batch [f_0, fp_0, f_1, fp_1, ...] with labels [0, 0, 1, 1, ...]."""
    x = torch.tensor(np.stack([f, fp], 1).reshape(-1, len(f[0])), dtype=torch.float64)
    return x, torch.arange(len(f)).repeat_interleave(2)


def ref_npair(x, y, l2_reg, temperature=1.0):
    x, y = x.numpy(), y.numpy()
    seen = {}
    for i, c in enumerate(y):  # first and second sample of each class, in batch order
        seen.setdefault(int(c), []).append(i)
    pairs = [(v[0], v[1]) for _, v in sorted(seen.items()) if len(v) >= 2]
    if not pairs:
        return []
    f = np.array([x[a] for a, _ in pairs])
    fp = np.array([x[p] for _, p in pairs])
    reg = l2_reg * 0.25 * (np.mean([v @ v for v in f]) + np.mean([v @ v for v in fp]))
    terms = []
    for i in range(len(pairs)):
        s = sum(math.exp((f[i] @ fp[j] - f[i] @ fp[i]) / temperature) for j in range(len(pairs)) if j != i)
        terms.append(math.log(1 + s) + reg)
    return terms


def test_tf_addons_constants():
    x, y = interleaved(TFA_F, TFA_F)
    assert float(build_loss("npair", l2_reg=0.0)(x, y)) == pytest.approx(TFA_LOSS, abs=1e-6)
    assert float(build_loss("npair", l2_reg=0.0)(x, y)) == pytest.approx(math.log(1 + 2 * math.exp(-2) + math.exp(-4)), rel=1e-12)
    # The L2 term: 0.25 * l2_reg * (mean |f|^2 + mean |f+|^2) = 0.25 * 0.002 * (2 + 2).
    assert float(build_loss("npair")(x, y)) == pytest.approx(TFA_LOSS + 0.002, abs=1e-6)


def test_hand_computed_case_with_unused_samples():
    # Class 0 has three samples (the third is unused), class 5 one (unused), classes 2 and 7 two.
    x = torch.tensor([[1.0, 0.0], [0.0, 2.0], [0.5, 0.5], [3.0, 3.0], [2.0, 0.0], [9.0, 9.0], [0.0, 1.0], [1.0, 1.0]], dtype=torch.float64)
    y = torch.tensor([0, 2, 0, 5, 7, 0, 2, 7])
    # pairs: class 0 (0, 2), class 2 (1, 6), class 7 (4, 7)
    f = np.array([[1.0, 0.0], [0.0, 2.0], [2.0, 0.0]])
    fp = np.array([[0.5, 0.5], [0.0, 1.0], [1.0, 1.0]])
    s = f @ fp.T
    want = np.mean([np.log(np.exp(s[i]).sum()) - s[i, i] for i in range(3)])
    want += 0.1 * 0.25 * ((f * f).sum(1).mean() + (fp * fp).sum(1).mean())
    assert float(build_loss("npair", l2_reg=0.1)(x, y)) == pytest.approx(want, rel=1e-12)
    a, p = first_two_per_class(y)
    assert sorted(zip(a.tolist(), p.tolist())) == [(0, 2), (1, 6), (4, 7)]


@pytest.mark.parametrize("temperature", [0.1, 1.0, 2.5])
@pytest.mark.parametrize("reduction", ["mean", "nonzero", "sum"])
@pytest.mark.parametrize("l2_reg", [0.0, 0.002, 0.5])
def test_matches_loop_reference(rng, l2_reg, reduction, temperature, clustered, reduce):
    x, y = clustered(rng, n=20, dim=4, classes=7)
    got = build_loss("npair", l2_reg=l2_reg, temperature=temperature, reduction=reduction)(x, y)
    np.testing.assert_allclose(float(got), reduce(ref_npair(x, y, l2_reg, temperature), reduction), rtol=1e-9)


@pytest.mark.parametrize("temperature", [0.05, 0.3, 4.0])
def test_temperature_on_unit_vectors(rng, temperature, clustered, reduce):
    # The case: unit-norm embeddings give logits in [-1/t, 1/t].
    x, y = clustered(rng, n=24, dim=6, classes=8)
    x = x / x.norm(dim=1, keepdim=True)
    got = build_loss("npair", temperature=temperature)(x, y)
    np.testing.assert_allclose(float(got), reduce(ref_npair(x, y, 0.002, temperature=temperature), "mean"), rtol=1e-9)


def test_temperature_one_is_the_untempered_loss_exactly(rng, clustered):
    # s_ij = f_i.f_j+ / 1 is f_i.f_j+ bit for bit: the value and gradient of the loss as it was.
    x, y = clustered(rng, n=20, dim=4, classes=7)
    a, p = first_two_per_class(y)
    e = x.clone().requires_grad_()
    f, fp = e[a], e[p]
    sim = f @ fp.T
    old = (torch.logsumexp(sim, 1) - sim.diagonal() + 0.25 * 0.002 * ((f * f).sum(1).mean() + (fp * fp).sum(1).mean())).mean()
    (old_grad,) = torch.autograd.grad(old, e)
    e.grad = None
    new = build_loss("npair", temperature=1.0)(e, y)
    new.backward()
    assert torch.equal(new.detach(), old.detach()) and torch.equal(e.grad, old_grad)
    assert torch.equal(build_loss("npair")(x, y), new.detach())


def test_temperature_is_a_rescaling_of_the_embeddings(rng, clustered):
    # Without the L2 term, f.f+/t = (f/sqrt(t)).(f+/sqrt(t)).
    x, y = clustered(rng, n=16, dim=3, classes=5)
    for t in (0.2, 3.0):
        got = build_loss("npair", l2_reg=0.0, temperature=t)(x, y)
        want = build_loss("npair", l2_reg=0.0)(x / math.sqrt(t), y)
        np.testing.assert_allclose(float(got), float(want), rtol=1e-12)


def test_equals_pml_without_regulariser(rng, clustered):
    # PML's NPairsLoss takes, per class, the first positive pair in row-major order: the
    # same first and second samples; it has no L2 term (and normalises unless told not to).
    x, y = clustered(rng, n=24, dim=5, classes=6)
    pml = NPairsLoss(distance=DotProductSimilarity(normalize_embeddings=False))(x, y)
    np.testing.assert_allclose(float(build_loss("npair", l2_reg=0.0)(x, y)), float(pml), rtol=1e-9)


@pytest.mark.parametrize("temperature", [1.0, 0.37])
def test_gradcheck(temperature, clustered):
    x, y = clustered(np.random.default_rng(2), n=10, dim=3, classes=4)
    loss = build_loss("npair", l2_reg=0.3, temperature=temperature)
    assert torch.autograd.gradcheck(lambda e: loss(e, y), (x.requires_grad_(),))


def test_large_logits_are_stable():
    # Positives opposite their anchors at scale 30: f_i.f_j+ - f_i.f_i+ reaches 3600, where a
    # naive exp overflows; each row's loss is log(1 + 2 e^1800 + e^3600) = 3600 + O(e^-1800).
    f = np.array(TFA_F) * 30
    x, y = interleaved(f, -f)
    x = x.requires_grad_()
    loss = build_loss("npair", l2_reg=0.0)(x, y)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(x.grad).all()
    assert loss.item() == pytest.approx(3600.0, rel=1e-12)


def test_small_temperature_is_stable():
    # Unit vectors at t = 0.01: logit gaps of 100 (orthogonal) and 200 (opposite) per row, so
    # each row is log(1 + 2 e^100 + e^200) = 200 + O(e^-100).
    f = np.array(TFA_F) / math.sqrt(2)
    x, y = interleaved(f, -f)
    x = x.requires_grad_()
    loss = build_loss("npair", l2_reg=0.0, temperature=0.01)(x, y)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(x.grad).all()
    assert loss.item() == pytest.approx(200.0, rel=1e-12)


@pytest.mark.parametrize("temperature", [1.0, 0.1])
def test_duplicates_give_finite_values(temperature):
    # Every logit equal: log 3 whatever the temperature.
    x = torch.ones(6, 3, requires_grad=True)
    loss = build_loss("npair", temperature=temperature)(x, torch.tensor([0, 0, 1, 1, 2, 2]))
    loss.backward()
    assert loss.item() == pytest.approx(math.log(3) + 0.002 * 0.25 * 6) and torch.isfinite(x.grad).all()


@pytest.mark.parametrize("temperature", [1.0, 0.1])
def test_one_class_is_the_regulariser_alone(temperature):
    x = torch.randn(4, 3, dtype=torch.float64)
    loss = build_loss("npair", temperature=temperature)(x, torch.zeros(4, dtype=torch.int64))
    want = 0.002 * 0.25 * (float(x[0] @ x[0]) + float(x[1] @ x[1]))  # one pair: log(1 + 0) = 0
    assert loss.item() == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("temperature", [1.0, 0.1])
def test_no_class_with_two_samples_is_zero_with_zero_gradient(temperature, zero_with_zero_gradient):
    zero_with_zero_gradient(build_loss("npair", temperature=temperature), [0, 1, 2, 3])



def test_registry_reports_temperature():
    from dml_core.losses import LOSSES

    assert LOSSES.options("npair") == {"l2_reg": 0.002, "temperature": 1.0, "reduction": "mean"}
    assert "temperature=0.5" in repr(build_loss("npair", temperature=0.5))
