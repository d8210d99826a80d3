"""Batches for continuous labels (Kim, Sohn, Kwak, CVPR 2019, dense triplet mining): each batch
is an anchor, its nearest neighbours in label space, and random samples from the rest.

The neighbours give the log-ratio loss triplets with small, finely graded label distances; the
random samples give it the large ones. Every epoch, the anchors are a seeded permutation of the
dataset (each sample is an anchor at most once per epoch); batch b holds
[anchor_b, its num_neighbors nearest samples by Euclidean label distance, closest first (ties
by index), then batch_size - 1 - num_neighbors distinct samples drawn uniformly from the rest].
"""
from __future__ import annotations

from typing import Iterator

import numpy as np
import torch
from torch.utils.data import Sampler


def _as_continuous_labels(labels) -> np.ndarray:
    arr = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    if arr.ndim not in (1, 2) or not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(
            f"labels must be a float array [n] or [n, L] of continuous labels, got shape {arr.shape}, dtype {arr.dtype}"
        )
    if not np.isfinite(arr).all():
        raise ValueError("labels contains NaN or inf values")
    return arr.reshape(len(arr), -1).astype(np.float64)


class ContinuousLabelSampler(Sampler[list[int]]):
    """A batch sampler yielding lists of dataset indices: anchor, neighbours, random samples.

    len(labels) // batch_size batches per epoch, split across ranks as MPerClassSampler does
    (rank r takes every num_replicas-th batch, all ranks the same number). Call set_epoch(e)
    each epoch; the batches are a function of (seed, epoch, rank) only.
    """

    def __init__(
        self,
        labels,
        batch_size: int,
        num_neighbors: int,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
    ):
        self.labels = _as_continuous_labels(labels)
        n = len(self.labels)
        if not isinstance(batch_size, int) or not 2 <= batch_size <= n:
            raise ValueError(f"batch_size must be an int in [2, {n}] (the dataset size), got {batch_size!r}")
        if not isinstance(num_neighbors, int) or not 0 <= num_neighbors <= batch_size - 1:
            raise ValueError(f"num_neighbors must be an int in [0, batch_size - 1 = {batch_size - 1}], got {num_neighbors!r}")
        if not (isinstance(num_replicas, int) and num_replicas >= 1 and 0 <= rank < num_replicas):
            raise ValueError(f"rank must be in [0, num_replicas), got rank={rank}, num_replicas={num_replicas}")
        self.batch_size, self.num_neighbors = batch_size, num_neighbors
        self.seed, self.num_replicas, self.rank = seed, num_replicas, rank
        self.epoch = 0
        self.batches_per_rank = (n // batch_size) // num_replicas
        if self.batches_per_rank == 0:
            raise ValueError(f"{n} samples make no batch of {batch_size} for each of {num_replicas} replicas")

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.batches_per_rank

    def neighbors(self, anchor: int) -> np.ndarray:
        """The num_neighbors samples nearest to anchor in label space, closest first."""
        d = np.linalg.norm(self.labels - self.labels[anchor], axis=1)
        d[anchor] = np.inf
        k = self.num_neighbors
        if k == 0:
            return np.empty(0, dtype=np.int64)
        near = np.argpartition(d, k - 1)[:k]
        # Ties at the cut are settled by index: every sample at the k-th distance is a
        # candidate, so the choice does not depend on argpartition's internal order.
        cut = d[near].max()
        pool = np.flatnonzero(d <= cut)
        return pool[np.lexsort((pool, d[pool]))][:k]

    def __iter__(self) -> Iterator[list[int]]:
        n = len(self.labels)
        anchors = np.random.default_rng([self.seed, self.epoch]).permutation(n)
        mine = anchors[self.rank :: self.num_replicas][: self.batches_per_rank]
        rng = np.random.default_rng([self.seed, self.epoch, self.rank, 1])
        for anchor in mine:
            near = self.neighbors(int(anchor))
            rest = np.ones(n, dtype=bool)
            rest[anchor] = False
            rest[near] = False
            extra = rng.choice(np.flatnonzero(rest), self.batch_size - 1 - len(near), replace=False)
            yield [int(anchor), *near.tolist(), *extra.tolist()]
