"""Rotated Fashion-MNIST: a continuous-label set (the angle) for the log-ratio loss of Kim et al. (2019).

Every one of the 70,000 Fashion-MNIST images (Xiao et al., arXiv:1708.07747) is rotated by
its own angle drawn uniformly from [0, 360) degrees with a seeded generator; the angle is the
continuous label. The class label (the garment) is kept, and the split is by garment class
as for ``fashion_mnist``, so evaluation is on garments never seen in training. Kim, Sohn &
Kwak ("Deep Metric Learning Beyond Binary Supervision", CVPR 2019) motivate learning
embeddings whose distances follow such continuous label distances.

The label space is the circle: distance between angles a and b is
min(|a - b| mod 360, 360 - |a - b| mod 360). The card says so (``continuous_label``:
``kind: angle``, ``period: 360``), and whoever reads the set takes the meaning from there
(``continuous.py``): a loss that measures label distance as a Euclidean norm (log_ratio)
gets the unit vectors (cos, sin), whose chord length 2 sin(d / 2) increases with the
circular distance d, and binned labels are equal arcs.

A horizontal flip maps angle a to 360 - a, so the card marks flips as unsafe and the loader
refuses to flip this set.

Rotation is done in float64 NumPy with bilinear interpolation and zero fill, with cos/sin
from Python's math module: plain IEEE additions and multiplications give the same bytes on
every CPU, so the prepared data (and its DVC hash) do not depend on the machine.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..validation import check_count
from .continuous import ANGLE
from .fashion_mnist import CITATION as FMNIST_CITATION
from .fashion_mnist import DEFAULT_RAW_DIR, read_fashion_mnist, split_by_class
from .source import SOURCES, Source, SourceData

PERIOD = 360.0
CONTINUOUS_INFO = {
    # What the trial reads (continuous.py): an angle, periodic with this period.
    "kind": ANGLE,
    "period": PERIOD,
    # For people reading the card.
    "name": "angle",
    "unit": "degrees",
    "low": 0.0,
    "high": PERIOD,
    "space": "[0, 360) degrees, periodic",
    "distance": "circular: d(a, b) = min(|a - b| mod 360, 360 - |a - b| mod 360)",
    "euclidean_embedding": (
        "(cos a, sin a): its Euclidean (chord) distance 2 sin(d/2) is monotone in the "
        "circular distance d, for losses that take Euclidean label distances"
    ),
    "transform": "counter-clockwise rotation as displayed, about the image centre, bilinear, zero fill",
}


def rotate_images(images: np.ndarray, angles: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """Rotate uint8 [N, H, W] images counter-clockwise by ``angles`` degrees (one per image).

    Each output pixel samples the input at the inversely rotated position (bilinear, zero
    outside). Vectorised over chunks of images; no Python loop over pixels.
    """
    n, h, w = images.shape
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    y, x = np.mgrid[0:h, 0:w]
    # Centred coordinates with the y axis pointing up, so positive angles turn counter-clockwise.
    u = (x - cx).reshape(1, -1).astype(np.float64)
    v = (cy - y).reshape(1, -1).astype(np.float64)
    # Pad by 2 zero pixels: clipped coordinates then land in the zero border.
    padded = np.zeros((n, h + 4, w + 4), dtype=np.float64)
    out = np.empty((n, h, w), dtype=np.uint8)
    for start in range(0, n, chunk):
        sl = slice(start, min(start + chunk, n))
        m = sl.stop - sl.start
        block = padded[:m]
        block[:, 2:-2, 2:-2] = images[sl]
        rad = [math.radians(float(a)) for a in angles[sl]]
        cos = np.array([math.cos(r) for r in rad])[:, None]
        sin = np.array([math.sin(r) for r in rad])[:, None]
        # Inverse rotation R(-a) of each output position gives the input position.
        u_in = cos * u + sin * v
        v_in = cos * v - sin * u
        xs = np.clip(cx + u_in, -2.0, w) + 2.0
        ys = np.clip(cy - v_in, -2.0, h) + 2.0
        x0 = np.floor(xs).astype(np.int64)
        y0 = np.floor(ys).astype(np.int64)
        x0 = np.minimum(x0, w + 2)
        y0 = np.minimum(y0, h + 2)
        fx, fy = xs - x0, ys - y0
        flat = block.reshape(m, -1)
        stride = w + 4

        def at(yy, xx):
            return np.take_along_axis(flat, yy * stride + xx, axis=1)

        value = (
            at(y0, x0) * (1 - fx) * (1 - fy)
            + at(y0, x0 + 1) * fx * (1 - fy)
            + at(y0 + 1, x0) * (1 - fx) * fy
            + at(y0 + 1, x0 + 1) * fx * fy
        )
        out[sl] = np.clip(np.rint(value), 0, 255).astype(np.uint8).reshape(m, h, w)
    return out


def draw_angles(n: int, seed: int) -> np.ndarray:
    """n angles uniform in [0, 360), float32; the images are rotated by exactly these values."""
    angles = np.random.default_rng(seed).uniform(0.0, PERIOD, size=n).astype(np.float32)
    # float32 rounding can turn 359.99999 into 360.0, which is the same angle as 0.
    return np.where(angles >= PERIOD, np.float32(0.0), angles)


@SOURCES.register("rotation")
class Rotation(Source):
    """Fashion-MNIST rotated by a seeded random angle per image; the angle is the label."""

    description = (
        "Fashion-MNIST images (train and t10k pooled), each rotated by a seeded uniform random "
        "angle in [0, 360) degrees; continuous label = the angle (circular), class label = the "
        "garment; split by garment class as fashion_mnist."
    )
    citation = (
        FMNIST_CITATION + " Continuous-label metric learning: Kim, Sohn, Kwak. Deep Metric "
        "Learning Beyond Binary Supervision. CVPR 2019."
    )
    layout = "the fashion_mnist IDX files"
    default_raw_dir = DEFAULT_RAW_DIR

    def __init__(
        self,
        train_classes: int | None = None,
        val_classes: int = 2,
        seed: int = 0,
        image_size: int = 28,
    ):
        super().__init__(
            train_classes=train_classes,
            val_classes=val_classes,
            seed=check_count(seed, "seed", low=0),
            image_size=check_count(image_size, "image_size", low=4),
        )

    def load(self, raw_dir: Path) -> SourceData:
        images, labels, keys, sources = read_fashion_mnist(raw_dir)
        angles = draw_angles(len(images), self.params["seed"])
        return self.finish(
            split_by_class(
                rotate_images(images, angles), labels, keys, sources, self.params,
                continuous=angles, continuous_info=dict(CONTINUOUS_INFO), hflip_safe=False,
            )
        )
