"""kernels/huge_pages.py: a huge-page-advised buffer is an ordinary writable torch.empty buffer."""
import pytest
import torch

from dml_core.kernels.huge_pages import empty_large


@pytest.mark.parametrize(
    "shape, dtype",
    [
        ((0,), torch.int64),
        ((3,), torch.int64),
        ((3, 4), torch.float32),
        ((2, 1 << 22), torch.float64),
        ((1 << 23,), torch.int64),
        ((3, 5_000_000), torch.int64),
    ],
)
def test_empty_large_is_an_ordinary_writable_buffer(shape, dtype):
    # Small buffers (no advice) and ones over the 16 MiB threshold (advised); the advice
    # changes only how the pages are faulted in, so torch.empty is the reference.
    ours, ref = empty_large(shape, dtype, torch.device("cpu")), torch.empty(shape, dtype=dtype)
    assert (ours.shape, ours.dtype, ours.device, ours.is_contiguous()) == (ref.shape, ref.dtype, ref.device, True)
    ours.fill_(7)
    assert bool((ours == 7).all())
    assert int(ours.sum()) == 7 * ours.numel()
