"""Lifted structured loss (smooth eq. 4 with a scale, and hard eq. 3) against a loop reference, PML, gradcheck."""
import numpy as np
import pytest
import torch
from pytorch_metric_learning.distances import LpDistance
from pytorch_metric_learning.losses import LiftedStructureLoss

from dml_core import build_loss, build_miner


def ref_lifted(x, y, margin, smooth, pairs=None, scale=1.0):
    """Loops over positive pairs i < j; negatives of i are all k with y_k != y_i (or the mined
    negative pairs (i, k)). Smooth: 1/scale log(sum exp(scale (margin - D)))."""
    x, y = x.numpy(), y.numpy()
    n = len(y)
    d = lambda a, b: float(np.sqrt(np.sum((x[a] - x[b]) ** 2)))
    if pairs is None:
        pos = {(i, j) for i in range(n) for j in range(i + 1, n) if y[i] == y[j]}
        negs = {i: [k for k in range(n) if y[k] != y[i]] for i in range(n)}
    else:
        mined_pos, mined_neg = pairs
        pos = {(min(a, b), max(a, b)) for a, b in mined_pos}
        negs = {i: sorted({k for a, k in mined_neg if a == i}) for i in range(n)}  # a set: repeats count once
    terms = []
    for i, j in sorted(pos):
        scores = [margin - d(i, k) for k in negs[i]] + [margin - d(j, l) for l in negs[j]]
        if not scores:
            terms.append(0.0)
            continue
        if smooth:
            scores = [scale * s for s in scores]
            m = max(scores)
            neg_part = (m + np.log(sum(np.exp(s - m) for s in scores))) / scale
        else:
            neg_part = max(scores)
        terms.append(max(d(i, j) + neg_part, 0.0) ** 2 / 2)
    return terms


@pytest.mark.parametrize("reduction", ["mean", "nonzero", "sum"])
@pytest.mark.parametrize("smooth", [True, False])
@pytest.mark.parametrize("margin", [0.0, 1.0, 4.0])
def test_matches_loop_reference(rng, smooth, margin, reduction, clustered, reduce):
    x, y = clustered(rng, n=16, dim=4, classes=4)
    got = build_loss("lifted_structured", margin=margin, smooth=smooth, reduction=reduction)(x, y)
    assert got.dtype == torch.float64
    np.testing.assert_allclose(float(got), reduce(ref_lifted(x, y, margin, smooth), reduction), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("reduction", ["mean", "nonzero", "sum"])
@pytest.mark.parametrize("scale", [0.25, 1.0, 3.0, 20.0])
@pytest.mark.parametrize("margin", [0.0, 1.0, 4.0])
def test_smooth_scale_matches_loop_reference(rng, margin, scale, reduction, clustered, reduce):
    x, y = clustered(rng, n=16, dim=4, classes=4)
    got = build_loss("lifted_structured", margin=margin, scale=scale, reduction=reduction)(x, y)
    np.testing.assert_allclose(float(got), reduce(ref_lifted(x, y, margin, True, scale=scale), reduction), rtol=1e-9, atol=1e-12)


def test_scale_one_is_the_unscaled_loss_exactly(rng, clustered, reduce):
    x, y = clustered(rng, n=16, dim=4, classes=4)
    for smooth in (True, False):
        e1, e2 = x.clone().requires_grad_(), x.clone().requires_grad_()
        a, b = build_loss("lifted_structured", smooth=smooth)(e1, y), build_loss("lifted_structured", smooth=smooth, scale=1.0)(e2, y)
        a.backward()
        b.backward()
        assert torch.equal(a, b) and torch.equal(e1.grad, e2.grad)
        np.testing.assert_allclose(b.item(), reduce(ref_lifted(x, y, 1.0, smooth), "mean"), rtol=1e-9)


def test_scale_is_a_rescaling_of_the_embeddings(rng, clustered):
    # s J(x; margin m, scale s) = J(s x; margin s m, scale 1), and the terms are squares.
    x, y = clustered(rng, n=14, dim=3, classes=3)
    for s in (0.5, 7.0):
        got = float(build_loss("lifted_structured", margin=1.5, scale=s)(x, y))
        want = float(build_loss("lifted_structured", margin=1.5 * s)(x * s, y)) / s**2
        np.testing.assert_allclose(got, want, rtol=1e-9)


def test_large_scale_tends_to_the_hard_form(rng, clustered):
    # 1/s log(sum of n exps) lies in [max, max + log(n)/s]: decreasing in s, down to the hard form.
    x, y = clustered(rng, n=12, dim=3, classes=3)
    hard = float(build_loss("lifted_structured", smooth=False)(x, y))
    values = [float(build_loss("lifted_structured", scale=s)(x, y)) for s in (1.0, 4.0, 50.0, 1e4)]
    assert all(a >= b for a, b in zip(values, values[1:])) and values[-1] >= hard
    np.testing.assert_allclose(values[-1], hard, rtol=1e-3)


def test_unit_sphere_pairs_deactivate_with_scale(clustered):
    # The case: on the unit sphere with margin 1, scale 1 keeps every pair active (J > 0,
    # so `nonzero` equals `mean`); a large scale lets well-separated pairs reach J <= 0.
    x, y = clustered(np.random.default_rng(0), n=32, dim=8, classes=4, spread=0.3)
    x = x / x.norm(dim=1, keepdim=True)
    active = lambda s: float(build_loss("lifted_structured", scale=s, reduction="nonzero")(x, y)) / float(build_loss("lifted_structured", scale=s)(x, y))
    assert active(1.0) == pytest.approx(1.0, rel=1e-12)
    assert active(20.0) > 1.0  # nonzero divides by fewer pairs


def test_default_is_one_over_two_p_sum_of_squared_hinges():
    # Two classes of two: P = {(0, 1), (2, 3)}; with margin 0 and the points on a line the
    # value is small enough to check by hand.
    x = torch.tensor([[0.0], [1.0], [3.0], [3.5]], dtype=torch.float64)
    y = torch.tensor([0, 0, 1, 1])
    m = 2.0
    # J_01 = 1 + log(e^{2-3} + e^{2-3.5} + e^{2-2} + e^{2-2.5}); J_23 = 0.5 + log(e^{2-3} + e^{2-2} + e^{2-3.5} + e^{2-2.5})
    s = np.exp(-1) + np.exp(-1.5) + 1 + np.exp(-0.5)
    want = ((1 + np.log(s)) ** 2 + (0.5 + np.log(s)) ** 2) / 4
    assert float(build_loss("lifted_structured", margin=m)(x, y)) == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("margin", [0.5, 1.0])
def test_smooth_form_equals_pml(rng, margin, clustered):
    # PML averages [J]_+^2 / 2 over ordered positive pairs: the same as 1/(2|P|) sum over i < j.
    # (PML's default distance L2-normalises the embeddings; ours does not.)
    x, y = clustered(rng, n=20, dim=5, classes=5)
    pml = LiftedStructureLoss(neg_margin=margin, pos_margin=0, distance=LpDistance(normalize_embeddings=False))(x, y)
    ours = build_loss("lifted_structured", margin=margin)(x, y)
    np.testing.assert_allclose(float(ours), float(pml), rtol=1e-9)


def test_hard_form_is_the_limit_of_the_smooth_form(rng, clustered):
    # Scaling all distances by s: log-sum-exp / s -> max, so J_smooth(s x)/s -> J_hard(x) with margin scaled.
    x, y = clustered(rng, n=12, dim=3, classes=3)
    hard = float(build_loss("lifted_structured", margin=1.0, smooth=False)(x, y))
    s = 1e4
    smooth = float(build_loss("lifted_structured", margin=s, smooth=True)(x * s, y)) / s**2
    np.testing.assert_allclose(smooth, hard, rtol=1e-3)


@pytest.mark.parametrize("miner", ["all_pairs", "batch_semihard"])
def test_with_mined_pairs(rng, miner, clustered, reduce):
    x, y = clustered(rng, n=14)
    idx = build_miner(miner)(x, y)
    a1, p, a2, n = idx if len(idx) == 4 else (idx[0], idx[1], idx[0], idx[2])
    pairs = (list(zip(a1.tolist(), p.tolist())), list(zip(a2.tolist(), n.tolist())))
    for smooth in (True, False):
        got = build_loss("lifted_structured", smooth=smooth)(x, y, idx)
        np.testing.assert_allclose(float(got), reduce(ref_lifted(x, y, 1.0, smooth, pairs=pairs), "mean"), rtol=1e-9, atol=1e-12)
    if miner == "all_pairs":
        np.testing.assert_allclose(float(build_loss("lifted_structured")(x, y, idx)), float(build_loss("lifted_structured")(x, y)), rtol=1e-12)


@pytest.mark.parametrize("smooth, scale", [(True, 1.0), (True, 3.5), (True, 0.4), (False, 1.0)])
def test_gradcheck(smooth, scale, clustered):
    x, y = clustered(np.random.default_rng(3), n=8, dim=3, classes=3)
    loss = build_loss("lifted_structured", margin=2.0, smooth=smooth, scale=scale)
    assert torch.autograd.gradcheck(lambda e: loss(e, y), (x.requires_grad_(),))


def test_stable_at_large_distances(clustered, reduce):
    # exp(margin - D) underflows to 0 in a naive sum at D ~ 1e3: the shifted form stays exact.
    x, y = clustered(np.random.default_rng(0), n=10, dim=3, classes=3)
    x = (x * 1000).requires_grad_()
    for smooth in (True, False):
        x.grad = None
        loss = build_loss("lifted_structured", smooth=smooth)(x, y)
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(x.grad).all()
        np.testing.assert_allclose(loss.item(), reduce(ref_lifted(x.detach(), y, 1.0, smooth), "mean"), rtol=1e-9)
    # Scale 50 on those distances: exponents near -5e4 relative to 0, still exact.
    x.grad = None
    loss = build_loss("lifted_structured", scale=50.0)(x, y)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(x.grad).all()
    np.testing.assert_allclose(loss.item(), reduce(ref_lifted(x.detach(), y, 1.0, True, scale=50.0), "mean"), rtol=1e-9)


@pytest.mark.parametrize("smooth", [True, False])
def test_zero_distance_and_duplicates_give_finite_gradients(smooth, grid_points, reduce):
    x, y = grid_points(np.random.default_rng(1))
    x = x.requires_grad_()
    loss = build_loss("lifted_structured", smooth=smooth)(x, y)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(x.grad).all()
    np.testing.assert_allclose(loss.item(), reduce(ref_lifted(x.detach(), y, 1.0, smooth), "mean"), rtol=1e-9)
    z = torch.zeros(4, 2, requires_grad=True)  # every distance 0, within and across classes
    out = build_loss("lifted_structured", smooth=smooth)(z, torch.tensor([0, 0, 1, 1]))
    out.backward()
    assert torch.isfinite(out) and torch.isfinite(z.grad).all()
    if smooth:
        x.grad = None
        loss = build_loss("lifted_structured", scale=6.0)(x, y)
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(x.grad).all()
        np.testing.assert_allclose(loss.item(), reduce(ref_lifted(x.detach(), y, 1.0, True, scale=6.0), "mean"), rtol=1e-9)


@pytest.mark.parametrize("smooth, scale", [(True, 1.0), (True, 5.0), (False, 1.0)])
@pytest.mark.parametrize("labels", [[0, 0, 0, 0], [0, 1, 2, 3]], ids=["one_class", "singletons"])
def test_one_class_or_no_positive_pair_is_zero_with_zero_gradient(smooth, scale, labels, zero_with_zero_gradient):
    zero_with_zero_gradient(build_loss("lifted_structured", smooth=smooth, scale=scale), labels)


@pytest.mark.parametrize("scale", [1.0, 8.0])
def test_float32_matches_float64(scale, clustered):
    x, y = clustered(np.random.default_rng(5), n=30, dim=8, classes=6)
    loss = build_loss("lifted_structured", scale=scale)
    np.testing.assert_allclose(float(loss(x.float(), y)), float(loss(x, y)), rtol=1e-5)


def test_the_hard_form_has_no_scale():
    # Anything but 1 is refused, not silently ignored.
    with pytest.raises(ValueError, match="scale.*smooth=False"):
        build_loss("lifted_structured", smooth=False, scale=2.0)
    assert build_loss("lifted_structured", smooth=False, scale=1.0).scale == 1.0


def test_registry_reports_scale():
    from dml_core.losses import LOSSES

    assert LOSSES.options("lifted_structured") == {"margin": 1.0, "smooth": True, "scale": 1.0, "reduction": "mean"}
    assert "scale=2.0" in repr(build_loss("lifted_structured", scale=2.0))
