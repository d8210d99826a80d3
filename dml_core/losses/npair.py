"""The multi-class N-pair loss (Sohn, NeurIPS 2016, Sec. 3.2, eq. 3, the N-pair-mc loss), with the
TF reference's L2 term and a softmax temperature (Wu et al., CVPR 2018, eq. 2; Chen et al., ICML
2020, eq. 1).

Each class with at least two samples gives one pair: its first sample in batch order is the
anchor f_i, its second the positive f_i+ (further samples and singleton classes are unused).
With N such pairs and logits s_ij = f_i.f_j+ / temperature:
  loss = 1/N sum_i log(1 + sum_{j != i} exp(s_ij - s_ii))
         + l2_reg * 0.25 * (mean_i |f_i|^2 + mean_i |f_i+|^2)
The log term is the softmax cross-entropy of row i of S = [s_ij] against column i, as in
tf.contrib.losses.metric_learning.npairs_loss (reg_lambda = l2_reg); temperature = 1 is Sohn's
loss, a smaller one sharpens the softmax (unit-norm f give logits in [-1/t, 1/t]). The L2 term
does not depend on the temperature. Terms are
t_i = log(...)_i + l2_reg * 0.25 * (mean |f|^2 + mean |f+|^2), one per pair, so `mean` is the
formula above, `sum` is N times it and `nonzero` the mean over t_i > 0. Build batches of N
classes x 2 samples with dml_core.samplers.NPairSampler.
"""
from __future__ import annotations

import math

import torch

from ..validation import check_positive
from .base import MetricLoss
from .reducers import Terms
from .registry import LOSSES


def first_two_per_class(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(anchor, positive) rows: the first and second sample of each class that has two."""
    _, inverse, counts = torch.unique(labels, return_inverse=True, return_counts=True)
    # A stable sort by class keeps batch order inside each class.
    order = torch.argsort(inverse, stable=True)
    starts = (torch.cumsum(counts, 0) - counts)[counts >= 2]
    return order[starts], order[starts + 1]


@LOSSES.register("npair")
class NPairLoss(MetricLoss):
    def __init__(self, l2_reg: float = 0.002, temperature: float = 1.0, reduction: str = "mean"):
        super().__init__(reduction)
        self.l2_reg = check_positive(l2_reg, "l2_reg", allow_zero=True)
        self.temperature = check_positive(temperature, "temperature")
        if not math.isfinite(self.temperature):
            raise ValueError(f"temperature must be finite, got {temperature!r}")

    def terms(self, embeddings, labels, indices) -> Terms:
        if indices is not None:
            raise ValueError("npair forms its own pairs from labels; indices (a miner's output) must be None")
        anchor, positive = first_two_per_class(labels)
        if len(anchor) == 0:
            return Terms(embeddings.sum() * 0.0, 0, 0)
        f, f_pos = embeddings[anchor], embeddings[positive]
        sim = (f @ f_pos.T) / self.temperature  # x / 1.0 == x: temperature 1 is today's loss exactly
        xent = torch.logsumexp(sim, 1) - sim.diagonal()
        reg = 0.25 * self.l2_reg * ((f * f).sum(1).mean() + (f_pos * f_pos).sum(1).mean())
        return Terms.of(xent + reg)

    def extra_repr(self) -> str:
        return f"l2_reg={self.l2_reg}, temperature={self.temperature}, reduction={self.reduction!r}"
