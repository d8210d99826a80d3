"""kernels/bn_relu_pool.py (and its C++ source) against torch's batch norm, ReLU and max-pool.

The kernel runs on CPU tensors only, so every tensor here is made with device="cpu": under
DML_TEST_DEVICE=cuda (benchmarks/device_check.py) these tests still test the CPU kernel.
"""
import math
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from dml_core.kernels import native
from dml_core.kernels.bn_relu_pool import bn_relu_pool, reference_bn_relu_pool, supported

CPU = "cpu"
ACC = {torch.float64: torch.float64, torch.float32: torch.float32, torch.bfloat16: torch.float32}


def lib_or_fail():
    lib = native.library("bn_relu_pool")
    assert lib is not None, "the native kernel did not build: is a C++ compiler installed? (`make compiler`)"
    return lib


def make(shape, dtype, seed, scale=3.0, shift=1.0):
    gen = torch.Generator().manual_seed(seed)
    n, c, h, w = shape
    x = (torch.randn(shape, generator=gen, dtype=torch.float64, device=CPU) * scale + shift).to(dtype)
    x = x.contiguous(memory_format=torch.channels_last).requires_grad_()
    weight = torch.randn(c, generator=gen, dtype=torch.float64, device=CPU).to(ACC[dtype]).requires_grad_()
    bias = torch.randn(c, generator=gen, dtype=torch.float64, device=CPU).to(ACC[dtype]).requires_grad_()
    grad = torch.randn((n, c, h // 2, w // 2), generator=gen, dtype=torch.float64, device=CPU).to(dtype)
    return x, weight, bias, grad


def run(fn, x, weight, bias, grad):
    x, weight, bias = (t.detach().clone().requires_grad_() for t in (x, weight, bias))
    out, mean, var = fn(x, weight, bias)
    gx, gw, gb = torch.autograd.grad(out, (x, weight, bias), grad)
    return out, mean, var, gx, gw, gb


def plain_loops(x, weight, bias, eps=1e-5):
    """The block's forward as loops over channels and windows, in float64."""
    x = x.detach().double()
    n, c, h, w = x.shape
    out = torch.zeros(n, c, h // 2, w // 2, dtype=torch.float64)
    for ch in range(c):
        values = x[:, ch].reshape(-1)
        mean = sum(values.tolist()) / len(values)
        var = sum((v - mean) ** 2 for v in values.tolist()) / len(values)
        for b in range(n):
            for i in range(h // 2):
                for j in range(w // 2):
                    window = [x[b, ch, 2 * i + di, 2 * j + dj].item() for di in (0, 1) for dj in (0, 1)]
                    ys = [max(0.0, (v - mean) / math.sqrt(var + eps) * weight[ch].item() + bias[ch].item()) for v in window]
                    out[b, ch, i, j] = max(ys)
    return out


@pytest.mark.parametrize("shape", [(3, 2, 4, 6), (2, 3, 5, 7)])
def test_forward_matches_plain_loops(shape):
    lib_or_fail()
    x, weight, bias, _ = make(shape, torch.float64, seed=0)
    out = bn_relu_pool(x, weight, bias)[0]
    torch.testing.assert_close(out, plain_loops(x, weight, bias), rtol=1e-12, atol=1e-12)


# C = 16 and 32 run whole SIMD vectors of float32 (8 for float64), 20 a vector and a remainder,
# 3 the remainder path only; odd H and W leave a row and a column outside the pooled grid.
@pytest.mark.parametrize("shape", [(4, 16, 8, 8), (3, 20, 7, 9), (2, 3, 6, 4), (5, 32, 4, 4), (1, 8, 3, 2)])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
def test_matches_torch_layers(shape, dtype):
    lib_or_fail()
    args = make(shape, dtype, seed=sum(shape))
    ours = run(bn_relu_pool, *args)
    # bf16 is computed in float32 and rounded once at the end. torch's layers round y to bf16
    # before pooling, which makes ties of values float32 tells apart, and then route the
    # gradient elsewhere: the reference for bf16 is torch's layers on the same values in float32.
    x, weight, bias, grad = args
    ref = run(reference_bn_relu_pool, x.float() if dtype == torch.bfloat16 else x, weight, bias, grad.to(ACC[dtype]))
    assert ours[0].dtype == dtype and ours[0].is_contiguous(memory_format=torch.channels_last)
    assert ours[3].dtype == dtype and ours[4].dtype == ACC[dtype]
    # The output is rounded once, at the end: within an ulp of torch's (bf16: 2^-7 relative).
    tol = {torch.float64: 1e-12, torch.float32: 2e-6, torch.bfloat16: 8e-3}[dtype]
    for got, want in zip(ours, ref):
        torch.testing.assert_close(got.double(), want.double(), rtol=tol, atol=tol)


def test_gradients_in_float64():
    lib_or_fail()
    for shape, seed in (((3, 4, 6, 4), 1), ((2, 17, 5, 3), 2)):
        x, weight, bias, _ = make(shape, torch.float64, seed=seed)
        assert torch.autograd.gradcheck(lambda x, w, b: bn_relu_pool(x, w, b)[0], (x, weight, bias))


def test_argmax_follows_torch_on_ties_and_dead_windows():
    """Equal values route the gradient to the window's first (row-major) position, as torch's
    max_pool2d; a window whose maximum is cut by ReLU passes no gradient at all."""
    lib_or_fail()
    x = torch.zeros(2, 16, 4, 4, dtype=torch.float64, device=CPU)
    x[0, :, :2, :2] = 5.0             # four equal values: the first wins
    x[0, :, 2, 3] = x[0, :, 3, 2] = 7.0  # two equal values in one window
    x[1] = -3.0                         # below the mean: y < 0 after the affine map
    x = x.contiguous(memory_format=torch.channels_last).requires_grad_()
    weight = torch.ones(16, dtype=torch.float64, device=CPU, requires_grad=True)
    bias = torch.zeros(16, dtype=torch.float64, device=CPU, requires_grad=True)
    grad = torch.ones(2, 16, 2, 2, dtype=torch.float64, device=CPU)
    ours, ref = run(bn_relu_pool, x, weight, bias, grad), run(reference_bn_relu_pool, x, weight, bias, grad)
    torch.testing.assert_close(ours[3], ref[3], rtol=1e-12, atol=1e-12)
    y = F.batch_norm(x.detach(), None, None, weight.detach(), bias.detach(), training=True)
    assert (y[1] < 0).all()


def test_nan_propagates_as_in_torch():
    lib_or_fail()
    x, weight, bias, grad = make((2, 16, 4, 4), torch.float32, seed=5)
    with torch.no_grad():
        x[0, 3, 1, 1] = float("nan")
    out = bn_relu_pool(x, weight, bias)[0]
    ref = reference_bn_relu_pool(x, weight, bias)[0]
    assert torch.equal(out.isnan(), ref.isnan()) and out.isnan().any()


def test_bf16_statistics_keep_float32_accuracy():
    """A large batch far from zero: the statistics are combined in double, so the mean and
    variance of bf16 values match float64's to float32 precision."""
    lib_or_fail()
    x, weight, bias, _ = make((64, 16, 32, 32), torch.bfloat16, seed=7, scale=0.5, shift=40.0)
    _, mean, var = bn_relu_pool(x, weight, bias)
    exact = x.detach().double()
    torch.testing.assert_close(mean.double(), exact.mean(dim=(0, 2, 3)), rtol=1e-6, atol=0)
    torch.testing.assert_close(var.double(), exact.var(dim=(0, 2, 3), unbiased=False), rtol=1e-5, atol=0)


def test_supported_refuses_what_the_kernel_does_not_take():
    lib_or_fail()
    x, weight, bias, _ = make((2, 4, 4, 4), torch.float32, seed=0)
    assert supported(x, weight, bias)
    assert not supported(x.detach().contiguous(), weight, bias)             # NCHW
    assert not supported(x.detach().half(), weight.half(), bias.half())     # fp16
    assert not supported(x, weight.double(), bias)                          # parameters in another type
    assert not supported(x, None, None)                                     # no affine parameters
    one_row = make((2, 4, 1, 4), torch.float32, seed=0)
    assert not supported(*one_row[:3])                                      # no 2x2 window


def test_build_is_cached_keyed_and_atomic(tmp_path, monkeypatch):
    monkeypatch.setenv("DML_KERNEL_CACHE", str(tmp_path))
    source = tmp_path / "twice.cpp"
    source.write_text('extern "C" int twice(int x) { return 2 * x; }\n')
    first = native.build(source)
    assert first.parent == tmp_path and first.stat().st_mtime > 0
    assert native.build(source) == first                                   # cached: not rebuilt
    source.write_text('extern "C" int twice(int x) { return x + x; }\n')
    assert native.build(source) != first                                   # the source is in the key
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]   # no temporary left


def test_a_failed_build_names_the_source_and_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("DML_KERNEL_CACHE", str(tmp_path / "cache"))
    source = tmp_path / "broken.cpp"
    source.write_text("this is not C++\n")
    with pytest.raises(RuntimeError, match="broken.cpp"):
        native.build(source)
    assert not list((tmp_path / "cache").iterdir())


def test_no_compiler_or_switched_off_means_torch_layers(tmp_path):
    """In a fresh interpreter: with no compiler on PATH, or DML_NATIVE_KERNELS=0, the library
    is None, `supported` is False, and the reason is logged."""
    code = ("import logging, sys, torch; logging.basicConfig(level=logging.INFO, stream=sys.stdout)\n"
            "from dml_core.kernels.native import library\n"
            "from dml_core.kernels.bn_relu_pool import supported\n"
            "x = torch.zeros(2, 4, 4, 4).contiguous(memory_format=torch.channels_last)\n"
            "print('LIB', library('bn_relu_pool'), supported(x, torch.ones(4), torch.zeros(4)))\n")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    base = {k: v for k, v in os.environ.items() if k not in ("CXX", "DML_NATIVE_KERNELS")}
    base.update(PYTHONPATH=root, DML_KERNEL_CACHE=str(tmp_path))
    for extra, reason in (({"PATH": str(tmp_path)}, "no C++ compiler"), ({"DML_NATIVE_KERNELS": "0"}, "off")):
        out = subprocess.run([sys.executable, "-c", code], env={**base, **extra}, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        assert "LIB None False" in out.stdout and reason in out.stdout + out.stderr
