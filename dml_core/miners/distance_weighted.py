"""Distance-weighted sampling (Wu, Manmatha, Smola, Kraehenbuehl, ICCV 2017).

On the unit sphere in R^n, pairwise distances of random points follow
q(d) ∝ d^(n-2) (1 - d^2/4)^((n-3)/2). Sampling each negative with weight 1/q(d), with d
clipped below at `cutoff` (0.5 in the paper) and weight 0 past `nonzero_loss_cutoff` (1.4),
spreads the negatives over all distances instead of the very close or far ones. Distances are
Euclidean; the embeddings are meant to be L2-normalised, as in the paper. One negative per
positive pair; an anchor whose negatives all have weight 0 samples them uniformly.
"""
from __future__ import annotations

import torch

from ..kernels.triplet_search import empty_triplets, label_masks, mask_pairs
from .base import Miner
from .registry import MINERS


@MINERS.register("distance_weighted")
class DistanceWeightedMiner(Miner):
    def __init__(self, cutoff: float = 0.5, nonzero_loss_cutoff: float = 1.4, seed: int = 0):
        super().__init__(distance="euclidean")
        if not 0 <= cutoff < nonzero_loss_cutoff:
            raise ValueError(
                f"cutoff must satisfy 0 <= cutoff < nonzero_loss_cutoff, got {cutoff} and {nonzero_loss_cutoff}"
            )
        self.cutoff = float(cutoff)
        self.nonzero_loss_cutoff = float(nonzero_loss_cutoff)
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed)

    def weights(self, dist: torch.Tensor, neg: torch.Tensor, dim: int) -> torch.Tensor:
        d = dist.double().clamp_min(max(self.cutoff, 1e-8))
        log_inv_q = (2.0 - dim) * torch.log(d) - ((dim - 3) / 2.0) * torch.log(
            (1.0 - 0.25 * d * d).clamp_min(1e-8)
        )
        valid = neg & (dist < self.nonzero_loss_cutoff)
        log_inv_q = log_inv_q.masked_fill(~valid, float("-inf"))
        # Normalise per row before exp: the raw weights span hundreds of orders of magnitude.
        row_max = log_inv_q.amax(1, keepdim=True).clamp_min(-1e300)
        w = torch.exp(log_inv_q - row_max).nan_to_num(0.0)
        empty = w.sum(1) == 0
        return torch.where(empty[:, None], neg.double(), w)

    def __call__(self, embeddings: torch.Tensor, labels: torch.Tensor):
        self._dim = embeddings.shape[1]
        return super().__call__(embeddings, labels)

    def mine(self, dist: torch.Tensor, labels: torch.Tensor):
        pos, neg = label_masks(labels)
        a, p = mask_pairs(pos)
        keep = neg[a].any(1)
        a, p = a[keep], p[keep]
        if len(a) == 0:
            return empty_triplets(labels.device)
        w = self.weights(dist, neg, self._dim)
        anchors, per_anchor = torch.unique_consecutive(a, return_counts=True)
        # One draw per positive pair: row r of the draws serves the positives of anchors[r].
        draws = torch.multinomial(
            w[anchors].cpu(), int(per_anchor.max()), replacement=True, generator=self.generator
        ).to(dist.device)
        row = torch.repeat_interleave(torch.arange(len(anchors), device=dist.device), per_anchor)
        starts = torch.cumsum(per_anchor, 0) - per_anchor
        rank = torch.arange(len(a), device=dist.device) - starts[row]
        return a, p, draws[row, rank]

    def __repr__(self) -> str:
        return (
            f"DistanceWeightedMiner(cutoff={self.cutoff}, "
            f"nonzero_loss_cutoff={self.nonzero_loss_cutoff}, seed={self.seed})"
        )
