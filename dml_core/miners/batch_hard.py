"""Batch hard (Hermans, Beyer, Leibe, "In Defense of the Triplet Loss for Person
Re-Identification", 2017, Sec. 2).

One triplet per anchor that has a positive and a negative: its farthest positive and its
closest negative.
"""
from __future__ import annotations

import torch

from ..kernels.triplet_search import label_masks
from .base import Miner
from .registry import MINERS


@MINERS.register("batch_hard")
class BatchHardMiner(Miner):
    """On ties the lower batch index wins (argmax/argmin return the first extremum)."""

    def mine(self, dist: torch.Tensor, labels: torch.Tensor):
        pos, neg = label_masks(labels)
        anchors = (pos.any(1) & neg.any(1)).nonzero(as_tuple=True)[0]
        d = dist[anchors]
        p = d.masked_fill(~pos[anchors], float("-inf")).argmax(1)
        n = d.masked_fill(~neg[anchors], float("inf")).argmin(1)
        return anchors, p, n
