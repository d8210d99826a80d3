"""Reading prepared shards: a memory-mapped torch Dataset and a batch source.

Each shard (see ``prepared.py``) is memory-mapped with ``pyarrow.memory_map`` and its image
column viewed as a uint8 NumPy array [rows, H, W, C] without copying, so every process that
opens the dataset (DataLoader workers, Ray workers) shares the OS page cache rather than
holding its own copy; pickling a dataset sends only its path and reopens the maps.

A batch is gathered in one fancy-indexing operation per shard, then augmented and converted
to float on the whole batch: far faster than a ``__getitem__`` call per image. Use it either
through :class:`BatchLoader` (any iterable of index lists, e.g. the m-per-class batch
sampler) or through ``torch.utils.data.DataLoader(ds, batch_sampler=..., collate_fn=
collate_batch)``, which calls ``__getitems__`` with a whole batch of indices.

For distributed data parallel, either give the batch sampler ``rank`` / ``num_replicas``
(every rank opens all shards; only the pages it touches are read), or open the dataset with
``rank`` / ``num_replicas`` to read only shards ``rank, rank + num_replicas, ...``: useful to
embed an evaluation split in parallel. Do not combine the two.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa
import torch

from .augment import RandomCropFlip, default_augmentation, to_float
from .card import CARD_FILE, read_card
from .continuous import ContinuousLabel, read_continuous_label
from .splits import SPLIT_ORDER


class Batch(NamedTuple):
    images: torch.Tensor  # float32 [B, C, H, W], in [0, 1] or normalised
    labels: torch.Tensor  # int64 [B] class labels
    continuous_labels: torch.Tensor | None  # float32 [B] (or [B, L]); None without one
    indices: torch.Tensor  # int64 [B] dataset indices of the rows


@contextmanager
def single_threaded() -> Iterator[None]:
    """Run torch ops on one thread for the duration of the block.

    A batch is ~10^5 to 10^6 elements: at that size an OpenMP fork/join costs more than the
    work, and on a busy 2-core machine every parallel region waits for a descheduled thread.
    Measured here on Fashion-MNIST batches of 256 with augmentation: 4,000-50,000 images/s
    with 2 threads, 370,000 with 1. The setting is restored afterwards (it is per thread
    for threads that already ran torch ops, so a training loop elsewhere is unaffected).
    """
    n = torch.get_num_threads()
    if n == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def collate_batch(batch: Batch) -> Batch:
    """``collate_fn`` for a DataLoader over a PreparedDataset: ``__getitems__`` already batched."""
    return batch


def row_indices(indices: Iterable[int] | np.ndarray | torch.Tensor, rows: int) -> np.ndarray:
    """``indices`` as a 1-D int64 array, each checked to lie in 0..rows-1 (IndexError naming
    the first that does not)."""
    if isinstance(indices, torch.Tensor):
        indices = indices.numpy()
    idx = np.asarray(indices if isinstance(indices, np.ndarray) else list(indices), dtype=np.int64)
    if idx.ndim != 1:
        raise ValueError(f"indices must be one-dimensional, got shape {idx.shape}")
    if idx.size and (idx.min() < 0 or idx.max() >= rows):
        bad = idx[(idx < 0) | (idx >= rows)][0]
        raise IndexError(f"index {bad} out of range for a dataset of {rows} rows")
    return idx


def first_item(batch: Batch):
    """``ds[i]`` from a one-row batch: (image, label), plus the continuous label where the
    set has one (a float, or a float tensor)."""
    item = (batch.images[0], int(batch.labels[0]))
    if batch.continuous_labels is None:
        return item
    c = batch.continuous_labels[0]
    return (*item, float(c) if c.dim() == 0 else c)


def continuous_meaning(dataset) -> ContinuousLabel | None:
    """What the continuous label of ``dataset`` (a PreparedDataset or a ClassSubset) means:
    its card's (continuous.py), a linear label without a range taking that of its rows.
    None for a set without one."""
    meaning = read_continuous_label(dataset.card, dataset.path / CARD_FILE)
    if meaning is None or dataset.continuous_labels is None:
        return meaning
    return meaning.with_range_of(dataset.continuous_labels)


class BatchDataset(torch.utils.data.Dataset):
    """A dataset read a whole batch at a time: a subclass gives ``get_batch(indices)``, and
    ``ds[i]`` and the DataLoader's ``__getitems__`` come from it."""

    def get_batch(self, indices, **options) -> Batch:  # pragma: no cover - abstract
        raise NotImplementedError

    def __getitems__(self, indices: list[int]) -> Batch:
        return self.get_batch(indices)

    def __getitem__(self, index: int):
        return first_item(self.get_batch([int(index)]))


class PreparedDataset(BatchDataset):
    """The rows of some splits of a prepared directory, memory-mapped.

    ``splits``: a split name or a sequence of them (``"train"``; ``["train", "val"]`` for the
    whole training half; ``"eval"``; In-shop has ``"query"`` and ``"gallery"``). Rows are
    numbered 0..len-1 in shard order. ``normalize=True`` standardises with the train split's
    per-channel mean and std from the card; otherwise images are in [0, 1].

    ``ds[i]`` is ``(image [C, H, W] float32, label int)``, plus the continuous label (a float,
    or a float tensor) for sets that have one.
    """

    def __init__(
        self,
        path: str | Path,
        splits: str | Sequence[str] = "train",
        *,
        rank: int = 0,
        num_replicas: int = 1,
        normalize: bool = False,
    ):
        self.path = Path(path)
        self.card = read_card(self.path)
        self.splits = (splits,) if isinstance(splits, str) else tuple(splits)
        available = [s for s in SPLIT_ORDER if s in self.card["splits"]]
        unknown = [s for s in self.splits if s not in available]
        if unknown or not self.splits:
            raise ValueError(
                f"unknown split {unknown[0] if unknown else splits!r} for {self.path}; "
                f"available splits: {', '.join(available)}"
            )
        if not (isinstance(num_replicas, int) and num_replicas >= 1):
            raise ValueError(f"num_replicas must be an integer >= 1, got {num_replicas!r}")
        if not (isinstance(rank, int) and 0 <= rank < num_replicas):
            raise ValueError(f"rank must be in [0, {num_replicas}), got {rank!r}")
        shards = [s for split in self.splits for s in self.card["shards"] if s["split"] == split]
        self.shards = shards[rank::num_replicas]
        if not self.shards:
            raise ValueError(
                f"rank {rank} of {num_replicas} gets no shard: splits {list(self.splits)} of "
                f"{self.path} have {len(shards)} shard(s); prepare with a smaller shard_size"
            )
        self.rank, self.num_replicas = rank, num_replicas
        self.image_shape = tuple(self.card["image"]["shape"])  # (H, W, C)
        self.normalize = normalize
        self.mean = self.card["image"]["mean"] if normalize else None
        self.std = self.card["image"]["std"] if normalize else None
        self.has_continuous = self.card.get("continuous_label") is not None
        self._open()

    # -- memory maps -------------------------------------------------------------------
    def _open(self) -> None:
        self._maps, self._batches, self._images = [], [], []
        labels, continuous = [], []
        for shard in self.shards:
            file = self.path / shard["file"]
            # pyarrow's own errors ("Not an Arrow file") do not say which file: name it.
            try:
                mm = pa.memory_map(str(file), "r")
                reader = pa.ipc.open_file(mm)
                if reader.num_record_batches != 1:
                    raise ValueError(f"{file}: expected one record batch, found {reader.num_record_batches}")
                batch = reader.get_batch(0)
            except (pa.ArrowException, OSError) as e:
                raise ValueError(
                    f"{file}: not a readable shard of {self.path} ({type(e).__name__}: {e}); "
                    "prepare the dataset again (dvc repro prepare, or dml prepare)"
                ) from e
            if batch.num_rows != shard["rows"]:
                raise ValueError(f"{file} holds {batch.num_rows} rows, the card says {shard['rows']}")
            values = batch.column("image").values.to_numpy(zero_copy_only=True)
            self._maps.append(mm)
            self._batches.append(batch)
            self._images.append(values.reshape(batch.num_rows, *self.image_shape))
            labels.append(batch.column("label").to_numpy(zero_copy_only=True))
            if self.has_continuous:
                col = batch.column("continuous_label")
                if pa.types.is_fixed_size_list(col.type):
                    continuous.append(col.values.to_numpy(zero_copy_only=True).reshape(batch.num_rows, -1))
                else:
                    continuous.append(col.to_numpy(zero_copy_only=True))
        # Labels are small (8 bytes a row) and the sampler wants them whole: one copy is fine.
        self.labels = np.concatenate(labels)
        self.continuous_labels = np.concatenate(continuous) if self.has_continuous else None
        sizes = [len(a) for a in self._images]
        self._offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)

    def __getstate__(self) -> dict[str, Any]:
        # Workers reopen the memory maps: pickling sends the path, never the pixels.
        state = self.__dict__.copy()
        for key in ("_maps", "_batches", "_images", "labels", "continuous_labels", "_offsets"):
            state.pop(key, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._open()

    # -- access ------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self._offsets[-1])

    @property
    def num_classes(self) -> int:
        return int(self.card["num_classes"])

    @property
    def continuous_meaning(self) -> ContinuousLabel | None:
        """What the continuous label means (None without one): see continuous_meaning()."""
        return continuous_meaning(self)

    def gather_uint8(self, indices) -> np.ndarray:
        """The raw uint8 images [B, H, W, C] of ``indices``: one fancy index per shard touched."""
        idx = row_indices(indices, len(self))
        if len(self._images) == 1:
            return self._images[0][idx]
        shard = np.searchsorted(self._offsets, idx, side="right") - 1
        out = np.empty((len(idx), *self.image_shape), dtype=np.uint8)
        for s in np.unique(shard):
            mask = shard == s
            out[mask] = self._images[s][idx[mask] - self._offsets[s]]
        return out

    def keys(self, indices) -> list[str]:
        """Where each row came from (file path, or IDX file and row)."""
        idx = row_indices(indices, len(self))
        shard = np.searchsorted(self._offsets, idx, side="right") - 1
        return [
            self._batches[s].column("key")[int(i - self._offsets[s])].as_py() for s, i in zip(shard, idx)
        ]

    def get_batch(
        self,
        indices,
        *,
        augment: RandomCropFlip | None = None,
        generator: torch.Generator | None = None,
    ) -> Batch:
        """Gather, augment (on uint8) and convert a whole batch."""
        idx = row_indices(indices, len(self))
        with single_threaded():
            images = torch.from_numpy(self.gather_uint8(idx))
            if augment is not None:
                images = augment(images, generator)
            images = to_float(images, self.mean, self.std)
        continuous = None
        if self.continuous_labels is not None:
            continuous = torch.from_numpy(self.continuous_labels[idx])
        return Batch(
            images=images,
            labels=torch.from_numpy(self.labels[idx]),
            continuous_labels=continuous,
            indices=torch.from_numpy(idx),
        )

    def __repr__(self) -> str:
        return (
            f"PreparedDataset({str(self.path)!r}, splits={list(self.splits)}, rows={len(self)}, "
            f"shards={len(self.shards)}, image_shape={self.image_shape})"
        )


class BatchLoader:
    """Batches of a PreparedDataset in the order of any batch sampler (iterable of index lists).

    ``augment``: None, ``"default"`` (crop with padding, plus flip where the card allows it)
    or a :class:`RandomCropFlip`. Augmentation draws come from a generator seeded with
    ``seed`` and reseeded by ``set_epoch`` (which also calls the sampler's ``set_epoch``),
    so an epoch's batches are reproducible.
    """

    def __init__(
        self,
        dataset: PreparedDataset,
        batch_sampler: Iterable[Sequence[int]],
        *,
        augment: RandomCropFlip | str | None = None,
        seed: int = 0,
    ):
        if augment == "default":
            augment = default_augmentation(dataset.card)
        elif isinstance(augment, str):
            raise ValueError(f"augment must be None, 'default' or a RandomCropFlip, got {augment!r}")
        if augment is not None and augment.flip and not dataset.card["augmentation"]["hflip"]:
            raise ValueError(
                f"{dataset.path}: horizontal flips would corrupt this dataset's labels (the card "
                "sets augmentation.hflip = false); use RandomCropFlip(flip=False)"
            )
        self.dataset = dataset
        self.batch_sampler = batch_sampler
        self.augment = augment
        self.seed = int(seed)
        self.generator = torch.Generator().manual_seed(self.seed)

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.batch_sampler, "set_epoch"):
            self.batch_sampler.set_epoch(epoch)
        self.generator.manual_seed(self.seed * 1_000_003 + int(epoch))

    def __len__(self) -> int:
        return len(self.batch_sampler)  # type: ignore[arg-type]

    def __iter__(self):
        for indices in self.batch_sampler:
            yield self.dataset.get_batch(indices, augment=self.augment, generator=self.generator)


def sequential_batches(n: int, batch_size: int) -> list[range]:
    """Index ranges 0..n-1 in order, ``batch_size`` at a time: a batch sampler for embedding."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    return [range(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]
