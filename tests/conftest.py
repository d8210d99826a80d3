import os

import numpy as np
import pytest
import torch

# DML_TEST_DEVICE=cuda puts the tensors that the tests build with torch's factories
# (torch.tensor, zeros, randn, arange...) on that device, so the loss, miner and kernel
# tests check the same code on a GPU (benchmarks/device_check.py). Tensors made from
# NumPy arrays (torch.from_numpy) and CPU generators stay where they are.
TEST_DEVICE = os.environ.get("DML_TEST_DEVICE") or None


@pytest.fixture(autouse=True)
def _test_device():
    if TEST_DEVICE is None:
        yield
        return
    torch.set_default_device(TEST_DEVICE)
    try:
        yield
    finally:
        torch.set_default_device(None)


@pytest.fixture(params=[0, 1, 2], ids=lambda s: f"seed{s}")
def rng(request):
    return np.random.default_rng(request.param)


def clustered(rng, n=14, dim=3, classes=4, spread=1.0):
    """Random float64 embeddings with class structure, and their int64 labels."""
    labels = rng.integers(0, classes, n)
    centers = rng.normal(size=(classes, dim)) * 2
    x = centers[labels] + spread * rng.normal(size=(n, dim))
    return torch.tensor(x, dtype=torch.float64), torch.tensor(labels, dtype=torch.int64)


def grid_points(rng, n=12, dim=2, classes=3):
    """Embeddings on a small integer grid: many exactly tied distances and duplicates, all
    exactly representable so the matrix expansion has no rounding error."""
    x = rng.integers(0, 3, size=(n, dim)).astype(np.float64)
    labels = rng.integers(0, classes, n)
    return torch.tensor(x), torch.tensor(labels, dtype=torch.int64)


def edge_batches(rng, *, one_sample: bool = False) -> dict:
    """The kernel tests' batches: random clusters, one class, singletons, and a grid with
    duplicates, ties and zero distances (and a single sample, where a kernel takes one)."""
    x, y = clustered(rng)
    g, gy = grid_points(rng)
    out = {
        "random": (x, y),
        "one_class": (x, torch.zeros_like(y)),
        "singletons": (x, torch.arange(len(y))),
        "grid": (g, gy),
    }
    if one_sample:
        out["one_sample"] = (x[:1], y[:1])
    return out

