"""What every source module produces, and small helpers for reading release layouts.

A source turns a raw release directory into a :class:`SourceData`: the images (in memory
or as files decoded lazily), integer class labels 0..K-1, class names, the split of each
image, optional continuous labels, and checksums of the raw files it read. The writer in
``prepared.py`` then turns any SourceData into the same prepared shards and card.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dml_core.registry import Registry

from .splits import hold_out_validation

# Source name (as in params.yaml) -> Source subclass; `prepare_dataset` builds from here.
SOURCES: Registry["Source"] = Registry("dataset source")


@dataclass
class SourceData:
    images: Any  # ArrayImages or FileImages: image_shape, len(), read(indices)
    labels: np.ndarray  # int64 [N], 0..len(class_names)-1
    class_names: list[str]
    split: np.ndarray  # [N] split names (splits.py)
    keys: list[str]  # [N] where each image came from (file path, or file:row)
    sources: dict[str, str]  # raw file (relative name) -> "sha256:<hex>"
    continuous: np.ndarray | None = None  # float32 [N] or [N, L]
    continuous_info: dict[str, Any] | None = None
    hflip_safe: bool = True  # does a horizontal flip keep every label valid?
    extra_card: dict[str, Any] = field(default_factory=dict)


class Source:
    """Base class: subclasses set the class attributes and implement ``load``.

    ``__init__`` of a subclass lists every preparation parameter with its default; the
    registry validates params.yaml keys against that signature. Parameters that do not
    change the output (``workers``) are listed in ``runtime_params`` and left out of the card.
    """

    description: str = ""
    citation: str = ""
    layout: str = ""
    # Where the raw files lie when params.yaml gives no raw_dir (or its DVC import is absent):
    # the Debian package's directory for sources that come from one, else None.
    default_raw_dir: Path | None = None
    runtime_params: tuple[str, ...] = ("workers",)

    def __init__(self, **params: Any):
        self.params = params

    def card_params(self) -> dict[str, Any]:
        return {k: v for k, v in self.params.items() if k not in self.runtime_params}

    def load(self, raw_dir: Path) -> SourceData:  # pragma: no cover - abstract
        raise NotImplementedError

    def finish(self, data: SourceData) -> SourceData:
        """Apply the class-held-out validation split every source shares."""
        data.split = hold_out_validation(data.labels, data.split, self.params.get("val_classes", 0))
        return data


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return "sha256:" + h.hexdigest()


def require_dir(raw_dir: Path, hint: str = "") -> Path:
    raw_dir = Path(raw_dir)
    if not raw_dir.is_dir():
        what = "is not a directory" if raw_dir.exists() else "does not exist"
        raise FileNotFoundError(f"raw_dir {raw_dir} {what}{'; ' + hint if hint else ''}")
    return raw_dir


def find_release_root(raw_dir: Path, release_dir: str, marker: str) -> Path:
    """``raw_dir`` itself or ``raw_dir/release_dir``, whichever holds ``marker``."""
    for root in (raw_dir, raw_dir / release_dir):
        if (root / marker).is_file():
            return root
    raise FileNotFoundError(
        f"{marker} not found in {raw_dir} or {raw_dir / release_dir}: raw_dir does not hold "
        f"the {release_dir} release layout"
    )


def read_table(path: Path, columns: int, *, header: int = 0) -> list[list[str]]:
    """Whitespace-separated rows of exactly ``columns`` fields, after ``header`` lines.

    The release lists never put spaces in paths, so a wrong field count means a wrong layout
    (or a different file); the error names the file and the line.
    """
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found")
    rows = []
    lines = path.read_text(encoding="utf-8").splitlines()
    for n, line in enumerate(lines[header:], start=header + 1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != columns:
            raise ValueError(
                f"{path} line {n}: expected {columns} whitespace-separated fields, got "
                f"{len(fields)}: {line[:80]!r}"
            )
        rows.append(fields)
    if not rows:
        raise ValueError(f"{path} lists nothing")
    return rows


def parse_int(value: str, path: Path, what: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{path}: {what} {value!r} is not an integer") from None


def dense_labels(class_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sorted unique ids, label of each row as its id's rank): ids 1..200 -> labels 0..199."""
    unique, labels = np.unique(class_ids, return_inverse=True)
    return unique, labels.astype(np.int64)
