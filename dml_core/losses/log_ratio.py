"""The log-ratio loss for continuous labels (Kim, Sohn, Kwak, "Deep Metric Learning Beyond
Binary Supervision", CVPR 2019, Sec. 3.1).

Labels y are continuous, [B] or [B, L]; d_y = Euclidean distance between labels, D = non-squared
Euclidean distance between embeddings. Over every triplet (a, i, j) of distinct indices,
  term_aij = (log(D_ai + eps) - log(D_aj + eps) - log(d_y(a,i) + eps) + log(d_y(a,j) + eps))^2,
and the loss is their mean (dense triplets: every sample is an anchor). The paper writes D as
the squared distance; its code (and this API) uses the non-squared one with eps inside each
log. The squared form is 4x this loss up to eps: same minimiser.

With u_ai = log(D_ai + eps) - log(d_y(a,i) + eps), term_aij = (u_ai - u_aj)^2, and for each
anchor sum_{i,j != a} (u_ai - u_aj)^2 = 2 (B - 1) sum_{i != a} (u_ai - mean_a u)^2, so the
B^3 triplets are summed exactly in O(B^2) time and memory. With triplet indices (a, i, j) from
a miner, the terms are those triplets'.
"""
from __future__ import annotations

import torch

from ..distances import build_distance
from ..validation import check_positive
from .base import MetricLoss
from .reducers import Terms
from .registry import LOSSES


def check_continuous_labels(labels: torch.Tensor, batch_size: int, name: str = "labels") -> torch.Tensor:
    """Regression labels: a floating tensor [B] or [B, L], finite; returned as [B, L]."""
    if not isinstance(labels, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(labels).__name__}")
    if not labels.is_floating_point():
        raise ValueError(
            f"{name} must be a floating tensor of continuous labels, got dtype {labels.dtype}"
            " (class ids belong to a class loss such as triplet or npair)"
        )
    if labels.dim() not in (1, 2) or labels.shape[0] != batch_size:
        raise ValueError(f"{name} must have shape [{batch_size}] or [{batch_size}, L], got {tuple(labels.shape)}")
    if not bool(torch.isfinite(labels).all()):
        raise ValueError(f"{name} contains NaN or inf values")
    return labels if labels.dim() == 2 else labels[:, None]


def equal_pairs_per_row(values: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """For each row, the number of ordered pairs (i, j), i != j, of kept entries with equal values."""
    n = values.shape[1]
    # Dropped entries get distinct sentinels (NaN != NaN), so they never tie.
    v = torch.where(keep, values, torch.full_like(values, float("nan"))).sort(1).values
    new_run = torch.ones_like(v, dtype=torch.bool)
    new_run[:, 1:] = v[:, 1:] != v[:, :-1]
    pos = torch.arange(n, device=v.device).expand_as(v)
    start = torch.where(new_run, pos, torch.zeros_like(pos)).cummax(1).values
    # An entry at rank r (0-based) in its run of equal values pairs with the r before it.
    return 2 * (pos - start).sum(1)


@LOSSES.register("log_ratio")
class LogRatioLoss(MetricLoss):
    class_labels = False

    def __init__(self, eps: float = 1e-6, reduction: str = "mean"):
        super().__init__(reduction)
        self.eps = check_positive(eps, "eps")
        self.distance = build_distance("euclidean")

    def check_labels(self, labels, batch_size):
        return check_continuous_labels(labels, batch_size)

    def terms(self, embeddings, labels, indices) -> Terms:
        # Label distances straight from differences, in float64: the |a|^2 + |b|^2 - 2ab
        # expansion loses the small distances whose logs this loss compares.
        y = labels.detach().double()
        label_dist = torch.cdist(y, y, compute_mode="donot_use_mm_for_euclid_dist").to(embeddings.dtype)
        u = torch.log(self.distance(embeddings) + self.eps) - torch.log(label_dist + self.eps)
        if indices is not None:
            if len(indices) != 3:
                raise ValueError("log_ratio takes triplet indices (anchor, i, j), not pairs")
            a, i, j = indices
            return Terms.of((u[a, i] - u[a, j]) ** 2)
        b = len(u)
        if b < 3:
            return Terms(embeddings.sum() * 0.0, 0, 0)
        off = ~torch.eye(b, dtype=torch.bool, device=u.device)
        u_off = u.masked_fill(~off, 0.0)
        centered = torch.where(off, u_off - (u_off.sum(1, keepdim=True) / (b - 1)), torch.zeros_like(u))
        total = 2 * (b - 1) * (centered * centered).sum()
        count = b * (b - 1) * (b - 2)
        with torch.no_grad():
            nonzero = count - int(equal_pairs_per_row(u.detach(), off).sum())
        return Terms(total, count, nonzero)

    def extra_repr(self) -> str:
        return f"eps={self.eps}, reduction={self.reduction!r}"
