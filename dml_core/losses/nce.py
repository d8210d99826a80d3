"""Noise-contrastive estimation (Gutmann & Hyvarinen, AISTATS 2010, Sec. 2; Mnih & Teh, ICML
2012, Sec. 3): logistic regression of real pairs against noise pairs.

Real pairs: the ordered positive pairs (i, j), i != j, y_i = y_j. Noise distribution: for
anchor i, p_n = uniform over the negatives of i in the batch, N_i = {k : y_k != y_i}, so
p_n(k | i) = 1/|N_i|; each real pair draws k = num_noise noise pairs (i, n_1..n_k) from it,
without replacement, from a torch.Generator seeded with `seed` and held by the loss (a trial
passes a seed derived from its own seed unless params.yaml gives one). The model's
log density of a pair is its scaled cosine similarity, normalised over the anchor's candidates
(Mnih & Teh, Sec. 3: the normaliser Z must be handled, learned or fixed; Wu et al., CVPR 2018,
eq. 8, estimate it by Monte Carlo over the data), p_m(n | i) = exp(s_in / t) / Z_i with
  Z_i = sum_{q in P_i u N_i} exp(s_iq / t)   (normalizer="batch", the default),
the candidates of i in the batch, differentiated through; the posterior that a pair is real is
  h(i, n) = p_m / (p_m + k p_n) = sigmoid(s_in / t - c_i),  c_i = ln Z_i + ln(k / |N_i|).
normalizer="none" keeps Z_i = 1, the unnormalised density: with k = 8 of 92 negatives the
boundary of h then lies at cos = t ln(8/92) < 0, so positives stop being pulled once their
cosine passes ~0, while the noise terms keep pushing: the loss cannot train (kept to show it).
NCE evaluates ln p_n at real samples too; a real pair lies outside the support of this p_n, so
its offset is taken at the same level 1/|N_i| (one constant per anchor, as with the uniform
noise of Wu et al., CVPR 2018). Gutmann & Hyvarinen's objective, sum ln h(x) + sum ln(1 - h(y)), is
maximised; the loss is its negative per real pair,
  term_ij = -ln h(i, j) - sum_m ln(1 - h(i, n_m)) = softplus(c_i - s_ij/t) + sum_m softplus(s_in_m/t - c_i),
mean over real pairs. k larger than an anchor's negatives is a ValueError naming num_noise; a
batch of one class has no noise to contrast with: loss 0. With indices (a miner's pairs), the
real pairs are the mined positive pairs and N_i the mined negatives of i.
"""
from __future__ import annotations

import torch

from ..kernels.indices import pair_masks
from ..kernels.infonce_terms import batch_log_normalizer, cosine_logits, nce_terms
from ..validation import check_count, check_positive
from .base import MetricLoss
from .reducers import Terms
from .registry import LOSSES


@LOSSES.register("nce")
class NCELoss(MetricLoss):
    NORMALIZERS = ("batch", "none")

    def __init__(self, num_noise: int = 10, temperature: float = 0.1, seed: int = 0, reduction: str = "mean",
                 normalizer: str = "batch"):
        super().__init__(reduction)
        if normalizer not in self.NORMALIZERS:
            raise ValueError(f"normalizer must be one of {', '.join(self.NORMALIZERS)}, got {normalizer!r}")
        self.normalizer = normalizer
        self.num_noise = check_count(num_noise, "num_noise", optional=True)
        if self.num_noise is None:
            raise ValueError("num_noise must be a positive int, got None")
        self.temperature = check_positive(temperature, "temperature")
        self.seed = int(seed)
        self.generator = torch.Generator().manual_seed(self.seed)

    def terms(self, embeddings, labels, indices) -> Terms:
        pos, neg = pair_masks(labels, indices)
        logits = cosine_logits(embeddings, temperature=self.temperature)
        log_z = batch_log_normalizer(logits, pos=pos, neg=neg) if self.normalizer == "batch" else None
        return Terms.of(nce_terms(logits, pos=pos, neg=neg, num_noise=self.num_noise, generator=self.generator, log_z=log_z))

    def extra_repr(self) -> str:
        return (f"num_noise={self.num_noise}, temperature={self.temperature}, seed={self.seed}, "
                f"normalizer={self.normalizer!r}, reduction={self.reduction!r}")
