"""The prepared format: Arrow IPC shards of uint8 images plus a JSON dataset card.

Layout of a prepared directory (e.g. ``prepared/fashion_mnist/``)::

    card.json            counts per split and class, image shape, pixel statistics,
                         source checksums, preparation parameters, one entry per shard
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

from .source import Source, SourceData, sha256_file
from .splits import TRAIN, check_split, split_names

FORMAT = "dml-prepared/1"
CARD_FILE = "card.json"
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


def _pixel_stats(histograms: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-channel mean and std on the [0, 1] scale from exact integer histograms."""
    values = np.arange(256, dtype=np.float64) / 255.0
    counts = histograms.astype(np.float64)
    total = counts.sum(axis=1)
    mean = (counts * values).sum(axis=1) / total
    var = (counts * (values[None, :] - mean[:, None]) ** 2).sum(axis=1) / total
    return [round(float(m), 6) for m in mean], [round(float(s), 6) for s in np.sqrt(var)]


def _eval_protocol(splits: list[str]) -> dict[str, Any]:
    """How retrieval is evaluated: each eval image against the others, or query vs gallery."""
    if "query" in splits:
        return {"query": ["query"], "reference": ["gallery"]}
    return {"query": ["eval"], "reference": None}


def write_prepared(
    out_dir: str | Path,
    *,
    source: Source,
    data: SourceData,
    shard_size: int = DEFAULT_SHARD_SIZE,
) -> dict[str, Any]:
    """Write ``data`` as shards + card into ``out_dir`` atomically; return the card."""
    out_dir = Path(out_dir)
    labels = np.asarray(data.labels, dtype=np.int64)
    n = len(labels)
    if not (len(data.images) == len(data.split) == len(data.keys) == n):
        raise ValueError("images, labels, split and keys must have the same length")
    check_split(labels, data.split, data.class_names)
    image_shape = tuple(int(d) for d in data.images.image_shape)
    continuous = data.continuous
    width = None if continuous is None else (0 if continuous.ndim == 1 else continuous.shape[1])
    schema = _schema(image_shape, width)
    keys = np.asarray(data.keys, dtype=object)

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        os.chmod(tmp, 0o755)
        shards: list[dict[str, Any]] = []
        histograms = np.zeros((image_shape[2], 256), dtype=np.int64)
        splits = split_names(data.split)
        for split in splits:
            rows = np.flatnonzero(data.split == split)
            # Equal-sized shards (not 10000 + remainder) so ranks reading shards get equal work.
            for k, chunk in enumerate(np.array_split(rows, math.ceil(len(rows) / shard_size))):
                images = data.images.read(chunk)
                if images.shape[1:] != image_shape or images.dtype != np.uint8:
                    raise ValueError(f"source returned images {images.dtype} {images.shape[1:]}, expected uint8 {image_shape}")
                name = f"{split}-{k:05d}.arrow"
                _write_shard(
                    tmp / name,
                    schema,
                    images,
                    labels[chunk],
                    None if continuous is None else continuous[chunk],
                    keys[chunk].tolist(),
                )
                shards.append({"file": name, "split": split, "rows": int(len(chunk)), "sha256": sha256_file(tmp / name)})
                if split == TRAIN:
                    for c in range(image_shape[2]):
                        histograms[c] += np.bincount(images[..., c].reshape(-1), minlength=256)
        sources = dict(data.sources)
        if hasattr(data.images, "digest"):
            sources[f"image files listed in {data.images.listed_in}"] = "sha256:" + data.images.digest()
        mean, std = _pixel_stats(histograms)

        classes = []
        for label, name in enumerate(data.class_names):
            in_class = data.split[labels == label]
            counts = {s: int(np.count_nonzero(in_class == s)) for s in splits}
            classes.append({"label": label, "name": name, "counts": {s: c for s, c in counts.items() if c}})
        card = {
            "format": FORMAT,
            "source": source.registry_name,  # type: ignore[attr-defined]
            "description": source.description,
            "citation": source.citation,
            "layout": source.layout,
            "params": {**source.card_params(), "shard_size": shard_size},
            "image": {
                "shape": list(image_shape),
                "dtype": "uint8",
                "order": "HWC",
                # Statistics of the train split on the [0, 1] scale, for normalisation.
                "mean": mean,
                "std": std,
            },
            "num_images": n,
            "num_classes": len(data.class_names),
            "splits": {
                s: {
                    "rows": int(np.count_nonzero(data.split == s)),
                    "classes": int(len(np.unique(labels[data.split == s]))),
                }
                for s in splits
            },
            "split_protocol": (
                "train / eval by disjoint classes as in the DML papers; the last "
                f"{source.params.get('val_classes', 0)} training classes are held out as 'val' "
                "for model selection; 'eval' classes are never used for training or selection"
            ),
            "eval_protocol": _eval_protocol(splits),
            "classes": classes,
            "continuous_label": data.continuous_info,
            "augmentation": {"hflip": bool(data.hflip_safe)},
            "sources": sources,
            "shards": shards,
            **data.extra_card,
        }
        (tmp / CARD_FILE).write_text(json.dumps(card, indent=2, sort_keys=True) + "\n", encoding="utf-8")
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


def read_card(path: str | Path) -> dict[str, Any]:
    """The dataset card of a prepared directory; FileNotFoundError says how to make one."""
    path = Path(path)
    card_path = path / CARD_FILE
    if not card_path.is_file():
        raise FileNotFoundError(
            f"{card_path} not found: {path} is not a prepared dataset (run "
            "`python -m dml_core.data prepare --params params.yaml` or `dvc repro prepare`)"
        )
    card = json.loads(card_path.read_text(encoding="utf-8"))
    if card.get("format") != FORMAT:
        raise ValueError(f"{card_path} has format {card.get('format')!r}, expected {FORMAT!r}")
    return card
