"""A generic folder of class sub-folders, for any dataset not covered by a named source.

Layout (the ``torchvision.datasets.ImageFolder`` convention)::

    raw_dir/
        <class_a>/img001.jpg, img002.png, ...
        <class_b>/...

Classes are the sub-folder names in sorted order; files with an image extension (.jpg,
.jpeg, .png, .bmp, .gif, .webp, .tif, .tiff; hidden files skipped) are taken in sorted
order. The split follows the DML protocol (Oh Song et al. CVPR 2016): the first
``train_classes`` classes (default: half) train, the others evaluate.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .images import find_image_files
from .photo_source import ClassRangePhotoSource
from .source import SOURCES, SourceData


@SOURCES.register("imagefolder")
class ImageFolder(ClassRangePhotoSource, text="imagefolder"):
    """One sub-folder per class; first ``train_classes`` (sorted by name) train."""

    def read(self, root: Path) -> SourceData:
        class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not class_dirs:
            raise ValueError(f"raw_dir {root} has no class sub-folders: expected <class>/<image file>")
        relpaths, labels = [], []
        for label, d in enumerate(class_dirs):
            files = find_image_files(d)
            if not files:
                raise ValueError(f"class folder {d} holds no image file: every class needs at least one image")
            relpaths += [f.relative_to(root).as_posix() for f in files]
            labels += [label] * len(files)
        labels = np.array(labels, dtype=np.int64)
        names = [d.name for d in class_dirs]
        return self.class_range_photos(root, relpaths, labels, names, "the class folders", {})
