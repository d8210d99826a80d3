"""Every ordered positive pair (a1 != p, same class) and every ordered negative pair."""
from __future__ import annotations

import torch

from ..kernels.triplet_search import label_masks, mask_pairs
from .base import Miner
from .registry import MINERS


@MINERS.register("all_pairs")
class AllPairsMiner(Miner):
    def __init__(self):
        super().__init__(distance=None)

    def mine(self, dist, labels: torch.Tensor):
        pos, neg = label_masks(labels)
        a1, p = mask_pairs(pos)
        a2, n = mask_pairs(neg)
        return a1, p, a2, n
