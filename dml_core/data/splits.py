"""The split protocol of the deep-metric-learning papers: train and eval by disjoint classes.

Oh Song et al. (CVPR 2016) and Song et al. (CVPR 2017) train on the first half of the classes
of CUB-200-2011 (100/100) and Cars196 (98/98) and evaluate retrieval on the second, unseen
half; Stanford Online Products ships its own class-disjoint Ebay_train.txt / Ebay_test.txt
(11,318 / 11,316 classes) and In-shop its train / query / gallery partition. On top of that
we hold out the *last* ``val_classes`` training classes as a validation split, so that
hyperparameters are chosen without ever looking at the evaluation classes.

Splits are numpy arrays of split names, one per image. Every check here raises ValueError
naming the parameter or class at fault.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..validation import check_count

TRAIN, VAL, EVAL, QUERY, GALLERY = "train", "val", "eval", "query", "gallery"
# Order of the splits in the prepared output (and in the dataset card).
SPLIT_ORDER = (TRAIN, VAL, EVAL, QUERY, GALLERY)
# Splits that together form the evaluation side; they may share classes with each other
# (In-shop's query and gallery do) but never with train or val.
EVAL_SIDE = (EVAL, QUERY, GALLERY)


def class_range_split(num_classes: int, train_classes: int | None) -> np.ndarray:
    """Split names per class: the first ``train_classes`` train, the rest eval.

    ``None`` means the papers' half (floor(num_classes / 2)): 5/5 for Fashion-MNIST,
    100/100 for CUB, 98/98 for Cars196.
    """
    if num_classes < 2:
        raise ValueError(f"need at least 2 classes to split train/eval, found {num_classes}")
    if train_classes is None:
        train_classes = num_classes // 2
    train_classes = check_count(
        train_classes, "train_classes", low=1, high=num_classes - 1
    )
    return np.where(np.arange(num_classes) < train_classes, TRAIN, EVAL).astype("<U7")


def hold_out_validation(labels: np.ndarray, split: np.ndarray, val_classes: int) -> np.ndarray:
    """Move the images of the last ``val_classes`` training classes to the ``val`` split."""
    train_labels = np.unique(labels[split == TRAIN])
    val_classes = check_count(
        val_classes, "val_classes", low=0, high=max(len(train_labels) - 1, 0)
    )
    if val_classes == 0:
        return split
    held_out = train_labels[len(train_labels) - val_classes :]
    split = split.copy()
    split[np.isin(labels, held_out) & (split == TRAIN)] = VAL
    return split


def check_split(labels: np.ndarray, split: np.ndarray, class_names: Sequence[str]) -> None:
    """Every class has images, train is non-empty, and train / val / eval share no class."""
    num_classes = len(class_names)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes}), got [{labels.min()}, {labels.max()}]")
    counts = np.bincount(labels, minlength=num_classes)
    empty = np.flatnonzero(counts == 0)
    if empty.size:
        shown = ", ".join(f"{int(c)} ({class_names[c]!r})" for c in empty[:5])
        raise ValueError(
            f"{empty.size} class(es) have no images, e.g. {shown}: every listed class needs at "
            "least one image"
        )
    unknown = sorted(set(np.unique(split)) - set(SPLIT_ORDER))
    if unknown:
        raise ValueError(f"unknown split name(s) {unknown}; known: {list(SPLIT_ORDER)}")
    if not np.any(split == TRAIN):
        raise ValueError("the train split is empty; check train_classes / val_classes")
    if not np.any(np.isin(split, EVAL_SIDE)):
        raise ValueError("the eval split is empty; check train_classes")
    groups = {TRAIN: {TRAIN}, VAL: {VAL}, EVAL: set(EVAL_SIDE)}
    seen: dict[str, set[int]] = {
        g: set(np.unique(labels[np.isin(split, list(members))]).tolist()) for g, members in groups.items()
    }
    for a, b in ((TRAIN, VAL), (TRAIN, EVAL), (VAL, EVAL)):
        shared = seen[a] & seen[b]
        if shared:
            c = min(shared)
            raise ValueError(
                f"splits {a!r} and {b!r} share {len(shared)} class(es), e.g. {c} ({class_names[c]!r}); "
                "train, val and eval classes must be disjoint"
            )


def split_names(split: np.ndarray) -> list[str]:
    """The splits present, in the canonical order."""
    present = set(np.unique(split).tolist())
    return [s for s in SPLIT_ORDER if s in present]
