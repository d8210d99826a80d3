"""Command line of the data package (the DVC ``prepare`` stage calls it).

    python -m dml_core.data prepare --params params.yaml [--only NAME ...]
    python -m dml_core.data version prepared/fashion_mnist
    python -m dml_core.data sources
"""
from __future__ import annotations

import argparse
import sys
import time

from .config import dataset_jobs
from .registry import known_sources, prepare_dataset, source_options
from .version import data_version


def _prepare(args: argparse.Namespace) -> int:
    jobs = dataset_jobs(args.params)
    if args.only:
        names = [j["name"] for j in jobs]
        missing = [n for n in args.only if n not in names]
        if missing:
            raise ValueError(f"--only {missing[0]!r}: not in data.datasets ({', '.join(names)})")
        jobs = [j for j in jobs if j["name"] in args.only]
    for job in jobs:
        start = time.perf_counter()
        card = prepare_dataset(job["source"], job["raw_dir"], job["out_dir"], **job["params"])
        splits = ", ".join(f"{s} {v['rows']} rows / {v['classes']} classes" for s, v in card["splits"].items())
        print(
            f"{job['name']}: {splits}; {time.perf_counter() - start:.1f}s; "
            f"version {data_version(job['out_dir'])} -> {job['out_dir']}"
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dml_core.data", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare", help="prepare the datasets of params.yaml's data: section")
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--only", nargs="+", metavar="NAME", help="prepare only these datasets")
    v = sub.add_parser("version", help="print the data version (DVC hash) of a prepared directory")
    v.add_argument("path")
    sub.add_parser("sources", help="list the known sources and their parameters")
    args = parser.parse_args(argv)
    try:
        if args.command == "prepare":
            return _prepare(args)
        if args.command == "version":
            print(data_version(args.path))
            return 0
        for name in known_sources():
            print(name, source_options(name))
        return 0
    except (ValueError, FileNotFoundError, ImportError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
