"""FaceNet's batch semi-hard negatives (Schroff, Kalenichenko, Philbin, CVPR 2015, Sec. 3.2,
eq. 4; TF's triplet_semihard_loss).

For each positive pair (a, p): n* = argmin_{n: d_an > d_ap} d_an, the closest negative that
is still farther than the positive; where no such negative exists, the farthest negative
(TF's fallback). One triplet per positive pair.
"""
from __future__ import annotations

import torch

from ..kernels.triplet_search import count_below, label_masks, mask_pairs, sort_negatives
from .base import Miner
from .registry import MINERS


@MINERS.register("batch_semihard")
class BatchSemihardMiner(Miner):
    """On ties in d_an the lower batch index wins."""

    def mine(self, dist: torch.Tensor, labels: torch.Tensor):
        pos, neg = label_masks(labels)
        sorted_neg = sort_negatives(dist, neg)
        a, p = mask_pairs(pos)
        count = sorted_neg.count[a]
        keep = count > 0
        a, p, count = a[keep], p[keep], count[keep]
        first_farther = count_below(sorted_neg, a, dist[a, p], inclusive=True)
        # Past the last negative: fall back to the farthest one (the first of any tie).
        last = (sorted_neg.count - 1).clamp_min(0)
        farthest = sorted_neg.values.gather(1, last[:, None])[:, 0]
        rows = torch.arange(len(last), device=a.device)
        first_farthest = count_below(sorted_neg, rows, farthest, inclusive=False)[a]
        k = torch.where(first_farther < count, first_farther, first_farthest)
        return a, p, sorted_neg.order[a, k]
