"""The flow's data step: make sure every dataset a profile reads is prepared, and version it."""
from __future__ import annotations

from pathlib import Path

from dml_core.data import data_version, prepare_dataset
from dml_core.data.config import dataset_jobs
from dml_core.data.fashion_mnist import DEFAULT_RAW_DIR

FASHION_SOURCES = ("fashion_mnist", "rotation")


def ensure_prepared(params_path: str | Path, dataset_dirs: dict[str, str], project_dir: str | Path) -> dict[str, str]:
    """{alias: data version} for the profile's datasets, preparing the missing ones.

    A dataset that `dvc repro prepare` already built is used as it is. A missing one is
    prepared with the same function the DVC stage runs; when its raw directory (the DVC
    import) is absent, the Fashion-MNIST sources read the Debian package's files directly.
    """
    project_dir = Path(project_dir).resolve()
    jobs = {Path(j["out_dir"]).resolve(): j for j in dataset_jobs(params_path)}
    versions = {}
    for alias, rel in dataset_dirs.items():
        out = (project_dir / rel).resolve()
        if not (out / "card.json").is_file():
            job = jobs.get(out)
            if job is None:
                raise ValueError(
                    f"datasets.{alias}: {rel!r} is not prepared and no data.datasets entry of params.yaml writes it"
                )
            raw = job["raw_dir"]
            if (raw is None or not Path(raw).exists()) and job["source"] in FASHION_SOURCES:
                raw = DEFAULT_RAW_DIR
            if raw is None or not Path(raw).exists():
                raise ValueError(f"datasets.{alias}: raw directory {str(raw)!r} of {job['name']!r} does not exist")
            prepare_dataset(job["source"], raw, out, **job["params"])
        versions[alias] = data_version(out)
    return versions
