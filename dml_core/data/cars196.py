"""Cars196 (Stanford Cars): 16,185 photos of 196 car models.

Krause, Stark, Deng & Fei-Fei, "3D Object Representations for Fine-Grained
Categorization", 4th IEEE Workshop on 3D Representation and Recognition (3dRR-13), ICCV 2013.

Release layout (``car_ims.tgz`` + ``cars_annos.mat``; ``raw_dir`` holds both)::

    cars_annos.mat   struct array ``annotations`` with fields relative_im_path
                     ("car_ims/000001.jpg"), bbox_x1, bbox_y1, bbox_x2, bbox_y2,
                     class (1..196), test (0/1); and ``class_names`` (196 strings)
    car_ims/000001.jpg ... car_ims/016185.jpg

Only this all-images annotation file is supported (not the devkit's separate
cars_train_annos.mat / cars_test_annos.mat): the DML protocol (Oh Song et al. CVPR 2016)
pools all 16,185 images, trains on classes 1-98 and evaluates on 99-196, ignoring the
release's ``test`` flag and the bounding boxes. Reading .mat files needs SciPy.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .photo_source import ClassRangePhotoSource
from .source import SOURCES, SourceData, sha256_file

ANNOTATIONS = "cars_annos.mat"


def read_cars_annos(path: Path) -> tuple[list[str], np.ndarray, list[str]]:
    """(relative image paths, class ids 1..K, class names) from cars_annos.mat."""
    try:
        from scipy.io import loadmat
    except ImportError as e:  # pragma: no cover - scipy is installed with the test extras
        raise ImportError(f"reading {path} needs SciPy (scipy.io.loadmat): pip install scipy") from e
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: raw_dir does not hold the Cars196 release layout")
    try:
        mat = loadmat(str(path), squeeze_me=True)
    except Exception as e:  # scipy raises ValueError, TypeError, OSError... on a broken file
        raise ValueError(f"{path} is truncated or not a MATLAB file: {e}") from e
    for key in ("annotations", "class_names"):
        if key not in mat:
            raise ValueError(f"{path} has no variable {key!r}: not the Cars196 cars_annos.mat")
    annos = np.atleast_1d(mat["annotations"])
    fields = annos.dtype.names or ()
    for field in ("relative_im_path", "class"):
        if field not in fields:
            raise ValueError(f"{path}: annotations lack the field {field!r} (fields: {list(fields)})")
    relpaths = [str(p) for p in annos["relative_im_path"]]
    class_ids = np.array([int(c) for c in annos["class"]], dtype=np.int64)
    names = [str(n) for n in np.atleast_1d(mat["class_names"])]
    return relpaths, class_ids, names


@SOURCES.register("cars196")
class Cars196(ClassRangePhotoSource, val_classes=20, text="cars196"):
    """Cars196 from cars_annos.mat; first ``train_classes`` (default 98) classes train."""

    def read(self, root: Path) -> SourceData:
        annos = root / ANNOTATIONS
        relpaths, class_ids, names = read_cars_annos(annos)
        num_classes = len(names)
        if class_ids.min() < 1 or class_ids.max() > num_classes:
            raise ValueError(
                f"{annos}: class ids span {class_ids.min()}..{class_ids.max()} but there are "
                f"{num_classes} class_names"
            )
        sources = {ANNOTATIONS: sha256_file(annos)}
        return self.class_range_photos(root, relpaths, class_ids - 1, names, ANNOTATIONS, sources)
