"""Benchmark: the fused batch norm + ReLU + 2x2 max-pool kernel against torch's three layers.

    .venv/bin/python benchmarks/bn_relu_pool.py [--repeats 7] [--inner 20]

On the small CNN's pooled blocks at the quick profile's batch (96 x 16 x 32 x 32 and
96 x 32 x 16 x 16, channels-last), one thread, in bf16 and float32: the forward and backward of
`dml_core.kernels.bn_relu_pool.bn_relu_pool`, and of F.batch_norm (training), F.relu and
F.max_pool2d on the same tensors, timed alternately in one run. Each figure is the fastest of
--repeats means over --inner calls after three warm-up calls; the ratio is ours / torch's.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from dml_core.kernels.bn_relu_pool import bn_relu_pool, supported  # noqa: E402

SHAPES = [(96, 16, 32, 32), (96, 32, 16, 16)]


def torch_layers(x, w, b):
    return F.max_pool2d(F.relu(F.batch_norm(x, None, None, w, b, training=True)), 2)


def fused(x, w, b):
    return bn_relu_pool(x, w, b)[0]


def best_ms(fn, repeats: int, inner: int) -> float:
    for _ in range(3):
        fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        best = min(best, (time.perf_counter() - t0) / inner * 1000)
    return best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--inner", type=int, default=20)
    args = p.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    print(f"fused bn+relu+maxpool vs torch's layers, 1 thread, fastest of {args.repeats} x {args.inner} calls (ms)")
    print(f"{'shape':>18} {'dtype':>9} {'pass':>9} {'ours':>8} {'torch':>8} {'ratio':>7}")
    for shape in SHAPES:
        for dtype in (torch.bfloat16, torch.float32):
            x = torch.randn(shape).to(dtype).contiguous(memory_format=torch.channels_last).requires_grad_()
            w = torch.rand(shape[1]).add_(0.5).requires_grad_()
            b = torch.randn(shape[1]).requires_grad_()
            g = torch.randn(shape[0], shape[1], shape[2] // 2, shape[3] // 2).to(dtype)
            g = g.contiguous(memory_format=torch.channels_last)
            if not supported(x, w, b):
                sys.exit("the native kernel is unavailable here (no C++ compiler? `make compiler`)")
            for label, run in (("forward", lambda f: (lambda: f(x.detach(), w.detach(), b.detach()))),
                               ("fwd+bwd", lambda f: (lambda: f(x, w, b).backward(g)))):
                ours = best_ms(run(fused), args.repeats, args.inner)
                ref = best_ms(run(torch_layers), args.repeats, args.inner)
                print(f"{str(tuple(shape)):>18} {str(dtype)[6:]:>9} {label:>9} {ours:8.3f} {ref:8.3f} {ours / ref:7.3f}")


if __name__ == "__main__":
    main()
