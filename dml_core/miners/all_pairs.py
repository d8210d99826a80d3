"""Every ordered positive pair (a1 != p, same class) and every ordered negative pair."""
from __future__ import annotations

import torch

from .base import Miner
from .registry import MINERS
from .triplet_search import label_masks


@MINERS.register("all_pairs")
class AllPairsMiner(Miner):
    def __init__(self):
        super().__init__(distance=None)

    def mine(self, dist, labels: torch.Tensor):
        pos, neg = label_masks(labels)
        a1, p = pos.nonzero(as_tuple=True)
        a2, n = neg.nonzero(as_tuple=True)
        return a1, p, a2, n
