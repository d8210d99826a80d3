"""kernels/row_sort.py (NumPy SIMD sort, packed value-and-column keys) against torch's
stable sort."""
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
