"""Embeddings and labels to and from Parquet, so a sweep can store them and evaluate later.

Layout: one row per item; column ``embedding`` = fixed_size_list<float32|float64>[dim],
column ``label`` = int64 (class ids), float64 (a scalar continuous label) or
fixed_size_list<float64>[L]. String metadata (run id, split, ...) lives in the schema
metadata. A write goes to a temporary file in the target directory, is fsync'ed, then
renamed over the target: readers see the old file or the new one, never a partial one.
"""
from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Mapping

import numpy as np

from ._checks import as_continuous_labels, check_finite, to_numpy

FORMAT = b"dml-embeddings-v1"
_PREFIX = b"dml:"


def save_embeddings(path, embeddings, labels, *, metadata: Mapping[str, str] | None = None) -> Path:
    """Write [n, dim] embeddings (float32 or float64 kept) and [n] or [n, L] labels."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    emb = to_numpy(embeddings, "embeddings")
    if emb.ndim != 2 or emb.shape[0] == 0 or emb.shape[1] == 0:
        raise ValueError(f"embeddings must have shape [n, dim] with n, dim >= 1, got {emb.shape}")
    if emb.dtype not in (np.float32, np.float64):
        emb = emb.astype(np.float32)
    check_finite(emb, "embeddings")
    lab = to_numpy(labels, "labels")
    n, dim = emb.shape
    if lab.shape[:1] != (n,):
        raise ValueError(f"labels has shape {lab.shape} but embeddings have {n} rows")
    if lab.dtype != np.bool_ and np.issubdtype(lab.dtype, np.integer) and lab.ndim == 1:
        label_col = pa.array(lab.astype(np.int64))
    elif lab.ndim == 1:
        label_col = pa.array(as_continuous_labels(lab, n, "labels")[:, 0])
    else:
        lab = as_continuous_labels(lab, n, "labels")
        label_col = pa.FixedSizeListArray.from_arrays(pa.array(np.ascontiguousarray(lab).ravel()), lab.shape[1])
    emb_col = pa.FixedSizeListArray.from_arrays(pa.array(np.ascontiguousarray(emb).ravel()), dim)
    meta = {b"dml:format": FORMAT}
    for key, value in (metadata or {}).items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise ValueError(f"metadata must map str to str, got {key!r}: {value!r}")
        meta[_PREFIX + key.encode()] = value.encode()
    table = pa.table({"embedding": emb_col, "label": label_col}).replace_schema_metadata(meta)

    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "wb") as f:
            pq.write_table(table, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def _read(path):
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    meta = table.schema.metadata or {}
    if meta.get(b"dml:format") != FORMAT or {"embedding", "label"} - set(table.column_names):
        raise ValueError(f"{path} is not an embeddings file written by save_embeddings")
    return table, meta


def load_embeddings(path) -> tuple[np.ndarray, np.ndarray]:
    """(embeddings [n, dim], labels [n] or [n, L]) as written by `save_embeddings`."""
    import pyarrow as pa

    table, _ = _read(path)
    emb = table.column("embedding").combine_chunks()
    n = len(emb)
    values = emb.flatten().to_numpy(zero_copy_only=False)
    embeddings = values.reshape(n, emb.type.list_size)
    lab = table.column("label").combine_chunks()
    if pa.types.is_fixed_size_list(lab.type):
        labels = lab.flatten().to_numpy(zero_copy_only=False).reshape(n, lab.type.list_size)
    else:
        labels = lab.to_numpy(zero_copy_only=False)
    return embeddings, labels


def load_metadata(path) -> dict[str, str]:
    """The string metadata given to `save_embeddings`."""
    _, meta = _read(path)
    return {k[len(_PREFIX) :].decode(): v.decode() for k, v in meta.items() if k.startswith(_PREFIX) and k != b"dml:format"}
