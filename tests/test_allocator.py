import sys

import pytest
import torch

from dml_core.training.allocator import keep_freed_memory
from dml_core.training.config import OptimizerConfig
from dml_core.training.schedule import build_optimizer


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_the_trial_process_keeps_freed_memory_once_set():
    assert keep_freed_memory() is True
    assert keep_freed_memory() is True  # idempotent: a process running many trials sets it once


def test_adam_is_fused_on_cpu_and_takes_the_same_step_as_the_loop():
    torch.manual_seed(0)
    weights = [torch.randn(5, 3, dtype=torch.float64), torch.randn(7, dtype=torch.float64)]
    grads = [torch.randn_like(w) for w in weights]
    cfg = OptimizerConfig(name="adam", lr=0.01)
    params = [torch.nn.Parameter(w.clone()) for w in weights]
    opt = build_optimizer(params, cfg)
    assert opt.defaults["fused"] is True
    ref = [torch.nn.Parameter(w.clone()) for w in weights]
    loop = torch.optim.Adam(ref, lr=0.01, foreach=False)
    for _ in range(3):
        for p, r, g in zip(params, ref, grads):
            p.grad, r.grad = g.clone(), g.clone()
        opt.step()
        loop.step()
    for p, r in zip(params, ref):
        assert torch.allclose(p, r, rtol=1e-12, atol=1e-12)
