"""Input conversion and checks for the metrics: NumPy or torch in, NumPy out; errors name the argument."""
from __future__ import annotations

from typing import Any, Iterable

import numpy as np
import torch


def to_numpy(x: Any, name: str) -> np.ndarray:
    """A NumPy view (or copy) of a tensor, array or nested list; no gradient is kept."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        # NumPy has no bfloat16/float16 BLAS path worth using; float32 is what FAISS takes anyway.
        if x.is_floating_point() and x.dtype not in (torch.float32, torch.float64):
            x = x.float()
        return x.numpy()
    if x is None:
        raise ValueError(f"{name} is required, got None")
    try:
        return np.asarray(x)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} cannot be read as an array: {exc}") from None


def check_finite(x: np.ndarray, name: str) -> None:
    if not np.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or inf values")


def as_embeddings(x: Any, name: str = "embeddings") -> np.ndarray:
    """[n, d] float32, C-contiguous, finite, n >= 1 and d >= 1."""
    a = to_numpy(x, name)
    if a.ndim != 2:
        raise ValueError(f"{name} must have shape [n, dim], got shape {a.shape}")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"{name} must be non-empty, got shape {a.shape}")
    if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise ValueError(f"{name} must hold real numbers, got dtype {a.dtype}")
    check_finite(a, name)
    # A finite float64 can still overflow float32 (the precision FAISS searches in).
    if a.dtype.itemsize > 4 and np.abs(a).max() > np.finfo(np.float32).max:
        raise ValueError(f"{name} has values too large for float32 (|x| > 3.4e38)")
    return np.ascontiguousarray(a, dtype=np.float32)


def as_class_labels(y: Any, n: int, name: str = "labels", rows_of: str = "embeddings") -> np.ndarray:
    """[n] int64 class ids (any integers)."""
    a = to_numpy(y, name)
    if a.ndim != 1:
        raise ValueError(f"{name} must have shape [n], got shape {a.shape}")
    if a.shape[0] != n:
        raise ValueError(f"{name} has length {a.shape[0]} but {rows_of} has {n} rows")
    if a.dtype == np.bool_ or not np.issubdtype(a.dtype, np.integer):
        raise ValueError(
            f"{name} must hold integer class ids, got dtype {a.dtype}"
            " (continuous labels are evaluated by evaluate_continuous)"
        )
    return a.astype(np.int64, copy=False)


def as_continuous_labels(y: Any, n: int, name: str = "labels", rows_of: str = "embeddings") -> np.ndarray:
    """[n, L] float64 continuous labels; a 1-D input is one label per item."""
    a = to_numpy(y, name)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2:
        raise ValueError(f"{name} must have shape [n] or [n, L], got shape {a.shape}")
    if a.shape[0] != n:
        raise ValueError(f"{name} has length {a.shape[0]} but {rows_of} has {n} rows")
    if a.shape[1] == 0:
        raise ValueError(f"{name} has no label dimensions")
    if a.dtype == np.bool_ or not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise ValueError(f"{name} must hold real numbers, got dtype {a.dtype}")
    a = a.astype(np.float64, copy=False)
    check_finite(a, name)
    return a


def as_ks(ks: Iterable[int] | int, limit: int, limit_text: str, name: str = "ks") -> tuple[int, ...]:
    """Sorted distinct positive ints, none above `limit` (the number of items a query can retrieve)."""
    if isinstance(ks, (int, np.integer)) and not isinstance(ks, bool):
        ks = (ks,)
    try:
        values = list(ks)
    except TypeError:
        raise ValueError(f"{name} must be an int or a sequence of ints, got {ks!r}") from None
    if not values:
        raise ValueError(f"{name} must not be empty")
    out = []
    for k in values:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
            raise ValueError(f"{name} must hold ints, got {k!r}")
        if k < 1:
            raise ValueError(f"{name} must be >= 1, got {k}")
        if k > limit:
            raise ValueError(f"{name} has k={k}, larger than {limit_text} ({limit})")
        out.append(int(k))
    return tuple(sorted(set(out)))


def check_pair(reference: Any, reference_labels: Any) -> bool:
    """True when a reference set is given; one of the two without the other is an error."""
    if reference is None and reference_labels is None:
        return False
    if reference is None:
        raise ValueError("reference_labels given without reference")
    if reference_labels is None:
        raise ValueError("reference given without reference_labels")
    return True


def query_and_reference(embeddings: Any, labels: Any, reference: Any, reference_labels: Any, parse_labels):
    """(queries, their labels, reference, its labels, self_mode): the reference is the queries
    themselves when none is given. `parse_labels` is as_class_labels or as_continuous_labels."""
    queries = as_embeddings(embeddings, "embeddings")
    query_labels = parse_labels(labels, queries.shape[0], "labels", "embeddings")
    if not check_pair(reference, reference_labels):
        return queries, query_labels, queries, query_labels, True
    ref = as_embeddings(reference, "reference")
    ref_labels = parse_labels(reference_labels, ref.shape[0], "reference_labels", "reference")
    if ref.shape[1] != queries.shape[1]:
        raise ValueError(f"reference has dim {ref.shape[1]} but embeddings have dim {queries.shape[1]}")
    return queries, query_labels, ref, ref_labels, False


def query_ks(ks: Iterable[int] | int, n_reference: int, self_mode: bool) -> tuple[int, ...]:
    """as_ks for a query against a reference set (itself excluded in self mode)."""
    limit_text = "the number of other embeddings" if self_mode else "the reference set"
    return as_ks(ks, n_reference - self_mode, limit_text)
