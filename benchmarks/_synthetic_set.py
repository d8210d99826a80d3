"""A prepared dataset made on the spot, for machines with no fonts and no network (the GPU
machine of benchmarks/device_check.py): grey images of the reference model's input size,
many classes like the glyphs, so the quick profile's batches (24 classes x 4) can be drawn.

Each class is a smooth random pattern (8 x 8 noise upsampled), each of its images that
pattern shifted by up to 3 px plus pixel noise: learnable, so MAP@R moves off chance.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from dml_core.data.images import ArrayImages
from dml_core.data.prepared import write_prepared
from dml_core.data.source import Source, SourceData
from dml_core.data.splits import class_range_split


class SyntheticClasses(Source):
    registry_name = "synthetic_classes"  # not registered: only this module builds it
    description = "Random smooth class patterns, shifted and noised per image (benchmarks/_synthetic_set.py)."
    layout = "(none: generated)"

    def __init__(self, train_classes: int = 200, eval_classes: int = 50, per_class: int = 18, image_size: int = 32, seed: int = 0):
        super().__init__(train_classes=train_classes, eval_classes=eval_classes, per_class=per_class,
                         image_size=image_size, seed=seed)

    def load(self, raw_dir: Path | None = None) -> SourceData:
        p = self.params
        classes, size, per = p["train_classes"] + p["eval_classes"], p["image_size"], p["per_class"]
        rng = np.random.default_rng(p["seed"])
        coarse = rng.uniform(0, 255, size=(classes, 8, 8))
        patterns = np.kron(coarse, np.ones((size // 8 + 1, size // 8 + 1)))[:, :size, :size]
        labels = np.repeat(np.arange(classes), per)
        shifts = rng.integers(-3, 4, size=(len(labels), 2))
        images = np.stack([np.roll(patterns[y], tuple(s), axis=(0, 1)) for y, s in zip(labels, shifts)])
        images = np.clip(images + rng.normal(0, 25, size=images.shape), 0, 255).astype(np.uint8)[..., None]
        return self.finish(SourceData(
            images=ArrayImages(images), labels=labels, class_names=[f"class {c}" for c in range(classes)],
            split=class_range_split(classes, p["train_classes"])[labels], keys=[f"synthetic:{i}" for i in range(len(labels))],
            sources={},
        ))


def write_synthetic_prepared(out_dir: str | Path, **params) -> str:
    """Prepare a SyntheticClasses set (train and eval splits) into out_dir; its path."""
    source = SyntheticClasses(**params)
    write_prepared(out_dir, source=source, data=source.load())
    return str(out_dir)
