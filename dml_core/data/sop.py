"""Stanford Online Products (SOP): 120,053 photos of 22,634 products from eBay.

Oh Song, Xiang, Jegelka & Savarese, "Deep Metric Learning via Lifted Structured Feature
Embedding", CVPR 2016.

Release layout (``Stanford_Online_Products.zip``; ``raw_dir`` may be that folder or its
parent)::

    Stanford_Online_Products/
        Ebay_train.txt   header "image_id class_id super_class_id path", then rows like
                         "1 1 1 bicycle_final/111085122871_0.JPG"; 59,551 images, classes 1-11318
        Ebay_test.txt    same columns; 60,502 images, classes 11319-22634
        bicycle_final/ cabinet_final/ ... (12 super-class folders of images)

The split is the release's own: Ebay_train.txt trains, Ebay_test.txt evaluates, and their
classes are disjoint (checked). Class names in the card are "<super-class folder>/<class_id>"
(e.g. "bicycle_final/1"); the super-class is not used otherwise.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .photo_source import PhotoSource
from .source import (
    SOURCES,
    SourceData,
    dense_labels,
    find_release_root,
    parse_int,
    read_table,
    sha256_file,
)
from .splits import EVAL, TRAIN

RELEASE_DIR = "Stanford_Online_Products"
HEADER = ["image_id", "class_id", "super_class_id", "path"]
LISTS = {"Ebay_train.txt": TRAIN, "Ebay_test.txt": EVAL}


def read_ebay_list(path: Path) -> tuple[np.ndarray, list[str]]:
    """(class ids, relative image paths) of Ebay_train.txt or Ebay_test.txt."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: raw_dir does not hold the {RELEASE_DIR} release layout")
    with open(path, encoding="utf-8") as f:
        header = f.readline().split()
    if header != HEADER:
        raise ValueError(f"{path}: header {header} is not the SOP header {HEADER}")
    rows = read_table(path, 4, header=1)
    class_ids = np.array([parse_int(r[1], path, "class_id") for r in rows], dtype=np.int64)
    return class_ids, [r[3] for r in rows]


@SOURCES.register("sop")
class StanfordOnlineProducts(PhotoSource, val_classes=1000, text="sop"):
    """SOP with its own class-disjoint train / test lists (11,318 / 11,316 classes)."""

    def read(self, raw_dir: Path) -> SourceData:
        root = find_release_root(raw_dir, RELEASE_DIR, "Ebay_train.txt")
        class_ids, relpaths, split = [], [], []
        for name, split_name in LISTS.items():
            ids, paths = read_ebay_list(root / name)
            class_ids.append(ids)
            relpaths += paths
            split += [split_name] * len(ids)
        shared = np.intersect1d(class_ids[0], class_ids[1])
        if shared.size:
            raise ValueError(
                f"Ebay_train.txt and Ebay_test.txt share {shared.size} class(es), e.g. class_id "
                f"{shared[0]}: the split must be class-disjoint"
            )
        unique, labels = dense_labels(np.concatenate(class_ids))
        folder = {}
        for label, path in zip(labels.tolist(), relpaths):
            folder.setdefault(label, path.split("/", 1)[0])
        names = [f"{folder[k]}/{c}" for k, c in enumerate(unique.tolist())]
        split = np.array(split, dtype="<U7")
        sources = {name: sha256_file(root / name) for name in LISTS}
        return self.photos(root, relpaths, labels, names, split, "Ebay_train.txt / Ebay_test.txt", sources)
