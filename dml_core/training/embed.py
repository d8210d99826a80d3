"""Trained model -> embeddings of a dataset split (the arrow 'trainer -> embeddings')."""
from __future__ import annotations

import numpy as np
import torch

from ..data import PreparedDataset
from .layout import batch_to
from .precision import autocast


def stratified_subset(labels: np.ndarray, max_items: int | None, seed: int = 0) -> np.ndarray:
    """At most max_items row numbers, the same share of every class, sorted. The seed is
    fixed per sweep, not per trial, so every trial is scored on the very same items."""
    n = len(labels)
    if max_items is None or max_items >= n:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    keep = []
    classes, inverse = np.unique(labels, return_inverse=True)
    share = max_items / n
    for c in range(len(classes)):
        rows = np.flatnonzero(inverse == c)
        take = max(2, int(round(share * len(rows))))
        keep.append(rng.choice(rows, size=min(take, len(rows)), replace=False))
    return np.sort(np.concatenate(keep))


@torch.no_grad()
def embed(
    model: torch.nn.Module, dataset: PreparedDataset, rows: np.ndarray, *, batch_size: int = 512, device: str = "cpu",
    precision: str = "fp32", channels_last: bool = False,
) -> np.ndarray:
    """float32 [len(rows), dim] embeddings of the given rows, in eval mode, no augmentation.
    `precision` and `channels_last` are the trial's (dml_core.training.precision, .layout):
    the network runs as it trained, its output is float32 whatever it computed in."""
    was_training = model.training
    model.eval()
    out = []
    try:
        for start in range(0, len(rows), batch_size):
            batch = dataset.get_batch(rows[start : start + batch_size])
            with autocast(device, precision):
                emb = model(batch_to(batch.images, device, channels_last))
            out.append(emb.float().cpu())
    finally:
        model.train(was_training)
    return torch.cat(out).numpy() if out else np.zeros((0, 0), np.float32)
