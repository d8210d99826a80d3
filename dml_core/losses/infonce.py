"""InfoNCE / NT-Xent (Oord, Li, Vinyals 2018, eq. 4; Chen, Kornblith, Norouzi, Hinton, SimCLR,
ICML 2020, eq. 1).

s_ij = cos(f_i, f_j), t = temperature. For each ordered positive pair (i, j), i != j, y_i = y_j:
  term_ij = -log(exp(s_ij/t) / (exp(s_ij/t) + sum_{k in N_ij} exp(s_ik/t)))
          = softplus(logsumexp_{k in N_ij}(s_ik/t) - s_ij/t),
mean over the positive pairs. N_ij is every negative of i in the batch (the default), or,
with num_negatives=k, k negatives of i drawn uniformly without replacement, fresh for each pair,
from a torch.Generator seeded with `seed` and held by the loss (negative sampling; the
draws advance with each call, and are reproducible from the seed; a trial passes a seed derived
from its own seed unless params.yaml gives one).
k larger than an anchor's number of negatives is a ValueError naming num_negatives. A batch of
one class has no negative at all: every term is log(1 + 0) = 0 (with k: no term, loss 0).
With indices (a miner's pairs), the positive pairs are the mined ones and N_ij the mined
negatives of i.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..kernels.indices import pair_masks
from ..validation import check_count, check_positive
from .base import MetricLoss
from .reducers import Terms
from .registry import LOSSES


def sample_negatives(neg: torch.Tensor, anchors: torch.Tensor, k: int, generator: torch.Generator, name: str) -> torch.Tensor:
    """[P, k] columns: for each anchor row, k distinct negatives drawn uniformly (the top k of
    iid uniform keys over its negatives is a uniform k-subset)."""
    if len(anchors) == 0:
        return torch.empty(0, k, dtype=torch.int64, device=neg.device)
    available = neg.sum(1)[anchors]
    if int(available.min()) < k:
        raise ValueError(
            f"{name}={k} is larger than the {int(available.min())} negatives an anchor has in "
            f"this batch; lower {name} or use batches with more classes"
        )
    keys = torch.rand(len(anchors), neg.shape[1], generator=generator).to(neg.device)
    return keys.masked_fill_(~neg[anchors], -1.0).topk(k, dim=1).indices


def cosine_logits(embeddings: torch.Tensor, temperature: float) -> torch.Tensor:
    x = F.normalize(embeddings, dim=1)
    return (x @ x.T) / temperature


@LOSSES.register("infonce")
class InfoNCELoss(MetricLoss):
    def __init__(self, temperature: float = 0.1, num_negatives: int | None = None, seed: int = 0, reduction: str = "mean"):
        super().__init__(reduction)
        self.temperature = check_positive(temperature, "temperature")
        self.num_negatives = check_count(num_negatives, "num_negatives", optional=True)
        self.seed = int(seed)
        self.generator = torch.Generator().manual_seed(self.seed)

    def terms(self, embeddings, labels, indices) -> Terms:
        pos, neg = pair_masks(labels, indices)
        logits = cosine_logits(embeddings, self.temperature)
        i, j = pos.nonzero(as_tuple=True)
        if self.num_negatives is None:
            has_neg = neg.any(1)
            # Rows without negatives: a finite stand-in inside logsumexp (whose backward would
            # be NaN on an all -inf row), then -inf outside, where softplus(-inf) = 0.
            fill = torch.where(has_neg, float("-inf"), 0.0).to(logits.dtype)[:, None]
            lse = torch.logsumexp(torch.where(neg, logits, fill), 1)
            lse = torch.where(has_neg, lse, torch.full_like(lse, float("-inf")))
            return Terms.of(F.softplus(lse[i] - logits[i, j]))
        if not bool(neg.any()):
            return Terms(embeddings.sum() * 0.0, 0, 0)
        cols = sample_negatives(neg, i, self.num_negatives, self.generator, "num_negatives")
        lse = torch.logsumexp(logits[i[:, None], cols], 1)
        return Terms.of(F.softplus(lse - logits[i, j]))

    def extra_repr(self) -> str:
        return (
            f"temperature={self.temperature}, num_negatives={self.num_negatives}, "
            f"seed={self.seed}, reduction={self.reduction!r}"
        )
