"""The protocol's learning-rate schedule: linear warm-up, then cosine decay to 0, per step."""
import math

import pytest
import torch

from dml_core.training.config import OptimizerConfig
from dml_core.training.schedule import build_scheduler, warmup_cosine_factor


def reference_factors(total: int, warmup: float) -> list[float]:
    """The factor before each step, written out from the two formulas."""
    w = math.ceil(warmup * total)
    out = []
    for step in range(total):
        if step < w:
            out.append((step + 1) / w)
        else:
            out.append(0.5 * (1 + math.cos(math.pi * (step - w) / (total - w))))
    return out


@pytest.mark.parametrize("total,warmup", [(1, 0.0), (10, 0.0), (10, 0.1), (100, 0.05), (7, 0.5)])
def test_factor_matches_the_formulas(total, warmup):
    got = [warmup_cosine_factor(s, total, warmup) for s in range(total)]
    assert got == pytest.approx(reference_factors(total, warmup))
    assert max(got) == pytest.approx(1.0)


def test_the_scheduler_steps_the_factor_and_stretches_to_the_run():
    for epochs in (3, 6):
        p = torch.nn.Parameter(torch.zeros(1))
        opt = torch.optim.SGD([p], lr=0.5)
        sched = build_scheduler(opt, OptimizerConfig(lr=0.5, schedule="warmup_cosine", warmup=0.1), epochs, 10)
        lrs = []
        for _ in range(epochs * 10):
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        assert lrs == pytest.approx([0.5 * f for f in reference_factors(epochs * 10, 0.1)])
        assert opt.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)  # decayed to 0 after the last step


def test_warmup_is_a_fraction_below_one():
    with pytest.raises(ValueError, match="warmup"):
        OptimizerConfig(schedule="warmup_cosine", warmup=1.0)
