"""Contrastive and triplet losses against loop references, with gradients and edge cases; the
input and option checks every loss shares."""
import numpy as np
import pytest
import torch

from dml_core import build_loss, build_miner
from dml_core.losses import LOSSES

DIST = {
    "euclidean": lambda a, b: np.sqrt(np.sum((a - b) ** 2)),
    "squared_euclidean": lambda a, b: np.sum((a - b) ** 2),
    "cosine": lambda a, b: 1 - a @ b / (np.linalg.norm(a) * np.linalg.norm(b)),
}


def ref_contrastive(x, y, pos_margin, neg_margin, distance, squared, pairs=None):
    x, y = x.numpy(), y.numpy()
    q = 2 if squared else 1
    n = len(y)
    if pairs is None:
        pos = [(i, j) for i in range(n) for j in range(n) if i != j and y[i] == y[j]]
        neg = [(i, j) for i in range(n) for j in range(n) if y[i] != y[j]]
    else:
        pos, neg = pairs
    terms = [max(DIST[distance](x[i], x[j]) - pos_margin, 0) ** q for i, j in pos]
    terms += [max(neg_margin - DIST[distance](x[i], x[j]), 0) ** q for i, j in neg]
    return terms


def ref_triplet(x, y, margin, distance, triplets=None):
    x, y = x.numpy(), y.numpy()
    n = len(y)
    if triplets is None:
        triplets = [(a, p, q) for a in range(n) for p in range(n) for q in range(n) if a != p and y[a] == y[p] and y[q] != y[a]]
    d = DIST[distance]
    return [max(d(x[a], x[p]) - d(x[a], x[q]) + margin, 0) for a, p, q in triplets]


REDUCTIONS = ["mean", "nonzero", "sum"]


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("distance", sorted(DIST))
@pytest.mark.parametrize("squared", [True, False])
@pytest.mark.parametrize("pos_margin", [0.0, 0.5])
def test_contrastive_all_pairs(rng, reduction, distance, squared, pos_margin, clustered, reduce):
    x, y = clustered(rng)
    opts = dict(pos_margin=pos_margin, neg_margin=2.0 if distance != "cosine" else 0.8, distance=distance, squared=squared)
    got = build_loss("contrastive", reduction=reduction, **opts)(x, y)
    assert got.dtype == torch.float64
    np.testing.assert_allclose(float(got), reduce(ref_contrastive(x, y, **opts), reduction), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("miner", ["all_pairs", "batch_semihard", "semihard"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("squared", [True, False])
def test_contrastive_with_mined_pairs(rng, miner, reduction, squared, clustered, reduce):
    # semihard triplets repeat their (a, p) and (a, n) pairs: each repeat is its own term.
    x, y = clustered(rng)
    idx = build_miner(miner)(x, y)
    a1, p, a2, n = idx if len(idx) == 4 else (idx[0], idx[1], idx[0], idx[2])
    pairs = (list(zip(a1.tolist(), p.tolist())), list(zip(a2.tolist(), n.tolist())))
    opts = dict(pos_margin=0.3, neg_margin=2.0, squared=squared)
    got = build_loss("contrastive", reduction=reduction, **opts)(x, y, idx)
    ref = reduce(ref_contrastive(x, y, 0.3, 2.0, "euclidean", squared, pairs=pairs), reduction)
    np.testing.assert_allclose(float(got), ref, rtol=1e-9)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("distance", sorted(DIST))
@pytest.mark.parametrize("margin", [0.0, 0.2, 3.0])
def test_triplet_all_triplets(rng, reduction, distance, margin, clustered, reduce):
    x, y = clustered(rng)
    got = build_loss("triplet", margin=margin, distance=distance, reduction=reduction)(x, y)
    np.testing.assert_allclose(float(got), reduce(ref_triplet(x, y, margin, distance), reduction), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_triplet_all_triplets_on_ties(seed, grid_points, reduce):
    # Integer grid: many d_an == d_ap + margin exactly, where a term is 0 and its hinge is
    # at the kink: the value must still be exact.
    x, y = grid_points(np.random.default_rng(seed))
    for reduction in ("mean", "sum"):
        got = build_loss("triplet", margin=1.0, reduction=reduction)(x, y)
        np.testing.assert_allclose(float(got), reduce(ref_triplet(x, y, 1.0, "squared_euclidean"), reduction), rtol=1e-12)


@pytest.mark.parametrize("miner", ["semihard", "hard", "batch_semihard", "batch_hard", "random"])
def test_triplet_with_mined_triplets(rng, miner, clustered, reduce):
    x, y = clustered(rng)
    idx = build_miner(miner)(x, y)
    trip = list(zip(*[t.tolist() for t in idx]))
    for reduction in REDUCTIONS:
        got = build_loss("triplet", reduction=reduction)(x, y, idx)
        np.testing.assert_allclose(float(got), reduce(ref_triplet(x, y, 0.2, "squared_euclidean", trip), reduction), rtol=1e-9, atol=1e-12)


def test_triplet_from_pairs_forms_every_triplet_of_the_pairs(rng, clustered):
    x, y = clustered(rng)
    idx = build_miner("all_pairs")(x, y)
    for reduction in REDUCTIONS:
        np.testing.assert_allclose(
            float(build_loss("triplet", reduction=reduction)(x, y, idx)),
            float(build_loss("triplet", reduction=reduction)(x, y)),
            rtol=1e-12,
        )


def test_all_triplets_gradient_equals_explicit_triplets(rng, clustered):
    x, y = clustered(rng, n=20)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    build_loss("triplet", margin=1.0)(x1, y).backward()
    build_loss("triplet", margin=1.0)(x2, y, build_miner("all_triplets")(x2, y)).backward()
    torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    "name,opts",
    [
        ("contrastive", dict(neg_margin=3.0)),
        ("contrastive", dict(neg_margin=3.0, squared=False, pos_margin=0.3)),
        ("contrastive", dict(neg_margin=0.8, distance="cosine")),
        ("triplet", dict(margin=1.0)),
        ("triplet", dict(margin=0.5, distance="euclidean", reduction="sum")),
    ],
)
def test_gradcheck(name, opts, clustered):
    x, y = clustered(np.random.default_rng(7), n=8, dim=3, classes=3)
    loss = build_loss(name, **opts)
    assert torch.autograd.gradcheck(lambda e: loss(e, y), (x.requires_grad_(),))
    for miner in ("batch_semihard", "semihard", "all_pairs"):
        idx = build_miner(miner)(x, y)
        assert torch.autograd.gradcheck(lambda e: loss(e, y, idx), (x,))


def test_contrastive_finite_gradient_at_zero_distance():
    x = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]], requires_grad=True)
    y = torch.tensor([0, 0, 1, 1])
    for opts in (dict(), dict(squared=False, pos_margin=0.0)):
        x.grad = None
        loss = build_loss("contrastive", **opts)(x, y)
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(x.grad).all()
    # duplicates across classes: D = 0 < neg_margin is a real, finite penalty
    x = torch.zeros(4, 2, requires_grad=True)
    loss = build_loss("contrastive")(x, y)
    loss.backward()
    assert loss.item() == pytest.approx(8 / 12) and torch.isfinite(x.grad).all()


@pytest.mark.parametrize("name", ["contrastive", "triplet"])
@pytest.mark.parametrize("labels", [[0, 0, 0, 0], [0, 1, 2, 3]], ids=["one_class", "singletons"])
def test_empty_or_partial_cases(name, labels):
    x = torch.randn(4, 3, requires_grad=True)
    y = torch.tensor(labels)
    loss = build_loss(name)(x, y)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(x.grad).all()
    if name == "triplet":  # no triplet: exactly 0, zero gradient
        assert loss.item() == 0 and torch.equal(x.grad, torch.zeros_like(x))


@pytest.mark.parametrize("name", ["contrastive", "triplet"])
def test_empty_mining_result_gives_zero_and_zero_gradient(name):
    x = torch.randn(5, 3, requires_grad=True)
    y = torch.zeros(5, dtype=torch.int64)
    idx = build_miner("batch_semihard")(x, y)
    assert len(idx[0]) == 0
    loss = build_loss(name)(x, y, idx)
    loss.backward()
    assert loss.item() == 0 and torch.equal(x.grad, torch.zeros_like(x))


def test_float32_default_and_float64_work(clustered):
    x, y = clustered(np.random.default_rng(0))
    for dtype in (torch.float32, torch.float64):
        out = build_loss("triplet")(x.to(dtype), y)
        assert out.dtype == dtype
    np.testing.assert_allclose(
        float(build_loss("triplet")(x.float(), y)), float(build_loss("triplet")(x, y)), rtol=1e-5
    )


CLASS_LOSSES = sorted(set(LOSSES.names()) - {"log_ratio"})


@pytest.mark.parametrize("name", CLASS_LOSSES)
def test_bad_input_names_the_argument(name, refuses_bad_batches):
    loss = build_loss(name)
    refuses_bad_batches(loss)
    x, y = torch.randn(5, 3), torch.tensor([0, 0, 1, 1, 2])
    with pytest.raises(ValueError, match=r"indices\[1\]"):
        loss(x, y, (torch.tensor([0]), torch.tensor([9]), torch.tensor([2])))
    with pytest.raises(ValueError, match="indices must be"):
        loss(x, y, (torch.tensor([0]),))


@pytest.mark.parametrize("name", ["facility_location", "npair"])
def test_a_loss_that_forms_its_own_tuples_refuses_a_miners_output(name):
    x, y = torch.randn(4, 3), torch.tensor([0, 0, 1, 1])
    with pytest.raises(ValueError, match=r"indices \(a miner's output\) must be None"):
        build_loss(name)(x, y, (torch.tensor([0]), torch.tensor([1]), torch.tensor([2])))


@pytest.mark.parametrize(
    "name, options, match",
    [
        ("contrastive", {"reduction": "max"}, "reduction"),
        ("contrastive", {"neg_margin": -1}, "neg_margin"),
        ("facility_location", {"gamma": -1.0}, "gamma"),
        ("facility_location", {"pam_rounds": -1}, "pam_rounds"),
        ("infonce", {"temperature": 0.0}, "temperature"),
        ("lifted_structured", {"margin": -1.0}, "margin"),
        *[("lifted_structured", {"scale": bad}, "scale") for bad in (0.0, -2.0, float("nan"), float("inf"))],
        ("log_ratio", {"eps": 0.0}, "eps"),
        ("npair", {"l2_reg": -0.1}, "l2_reg"),
        *[("npair", {"temperature": bad}, "temperature") for bad in (0.0, -0.5, float("nan"), float("inf"))],
    ],
)
def test_a_bad_option_is_refused_naming_it(name, options, match):
    with pytest.raises(ValueError, match=match):
        build_loss(name, **options)


@pytest.mark.parametrize("name,miner", [("contrastive", None), ("contrastive", "semihard"), ("triplet", None), ("triplet", "semihard")])
def test_backward_twice_through_a_retained_graph(rng, name, miner, clustered):
    # The loss hands autograd a gradient matrix it rescales in place: a retained graph
    # must still give each backward its own factor.
    x, y = clustered(rng)
    idx = build_miner(miner)(x, y) if miner else None
    loss = build_loss(name)
    x = x.requires_grad_()
    (once,) = torch.autograd.grad(loss(x, y, idx), x)
    value = loss(x, y, idx)
    (first,) = torch.autograd.grad(value, x, retain_graph=True)
    (second,) = torch.autograd.grad(3.0 * value, x, retain_graph=True)
    (third,) = torch.autograd.grad(value / 2.0, x)
    torch.testing.assert_close(first, once, rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(second, 3.0 * once, rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(third, once / 2.0, rtol=1e-12, atol=1e-15)


# -- the triplet margin's ceiling -----------------------------------------------------------------
def _triplet_grad(margin: float, distance: str, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    x = x.clone().requires_grad_(True)
    build_loss("triplet", margin=margin, distance=distance, reduction="nonzero")(x, labels).backward()
    return x.grad


@pytest.mark.parametrize("distance, span", [("euclidean", 2.0), ("squared_euclidean", 4.0), ("cosine", 2.0)])
def test_past_its_ceiling_the_triplet_margin_changes_no_gradient(distance, span):
    assert build_loss("triplet", distance=distance).margin_ceiling(unit=True) == span
    g = torch.Generator().manual_seed(3)
    x = torch.nn.functional.normalize(torch.randn(24, 6, generator=g, dtype=torch.float64), dim=1)
    labels = torch.arange(24) % 6
    at, past = _triplet_grad(span, distance, x, labels), _triplet_grad(span * 3, distance, x, labels)
    torch.testing.assert_close(at, past)
    below = _triplet_grad(span / 20, distance, x, labels)
    assert not torch.allclose(at, below)  # under the ceiling the margin matters


def test_off_the_unit_sphere_a_euclidean_triplet_margin_has_no_ceiling():
    assert build_loss("triplet", distance="euclidean").margin_ceiling(unit=False) is None
    assert build_loss("triplet", distance="cosine").margin_ceiling(unit=False) == 2.0
