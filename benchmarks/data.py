"""Data preparation time and loader throughput (prints a table; not a test).

    .venv/bin/python benchmarks/data.py [--raw-dir /usr/share/datasets/fashion-mnist] [--batch-size 256]

Preparation: the default glyphs set from the CJK font files (62,784 renderings, when the
font packages are installed), Fashion-MNIST and its rotation set from the IDX files (70,000
images each) and an image folder of synthetic JPEGs (decode + resize). The glyphs are also
loaded (crop augmentation, no flip: a mirrored character is another one). Loading: one epoch over the 70,000
prepared Fashion-MNIST images in batches of 256 drawn by the m-per-class sampler (random
index lists if the sampler is unavailable), with and without crop+flip augmentation, plus a
torch DataLoader fed through __getitems__ and, for contrast, the per-image __getitem__ path.
Times are medians over repeats after a warm-up epoch. Target: >= 50,000 images/s.
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from dml_core.data import BatchLoader, PreparedDataset, collate_batch, prepare_dataset
from dml_core.data.fashion_mnist import DEFAULT_RAW_DIR, INSTALL_HINT
from dml_core.data.fonts import SYSTEM_FONT_DIR
from dml_core.data.synthetic import write_fashion_mnist, write_imagefolder

TARGET = 50_000


def timed(fn, repeats: int = 3) -> float:
    fn()  # warm-up: page cache, allocator
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def batch_sampler(labels: np.ndarray, batch_size: int):
    try:
        from dml_core.samplers import MPerClassSampler

        return MPerClassSampler(labels, batch_size=batch_size, m_per_class=batch_size // 8, seed=0), "m-per-class"
    except ImportError:
        perm = np.random.default_rng(0).permutation(len(labels))
        return [perm[i : i + batch_size] for i in range(0, len(perm), batch_size)], "random"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw-dir", type=Path, default=DEFAULT_RAW_DIR)
    parser.add_argument("--fonts-dir", type=Path, default=SYSTEM_FONT_DIR)
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="dml-bench-data-"))
    try:
        rows = measure(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\nData pipeline, torch {torch.__version__}, {torch.get_num_threads()} threads\n")
    print(f"| {'case':<64} | {'images':>7} | {'seconds':>8} | {'images/s':>10} | {'>= 50k/s':>8} |")
    print(f"|{'-' * 66}|{'-' * 9}|{'-' * 10}|{'-' * 12}|{'-' * 10}|")
    for case, n, s, target in rows:
        ok = ("yes" if n / s >= TARGET else "NO") if target else ""
        print(f"| {case:<64} | {n:>7} | {s:>8.3f} | {n / s:>10,.0f} | {ok:>8} |")


def measure(args: argparse.Namespace, tmp: Path) -> list[tuple[str, int, float, str]]:
    rows: list[tuple[str, int, float, str]] = []
    raw = args.raw_dir
    if not (raw / "train-images-idx3-ubyte.gz").is_file():
        print(f"note: Fashion-MNIST not found in {raw} ({INSTALL_HINT}); using synthetic IDX files of the same size", file=sys.stderr)
        raw = write_fashion_mnist(tmp / "raw", per_class=(6000, 1000))

    # -- preparation -------------------------------------------------------------------
    glyphs = None
    try:
        t0 = time.perf_counter()
        card = prepare_dataset("glyphs", args.fonts_dir, tmp / "glyphs")
        rows.append(("prepare glyphs (18 CJK fonts -> 32 px renderings -> Arrow)", card["num_images"], time.perf_counter() - t0, ""))
        glyphs = tmp / "glyphs"
    except FileNotFoundError as e:
        print(f"note: glyphs skipped: {e}", file=sys.stderr)
    for name in ("fashion_mnist", "rotation"):
        out = tmp / name
        t0 = time.perf_counter()
        card = prepare_dataset(name, raw, out)
        rows.append((f"prepare {name} (IDX -> Arrow)", card["num_images"], time.perf_counter() - t0, ""))
    folder = write_imagefolder(tmp / "jpegs", num_classes=20, per_class=100, size=96, ext=".jpg")
    t0 = time.perf_counter()
    card = prepare_dataset("imagefolder", folder, tmp / "imagefolder", image_size=64)
    rows.append(("prepare imagefolder (2,000 JPEG 96px -> 64px)", card["num_images"], time.perf_counter() - t0, ""))

    # -- loading -----------------------------------------------------------------------
    ds = PreparedDataset(tmp / "fashion_mnist", ["train", "val", "eval"])
    sampler, kind = batch_sampler(ds.labels, args.batch_size)
    n_epoch = sum(len(b) for b in sampler)
    for label, augment in (("no augmentation", None), ("crop+flip augmentation", "default")):
        loader = BatchLoader(ds, sampler, augment=augment)

        def epoch(loader=loader):
            for _ in loader:
                pass

        s = timed(epoch)
        rows.append((f"BatchLoader, {kind} batches of {args.batch_size}, {label}", n_epoch, s, "target"))
    dl = torch.utils.data.DataLoader(ds, batch_sampler=sampler, collate_fn=collate_batch, num_workers=0)
    s = timed(lambda: [None for _ in dl])
    rows.append((f"torch DataLoader + __getitems__, batches of {args.batch_size}", n_epoch, s, "target"))
    if glyphs is not None:
        gds = PreparedDataset(glyphs, ["train", "val", "eval"])
        from dml_core.samplers import MPerClassSampler

        gsampler = MPerClassSampler(gds.labels, batch_size=args.batch_size, m_per_class=4, seed=0)
        loader = BatchLoader(gds, gsampler, augment="default")
        s = timed(lambda: [None for _ in loader])
        rows.append((f"BatchLoader, glyphs, {args.batch_size // 4} classes x 4 a batch, crop augmentation", sum(len(b) for b in gsampler), s, "target"))
    few = np.random.default_rng(0).permutation(len(ds))[:5_000]
    s = timed(lambda: [ds[int(i)] for i in few], repeats=1)
    rows.append(("per-image __getitem__ (what batching avoids)", len(few), s, ""))

    return rows


if __name__ == "__main__":
    main()
