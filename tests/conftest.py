import numpy as np
import pytest
import torch


@pytest.fixture(params=[0, 1, 2], ids=lambda s: f"seed{s}")
def rng(request):
    return np.random.default_rng(request.param)


def _clustered(rng, n=14, dim=3, classes=4, spread=1.0):
    labels = rng.integers(0, classes, n)
    centers = rng.normal(size=(classes, dim)) * 2
    x = centers[labels] + spread * rng.normal(size=(n, dim))
    return torch.tensor(x, dtype=torch.float64), torch.tensor(labels, dtype=torch.int64)


def _grid_points(rng, n=12, dim=2, classes=3):
    # All coordinates exactly representable: the matrix expansion has no rounding error.
    x = rng.integers(0, 3, size=(n, dim)).astype(np.float64)
    labels = rng.integers(0, classes, n)
    return torch.tensor(x), torch.tensor(labels, dtype=torch.int64)


def _edge_batches(rng, *, one_sample: bool = False) -> dict:
    x, y = _clustered(rng)
    g, gy = _grid_points(rng)
    out = {
        "random": (x, y),
        "one_class": (x, torch.zeros_like(y)),
        "singletons": (x, torch.arange(len(y))),
        "grid": (g, gy),
    }
    if one_sample:
        out["one_sample"] = (x[:1], y[:1])
    return out


def _random_indices(batch_size: int, **sizes) -> dict:
    gen = torch.Generator().manual_seed(1)
    draw = lambda lengths: tuple(torch.randint(0, batch_size, (k,), generator=gen) for k in lengths)  # noqa: E731
    return {name: None if lengths is None else draw(lengths) for name, lengths in sizes.items()}


def _reduce(terms, reduction: str) -> float:
    terms = np.asarray(terms, dtype=np.float64)
    if len(terms) == 0:
        return 0.0
    if reduction == "sum":
        return terms.sum()
    if reduction == "nonzero":
        return terms.sum() / max((terms > 0).sum(), 1)
    return terms.mean()


@pytest.fixture
def clustered():
    """clustered(rng, n=14, dim=3, classes=4, spread=1.0): random float64 embeddings with
    class structure, and their int64 labels."""
    return _clustered


@pytest.fixture
def grid_points():
    """grid_points(rng, n=12, dim=2, classes=3): embeddings on a small integer grid, with many
    exactly tied distances and duplicates."""
    return _grid_points


@pytest.fixture
def edge_batches():
    """edge_batches(rng, one_sample=False) -> {kind: (x, y)}: random clusters, one class,
    singletons, and a grid with duplicates, ties and zero distances (and a single sample,
    where a kernel takes one)."""
    return _edge_batches


@pytest.fixture
def random_indices():
    """random_indices(batch_size, name=lengths, ...) -> {name: miner output}: rows drawn
    uniformly (repeats and pairs (i, i) included) from one generator seeded 1, in the order
    given; 3 lengths make triplets (a, p, n), 4 make pairs (a1, p, a2, n), None stays None."""
    return _random_indices


@pytest.fixture
def reduce():
    """reduce(terms, reduction): the API's reductions of a list of loss terms, by hand: `mean`
    over all of them, `nonzero` over those > 0, `sum`; 0 when there is none."""
    return _reduce
