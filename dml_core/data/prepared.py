"""The prepared format: Arrow IPC shards of uint8 images plus a JSON dataset card.

Layout of a prepared directory (e.g. ``prepared/fashion_mnist/``)::

    card.json            counts per split and class, image shape, pixel statistics,
                         source checksums, preparation parameters, one entry per shard
                         (``card.py``)
    train-00000.arrow    Arrow IPC *file* format, uncompressed, one record batch:
    ...                    image            fixed_size_list<uint8>[H*W*C]  (HWC order)
    val-00000.arrow        label            int64, 0..num_classes-1
    eval-00000.arrow       continuous_label float32 (or fixed_size_list<float32>[L]), optional
                           key              string: where the image came from

Uncompressed IPC files can be memory-mapped and viewed as NumPy arrays without a copy
(``pyarrow.memory_map`` + ``pyarrow.ipc.open_file``), so a loader in each worker process
shares the page cache instead of holding its own copy. Parquet would compress better but
must be decoded into private memory on every read.

Writing is atomic: everything goes to a temporary sibling directory that is renamed onto
the output only when the card is complete, so a failure never leaves a half-written
dataset. Nothing time- or machine-dependent is written, so the same parameters give the
same bytes (and the same DVC hash).
"""
from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from .card import CARD_FILE, FORMAT, build_card, card_text
from .source import Source, SourceData, sha256_file
from .splits import TRAIN, check_split, split_names

DEFAULT_SHARD_SIZE = 10_000


def _schema(image_shape: tuple[int, ...], continuous_width: int | None) -> pa.Schema:
    fields = [
        pa.field("image", pa.list_(pa.uint8(), int(np.prod(image_shape))), nullable=False),
        pa.field("label", pa.int64(), nullable=False),
    ]
    if continuous_width == 0:
        fields.append(pa.field("continuous_label", pa.float32(), nullable=False))
    elif continuous_width:
        fields.append(
            pa.field("continuous_label", pa.list_(pa.float32(), continuous_width), nullable=False)
        )
    fields.append(pa.field("key", pa.string(), nullable=False))
    return pa.schema(fields, metadata={"dml.format": FORMAT, "dml.image_shape": json.dumps(list(image_shape))})


def _write_shard(path: Path, schema: pa.Schema, images, labels, continuous, keys) -> None:
    n = len(images)
    columns = [
        pa.FixedSizeListArray.from_arrays(pa.array(images.reshape(-1)), images[0].size),
        pa.array(labels, type=pa.int64()),
    ]
    if continuous is not None:
        values = pa.array(np.ascontiguousarray(continuous, dtype=np.float32).reshape(-1))
        columns.append(values if continuous.ndim == 1 else pa.FixedSizeListArray.from_arrays(values, continuous.shape[1]))
    columns.append(pa.array(keys, type=pa.string()))
    batch = pa.RecordBatch.from_arrays(columns, schema=schema)
    assert batch.num_rows == n
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, schema) as writer:
        writer.write_batch(batch)


def checked_labels(data: SourceData) -> np.ndarray:
    """``data.labels`` as int64, once images, split and keys are known to match them and
    the split to be by class (ValueError otherwise)."""
    labels = np.asarray(data.labels, dtype=np.int64)
    if not (len(data.images) == len(data.split) == len(data.keys) == len(labels)):
        raise ValueError("images, labels, split and keys must have the same length")
    check_split(labels, data.split, data.class_names)
    return labels


def write_shards(
    out_dir: Path, data: SourceData, labels: np.ndarray, shard_size: int
) -> tuple[list[dict[str, Any]], np.ndarray]:
    """Write each split as equal-sized shards into ``out_dir``; return the shards' card
    entries and the train split's per-channel pixel histograms [C, 256]."""
    image_shape = tuple(int(d) for d in data.images.image_shape)
    continuous = data.continuous
    schema = _schema(image_shape, None if continuous is None else (0 if continuous.ndim == 1 else continuous.shape[1]))
    keys = np.asarray(data.keys, dtype=object)
    shards: list[dict[str, Any]] = []
    histograms = np.zeros((image_shape[2], 256), dtype=np.int64)
    for split in split_names(data.split):
        rows = np.flatnonzero(data.split == split)
        # Equal-sized shards (not 10000 + remainder) so ranks reading shards get equal work.
        for k, chunk in enumerate(np.array_split(rows, math.ceil(len(rows) / shard_size))):
            images = data.images.read(chunk)
            if images.shape[1:] != image_shape or images.dtype != np.uint8:
                raise ValueError(f"source returned images {images.dtype} {images.shape[1:]}, expected uint8 {image_shape}")
            name = f"{split}-{k:05d}.arrow"
            _write_shard(
                out_dir / name,
                schema,
                images,
                labels[chunk],
                None if continuous is None else continuous[chunk],
                keys[chunk].tolist(),
            )
            shards.append({"file": name, "split": split, "rows": int(len(chunk)), "sha256": sha256_file(out_dir / name)})
            if split == TRAIN:
                for c in range(image_shape[2]):
                    histograms[c] += np.bincount(images[..., c].reshape(-1), minlength=256)
    return shards, histograms


def write_prepared(
    out_dir: str | Path,
    *,
    source: Source,
    data: SourceData,
    shard_size: int = DEFAULT_SHARD_SIZE,
) -> dict[str, Any]:
    """Write ``data`` as shards + card into ``out_dir`` atomically; return the card."""
    out_dir = Path(out_dir)
    labels = checked_labels(data)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        os.chmod(tmp, 0o755)
        shards, histograms = write_shards(tmp, data, labels, shard_size)
        card = build_card(source, data, labels, shards, histograms, shard_size)
        (tmp / CARD_FILE).write_text(card_text(card), encoding="utf-8")
        _replace_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return card


def _replace_dir(tmp: Path, out_dir: Path) -> None:
    """Rename ``tmp`` onto ``out_dir``; an old ``out_dir`` is moved aside first, then deleted."""
    if out_dir.is_symlink() or out_dir.is_file():
        raise ValueError(f"out_dir {out_dir} exists and is not a directory")
    old = None
    if out_dir.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
        os.rename(out_dir, old / "data")
    os.rename(tmp, out_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
