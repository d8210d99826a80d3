"""Where and how the grid runs (the `ray:` section of a profile) and the resource arithmetic of
one trial, checked before any trial starts. Imports no Ray: a profile validates without it."""
from __future__ import annotations

import math
from dataclasses import dataclass

from pydantic import Field

from dml_core.training.config import Strict

DRIVER_CPU = 0.05  # the Tune trial that only drives a Train run reserves almost nothing


class RayConfig(Strict):
    """Where and how the grid runs. Scale-out is configuration: `address` (or RAY_ADDRESS)
    points at a cluster, `num_workers` > 1 trains each trial data-parallel through Ray
    Train, `use_gpu` puts each worker on a GPU."""

    address: str | None = None  # None: RAY_ADDRESS if set, else a local Ray started for the sweep
    num_cpus: int | None = Field(None, ge=1)  # local Ray only; default: all cores
    num_workers: int = Field(1, ge=1)
    use_gpu: bool = False
    cpus_per_trial: float = Field(1.0, gt=0)  # a single-worker trial (its torch threads too)
    cpus_per_worker: float | None = Field(None, gt=0)  # Ray Train workers; None: fit the machine
    max_concurrent_trials: int | None = Field(None, ge=1)
    max_failures: int = Field(1, ge=0)  # restarts of a crashed trial or worker group, from its checkpoint
    storage_path: str | None = None  # absolute; None: <project>/ray_results


@dataclass
class Plan:
    """Resources of one trial and how many run at once."""

    trial_resources: dict[str, float]
    cpus_per_worker: float
    max_concurrent: int
    threads: int


def plan_resources(cfg: RayConfig, cluster: dict[str, float], trials: int) -> Plan:
    """The resource arithmetic, checked before any trial starts (an impossible request would
    otherwise leave Train's controller retrying forever)."""
    cpus, gpus = float(cluster.get("CPU", 0)), float(cluster.get("GPU", 0))
    if cfg.use_gpu and gpus < cfg.num_workers:
        raise ValueError(
            f"ray.use_gpu with ray.num_workers={cfg.num_workers} needs {cfg.num_workers} GPUs; the cluster has {gpus:g}"
        )
    if cfg.num_workers == 1:
        need = cfg.cpus_per_trial
        if need > cpus:
            raise ValueError(f"ray.cpus_per_trial={need:g} is more than the cluster's {cpus:g} CPUs")
        fit = max(1, int(cpus // need))
        conc = min(cfg.max_concurrent_trials or fit, fit, max(trials, 1))
        res = {"cpu": need, "gpu": 1.0} if cfg.use_gpu else {"cpu": need}
        return Plan(res, need, conc, max(1, int(need)))
    conc = cfg.max_concurrent_trials or 1
    per_worker = cfg.cpus_per_worker
    if per_worker is None:
        # Share what the drivers leave, in steps of 0.05 CPU, at most one CPU a worker.
        per_worker = min(1.0, math.floor((cpus - DRIVER_CPU * conc) / (cfg.num_workers * conc) * 20) / 20)
    need = DRIVER_CPU + cfg.num_workers * per_worker
    if per_worker <= 0 or need * conc > cpus + 1e-9:
        raise ValueError(
            f"ray.num_workers={cfg.num_workers} x {per_worker:g} CPU (+{DRIVER_CPU} for the driver) x "
            f"{conc} concurrent trials needs {need * conc:.2f} CPUs; the cluster has {cpus:g}. "
            "Lower ray.num_workers, ray.cpus_per_worker or ray.max_concurrent_trials, or set RAY_ADDRESS to a cluster"
        )
    return Plan({"cpu": DRIVER_CPU}, per_worker, conc, max(1, int(per_worker)))
