"""The flow's data step: make sure every dataset a profile reads is prepared, intact, and version it."""
from __future__ import annotations

import logging
from pathlib import Path

import yaml

from dml_core.data import data_version, prepare_dataset
from dml_core.data.config import dataset_jobs
from dml_core.data.registry import default_raw_dir
from dml_core.data.version import DataIntegrityError, verify_prepared

log = logging.getLogger(__name__)


def ensure_prepared(
    params_path: str | Path, dataset_dirs: dict[str, str], project_dir: str | Path, logger: logging.Logger | logging.LoggerAdapter = log
) -> dict[str, str]:
    """{alias: data version} for the profile's datasets, preparing the missing ones.

    A dataset that `dvc repro prepare` already built is used as it is, once its shards match
    the SHA-256 checksums its card recorded. A missing one, or one whose shards do not match
    (cut short, a byte changed), is prepared again with the same function the DVC stage runs,
    as `make sweep` would through `dvc repro`; when no data.datasets entry of params.yaml
    writes it, or its raw files are gone, the sweep stops with a DataIntegrityError naming
    the file. When its raw directory (the DVC import) is absent, a source installed by a
    Debian package (Fashion-MNIST, the CJK fonts) reads the package's files directly.
    Warnings (a re-preparation, a version that differs from dvc.lock's) go to ``logger``.
    """
    project_dir = Path(project_dir).resolve()
    jobs = {Path(j["out_dir"]).resolve(): j for j in dataset_jobs(params_path)}
    locked = dvc_lock_versions(project_dir)
    versions = {}
    for alias, rel in dataset_dirs.items():
        out = (project_dir / rel).resolve()
        job = jobs.get(out)
        if not (out / "card.json").is_file():
            if job is None:
                raise ValueError(
                    f"datasets.{alias}: {rel!r} is not prepared and no data.datasets entry of params.yaml writes it"
                )
            prepare(alias, job, out)
        else:
            try:
                verify_prepared(out)
            except DataIntegrityError as e:
                if job is None or raw_dir(job) is None:
                    why = "no data.datasets entry of params.yaml writes it" if job is None else "its raw files are gone"
                    raise DataIntegrityError(f"datasets.{alias}: {e}; {why}, so it cannot be prepared again") from None
                logger.warning("datasets.%s: %s; preparing %s again", alias, e, out)
                prepare(alias, job, out)
        versions[alias] = data_version(out)
        if out in locked and locked[out] != versions[alias]:
            logger.warning(
                "datasets.%s: %s is version %s, dvc.lock records %s (prepared from other parameters or "
                "code): `dvc repro prepare` brings them in line", alias, out, versions[alias], locked[out],
            )
    return versions


def raw_dir(job: dict) -> Path | None:
    """The raw directory a data.datasets job reads, or None if it is not there."""
    raw = job["raw_dir"]
    if raw is None or not Path(raw).exists():
        raw = default_raw_dir(job["source"]) or raw
    return Path(raw) if raw is not None and Path(raw).exists() else None


def prepare(alias: str, job: dict, out: Path) -> None:
    raw = raw_dir(job)
    if raw is None:
        raise ValueError(f"datasets.{alias}: raw directory {str(job['raw_dir'])!r} of {job['name']!r} does not exist")
    prepare_dataset(job["source"], raw, out, **job["params"])
    verify_prepared(out)  # a fresh preparation must pass too (a failing disk)


def dvc_lock_versions(project_dir: Path) -> dict[Path, str]:
    """{absolute output path: md5} of every stage output dvc.lock records (empty without one)."""
    lock = project_dir / "dvc.lock"
    if not lock.is_file():
        return {}
    stages = (yaml.safe_load(lock.read_text()) or {}).get("stages") or {}
    return {
        (project_dir / out["path"]).resolve(): out["md5"]
        for stage in stages.values() for out in stage.get("outs") or [] if "md5" in out
    }
