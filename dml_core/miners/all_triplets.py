"""Every valid triplet of the batch: y_a = y_p, a != p, y_n != y_a."""
from __future__ import annotations

import torch

from ..kernels.triplet_search import label_masks, triplets_from_masks
from .base import Miner
from .registry import MINERS


@MINERS.register("all_triplets")
class AllTripletsMiner(Miner):
    """All B * (m - 1) * (B - m) triplets of a batch of C classes x m samples.

    max_triplets caps the output (ValueError beyond it): at B=4096 with 64 classes the
    batch holds over a billion triplets, 24 GiB of indices.
    """

    def __init__(self, max_triplets: int | None = 50_000_000):
        super().__init__(distance=None)
        self.max_triplets = max_triplets

    def mine(self, dist: torch.Tensor | None, labels: torch.Tensor):
        pos, neg = label_masks(labels)
        return triplets_from_masks(pos, neg, self.max_triplets)
