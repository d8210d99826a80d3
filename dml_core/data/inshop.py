"""DeepFashion In-shop Clothes Retrieval: 52,712 photos of 7,982 clothing items.

Liu, Luo, Qiu, Wang & Tang, "DeepFashion: Powering Robust Clothes Recognition and
Retrieval with Rich Annotations", CVPR 2016.

Release layout (``raw_dir`` is the benchmark folder, "In-shop Clothes Retrieval Benchmark")::

    Eval/list_eval_partition.txt   line 1: the number of images (52712)
                                   line 2: "image_name item_id evaluation_status"
                                   then e.g. "img/WOMEN/Blouses_Shirts/id_00000001/02_1_front.jpg id_00000001 train"
    Img/img/WOMEN/.../*.jpg        (unzipped Img/img.zip)

``list_eval_partition.txt`` may also sit directly in ``raw_dir``, and image paths are looked
up under ``raw_dir`` and ``raw_dir/Img``. The protocol is the release's: 3,997 train items
(25,882 images); 3,985 other items split into 14,218 query and 12,612 gallery images;
retrieval ranks the gallery for each query. The last ``val_classes`` train items (in
item-id order) are held out as ``val``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .photo_source import PhotoSource
from .source import SOURCES, SourceData, dense_labels, read_table, sha256_file
from .splits import GALLERY, QUERY, TRAIN

PARTITION = "list_eval_partition.txt"
HEADER = ["image_name", "item_id", "evaluation_status"]
STATUSES = {"train": TRAIN, "query": QUERY, "gallery": GALLERY}


def find_partition(raw_dir: Path) -> Path:
    for candidate in (raw_dir / "Eval" / PARTITION, raw_dir / PARTITION):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"{raw_dir / 'Eval' / PARTITION} not found (nor {raw_dir / PARTITION}): raw_dir does not "
        "hold the In-shop Clothes Retrieval Benchmark layout"
    )


@SOURCES.register("inshop")
class InShop(PhotoSource, val_classes=400, text="inshop"):
    """In-shop with the release's train / query / gallery partition."""

    def read(self, raw_dir: Path) -> SourceData:
        path = find_partition(raw_dir)
        lines = path.read_text(encoding="utf-8").splitlines()
        if len(lines) < 2 or lines[1].split() != HEADER:
            raise ValueError(f"{path}: line 2 must be the header {' '.join(HEADER)}")
        rows = read_table(path, 3, header=2)
        try:
            declared = int(lines[0])
        except ValueError:
            raise ValueError(f"{path}: line 1 must be the number of images, got {lines[0][:40]!r}") from None
        if declared != len(rows):
            raise ValueError(f"{path} declares {declared} images but lists {len(rows)}: truncated?")
        bad = sorted({r[2] for r in rows} - set(STATUSES))
        if bad:
            raise ValueError(f"{path}: unknown evaluation_status {bad[0]!r}; known: {sorted(STATUSES)}")

        relpaths = [r[0] for r in rows]
        image_root = raw_dir if (raw_dir / relpaths[0]).is_file() else raw_dir / "Img"
        items, labels = dense_labels(np.array([r[1] for r in rows]))
        split = np.array([STATUSES[r[2]] for r in rows], dtype="<U7")
        names = [str(i) for i in items]
        return self.photos(image_root, relpaths, labels, names, split, PARTITION, {PARTITION: sha256_file(path)})
