"""Class partitions of the training half: train / validation folds without re-preparing data.

Musgrave et al. ("A Metric Learning Reality Check", ECCV 2020) keep the evaluation classes
fixed and vary which *training* classes validate. A trial's ``partition`` does that here:

* partition 0 is the prepared split itself (``train`` trains, ``val`` validates);
* partition p > 0 pools the prepared ``train`` and ``val`` classes and holds out as many of
  them as the prepared ``val`` split has, chosen by :func:`held_out_classes`: the first k
  classes of a permutation of the pooled class ids (sorted) drawn from
  ``np.random.default_rng([p, PARTITION_SALT])``. A draw that repeats the held-out set of
  partition 0 or of an earlier partition q < p is drawn again from the same generator, as
  long as unused sets remain (C(n, k) of them), so the first C(n, k) - 1 partitions are
  distinct folds. The result depends on the class ids alone: the same partition of the
  same card always gives the same split, in any process.

The evaluation split is never part of a partition. The folds are :class:`ClassSubset`
views of one :class:`PreparedDataset` over ``["train", "val"]``: the same memory maps, only
the row numbers differ, and they are accepted wherever a PreparedDataset is (samplers,
:class:`BatchLoader`, embedding, scoring).
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .card import read_card
from .continuous import ContinuousLabel
from .dataset import Batch, BatchDataset, PreparedDataset, continuous_meaning, row_indices
from .splits import EVAL, TRAIN, VAL

PARTITION_SALT = 7919  # the second word of the partition generator's seed: [p, 7919]


class ClassSubset(BatchDataset):
    """The rows of ``dataset`` whose class label is in ``classes``, as a dataset of its own.

    Rows are renumbered 0..len-1 in the order of the underlying dataset; ``rows`` maps them
    back. ``labels``, ``continuous_labels``, ``continuous_meaning``, ``image_shape``,
    ``card``, ``path``, ``get_batch`` (``Batch.indices`` are subset row numbers),
    ``gather_uint8``, ``keys``, ``ds[i]`` and ``__getitems__`` behave as on a
    :class:`PreparedDataset`. Pickling sends the base dataset (its path) and the class ids;
    the rows are recomputed on arrival.
    """

    def __init__(self, dataset: PreparedDataset, classes: Iterable[int], *, name: str | None = None):
        self.base = dataset
        self.classes = np.unique(np.asarray(list(classes), dtype=np.int64))
        if self.classes.size == 0:
            raise ValueError(f"a class subset of {dataset.path} needs at least one class")
        present = np.unique(dataset.labels)
        missing = np.setdiff1d(self.classes, present)
        if missing.size:
            raise ValueError(
                f"class(es) {missing[:5].tolist()} have no rows in splits {list(dataset.splits)} of {dataset.path}"
            )
        self.name = name
        self._select()

    def _select(self) -> None:
        self.rows = np.flatnonzero(np.isin(self.base.labels, self.classes)).astype(np.int64)
        self.labels = self.base.labels[self.rows]
        cont = self.base.continuous_labels
        self.continuous_labels = None if cont is None else cont[self.rows]

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for key in ("rows", "labels", "continuous_labels"):
            state.pop(key, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._select()

    # -- what a PreparedDataset exposes ---------------------------------------------------
    @property
    def path(self) -> Path:
        return self.base.path

    @property
    def card(self) -> dict[str, Any]:
        return self.base.card

    @property
    def splits(self) -> tuple[str, ...]:
        return self.base.splits

    @property
    def image_shape(self) -> tuple[int, ...]:
        return self.base.image_shape

    @property
    def has_continuous(self) -> bool:
        return self.base.has_continuous

    @property
    def normalize(self) -> bool:
        return self.base.normalize

    @property
    def mean(self):
        return self.base.mean

    @property
    def std(self):
        return self.base.std

    @property
    def num_classes(self) -> int:
        return self.base.num_classes

    @property
    def continuous_meaning(self) -> ContinuousLabel | None:
        """As PreparedDataset's; a linear label's range is that of this subset's rows."""
        return continuous_meaning(self)

    def __len__(self) -> int:
        return len(self.rows)

    def gather_uint8(self, indices) -> np.ndarray:
        return self.base.gather_uint8(self.rows[row_indices(indices, len(self))])

    def keys(self, indices) -> list[str]:
        return self.base.keys(self.rows[row_indices(indices, len(self))])

    def get_batch(self, indices, **options) -> Batch:
        """The base set's batch of these rows (``options``: augment, generator, as there),
        with ``indices`` numbered in this subset."""
        idx = row_indices(indices, len(self))
        batch = self.base.get_batch(self.rows[idx], **options)
        return batch._replace(indices=torch.from_numpy(idx))

    def __repr__(self) -> str:
        name = f", name={self.name!r}" if self.name else ""
        return (
            f"ClassSubset({str(self.path)!r}, splits={list(self.splits)}, classes={len(self.classes)}, "
            f"rows={len(self)}{name})"
        )


def held_out_classes(pool: Sequence[int], prepared_val: Sequence[int], partition: int) -> np.ndarray:
    """The sorted class ids that validate in ``partition`` (see the module docstring).

    ``pool``: the class ids of train and val together; ``prepared_val``: those of the
    prepared val split (partition 0, and the number k of classes every partition holds out).
    """
    if not isinstance(partition, (int, np.integer)) or isinstance(partition, bool) or partition < 0:
        raise ValueError(f"partition must be an integer >= 0, got {partition!r}")
    classes = np.unique(np.asarray(list(pool), dtype=np.int64))
    val0 = np.unique(np.asarray(list(prepared_val), dtype=np.int64))
    if not np.isin(val0, classes).all():
        raise ValueError("the prepared val classes must be part of the pool")
    if partition == 0:
        return val0
    n, k = len(classes), len(val0)
    if not 0 < k < n:
        raise ValueError(f"cannot hold out {k} of {n} classes: need 0 < val classes < train + val classes")
    distinct = math.comb(n, k)
    seen = {tuple(val0.tolist())}
    held = val0
    for q in range(1, int(partition) + 1):
        rng = np.random.default_rng([q, PARTITION_SALT])
        while True:
            held = np.sort(rng.permutation(classes)[:k])
            if tuple(held.tolist()) not in seen or len(seen) >= distinct:
                break
        seen.add(tuple(held.tolist()))
    return held


def partition_splits(
    path: str | Path, partition: int, *, val: bool = True
) -> tuple[PreparedDataset | ClassSubset, PreparedDataset | ClassSubset | None]:
    """(train set, val set) of a prepared directory for class ``partition``.

    Partition 0 opens the prepared ``train`` and ``val`` splits as they are. Partition p > 0
    needs a val split: a ValueError names the dataset and the partition otherwise. With
    ``val=False`` the val set is None (a trial that does not validate).
    """
    if not isinstance(partition, (int, np.integer)) or isinstance(partition, bool) or partition < 0:
        raise ValueError(f"partition must be an integer >= 0, got {partition!r}")
    path = Path(path)
    if partition == 0:
        return PreparedDataset(path, TRAIN), (PreparedDataset(path, VAL) if val else None)
    if VAL not in read_card(path)["splits"]:
        raise ValueError(
            f"dataset {str(path)!r} has no 'val' split, so it has no class partition {partition} "
            "(only partition 0); prepare it with val_classes > 0 or use partition: 0"
        )
    pool = PreparedDataset(path, [TRAIN, VAL])
    prepared_val = [c["label"] for c in pool.card["classes"] if c["counts"].get(VAL)]
    classes = np.unique(pool.labels)
    val_classes = held_out_classes(classes, prepared_val, partition)
    train_classes = np.setdiff1d(classes, val_classes)
    train_set = ClassSubset(pool, train_classes, name=f"train of partition {partition}")
    val_set = ClassSubset(pool, val_classes, name=f"val of partition {partition}") if val else None
    return train_set, val_set


DRAW_SALT = 104729  # the second word of the class-draw generator's seed: [p, 104729]


def drawn_classes(train: Sequence[int], val: Sequence[int], evaluation: Sequence[int], draw: int) -> tuple[np.ndarray, ...]:
    """(train, val, eval) class ids of class draw ``draw`` over the whole class population.

    Draw 0 is the prepared split. Draw p > 0 permutes the sorted ids of all three splits with
    ``np.random.default_rng([p, DRAW_SALT])`` and cuts the permutation into parts of the
    prepared splits' sizes (training classes first, then validation, then evaluation): three
    disjoint sets, the same ones for the same draw in any process. A verdict over draws then
    holds for the class population, not for one fixed set of evaluation classes.
    """
    if not isinstance(draw, (int, np.integer)) or isinstance(draw, bool) or draw < 0:
        raise ValueError(f"draw must be an integer >= 0, got {draw!r}")
    parts = [np.unique(np.asarray(list(c), dtype=np.int64)) for c in (train, val, evaluation)]
    if draw == 0:
        return tuple(parts)
    pool = np.concatenate(parts)
    if len(np.unique(pool)) != len(pool):
        raise ValueError("the prepared train, val and eval classes overlap: a class draw needs disjoint splits")
    perm = np.random.default_rng([int(draw), DRAW_SALT]).permutation(np.sort(pool))
    cuts = np.cumsum([len(p) for p in parts])[:-1]
    return tuple(np.sort(p) for p in np.split(perm, cuts))


def drawn_splits(path: str | Path, draw: int, *, val: bool = True) -> tuple[Any, Any, Any]:
    """(train set, val set or None, eval set) of class draw ``draw`` (:func:`drawn_classes`),
    as :class:`ClassSubset` views of one PreparedDataset over the train, val and eval splits."""
    path = Path(path)
    card = read_card(path)
    if draw == 0:
        train, val_set = partition_splits(path, 0, val=val)
        return train, val_set, PreparedDataset(path, EVAL)
    missing = [s for s in (TRAIN, VAL, EVAL) if s not in card["splits"]]
    if missing:
        raise ValueError(f"dataset {str(path)!r} has no {missing[0]!r} split, so it has no class draw {draw}: "
                         "a draw re-deals the train, val and eval classes")
    pool = PreparedDataset(path, [TRAIN, VAL, EVAL])
    of = {s: [c["label"] for c in card["classes"] if c["counts"].get(s)] for s in (TRAIN, VAL, EVAL)}
    train_c, val_c, eval_c = drawn_classes(np.setdiff1d(of[TRAIN], of[VAL]), of[VAL], of[EVAL], draw)
    return (ClassSubset(pool, train_c, name=f"train of class draw {draw}"),
            ClassSubset(pool, val_c, name=f"val of class draw {draw}") if val else None,
            ClassSubset(pool, eval_c, name=f"eval of class draw {draw}"))
