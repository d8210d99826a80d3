"""Contrastive and triplet losses hand autograd a precomputed dL/dD. Every sequence of
backward passes through them must give what plain autograd gives through the formula:
an upstream factor of 0, repeated backwards through a retained graph, torch.autograd.grad,
and create_graph=True (first and second derivatives)."""
import pytest
import torch
import torch.nn.functional as F

from dml_core import build_loss, build_miner


def ref_distance(x, name):
    if name == "cosine":
        xn = F.normalize(x, dim=1)
        return (1 - xn @ xn.T).masked_fill(torch.eye(len(x), dtype=torch.bool), 0.0)
    d2 = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    if name == "squared_euclidean":
        return d2
    zero = d2 == 0
    return torch.where(zero, 0.0, d2.masked_fill(zero, 1.0).sqrt())


def pair_weights(y, idx):
    """[B, B] multiplicities of the positive and negative pairs (a miner's, or all)."""
    b = len(y)
    if idx is None:
        same = y[:, None] == y[None, :]
        return (same & ~torch.eye(b, dtype=torch.bool)).double(), (~same).double()
    a1, p, a2, n = idx if len(idx) == 4 else (idx[0], idx[1], idx[0], idx[2])
    pos = torch.zeros(b, b, dtype=torch.float64).index_put_((a1, p), torch.ones(len(a1), dtype=torch.float64), accumulate=True)
    neg = torch.zeros(b, b, dtype=torch.float64).index_put_((a2, n), torch.ones(len(a2), dtype=torch.float64), accumulate=True)
    return pos, neg


def ref_contrastive(x, y, idx, pos_margin=0.0, neg_margin=1.0, distance="euclidean", squared=True):
    d = ref_distance(x, distance)
    pos, neg = pair_weights(y, idx)
    q = 2 if squared else 1
    total = (pos * torch.relu(d - pos_margin) ** q).sum() + (neg * torch.relu(neg_margin - d) ** q).sum()
    return total / (pos.sum() + neg.sum())


def ref_triplet(x, y, idx, margin=0.2, distance="squared_euclidean"):
    d = ref_distance(x, distance)
    if idx is None:
        same = y[:, None] == y[None, :]
        valid = (same & ~torch.eye(len(y), dtype=torch.bool))[:, :, None] & ~same[:, None, :]
        terms = torch.relu(d[:, :, None] - d[:, None, :] + margin)[valid]
    else:
        a, p, n = idx
        terms = torch.relu(d[a, p] - d[a, n] + margin)
    return terms.mean()


CASES = {
    "contrastive": ("contrastive", {}, None),
    "contrastive_linear": ("contrastive", {"squared": False, "pos_margin": 0.2, "neg_margin": 2.0}, None),
    "contrastive_squared_euclidean": ("contrastive", {"distance": "squared_euclidean", "neg_margin": 3.0}, None),
    "contrastive_cosine": ("contrastive", {"distance": "cosine", "neg_margin": 0.8}, None),
    "contrastive_all_pairs": ("contrastive", {"neg_margin": 2.0}, "all_pairs"),
    "contrastive_semihard": ("contrastive", {"neg_margin": 2.0}, "semihard"),
    "triplet": ("triplet", {}, None),
    "triplet_margin": ("triplet", {"margin": 1.0}, None),
    "triplet_euclidean": ("triplet", {"distance": "euclidean", "margin": 0.5}, None),
    "triplet_semihard": ("triplet", {"margin": 1.0}, "semihard"),
    "triplet_batch_hard": ("triplet", {}, "batch_hard"),
}
REFERENCES = {"contrastive": ref_contrastive, "triplet": ref_triplet}


@pytest.fixture(params=sorted(CASES))
def case(request, rng, clustered):
    """(our loss as a function of x, the plain reference, the embeddings)."""
    name, opts, miner = CASES[request.param]
    x, y = clustered(rng, n=12, dim=3, classes=3)
    idx = None if miner is None else build_miner(miner)(x, y)
    loss = build_loss(name, **opts)
    return (lambda e: loss(e, y, idx)), (lambda e: REFERENCES[name](e, y, idx, **opts)), x


def ref_grad(ref, x, factor=1.0):
    e = x.clone().requires_grad_()
    (ref(e) * factor).backward()
    return e.grad


def close(a, b):
    torch.testing.assert_close(a, b, rtol=1e-7, atol=1e-10)


def test_the_values_agree(case):
    ours, ref, x = case
    close(ours(x), ref(x))


def test_a_zero_factor_then_a_backward(case):
    # The reproduction of the bug: a loss weighted by 0, then by 1, through a retained graph.
    ours, ref, x = case
    e = x.clone().requires_grad_()
    loss = ours(e)
    (loss * 0).backward(retain_graph=True)
    assert torch.equal(e.grad, torch.zeros_like(x))
    loss.backward()
    assert bool(torch.isfinite(e.grad).all())
    close(e.grad, ref_grad(ref, x))


def test_repeated_backwards_with_different_factors(case):
    ours, ref, x = case
    e = x.clone().requires_grad_()
    loss = ours(e)
    for factor in (3.0, 0.0, -0.5, 1.0, 0.0):
        (loss * factor).backward(retain_graph=True)
    close(e.grad, ref_grad(ref, x, 3.5))


def test_autograd_grad_gives_each_call_its_own_gradient(case):
    ours, ref, x = case
    e = x.clone().requires_grad_()
    loss = ours(e)
    first = torch.autograd.grad(loss, e, retain_graph=True)[0]
    kept = first.clone()
    second = torch.autograd.grad(loss, e, grad_outputs=torch.tensor(2.0, dtype=x.dtype), retain_graph=True)[0]
    zero = torch.autograd.grad(loss * 0, e)[0]
    close(first, ref_grad(ref, x))
    close(second, ref_grad(ref, x, 2.0))
    assert torch.equal(first, kept), "a later backward changed a gradient already returned"
    assert torch.equal(zero, torch.zeros_like(x))


def test_create_graph_gives_the_first_and_second_derivatives(case):
    ours, ref, x = case
    derivatives = []
    for fn in (ours, ref):
        e = x.clone().requires_grad_()
        loss = fn(e)
        (loss * 0).backward(retain_graph=True)  # a zero-factor pass first must change nothing
        (g,) = torch.autograd.grad(loss, e, create_graph=True)
        # A gradient penalty, and a Hessian-vector product.
        (h,) = torch.autograd.grad((g * g).sum() + (g * x).sum(), e)
        derivatives.append((g.detach(), h))
    close(derivatives[0][0], derivatives[1][0])
    close(derivatives[0][1], derivatives[1][1])


def test_create_graph_after_an_in_place_backward(case):
    ours, ref, x = case
    e = x.clone().requires_grad_()
    loss = ours(e)
    (loss * 4.0).backward(retain_graph=True)
    (g,) = torch.autograd.grad(loss, e, create_graph=True)
    close(g.detach(), ref_grad(ref, x))


@pytest.mark.parametrize("name", ["contrastive", "triplet"])
def test_the_issue_reproduction(name):
    torch.manual_seed(0)
    e = torch.nn.functional.normalize(torch.randn(64, 16), dim=1).requires_grad_()
    y = torch.arange(64) % 8
    loss = build_loss(name)(e, y)
    (loss * 0).backward(retain_graph=True)
    loss.backward()
    assert bool(torch.isfinite(e.grad).all())
    expected = ref_grad(lambda v: REFERENCES[name](v, y, None), e.detach().double())
    torch.testing.assert_close(e.grad.double(), expected, rtol=1e-4, atol=1e-7)


def test_an_in_place_backward_after_create_graph_leaves_its_graph_intact(case):
    ours, ref, x = case
    e = x.clone().requires_grad_()
    loss = ours(e)
    (g,) = torch.autograd.grad(loss, e, create_graph=True)
    (loss * 3.0).backward(retain_graph=True)
    (h,) = torch.autograd.grad((g * g).sum(), e)
    r = x.clone().requires_grad_()
    (g_ref,) = torch.autograd.grad(ref(r), r, create_graph=True)
    close(h, torch.autograd.grad((g_ref * g_ref).sum(), r)[0])
