"""N-pair batches (Sohn, NeurIPS 2016): N distinct classes x 2 samples each.

The npair loss takes the first sample of each class in a batch as the anchor and the second
as its positive, so a batch of N classes x 2 gives exactly N pairs, each class's two samples
in a random order. This is MPerClassSampler with m_per_class = 2: the same epoch coverage,
seeding, set_epoch and distributed sharding.
"""
from __future__ import annotations

from .m_per_class import MPerClassSampler


class NPairSampler(MPerClassSampler):
    """A batch sampler yielding lists of 2 * num_pairs dataset indices: num_pairs classes x 2."""

    def __init__(self, labels, num_pairs: int, seed: int = 0, num_replicas: int = 1, rank: int = 0, replace: bool = False):
        if isinstance(num_pairs, bool) or not isinstance(num_pairs, int) or num_pairs < 1:
            raise ValueError(f"num_pairs must be a positive int, got {num_pairs!r}")
        super().__init__(
            labels, batch_size=2 * num_pairs, m_per_class=2, seed=seed, num_replicas=num_replicas, rank=rank, replace=replace
        )
        self.num_pairs = num_pairs
