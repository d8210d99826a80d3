"""Source names -> source modules, and ``prepare_dataset``, the one entry point that prepares any of them."""
from __future__ import annotations

from pathlib import Path
from typing import Any

# Importing the modules registers their sources.
from . import cars196, cub200, fashion_mnist, imagefolder, inshop, rotation, sop  # noqa: F401
from .prepared import DEFAULT_SHARD_SIZE, write_prepared
from .source import SOURCES
from .splits import check_count


def known_sources() -> list[str]:
    return SOURCES.names()


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
    Fashion-MNIST sources and means /usr/share/datasets/fashion-mnist. Returns the card.
    Nothing is written unless the whole preparation succeeds.
    """
    source = SOURCES.build(name, **params)
    shard_size = check_count(shard_size, "shard_size", low=1)
    if raw_dir is None:
        if name not in ("fashion_mnist", "rotation"):
            raise ValueError(f"raw_dir is required for dataset source {name!r}")
        raw_dir = fashion_mnist.DEFAULT_RAW_DIR
    data = source.load(Path(raw_dir))
    return write_prepared(out_dir, source=source, data=data, shard_size=shard_size)
