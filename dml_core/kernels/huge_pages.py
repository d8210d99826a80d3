"""Large CPU buffers (miner outputs, [B, B] matrices) backed by transparent huge pages.

A margin miner's output at B = 1024 is about 100 MB of int64 indices, written once. Fresh
memory is faulted in page by page, and on this kind of machine (a VM: about 1-3 us per 4 KiB
fault) filling 100 MB costs 30 ms in faults alone, more than computing the indices. Asking
the kernel for 2 MiB pages on that one buffer (madvise MADV_HUGEPAGE, what torch does for
every allocation under THP_MEM_ALLOC_ENABLE=1) makes the same fill take 4 ms. Where the
call is unavailable (not Linux, THP off), the buffer is an ordinary one.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import sys

import torch

_MADV_HUGEPAGE = 14
_HUGE = 1 << 21
_MIN_BYTES = 8 * _HUGE


def _load_madvise():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        madvise = libc.madvise
    except (OSError, AttributeError):
        return None
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    madvise.restype = ctypes.c_int
    return madvise


_madvise = _load_madvise()


def empty_large(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """torch.empty, with the 2 MiB-aligned interior of a large CPU buffer advised to use
    huge pages before anything touches it. Advice only: a refusal changes nothing."""
    out = torch.empty(shape, dtype=dtype, device=device)
    if _madvise is not None and out.device.type == "cpu" and out.nbytes >= _MIN_BYTES:
        start = (out.data_ptr() + _HUGE - 1) & ~(_HUGE - 1)
        end = (out.data_ptr() + out.nbytes) & ~(_HUGE - 1)
        if end > start:
            _madvise(start, end - start, _MADV_HUGEPAGE)
    return out
