"""The data version: the DVC hash of a prepared directory, recorded with every result.

DVC (3.x) identifies a directory by the MD5 of a JSON listing of its files,
``[{"md5": <file md5>, "relpath": <posix path>}, ...]`` sorted by path and dumped with
``sort_keys=True``, followed by ``.dir`` (dvc_data.hashfile.tree.Tree.as_bytes/digest).
``data_version`` recomputes exactly that, so the value equals the ``md5`` of the output in
``dvc.lock`` (e.g. ``prepared/fashion_mnist``) without importing DVC, and also works on a
directory prepared outside DVC. Since preparation is deterministic, equal versions mean
byte-identical data.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path


def file_md5(path: str | Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def data_version(path: str | Path) -> str:
    """The DVC hash of the prepared directory ``path``, e.g. ``'3f0c...e1.dir'`` (as in dvc.lock)."""
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a directory: prepare the dataset first")
    entries = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in filenames:
            full = Path(dirpath) / name
            entries.append({"md5": file_md5(full), "relpath": full.relative_to(root).as_posix()})
    if not entries:
        raise ValueError(f"{root} is empty: not a prepared dataset")
    entries.sort(key=lambda e: e["relpath"])
    listing = json.dumps(entries, sort_keys=True).encode("utf-8")
    return hashlib.md5(listing).hexdigest() + ".dir"
