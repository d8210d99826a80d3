"""Tiny synthetic datasets in the real release layouts, for tests, demos and benchmarks.

Each ``write_*`` function creates, under ``root``, a few random images laid out exactly as
the corresponding source module's docstring describes (Fashion-MNIST IDX files, CUB-200-2011,
Cars196, Stanford Online Products, In-shop, an image folder) and returns the directory to
pass as ``raw_dir``. Images are seeded noise with a class-dependent tint, so any two are
distinguishable; nothing is downloaded.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .idx import write_idx


def _noise(rng: np.random.Generator, label: int, size: int, channels: int) -> np.ndarray:
    img = rng.integers(0, 200, size=(size, size, channels), dtype=np.uint8)
    return (img + np.uint8((label * 37) % 56)).astype(np.uint8)


def _save(path: Path, array: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)
    if path.suffix.lower() in (".jpg", ".jpeg"):
        img.save(path, quality=95)
    else:
        img.save(path)


def write_fashion_mnist(root: str | Path, per_class: tuple[int, int] = (6, 2), seed: int = 0, size: int = 28) -> Path:
    """The four IDX.gz files with ``per_class`` = (train, t10k) images of each of 10 classes."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for part, n in zip(("train", "t10k"), per_class):
        labels = np.tile(np.arange(10, dtype=np.uint8), n)  # interleaved, as in the real files
        images = np.stack([_noise(rng, int(y), size, 1)[..., 0] for y in labels])
        write_idx(root / f"{part}-images-idx3-ubyte.gz", images)
        write_idx(root / f"{part}-labels-idx1-ubyte.gz", labels)
    return root


def write_cub200(root: str | Path, num_classes: int = 6, per_class: int = 3, seed: int = 0, size: int = 20) -> Path:
    """CUB_200_2011/{classes.txt, images.txt, image_class_labels.txt, images/} under ``root``."""
    base = Path(root) / "CUB_200_2011"
    rng = np.random.default_rng(seed)
    classes, images, labels = [], [], []
    image_id = 0
    for c in range(1, num_classes + 1):
        name = f"{c:03d}.Bird_{c}"
        classes.append(f"{c} {name}")
        for k in range(per_class):
            image_id += 1
            rel = f"{name}/Bird_{c}_{k:04d}.jpg"
            _save(base / "images" / rel, _noise(rng, c, size + k, 3))
            images.append(f"{image_id} {rel}")
            labels.append(f"{image_id} {c}")
    (base / "classes.txt").write_text("\n".join(classes) + "\n")
    (base / "images.txt").write_text("\n".join(images) + "\n")
    (base / "image_class_labels.txt").write_text("\n".join(labels) + "\n")
    return Path(root)


def write_cars196(root: str | Path, num_classes: int = 6, per_class: int = 3, seed: int = 0, size: int = 20) -> Path:
    """cars_annos.mat (struct array ``annotations`` + ``class_names``) and car_ims/ under ``root``."""
    from scipy.io import savemat

    root = Path(root)
    rng = np.random.default_rng(seed)
    dtype = [(f, "O") for f in ("relative_im_path", "bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "test")]
    rows = []
    n = 0
    for c in range(1, num_classes + 1):
        for k in range(per_class):
            n += 1
            rel = f"car_ims/{n:06d}.jpg"
            _save(root / rel, _noise(rng, c, size, 3))
            rows.append((rel, 1, 1, size - 1, size - 1, c, k % 2))
    annotations = np.array(rows, dtype=dtype).reshape(1, -1)
    names = np.empty((1, num_classes), dtype=object)
    names[0, :] = [f"Car Model {c} 2012" for c in range(1, num_classes + 1)]
    savemat(str(root / "cars_annos.mat"), {"annotations": annotations, "class_names": names})
    return root


def write_sop(
    root: str | Path, train_classes: int = 4, test_classes: int = 4, per_class: int = 2, seed: int = 0, size: int = 20
) -> Path:
    """Stanford_Online_Products/{Ebay_train.txt, Ebay_test.txt, <super>_final/} under ``root``."""
    base = Path(root) / "Stanford_Online_Products"
    rng = np.random.default_rng(seed)
    supers = ["bicycle", "cabinet"]
    image_id = 0
    class_id = 0
    for list_name, count in (("Ebay_train.txt", train_classes), ("Ebay_test.txt", test_classes)):
        lines = ["image_id class_id super_class_id path"]
        for _ in range(count):
            class_id += 1
            s = class_id % len(supers)
            for k in range(per_class):
                image_id += 1
                rel = f"{supers[s]}_final/{class_id}_{k}.JPG"
                _save(base / rel, _noise(rng, class_id, size, 3))
                lines.append(f"{image_id} {class_id} {s + 1} {rel}")
        (base / list_name).write_text("\n".join(lines) + "\n")
    return Path(root)


def write_inshop(
    root: str | Path, train_items: int = 4, eval_items: int = 3, per_item: int = 3, seed: int = 0, size: int = 20
) -> Path:
    """Eval/list_eval_partition.txt and Img/img/... under ``root`` (query/gallery per eval item)."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    rows = []
    for item in range(1, train_items + eval_items + 1):
        item_id = f"id_{item:08d}"
        for k in range(per_item):
            rel = f"img/WOMEN/Dresses/{item_id}/{k:02d}_1_front.jpg"
            _save(root / "Img" / rel, _noise(rng, item, size, 3))
            status = "train" if item <= train_items else ("query" if k == 0 else "gallery")
            rows.append(f"{rel} {item_id} {status}")
    (root / "Eval").mkdir(parents=True, exist_ok=True)
    text = f"{len(rows)}\nimage_name item_id evaluation_status\n" + "\n".join(rows) + "\n"
    (root / "Eval" / "list_eval_partition.txt").write_text(text)
    return root


def write_imagefolder(
    root: str | Path, num_classes: int = 4, per_class: int = 3, seed: int = 0, size: int = 16, ext: str = ".png"
) -> Path:
    """``root/<class>/<image>`` with lossless PNGs by default (so decoded pixels are exact)."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    for c in range(num_classes):
        for k in range(per_class):
            _save(root / f"class_{c:02d}" / f"img_{k:03d}{ext}", _noise(rng, c, size, 3))
    return root
