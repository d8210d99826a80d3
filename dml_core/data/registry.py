"""Source names -> source modules, and ``prepare_dataset``, the one entry point that prepares any of them."""
from __future__ import annotations

from pathlib import Path
from typing import Any

# Importing the modules registers their sources.
from ..validation import check_count
from . import cars196, cub200, fashion_mnist, glyph_tilt, glyphs, imagefolder, inshop, rotation, sop  # noqa: F401
from .prepared import DEFAULT_SHARD_SIZE, write_prepared
from .source import SOURCES


def known_sources() -> list[str]:
    return SOURCES.names()


def default_raw_dir(name: str) -> Path | None:
    """The raw directory source ``name`` reads when none is given, or None if it needs one."""
    return SOURCES.get(name).default_raw_dir


def source_options(name: str) -> dict[str, Any]:
    """The preparation parameters a source accepts, with defaults (plus ``shard_size``)."""
    return {**SOURCES.options(name), "shard_size": DEFAULT_SHARD_SIZE}


def prepare_dataset(
    name: str,
    raw_dir: str | Path | None,
    out_dir: str | Path,
    *,
    shard_size: int = DEFAULT_SHARD_SIZE,
    **params: Any,
) -> dict[str, Any]:
    """Prepare source ``name`` from ``raw_dir`` into ``out_dir`` (shards + card.json).

    ``params`` are the source's parameters (see ``source_options(name)``); an unknown name
    or parameter is a ValueError listing the known ones. ``raw_dir=None`` is allowed for the
    sources installed by a Debian package and means that package's directory
    (``default_raw_dir``: /usr/share/datasets/fashion-mnist for Fashion-MNIST). Returns the card.
    Nothing is written unless the whole preparation succeeds.
    """
    source = SOURCES.build(name, **params)
    shard_size = check_count(shard_size, "shard_size", low=1)
    if raw_dir is None:
        raw_dir = default_raw_dir(name)
        if raw_dir is None:
            raise ValueError(f"raw_dir is required for dataset source {name!r}")
    data = source.load(Path(raw_dir))
    return write_prepared(out_dir, source=source, data=data, shard_size=shard_size)
