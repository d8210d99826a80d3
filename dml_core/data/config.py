"""The ``data:`` section of params.yaml: which datasets the DVC ``prepare`` stage builds.

::

    data:
      out_root: prepared              # each dataset goes to <out_root>/<name>/
      datasets:
        fashion_mnist:                # <name>: the output folder
          source: fashion_mnist       # a known source (default: the name itself)
          raw_dir: data/fashion-mnist # raw release layout (relative to params.yaml)
          train_classes: 5            # ...and any other parameter of the source
          val_classes: 2

Relative paths are taken from the directory holding params.yaml, so the stage works from
any clone. Keys are checked: a typo is a ValueError naming it and listing the known keys.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

SECTION_KEYS = ("out_root", "datasets")


def load_data_section(params_file: str | Path) -> dict[str, Any]:
    params_file = Path(params_file)
    if not params_file.is_file():
        raise FileNotFoundError(f"params file {params_file} not found")
    params = yaml.safe_load(params_file.read_text(encoding="utf-8")) or {}
    section = params.get("data")
    if not isinstance(section, dict):
        raise ValueError(f"{params_file} has no 'data:' section (a mapping)")
    unknown = sorted(set(section) - set(SECTION_KEYS))
    if unknown:
        raise ValueError(f"{params_file}: unknown key data.{unknown[0]}; known keys: {', '.join(SECTION_KEYS)}")
    datasets = section.get("datasets")
    if not isinstance(datasets, dict) or not datasets:
        raise ValueError(f"{params_file}: data.datasets must map dataset names to their parameters")
    return section


def dataset_jobs(params_file: str | Path) -> list[dict[str, Any]]:
    """One job per dataset: name, source, raw_dir and out_dir (resolved), and source params."""
    params_file = Path(params_file)
    base = params_file.resolve().parent
    section = load_data_section(params_file)
    out_root = base / section.get("out_root", "prepared")
    jobs = []
    for name, spec in section["datasets"].items():
        spec = dict(spec or {})
        source = spec.pop("source", name)
        raw_dir = spec.pop("raw_dir", None)
        jobs.append(
            {
                "name": name,
                "source": source,
                "raw_dir": None if raw_dir is None else base / raw_dir,
                "out_dir": out_root / name,
                "params": spec,
            }
        )
    return jobs
