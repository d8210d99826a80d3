"""The bases of the sources that read photo files (CUB-200, Cars196, SOP, In-Shop, a folder).

Each lists its photos by path relative to one root and reads them resized to a square of
`image_size`; they differ only in how they parse their release's lists and split it, and in
how many training classes they hold out for validation by default. A source names that
default on its class line, ``class CUB200(ClassRangePhotoSource, val_classes=20, text="cub200")``:
one constructor serves them all, and the registry still reads every parameter and its default
from the signature. ``text`` names the release's row of PHOTO_TEXT, what its card says of it.
"""
from __future__ import annotations

from functools import partialmethod
from pathlib import Path

import numpy as np

from ..validation import check_count
from .images import FileImages
from .source import Source, SourceData, require_dir
from .splits import class_range_split


# What each release's card says of it, one line a release: (description, citation, layout).
PHOTO_TEXT = {
    "cars196": ("Cars196 (Stanford Cars), all images pooled; classes 1-98 train, 99-196 eval (DML protocol).", "Krause, Stark, Deng, Fei-Fei. 3D Object Representations for Fine-Grained Categorization. 3dRR workshop, ICCV 2013.", "cars_annos.mat + car_ims/"),
    "cub200": ("CUB-200-2011 birds; classes 1-100 train, 101-200 eval (DML protocol), resized square RGB.", "Wah, Branson, Welinder, Perona, Belongie. The Caltech-UCSD Birds-200-2011 Dataset. CNS-TR-2011-001, Caltech, 2011.", "CUB_200_2011/{classes.txt, images.txt, image_class_labels.txt, images/}"),
    "sop": ("Stanford Online Products; Ebay_train.txt classes train, Ebay_test.txt classes eval.", "Oh Song, Xiang, Jegelka, Savarese. Deep Metric Learning via Lifted Structured Feature Embedding. CVPR 2016.", "Stanford_Online_Products/{Ebay_train.txt, Ebay_test.txt, <super_class>_final/}"),
    "inshop": ("DeepFashion In-shop Clothes Retrieval; release partition: train items, query vs gallery for eval.", "Liu, Luo, Qiu, Wang, Tang. DeepFashion: Powering Robust Clothes Recognition and Retrieval with Rich Annotations. CVPR 2016.", "Eval/list_eval_partition.txt + Img/img/"),
    "imagefolder": ("A folder of class sub-folders; the first half of the classes (sorted by name) train, the rest eval.", "Split protocol: Oh Song, Xiang, Jegelka, Savarese. Deep Metric Learning via Lifted Structured Feature Embedding. CVPR 2016.", "<class>/<image file>"),
}


class PhotoSource(Source):
    """A Source of photo files split by its release's own lists: `val_classes`, `image_size`
    (checked) and `workers`."""

    def __init_subclass__(cls, val_classes: int | None = None, text: str | None = None, **kwargs):
        super().__init_subclass__(**kwargs)
        if text is not None:
            cls.description, cls.citation, cls.layout = PHOTO_TEXT[text]
        if val_classes is not None:
            cls.__init__ = partialmethod(cls.__init__, val_classes=val_classes)

    def __init__(self, val_classes: int = 0, image_size: int = 128, workers: int = 0):
        super().__init__(val_classes=val_classes, image_size=check_count(image_size, "image_size", low=4), workers=workers)

    def load(self, raw_dir: Path) -> SourceData:
        return self.read(require_dir(raw_dir))

    def read(self, raw_dir: Path) -> SourceData:  # pragma: no cover - abstract
        """The SourceData of the release in ``raw_dir`` (a directory), by ``photos``."""
        raise NotImplementedError

    def photos(
        self,
        root: Path,
        relpaths: list[str],
        labels: np.ndarray,
        class_names: list[str],
        split: np.ndarray,
        listed_in: str,
        sources: dict[str, str],
    ) -> SourceData:
        """The finished SourceData of photos root/relpaths (`listed_in` names the list that
        gave the paths, for error messages)."""
        images = FileImages(
            root, relpaths, image_size=self.params["image_size"], listed_in=listed_in, workers=self.params["workers"]
        )
        return self.finish(
            SourceData(
                images=images, labels=labels, class_names=class_names, split=split, keys=relpaths, sources=sources
            )
        )


class ClassRangePhotoSource(PhotoSource):
    """A PhotoSource split by the DML protocol (Oh Song et al. CVPR 2016): the first
    `train_classes` classes (default: half) train, the others evaluate."""

    def __init__(self, train_classes: int | None = None, val_classes: int = 0, image_size: int = 128, workers: int = 0):
        super().__init__(val_classes, image_size, workers)
        self.params = {"train_classes": train_classes, **self.params}

    def class_range_photos(self, root, relpaths, labels, class_names, listed_in, sources) -> SourceData:
        """photos() with the class-range split."""
        split = class_range_split(len(class_names), self.params["train_classes"])[labels]
        return self.photos(root, relpaths, labels, class_names, split, listed_in, sources)
