"""The bases of the sources that read photo files (CUB-200, Cars196, SOP, In-Shop, a folder).

Each lists its photos by path relative to one root and reads them resized to a square of
`image_size`; they differ only in how they parse their release's lists and split it, and in
how many training classes they hold out for validation by default. A source names that
default on its class line, ``class CUB200(ClassRangePhotoSource, val_classes=20)``: one
constructor serves them all, and the registry still reads every parameter and its default
from the signature.
"""
from __future__ import annotations

from functools import partialmethod
from pathlib import Path

import numpy as np

from ..validation import check_count
from .images import FileImages
from .source import Source, SourceData, require_dir
from .splits import class_range_split


class PhotoSource(Source):
    """A Source of photo files split by its release's own lists: `val_classes`, `image_size`
    (checked) and `workers`."""

    def __init_subclass__(cls, val_classes: int | None = None, **kwargs):
        super().__init_subclass__(**kwargs)
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
