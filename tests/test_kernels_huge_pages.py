"""kernels/huge_pages.py: a huge-page-advised buffer is an ordinary torch.empty buffer."""
import pytest
import torch

from dml_core.kernels.huge_pages import empty_large, reference_empty_large


@pytest.mark.parametrize(
    "shape, dtype",
    [((0,), torch.int64), ((3, 4), torch.float32), ((2, 1 << 22), torch.float64), ((1 << 23,), torch.int64)],
)
def test_empty_large_is_an_empty_buffer(shape, dtype):
    # Small buffers (no advice) and ones over the 16 MiB threshold (advised).
    ours, ref = empty_large(shape, dtype, torch.device("cpu")), reference_empty_large(shape, dtype, torch.device("cpu"))
    assert (ours.shape, ours.dtype, ours.device, ours.is_contiguous()) == (ref.shape, ref.dtype, ref.device, True)
    ours.fill_(7)
    assert bool((ours == 7).all())


@pytest.mark.parametrize("shape", [(3,), (3, 5_000_000)])
def test_empty_large_is_an_ordinary_writable_tensor(shape):
    t = empty_large(shape, torch.int64, torch.device("cpu"))
    assert t.shape == shape and t.dtype == torch.int64 and t.is_contiguous()
    t.fill_(7)
    assert int(t.sum()) == 7 * t.numel()
