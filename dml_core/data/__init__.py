"""Datasets for metric learning: preparation into Arrow shards, versioning and fast loading.

Sources (``known_sources()``): ``glyphs`` (the default), ``fashion_mnist``, ``rotation`` and
``glyph_tilt`` (continuous labels), ``cub200``, ``cars196``, ``sop``, ``inshop``,
``imagefolder``. Each reads its standard release layout and is prepared with the split
protocol of the DML papers (train and eval by disjoint classes, plus a class-held-out
validation split)::

    from dml_core.data import prepare_dataset, PreparedDataset, BatchLoader, data_version
    prepare_dataset("fashion_mnist", "/usr/share/datasets/fashion-mnist", "prepared/fashion_mnist")
    train = PreparedDataset("prepared/fashion_mnist", "train")
    for batch in BatchLoader(train, batch_sampler, augment="default"):
        batch.images, batch.labels  # float32 [B, 1, 28, 28], int64 [B]
    data_version("prepared/fashion_mnist")  # the DVC hash, as in dvc.lock

From the shell (the DVC ``prepare`` stage): ``python -m dml_core.data prepare --params params.yaml``.
"""
from .augment import RandomCropFlip, default_augmentation, to_float
from .card import read_card
from .continuous import ContinuousLabel, angle_to_unit_vector, circular_distance, read_continuous_label
from .dataset import Batch, BatchLoader, PreparedDataset, collate_batch, sequential_batches
from .registry import known_sources, prepare_dataset, source_options
from .version import data_version

__all__ = [
    "Batch",
    "BatchLoader",
    "ContinuousLabel",
    "PreparedDataset",
    "RandomCropFlip",
    "angle_to_unit_vector",
    "circular_distance",
    "collate_batch",
    "data_version",
    "default_augmentation",
    "known_sources",
    "prepare_dataset",
    "read_card",
    "read_continuous_label",
    "sequential_batches",
    "source_options",
    "to_float",
]
