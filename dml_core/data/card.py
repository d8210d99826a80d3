"""The dataset card (``card.json``): what a prepared directory holds, built when it is
written and read back by every loader.

It gives the counts per split and class, the image shape with the train split's pixel mean
and std, the source's description, citation and preparation parameters, the checksums of
the raw files read and of every shard written, the evaluation protocol, whether a
horizontal flip keeps the labels valid, and what a continuous label means (``continuous.py``).
Nothing time- or machine-dependent goes in, so the same parameters give the same bytes.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from .continuous import continuous_entry
from .source import Source, SourceData
from .splits import split_names

FORMAT = "dml-prepared/1"
CARD_FILE = "card.json"


def pixel_stats(histograms: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-channel mean and std on the [0, 1] scale from exact integer histograms."""
    values = np.arange(256, dtype=np.float64) / 255.0
    counts = histograms.astype(np.float64)
    total = counts.sum(axis=1)
    mean = (counts * values).sum(axis=1) / total
    var = (counts * (values[None, :] - mean[:, None]) ** 2).sum(axis=1) / total
    return [round(float(m), 6) for m in mean], [round(float(s), 6) for s in np.sqrt(var)]


def eval_protocol(splits: list[str]) -> dict[str, Any]:
    """How retrieval is evaluated: each eval image against the others, or query vs gallery."""
    if "query" in splits:
        return {"query": ["query"], "reference": ["gallery"]}
    return {"query": ["eval"], "reference": None}


def image_entry(image_shape: tuple[int, ...], histograms: np.ndarray) -> dict[str, Any]:
    mean, std = pixel_stats(histograms)
    # Statistics of the train split on the [0, 1] scale, for normalisation.
    return {"shape": list(image_shape), "dtype": "uint8", "order": "HWC", "mean": mean, "std": std}


def split_entries(split: np.ndarray, labels: np.ndarray, splits: list[str]) -> dict[str, Any]:
    """Rows and classes of each split."""
    return {
        s: {"rows": int(np.count_nonzero(split == s)), "classes": int(len(np.unique(labels[split == s])))}
        for s in splits
    }


def class_entries(data: SourceData, labels: np.ndarray, splits: list[str]) -> list[dict[str, Any]]:
    """Each class's label, name and rows per split (splits where it has none left out)."""
    classes = []
    for label, name in enumerate(data.class_names):
        in_class = data.split[labels == label]
        counts = {s: int(np.count_nonzero(in_class == s)) for s in splits}
        classes.append({"label": label, "name": name, "counts": {s: c for s, c in counts.items() if c}})
    return classes


def source_checksums(data: SourceData) -> dict[str, str]:
    """The raw files' checksums, plus one over the image files a list named, where the
    images were read from such files."""
    sources = dict(data.sources)
    if hasattr(data.images, "digest"):
        sources[f"image files listed in {data.images.listed_in}"] = "sha256:" + data.images.digest()
    return sources


def build_card(
    source: Source,
    data: SourceData,
    labels: np.ndarray,
    shards: list[dict[str, Any]],
    histograms: np.ndarray,
    shard_size: int,
) -> dict[str, Any]:
    """The card of ``data`` written by ``source`` as ``shards``; ``histograms``: the train
    split's per-channel pixel counts."""
    splits = split_names(data.split)
    return {
        "format": FORMAT,
        "source": source.registry_name,  # type: ignore[attr-defined]
        "description": source.description,
        "citation": source.citation,
        "layout": source.layout,
        "params": {**source.card_params(), "shard_size": shard_size},
        "image": image_entry(tuple(int(d) for d in data.images.image_shape), histograms),
        "num_images": len(labels),
        "num_classes": len(data.class_names),
        "splits": split_entries(data.split, labels, splits),
        "split_protocol": (
            "train / eval by disjoint classes as in the DML papers; the last "
            f"{source.params.get('val_classes', 0)} training classes are held out as 'val' "
            "for model selection; 'eval' classes are never used for training or selection"
        ),
        "eval_protocol": eval_protocol(splits),
        "classes": class_entries(data, labels, splits),
        "continuous_label": continuous_entry(data.continuous, data.continuous_info),
        "augmentation": {"hflip": bool(data.hflip_safe)},
        "sources": source_checksums(data),
        "shards": shards,
        **data.extra_card,
    }


def card_text(card: dict[str, Any]) -> str:
    """The bytes of card.json: sorted keys, so equal cards are equal files."""
    return json.dumps(card, indent=2, sort_keys=True) + "\n"


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
