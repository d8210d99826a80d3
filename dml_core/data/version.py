"""The data version: the DVC hash of a prepared directory, recorded with every result.

DVC (3.x) identifies a directory by the MD5 of a JSON listing of its files,
``[{"md5": <file md5>, "relpath": <posix path>}, ...]`` sorted by path and dumped with
``sort_keys=True``, followed by ``.dir`` (dvc_data.hashfile.tree.Tree.as_bytes/digest).
``data_version`` recomputes exactly that, so the value equals the ``md5`` of the output in
``dvc.lock`` (e.g. ``prepared/fashion_mnist``) without importing DVC, and also works on a
directory prepared outside DVC. Since preparation is deterministic, equal versions mean
byte-identical data.

``verify_prepared`` checks a prepared directory against the version it recorded when it was
written: every shard its card lists must exist and have the SHA-256 the card holds. A shard
cut short or changed by a single byte fails with the file named, before any trial reads it.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path


class DataIntegrityError(ValueError):
    """Prepared data that differs from what its dataset card recorded."""


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


def verify_prepared(path: str | Path) -> None:
    """Raise DataIntegrityError naming every shard of ``path`` that is missing or whose
    SHA-256 differs from the one its card.json recorded at preparation."""
    from .card import CARD_FILE
    from .source import sha256_file

    root = Path(path)
    card_path = root / CARD_FILE
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
        shards = card["shards"]
    except FileNotFoundError:
        raise DataIntegrityError(f"{card_path}: missing: {root} is not a prepared dataset") from None
    except (ValueError, KeyError, TypeError) as e:
        raise DataIntegrityError(f"{card_path}: not a readable dataset card ({type(e).__name__}: {e})") from None
    problems = []
    for shard in shards:
        file = root / shard["file"]
        if not file.is_file():
            problems.append(f"{file}: missing (the card lists it)")
            continue
        actual = sha256_file(file)
        if actual != shard["sha256"]:
            problems.append(
                f"{file}: {file.stat().st_size} bytes with {actual}, but the card recorded {shard['sha256']}"
                " (truncated or changed since it was prepared)"
            )
    if problems:
        raise DataIntegrityError("; ".join(problems))
