"""CUB-200-2011: 11,788 photos of 200 bird species.

Wah, Branson, Welinder, Perona & Belongie, "The Caltech-UCSD Birds-200-2011 Dataset",
Technical Report CNS-TR-2011-001, California Institute of Technology, 2011.

Release layout (``CUB_200_2011.tgz``; ``raw_dir`` may be the ``CUB_200_2011`` folder or its
parent)::

    CUB_200_2011/
        classes.txt              "<class_id> <class_name>"        e.g. "1 001.Black_footed_Albatross"
        images.txt               "<image_id> <relative path>"     e.g. "1 001.Black_footed_Albatross/Black_Footed_Albatross_0046_18.jpg"
        image_class_labels.txt   "<image_id> <class_id>"
        images/<class_name>/<file>.jpg

The release's train_test_split.txt is ignored: metric learning (Oh Song et al. CVPR 2016;
Song et al. CVPR 2017) trains on classes 1-100 and evaluates on the unseen classes 101-200.
Bounding boxes are not used.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .photo_source import ClassRangePhotoSource
from .source import (
    SOURCES,
    SourceData,
    find_release_root,
    parse_int,
    read_table,
    sha256_file,
)

RELEASE_DIR = "CUB_200_2011"


@SOURCES.register("cub200")
class CUB200(ClassRangePhotoSource, val_classes=20, text="cub200"):
    """CUB-200-2011 from its release layout; first ``train_classes`` (default 100) train."""

    def read(self, raw_dir: Path) -> SourceData:
        root = find_release_root(raw_dir, RELEASE_DIR, "images.txt")
        files = {name: root / name for name in ("classes.txt", "images.txt", "image_class_labels.txt")}
        classes = read_table(files["classes.txt"], 2)
        images = read_table(files["images.txt"], 2)
        image_labels = read_table(files["image_class_labels.txt"], 2)

        class_name = {parse_int(c, files["classes.txt"], "class id"): n for c, n in classes}
        path_of = {parse_int(i, files["images.txt"], "image id"): p for i, p in images}
        label_of = {
            parse_int(i, files["image_class_labels.txt"], "image id"): parse_int(c, files["image_class_labels.txt"], "class id")
            for i, c in image_labels
        }
        if set(path_of) != set(label_of):
            odd = sorted(set(path_of) ^ set(label_of))[0]
            raise ValueError(
                f"{files['images.txt']} and {files['image_class_labels.txt']} list different "
                f"image ids (e.g. {odd}): the layout is inconsistent"
            )
        unknown = sorted(set(label_of.values()) - set(class_name))
        if unknown:
            raise ValueError(f"{files['image_class_labels.txt']} uses class id {unknown[0]} missing from {files['classes.txt']}")

        ids = sorted(path_of)
        class_ids = sorted(class_name)
        # Labels are ranks of the class ids of classes.txt, so a class without images is
        # caught by the split check instead of silently shifting every label after it.
        rank = {c: k for k, c in enumerate(class_ids)}
        labels = np.array([rank[label_of[i]] for i in ids], dtype=np.int64)
        relpaths = [f"images/{path_of[i]}" for i in ids]
        names = [class_name[c] for c in class_ids]
        sources = {name: sha256_file(p) for name, p in files.items()}
        return self.class_range_photos(root, relpaths, labels, names, files["images.txt"].name, sources)
