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

from ..kernels.indices import pair_masks
from ..kernels.infonce_terms import cosine_logits, infonce_terms
from ..validation import check_count, check_positive
from .base import MetricLoss
from .reducers import Terms
from .registry import LOSSES


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
        logits = cosine_logits(embeddings, temperature=self.temperature)
        return Terms.of(
            infonce_terms(logits, pos=pos, neg=neg, num_negatives=self.num_negatives, generator=self.generator)
        )

    def extra_repr(self) -> str:
        return (
            f"temperature={self.temperature}, num_negatives={self.num_negatives}, "
            f"seed={self.seed}, reduction={self.reduction!r}"
        )
