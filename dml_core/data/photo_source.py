"""The base of the sources that read photo files (CUB-200, Cars196, SOP, In-Shop, a folder).

Each lists its photos by path relative to one root and reads them resized to a square of
`image_size`; they differ only in how they parse their release's lists and split it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..validation import check_count
from .images import FileImages
from .source import Source, SourceData
from .splits import class_range_split


class PhotoSource(Source):
    """A Source of photo files: `image_size` (checked) and `workers` besides its own params."""

    def __init__(self, image_size: int, workers: int, **params: Any):
        super().__init__(**params, image_size=check_count(image_size, "image_size", low=4), workers=workers)

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

    def class_range_photos(self, root, relpaths, labels, class_names, listed_in, sources) -> SourceData:
        """photos() with the DML protocol's split (Oh Song et al. CVPR 2016): the first
        `train_classes` classes train, the others evaluate."""
        split = class_range_split(len(class_names), self.params["train_classes"])[labels]
        return self.photos(root, relpaths, labels, class_names, split, listed_in, sources)
