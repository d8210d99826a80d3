"""kernels/row_sort.py (NumPy SIMD sort, packed value-and-column keys) against torch's
stable sort and a plain loop."""
import numpy as np
import pytest
import torch

from dml_core.kernels.row_sort import reference_sort_rows_with_order, sort_rows, sort_rows_with_order


def matrices(kind, dtype):
    rng = np.random.default_rng(0)
    x = {
        "random": rng.normal(size=(7, 300)),
        # Few distinct values, signed zeros and infinities: every tie-break matters.
        "ties": rng.choice([-1.5, -0.0, 0.0, 0.5, 2.0, np.inf, -np.inf], size=(6, 129)),
        "duplicates": np.repeat(rng.normal(size=(4, 1)), 50, axis=1),
        "zeros": np.zeros((3, 5)),
        "one_column": rng.normal(size=(5, 1)),
        "empty": np.zeros((0, 4)),
        "no_columns": np.zeros((3, 0)),
    }[kind]
    return torch.tensor(x, dtype=dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("kind", ["random", "ties", "duplicates", "zeros", "one_column", "empty", "no_columns"])
def test_sorts_match_the_reference(kind, dtype):
    x = matrices(kind, dtype)
    values, order = sort_rows_with_order(x)
    ref_values, ref_order = reference_sort_rows_with_order(x)
    assert torch.equal(order, ref_order)
    assert torch.equal(values, ref_values) and values.dtype == dtype
    assert torch.equal(sort_rows(x), ref_values)


def test_tensors_that_need_grad_take_torchs_path():
    x = torch.randn(4, 9, requires_grad=True)
    torch.testing.assert_close(sort_rows(x), reference_sort_rows_with_order(x)[0])


def tied_matrix(rng, rows, cols, dtype):
    # Few distinct values, both signs, signed zeros and infinities: every tie-break matters.
    x = rng.integers(-3, 4, size=(rows, cols)).astype(np.float64) / 2
    x[rng.random((rows, cols)) < 0.1] = np.inf
    x[rng.random((rows, cols)) < 0.05] = -np.inf
    x[rng.random((rows, cols)) < 0.1] = -0.0
    return torch.tensor(x, dtype=dtype)


def loop_stable_sort(x):
    values, order = [], []
    for row in x.tolist():
        cols = sorted(range(len(row)), key=lambda j: (row[j], j))
        order.append(cols)
        values.append([row[j] for j in cols])
    return values, order


@pytest.mark.parametrize("shape", [(1, 1), (3, 1), (5, 7), (4, 1025), (2, 64)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("seed", range(3))
def test_sort_rows_with_order_is_a_stable_sort(shape, dtype, seed):
    x = tied_matrix(np.random.default_rng(seed), *shape, dtype)
    values, order = sort_rows_with_order(x)
    ref_values, ref_order = loop_stable_sort(x)
    assert order.dtype == torch.int64 and values.dtype == dtype
    assert order.tolist() == ref_order
    assert values.tolist() == ref_values


def test_sort_rows_with_order_on_empty_and_random_floats():
    assert [t.shape for t in sort_rows_with_order(torch.empty(0, 4))] == [(0, 4), (0, 4)]
    x = torch.randn(50, 300)
    values, order = sort_rows_with_order(x)
    ref_values, ref_order = x.sort(dim=1, stable=True)
    assert torch.equal(order, ref_order) and torch.equal(values, ref_values)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sort_rows_matches_a_loop(dtype):
    x = tied_matrix(np.random.default_rng(4), 6, 33, dtype)
    assert sort_rows(x).tolist() == loop_stable_sort(x)[0]
