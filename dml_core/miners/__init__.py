"""Triplet and pair miners. `build_miner(name, **opts)` -> miner(embeddings, labels)."""
from __future__ import annotations

from .all_pairs import AllPairsMiner
from .all_triplets import AllTripletsMiner
from .base import MarginMiner, Miner
from .batch_hard import BatchHardMiner
from .batch_semihard import BatchSemihardMiner
from .distance_weighted import DistanceWeightedMiner
from .margin import EasyMiner, HardMiner, SemihardMiner
from .random_triplets import RandomTripletMiner
from .registry import MINERS

build_miner = MINERS.build

__all__ = [
    "MINERS",
    "AllPairsMiner",
    "AllTripletsMiner",
    "BatchHardMiner",
    "BatchSemihardMiner",
    "DistanceWeightedMiner",
    "EasyMiner",
    "HardMiner",
    "MarginMiner",
    "Miner",
    "RandomTripletMiner",
    "SemihardMiner",
    "build_miner",
]
