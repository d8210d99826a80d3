"""Draw a grid of glyph classes (rows) across font families (columns), as the README shows it.

    .venv/bin/python scripts/glyph_grid.py prepared/glyphs docs/glyphs.png --classes 6
"""
from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--classes", type=int, default=6)
    parser.add_argument("--split", default="train")
    args = parser.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dml_core.data import PreparedDataset, read_card

    card = read_card(args.dataset)
    families = [f["family"] for f in card["fonts"]]
    files = [f["file"] for f in card["fonts"]]
    ds = PreparedDataset(args.dataset, args.split)
    labels = np.unique(ds.labels)[: args.classes]
    fig, axes = plt.subplots(len(labels), len(families), figsize=(len(families) * 0.62, len(labels) * 0.72 + 1.2))
    for i, label in enumerate(labels):
        rows = np.flatnonzero(ds.labels == label)
        keys = ds.keys(rows)
        images = ds.gather_uint8(rows)
        by_file = {k.split(":")[0]: img for k, img in zip(keys, images)}
        for j, name in enumerate(files):
            ax = axes[i, j]
            ax.imshow(by_file[name][..., 0], cmap="gray", vmin=0, vmax=255)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(families[j], rotation=90, fontsize=6, va="bottom")
            if j == 0:
                ax.set_ylabel(card["classes"][label]["name"].split()[0], fontsize=6)
    fig.suptitle(f"{args.dataset.name}: {len(labels)} {args.split} classes (rows) x {len(families)} font families", fontsize=8)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".png", dir=args.out.parent)
    os.close(fd)
    os.chmod(tmp, 0o644)
    fig.savefig(tmp, dpi=130)
    os.replace(tmp, args.out)


if __name__ == "__main__":
    main()
