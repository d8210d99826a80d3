"""Fashion-MNIST: 70,000 grey 28 x 28 images of 10 clothing classes, in IDX files.

Xiao, Rasul & Vollgraf, "Fashion-MNIST: a Novel Image Dataset for Benchmarking Machine
Learning Algorithms", arXiv:1708.07747, 2017.

Layout (the canonical release; Debian's ``dataset-fashion-mnist`` installs the same files in
/usr/share/datasets/fashion-mnist)::

    train-images-idx3-ubyte.gz   60,000 x 28 x 28 uint8
    train-labels-idx1-ubyte.gz   60,000 uint8 in 0..9
    t10k-images-idx3-ubyte.gz    10,000 x 28 x 28 uint8
    t10k-labels-idx1-ubyte.gz    10,000 uint8 in 0..9

(The uncompressed names without ``.gz`` are accepted too.) Metric learning ignores the
release's train/test split: both files are pooled and split by class, as the DML papers do
with CUB and Cars: classes 0-4 (T-shirt/top .. Coat) train, 5-9 (Sandal .. Ankle boot),
never seen in training, evaluate.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..validation import check_count
from .idx import read_idx
from .images import ArrayImages, resize_array
from .source import SOURCES, Source, SourceData, require_dir, sha256_file
from .splits import class_range_split

DEFAULT_RAW_DIR = Path("/usr/share/datasets/fashion-mnist")
PARTS = ("train", "t10k")
CLASS_NAMES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]
INSTALL_HINT = (
    "install Fashion-MNIST as root with `apt-get update && apt-get install -y "
    f"dataset-fashion-mnist` (it lands in {DEFAULT_RAW_DIR}), or set raw_dir in params.yaml "
    "to a directory holding train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
    "t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz"
)
CITATION = (
    "Xiao, Rasul, Vollgraf. Fashion-MNIST: a Novel Image Dataset for Benchmarking Machine "
    "Learning Algorithms. arXiv:1708.07747, 2017."
)


def _find(raw_dir: Path, name: str) -> Path:
    for candidate in (raw_dir / f"{name}.gz", raw_dir / name):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{raw_dir / (name + '.gz')} not found; {INSTALL_HINT}")


def read_fashion_mnist(raw_dir: str | Path | None = None):
    """The 70,000 images (uint8 [N, 28, 28]), labels (int64), keys and source checksums.

    Train file first, then t10k, each in file order.
    """
    raw_dir = require_dir(Path(raw_dir) if raw_dir is not None else DEFAULT_RAW_DIR, INSTALL_HINT)
    images, labels, keys, sources = [], [], [], {}
    for part in PARTS:
        img_path = _find(raw_dir, f"{part}-images-idx3-ubyte")
        lab_path = _find(raw_dir, f"{part}-labels-idx1-ubyte")
        img, lab = read_idx(img_path), read_idx(lab_path)
        if img.ndim != 3 or img.dtype != np.uint8:
            raise ValueError(f"{img_path}: expected uint8 images [N, H, W], got {img.dtype} {img.shape}")
        if lab.ndim != 1 or len(lab) != len(img):
            raise ValueError(
                f"{lab_path} holds {lab.shape} labels but {img_path} holds {len(img)} images"
            )
        if lab.size and int(lab.max()) >= len(CLASS_NAMES):
            raise ValueError(f"{lab_path}: label {int(lab.max())} outside 0..{len(CLASS_NAMES) - 1}")
        images.append(img)
        labels.append(lab.astype(np.int64))
        keys += [f"{img_path.name}:{i}" for i in range(len(img))]
        for p in (img_path, lab_path):
            sources[p.name] = sha256_file(p)
    return np.concatenate(images), np.concatenate(labels), keys, sources


def split_by_class(images, labels, keys, sources, params, **extra) -> SourceData:
    """Fashion-MNIST images [N, H, W] (as read, or transformed: the rotation set) resized to
    ``params["image_size"]`` and split by class: classes below ``params["train_classes"]``
    train, the rest evaluate. ``extra``: further SourceData fields (continuous labels)."""
    class_split = class_range_split(len(CLASS_NAMES), params["train_classes"])
    return SourceData(
        images=ArrayImages(resize_array(images[..., None], params["image_size"])),
        labels=labels,
        class_names=list(CLASS_NAMES),
        split=class_split[labels],
        keys=keys,
        sources=sources,
        **extra,
    )


@SOURCES.register("fashion_mnist")
class FashionMNIST(Source):
    """Fashion-MNIST, split by class: ``train_classes`` (default 5) train, the rest eval."""

    description = (
        "Fashion-MNIST (train and t10k files pooled), split by class for metric learning: "
        "classes below train_classes train (minus the last val_classes, held out as val), "
        "the rest eval."
    )
    citation = CITATION
    layout = "{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz"
    default_raw_dir = DEFAULT_RAW_DIR

    def __init__(self, train_classes: int | None = None, val_classes: int = 2, image_size: int = 28):
        super().__init__(
            train_classes=train_classes,
            val_classes=val_classes,
            image_size=check_count(image_size, "image_size", low=4),
        )

    def load(self, raw_dir: Path) -> SourceData:
        return self.finish(split_by_class(*read_fashion_mnist(raw_dir), self.params))
