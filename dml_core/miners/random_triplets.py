"""Random negatives: the uniform sampling that online mining is measured against (as in Wu,
Manmatha, Smola, Kraehenbuehl, ICCV 2017)."""
from __future__ import annotations

import torch

from ..kernels.triplet_search import empty_triplets, label_masks, mask_pairs
from .base import Miner
from .registry import MINERS


@MINERS.register("random")
class RandomTripletMiner(Miner):
    """Triplets drawn uniformly from all_triplets, with replacement.

    num_triplets=None draws one random negative for each positive pair (the classic
    "random negative" setup); an int draws that many triplets uniformly over all valid
    triplets. The generator is seeded once, so a run is reproducible and successive batches
    still get fresh draws. A trial passes a seed derived from its own seed unless params.yaml
    gives one.
    """

    def __init__(self, num_triplets: int | None = None, seed: int = 0):
        super().__init__(distance=None)
        if num_triplets is not None and (not isinstance(num_triplets, int) or num_triplets < 1):
            raise ValueError(f"num_triplets must be a positive int or None, got {num_triplets!r}")
        self.num_triplets = num_triplets
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed)

    def mine(self, dist, labels: torch.Tensor):
        pos, neg = label_masks(labels)
        a, p = mask_pairs(pos)
        neg_count = neg.sum(1)
        keep = neg_count[a] > 0
        a, p = a[keep], p[keep]
        if len(a) == 0:
            return empty_triplets(labels.device)
        device = labels.device
        if self.num_triplets is not None:
            # Pair i carries neg_count[a_i] triplets: weighting pairs by it is uniform on triplets.
            pick = torch.multinomial(
                neg_count[a].double().cpu(), self.num_triplets, replacement=True, generator=self.generator
            ).to(device)
            a, p = a[pick], p[pick]
        u = torch.rand(len(a), generator=self.generator, dtype=torch.float64).to(device)
        k = (u * neg_count[a]).long().clamp_max(neg_count[a] - 1)
        negatives_first = torch.argsort((~neg).to(torch.uint8), dim=1, stable=True)
        return a, p, negatives_first[a, k]

    def __repr__(self) -> str:
        return f"RandomTripletMiner(num_triplets={self.num_triplets}, seed={self.seed})"
