"""Decoding JPEG/PNG files into fixed-size uint8 arrays, and in-memory image arrays.

Both providers expose the same three things the writer needs: ``image_shape`` (H, W, C),
``len()`` and ``read(indices) -> uint8 [n, H, W, C]``, so that a source of 120,000 photos
(Stanford Online Products) is decoded one shard at a time instead of all at once.

Photos are resized to ``image_size`` x ``image_size`` RGB, ignoring the aspect ratio, as the
DML papers do before cropping (Oh Song et al. CVPR 2016 resize to 256 x 256). Decoding uses
Pillow; its C decoders release the GIL, so a thread pool gives real parallelism.
"""
from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})


class ArrayImages:
    """Images already in memory as uint8 [N, H, W, C] (the IDX sources)."""

    def __init__(self, array: np.ndarray):
        if array.dtype != np.uint8 or array.ndim != 4:
            raise ValueError(f"images must be uint8 [N, H, W, C], got {array.dtype} {array.shape}")
        self.array = array

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.array.shape[1:])  # type: ignore[return-value]

    def __len__(self) -> int:
        return len(self.array)

    def read(self, indices: np.ndarray) -> np.ndarray:
        return self.array[indices]


def _pillow():
    try:
        from PIL import Image
    except ImportError as e:  # pragma: no cover - Pillow ships with matplotlib here
        raise ImportError(
            "decoding JPEG/PNG datasets needs Pillow: pip install pillow"
        ) from e
    return Image


class FileImages:
    """Image files under ``root`` named by ``relpaths`` (in the order of the source's list).

    ``listed_in`` names the annotation file the paths came from, so a missing or broken
    image is reported together with where it was listed. Each file's SHA-256 is recorded
    as it is read; ``digest()`` combines them, in list order, into the source checksum the
    dataset card stores.
    """

    def __init__(
        self,
        root: Path,
        relpaths: Sequence[str],
        *,
        image_size: int,
        listed_in: str,
        workers: int = 0,
    ):
        self.root = Path(root)
        self.relpaths = list(relpaths)
        self.image_size = int(image_size)
        self.listed_in = listed_in
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
            raise ValueError(f"workers must be an integer >= 0 (0: one per CPU, at most 8), got {workers!r}")
        self.workers = workers if workers > 0 else min(8, os.cpu_count() or 1)
        self._sha = [""] * len(self.relpaths)
        missing = [p for p in self.relpaths if not (self.root / p).is_file()]
        if missing:
            raise FileNotFoundError(
                f"{len(missing)} image(s) listed in {listed_in} are missing under {self.root}, "
                f"e.g. {self.root / missing[0]}"
            )

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self.image_size, self.image_size, 3)

    def __len__(self) -> int:
        return len(self.relpaths)

    def _decode(self, i: int) -> np.ndarray:
        Image = _pillow()
        path = self.root / self.relpaths[i]
        data = path.read_bytes()
        self._sha[i] = hashlib.sha256(data).hexdigest()
        try:
            with Image.open(io.BytesIO(data)) as img:
                # .load() forces the full decode: a truncated file fails here, not later.
                img.load()
                img = img.convert("RGB")
                if img.size != (self.image_size, self.image_size):
                    img = img.resize((self.image_size, self.image_size), Image.BILINEAR)
                return np.asarray(img, dtype=np.uint8)
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
            raise ValueError(
                f"cannot decode image {path} (listed in {self.listed_in}): {e}"
            ) from e

    def read(self, indices: np.ndarray) -> np.ndarray:
        out = np.empty((len(indices), *self.image_shape), dtype=np.uint8)
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            for k, img in enumerate(pool.map(self._decode, [int(i) for i in indices])):
                out[k] = img
        return out

    def digest(self) -> str:
        """SHA-256 over (path, file SHA-256) of every image, in list order; call after reading."""
        if any(not s for s in self._sha):
            raise RuntimeError("digest() before every image was read")
        h = hashlib.sha256()
        for rel, sha in zip(self.relpaths, self._sha):
            h.update(f"{rel}\0{sha}\n".encode())
        return h.hexdigest()


def find_image_files(directory: Path) -> list[Path]:
    """Image files directly inside ``directory``, sorted by name, hidden files skipped."""
    return sorted(
        p
        for p in directory.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS
    )


def resize_array(images: np.ndarray, image_size: int) -> np.ndarray:
    """Resize uint8 [N, H, W, C] images to ``image_size`` squared with Pillow's bilinear filter.

    Pillow resamples 8-bit images in fixed-point arithmetic, so the result is the same on
    every machine (a float resize could round differently and change the data hash).
    """
    if images.shape[1:3] == (image_size, image_size):
        return images
    Image = _pillow()
    n, _, _, c = images.shape
    mode = {1: "L", 3: "RGB"}[c]
    out = np.empty((n, image_size, image_size, c), dtype=np.uint8)
    for i in range(n):
        img = Image.fromarray(images[i, :, :, 0] if c == 1 else images[i], mode=mode)
        out[i] = np.asarray(img.resize((image_size, image_size), Image.BILINEAR)).reshape(image_size, image_size, c)
    return out
