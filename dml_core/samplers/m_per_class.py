"""S4: batches of C classes x m samples each, seeded, shardable across distributed ranks.

Every epoch, each class's samples are shuffled and cut into chunks of m (the last chunk is
topped up with other samples of the same class), so every sample is visited once per epoch.
Chunks are then dealt into batches of C distinct classes. The largest number of batches b
is the largest b with sum_c min(k_c, b) >= C b (k_c = chunks of class c); laying the chunks
out class by class and dealing chunk j to batch j mod b reaches it, and no batch gets two
chunks of one class because a class never has more than b chunks in the layout. Only chunks
that no full batch could take are dropped: with balanced classes, none.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np
import torch
from torch.utils.data import Sampler


def _as_label_array(labels) -> np.ndarray:
    arr = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"labels must be a 1-D array of integer class ids, got shape {arr.shape}, dtype {arr.dtype}")
    return arr


def max_batches(chunks_per_class: np.ndarray, classes_per_batch: int) -> int:
    """Largest b with sum_c min(k_c, b) >= C b; f(b) = sum min(k_c, b) - C b is concave with
    f(0) = 0, so {b : f(b) >= 0} is an interval and a binary search finds its end."""
    lo, hi = 0, int(chunks_per_class.sum()) // classes_per_batch
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if np.minimum(chunks_per_class, mid).sum() >= classes_per_batch * mid:
            lo = mid
        else:
            hi = mid - 1
    return lo


class MPerClassSampler(Sampler[list[int]]):
    """A batch sampler yielding lists of dataset indices: C classes x m samples each.

    Give batch_size and one of m_per_class, classes_per_batch, or class_ratio (= C /
    batch_size, the C/m of Song et al. 2017 with m the batch size). With num_replicas > 1,
    rank r gets every num_replicas-th batch of the epoch's shuffled list, truncated so every
    rank has the same number of batches and no two ranks share one. Call set_epoch(e) each
    epoch (as with DistributedSampler); the order is a function of (seed, epoch) only.
    """

    def __init__(
        self,
        labels,
        batch_size: int,
        m_per_class: int | None = None,
        classes_per_batch: int | None = None,
        class_ratio: float | None = None,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
        replace: bool = False,
    ):
        self.labels = _as_label_array(labels)
        given = [n for n, v in (("m_per_class", m_per_class), ("classes_per_batch", classes_per_batch), ("class_ratio", class_ratio)) if v is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of m_per_class, classes_per_batch, class_ratio (got {given or 'none'})")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if class_ratio is not None:
            if not 0 < class_ratio <= 1:
                raise ValueError(f"class_ratio must be in (0, 1], got {class_ratio}")
            classes_per_batch = int(round(class_ratio * batch_size))
            if abs(classes_per_batch - class_ratio * batch_size) > 1e-9:
                raise ValueError(f"class_ratio={class_ratio} x batch_size={batch_size} is not a whole number of classes")
        if classes_per_batch is not None:
            if not 1 <= classes_per_batch <= batch_size:
                raise ValueError(f"classes_per_batch must be in [1, batch_size={batch_size}], got {classes_per_batch}")
            # C need not divide the batch (C/m = 0.75 in Song et al. 2017): then each class
            # gets ceil(batch/C) samples and `trim` of them give back their last one.
            m_per_class = -(-batch_size // classes_per_batch)
            self.trim = classes_per_batch * m_per_class - batch_size
        else:
            if m_per_class < 1 or batch_size % m_per_class:
                raise ValueError(f"batch_size={batch_size} is not a multiple of m_per_class={m_per_class}")
            classes_per_batch = batch_size // m_per_class
            self.trim = 0
        if not (isinstance(num_replicas, int) and num_replicas >= 1 and 0 <= rank < num_replicas):
            raise ValueError(f"rank must be in [0, num_replicas), got rank={rank}, num_replicas={num_replicas}")
        self.batch_size = batch_size
        self.m = m_per_class
        self.classes_per_batch = classes_per_batch
        self.seed, self.num_replicas, self.rank, self.replace = seed, num_replicas, rank, replace
        self.epoch = 0

        self.classes, inverse = np.unique(self.labels, return_inverse=True)
        if len(self.classes) < self.classes_per_batch:
            raise ValueError(
                f"the dataset has {len(self.classes)} classes, fewer than the "
                f"{self.classes_per_batch} classes_per_batch a batch needs"
            )
        order = np.argsort(inverse, kind="stable")
        self.class_sizes = np.bincount(inverse, minlength=len(self.classes))
        self.members = np.split(order, np.cumsum(self.class_sizes)[:-1])
        small = np.flatnonzero(self.class_sizes < self.m)
        if len(small) and not replace:
            c = small[0]
            raise ValueError(
                f"class {self.classes[c].item()!r} has {self.class_sizes[c]} samples, fewer than "
                f"m_per_class={self.m}; set replace=True or lower m_per_class"
            )
        self.chunks_per_class = np.maximum(-(-self.class_sizes // self.m), 1)
        self.num_batches = max_batches(self.chunks_per_class, self.classes_per_batch)
        self.batches_per_rank = self.num_batches // num_replicas
        if self.batches_per_rank == 0:
            raise ValueError(
                f"no full batch of {self.classes_per_batch} classes x {self.m} fits on each of "
                f"{num_replicas} replicas: too few samples or classes"
            )

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.batches_per_rank

    def class_chunks(self, rng: np.random.Generator, members: np.ndarray) -> np.ndarray:
        """[k, m] chunks of one class: a shuffle cut in rows, the last topped up from the first."""
        perm = rng.permutation(members)
        if len(perm) < self.m:
            return rng.choice(members, size=(1, self.m), replace=True)
        pad = -len(perm) % self.m
        return np.concatenate([perm, perm[:pad]]).reshape(-1, self.m)

    def epoch_batches(self, epoch: int) -> np.ndarray:
        """All [num_batches, batch_size] batches of an epoch, before sharding."""
        rng = np.random.default_rng([self.seed, epoch])
        chunks = [self.class_chunks(rng, members) for members in self.members]
        b = self.num_batches
        layout = np.concatenate([chunks[c][:b] for c in rng.permutation(len(chunks))])
        layout = layout[: b * self.classes_per_batch]
        # Chunk j goes to batch j mod b: [C, b, m] -> [b, C, m].
        batches = layout.reshape(self.classes_per_batch, b, self.m).transpose(1, 0, 2)
        batches = batches.reshape(b, self.classes_per_batch * self.m)
        if self.trim:
            keep = np.ones((self.classes_per_batch, self.m), dtype=bool)
            keep[self.classes_per_batch - self.trim :, -1] = False
            batches = batches[:, keep.ravel()]
        return batches[rng.permutation(b)]

    def __iter__(self) -> Iterator[list[int]]:
        batches = self.epoch_batches(self.epoch)
        mine = batches[self.rank :: self.num_replicas][: self.batches_per_rank]
        for batch in mine:
            yield batch.tolist()
