"""Batch norm (training mode), ReLU and 2x2 max-pooling as one kernel on channels-last CPU tensors.

    y = relu(gamma (x - mu) / sqrt(sigma^2 + eps) + beta),   out = maxpool_2x2(y)

with mu and sigma^2 the batch's per-channel mean and biased variance over N, H and W (Ioffe
and Szegedy 2015, Algorithm 1), and the gradient

    dx = gamma / sqrt(sigma^2 + eps) (dy - mean(dy) - x_hat mean(dy x_hat))

(ibid., Section 3), where dy is the output's gradient routed to each window's argmax and
stopped where y <= 0. In a small CNN on 32-pixel images the first block's three layers are
memory-bound passes over its largest activation, most of a bf16 training step on a CPU; fused
(bn_relu_pool.cpp) they read the input twice forward and twice backward and write the pooled
quarter once. The arithmetic is the accumulation type's (float32 for bf16 and float32 inputs,
float64 for float64), rounded once at the output.

`reference_bn_relu_pool` states the same math as torch's three layers; tests hold the kernel to
it, values, argmax routing, statistics and gradients (float64, gradcheck) included.
"""
from __future__ import annotations

import ctypes

import torch
import torch.nn.functional as F

from .native import library

_SUFFIX = {torch.bfloat16: "bf16", torch.float32: "f32", torch.float64: "f64"}
_ACC = {torch.bfloat16: torch.float32, torch.float32: torch.float32, torch.float64: torch.float64}


def reference_bn_relu_pool(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, *, eps: float = 1e-5):
    """(out, mean, biased var) from torch's batch_norm (training), relu and max_pool2d(2)."""
    mean = x.double().mean(dim=(0, 2, 3)).to(weight.dtype)
    var = x.double().var(dim=(0, 2, 3), unbiased=False).to(weight.dtype)
    y = F.batch_norm(x, None, None, weight, bias, training=True, eps=eps)
    return F.max_pool2d(F.relu(y), 2), mean, var


def supported(x: torch.Tensor, weight: torch.Tensor | None, bias: torch.Tensor | None) -> bool:
    """Whether `bn_relu_pool` runs natively on these tensors: a CPU channels-last 4-d input in
    bf16, float32 or float64, affine parameters in its accumulation type, a window to pool, and
    a built kernel library. Elsewhere (CUDA, NCHW, fp16) torch's layers run."""
    return (x.device.type == "cpu" and x.dim() == 4 and x.dtype in _SUFFIX
            and weight is not None and bias is not None
            and weight.dtype == _ACC[x.dtype] and bias.dtype == _ACC[x.dtype]
            and x.shape[2] >= 2 and x.shape[3] >= 2 and x.shape[0] * x.shape[2] * x.shape[3] > 1
            and x.is_contiguous(memory_format=torch.channels_last)
            and library("bn_relu_pool") is not None)


def _ptr(t: torch.Tensor) -> ctypes.c_void_p:
    return ctypes.c_void_p(t.data_ptr())


class _BatchNormReluPool(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        lib = library("bn_relu_pool")
        n, c, h, w = x.shape
        out = torch.empty((n, c, h // 2, w // 2), dtype=x.dtype, memory_format=torch.channels_last)
        arg = torch.empty((n, h // 2, w // 2, c), dtype=torch.uint8)
        stats = torch.empty((4, c), dtype=_ACC[x.dtype])  # mean, biased var, a, b
        getattr(lib, f"bn_relu_pool_forward_{_SUFFIX[x.dtype]}")(
            _ptr(x), _ptr(weight.detach().contiguous()), _ptr(bias.detach().contiguous()),
            ctypes.c_int64(n), ctypes.c_int64(h), ctypes.c_int64(w), ctypes.c_int64(c),
            ctypes.c_double(eps), _ptr(out), _ptr(arg), _ptr(stats))
        ctx.eps = eps
        ctx.save_for_backward(x, arg, stats)
        mean, var = stats[0].clone(), stats[1].clone()
        ctx.mark_non_differentiable(mean, var)
        return out, mean, var

    @staticmethod
    def backward(ctx, grad, _mean, _var):
        x, arg, stats = ctx.saved_tensors
        lib = library("bn_relu_pool")
        n, c, h, w = x.shape
        grad = grad.to(x.dtype).contiguous(memory_format=torch.channels_last)
        dx = torch.empty_like(x, memory_format=torch.channels_last)
        dgamma = torch.empty(c, dtype=stats.dtype)
        dbeta = torch.empty(c, dtype=stats.dtype)
        getattr(lib, f"bn_relu_pool_backward_{_SUFFIX[x.dtype]}")(
            _ptr(grad), _ptr(x), _ptr(arg), _ptr(stats),
            ctypes.c_int64(n), ctypes.c_int64(h), ctypes.c_int64(w), ctypes.c_int64(c),
            ctypes.c_double(ctx.eps), _ptr(dx), _ptr(dgamma), _ptr(dbeta))
        return dx, dgamma, dbeta, None


def bn_relu_pool(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, *, eps: float = 1e-5):
    """(maxpool_2x2(relu(batch_norm(x))), batch mean, biased batch variance), natively.
    Call only where `supported(x, weight, bias)`; the statistics are for the caller's
    running averages and carry no gradient."""
    return _BatchNormReluPool.apply(x, weight, bias, eps)
