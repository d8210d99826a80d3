"""Triplets by where d_an falls relative to d_ap and d_ap + margin (Schroff, Kalenichenko,
Philbin, FaceNet, CVPR 2015, Sec. 3.2; Musgrave, Belongie, Lim, ECCV 2020, TripletMarginMiner).

easy:     d_an >= d_ap + margin      (no loss, no gradient)
semihard: d_ap < d_an < d_ap + margin (FaceNet's semi-hard region: inside the margin)
hard:     d_an <= d_ap                (the negative is closer than the positive)

With margin > 0 the three regions partition all_triplets exactly, because each is a
contiguous range of the anchor's negatives sorted by distance, cut at the same two points.
"""
from __future__ import annotations

import torch

from ..kernels.triplet_search import count_below, expand_ranges, label_masks, mask_pairs, sort_negatives
from .base import MarginMiner
from .registry import MINERS


def margin_cuts(dist: torch.Tensor, labels: torch.Tensor, margin: float):
    """For each positive pair: its rows and the cuts [0, hard_end, semi_end, count) of its
    anchor's sorted negatives."""
    pos, neg = label_masks(labels)
    sorted_neg = sort_negatives(dist, neg)
    a, p = mask_pairs(pos)
    d_ap = dist[a, p]
    hard_end = count_below(sorted_neg, a, d_ap, inclusive=True)  # d_an <= d_ap
    semi_end = count_below(sorted_neg, a, d_ap + margin, inclusive=False)  # d_an < d_ap + m
    return a, p, sorted_neg, hard_end, torch.maximum(semi_end, hard_end)


class RegionMiner(MarginMiner):
    region = ""

    def mine(self, dist: torch.Tensor, labels: torch.Tensor):
        a, p, sorted_neg, hard_end, semi_end = margin_cuts(dist, labels, self.margin)
        lo, hi = {
            "hard": (torch.zeros_like(hard_end), hard_end),
            "semihard": (hard_end, semi_end),
            "easy": (semi_end, sorted_neg.count[a]),
        }[self.region]
        return expand_ranges(a, p, sorted_neg.order, lo, hi, self.max_triplets)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(margin={self.margin}, distance={self.distance!r})"


@MINERS.register("easy")
class EasyMiner(RegionMiner):
    """Triplets with d_an >= d_ap + margin."""

    region = "easy"


@MINERS.register("semihard")
class SemihardMiner(RegionMiner):
    """Triplets with d_ap < d_an < d_ap + margin."""

    region = "semihard"


@MINERS.register("hard")
class HardMiner(RegionMiner):
    """Triplets with d_an <= d_ap."""

    region = "hard"
