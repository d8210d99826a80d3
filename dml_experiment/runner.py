"""The grid on Ray Tune; multi-worker trials through Ray Train (V2 controller).

Imports Ray: dml_core itself never imports this module, the sweep does.

A single-worker trial is a plain Tune function trial: a Train worker group would cost ~10 s
per trial here for nothing. A trial with `num_workers` > 1 is a Tune function that drives a
TorchTrainer (the V2 way to run Train inside Tune; V2 trainers are not Tune trainables);
its workers mine on the global batch (dml_core.training.distributed). Every epoch ends in a
checkpoint, so Tune (single worker) or Train (worker group) restarts a crashed trial from
it, and the restarted run ends exactly where an uninterrupted one would. A trial that fails
for good (TrialError, a bad option) is reported as failed and the grid goes on.
"""
from __future__ import annotations

import functools
import hashlib
import math
import os
import sys
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from dml_core.training.config import TrialConfig

from .provenance import atomic_file
from .record import FAILED, FINISHED, TrialRecord
from .resources import RayConfig, plan_resources
from dml_core.training.identity import trial_id as make_id
from dml_core.training.identity import trial_name
from dml_core.training.trial import Trial, TrialError

# -- Ray lifecycle ------------------------------------------------------------------------------
def init_ray(cfg: RayConfig) -> None:
    """Join cfg.address or RAY_ADDRESS if given, else start a small, quiet local Ray."""
    import ray

    if ray.is_initialized():
        return
    address = cfg.address or os.environ.get("RAY_ADDRESS")
    if address:
        # A cluster started with `ray start --head` uses token auth (Ray >= 2.59): the driver
        # needs RAY_AUTH_MODE=token and the token (~/.ray/auth_token or RAY_AUTH_TOKEN_PATH).
        ray.init(address=address, log_to_driver=False)
        return
    ray.init(
        address="local",  # never join a stray cluster by accident
        num_cpus=cfg.num_cpus or os.cpu_count(),
        include_dashboard=False,
        log_to_driver=False,
        object_store_memory=256 * 1024**2,
        # Ray runs its workers at nice 15 by default: on a machine shared with other work, a
        # trial then gets a smaller share of a core than the same trial in-process (nice 0):
        # measured on a loaded 2-core machine, ~10% longer at equal CPU time, ~1% at nice 0.
        # The sweep's trials are the work: they run at the driver's niceness.
        _system_config={"worker_niceness": 0},
    )


# -- checkpoints --------------------------------------------------------------------------------
def save_state(directory: str, state: dict) -> None:
    torch.save(state, os.path.join(directory, "state.pt"))


def load_state(checkpoint) -> dict | None:
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as d:
        return torch.load(os.path.join(d, "state.pt"), weights_only=False)


def flat_metrics(row: dict) -> dict[str, float]:
    return {k: float(v) for k, v in row.items() if isinstance(v, (int, float))}


@functools.lru_cache(maxsize=8)
def data_version_of(path: str) -> str:
    from dml_core.data import data_version

    return data_version(path)


_EVAL_ROWS: dict[tuple, np.ndarray] = {}


def eval_rows(trial: Trial) -> np.ndarray:
    """trial.split_rows(trial.eval_set), kept in the (reused) actor from one trial to the next:
    the rows depend on the eval labels and eval.max_items only (seed 0: every trial is scored on
    the same items), and drawing them again took ~0.06 s a trial on the glyphs' eval split."""
    labels = np.ascontiguousarray(trial.eval_set.labels)
    key = (hashlib.blake2b(labels.tobytes(), digest_size=16).digest(), labels.dtype.str, labels.shape,
           trial.config.eval.max_items)
    if key not in _EVAL_ROWS:
        if len(_EVAL_ROWS) >= 8:
            _EVAL_ROWS.clear()
        rows = trial.split_rows(trial.eval_set)
        rows.flags.writeable = False  # shared by the trials that follow
        _EVAL_ROWS[key] = rows
    return _EVAL_ROWS[key]


def write_embeddings(trial: Trial, artifacts: str, trial_id: str) -> str:
    from dml_core.metrics import save_embeddings

    metrics, emb = trial.final
    rows = eval_rows(trial)
    path = Path(artifacts) / trial_id / "embeddings.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"trial_id": trial_id, "dataset": trial.config.dataset, "data_version": data_version_of(trial.config.dataset)}
    save_embeddings(path, emb, trial.eval_set.labels[rows], metadata=meta)
    # Written to a temp name and renamed: a reader never sees half a file, and a full disk
    # leaves none behind (the temp file is removed).
    with atomic_file(path.with_name("model.pt")) as tmp, open(tmp, "wb") as f:
        # Into a Python file, not a path: then a full disk raises ENOSPC (as the context of
        # torch's error), not a bare C++ stream error.
        torch.save(trial.model.state_dict(), f)
    return str(path)


# -- trial functions (run inside Ray) -----------------------------------------------------------
def finished_without_eval(trial: Trial, epoch: int) -> bool:
    """The last epoch of a trial scored on the validation split only (a convergence-study
    run): it ends there, with no evaluation embeddings to write."""
    return trial.eval_set is None and epoch == trial.config.train.epochs - 1


def failure_report(error: Exception) -> dict:
    """What a trial that failed for good reports to Tune: its status and the error."""
    return {"status": FAILED, "error": f"{type(error).__name__}: {error}"[:2000]}


def tune_trial(config: dict) -> None:
    """A single-worker trial as a Tune function."""
    from ray import tune

    params = config["params"]
    cfg = TrialConfig.model_validate(params["trial"])
    cfg.train.num_threads = cfg.train.num_threads or params["threads"]
    try:
        trial = Trial(cfg, resume=load_state(tune.get_checkpoint()))
    except (TrialError, ValueError) as e:
        tune.report(failure_report(e))
        return

    def on_epoch(row: dict, t: Trial, epoch: int) -> None:
        metrics = flat_metrics(row)
        if t.final is not None:
            metrics["embeddings_path"] = write_embeddings(t, params["artifacts"], params["trial_id"])
            metrics["status"] = FINISHED
        elif finished_without_eval(t, epoch):
            metrics["status"] = FINISHED
        with tempfile.TemporaryDirectory() as d:
            save_state(d, t.state(epoch))
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))

    try:
        trial.run(on_epoch)
    except TrialError as e:
        tune.report(failure_report(e))


def train_worker(params: dict) -> None:
    """One Ray Train worker of a multi-worker trial (torch.distributed is initialised)."""
    import ray.train

    cfg = TrialConfig.model_validate(params["trial"])
    cfg.train.num_threads = cfg.train.num_threads or params["threads"]
    trial = Trial(cfg, resume=load_state(ray.train.get_checkpoint()))
    rank = ray.train.get_context().get_world_rank()

    def on_epoch(row: dict, t: Trial, epoch: int) -> None:
        metrics = flat_metrics(row)
        if rank == 0 and t.final is not None:
            metrics["embeddings_path"] = write_embeddings(t, params["artifacts"], params["trial_id"])
            metrics["status"] = FINISHED
        elif rank == 0 and finished_without_eval(t, epoch):
            metrics["status"] = FINISHED
        # report is a collective: every rank calls it each epoch; rank 0 carries the checkpoint.
        with tempfile.TemporaryDirectory() as d:
            if rank == 0:
                save_state(d, t.state(epoch))
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(d) if rank == 0 else None)

    trial.run(on_epoch)


def train_driver(config: dict) -> None:
    """A multi-worker trial: a Tune function that fits a TorchTrainer (Train V2)."""
    from ray import train, tune

    params = config["params"]
    from ray.train.torch import TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    ray_cfg = RayConfig.model_validate(params["ray"])
    worker = {"CPU": params["cpus_per_worker"]}
    if ray_cfg.use_gpu:
        worker["GPU"] = 1
    trainer = TorchTrainer(
        train_worker,
        train_loop_config=params,
        scaling_config=train.ScalingConfig(num_workers=ray_cfg.num_workers, use_gpu=ray_cfg.use_gpu, resources_per_worker=worker),
        run_config=train.RunConfig(
            # A stable name: a restarted trial resumes this run's checkpoints.
            name=f"train-{params['trial_id']}",
            storage_path=params["train_storage"],
            failure_config=train.FailureConfig(max_failures=ray_cfg.max_failures),
            checkpoint_config=train.CheckpointConfig(num_to_keep=2),
            callbacks=[TuneReportCallback()],
        ),
    )
    try:
        trainer.fit()
    except Exception as e:  # WorkerGroupError / ControllerError: the trial failed for good
        tune.report(failure_report(e))


# -- the grid -----------------------------------------------------------------------------------
class Progress:
    """Trials done / total and the running trials' epochs, one line per change."""

    def __init__(self, total: int, total_epochs: dict[str, int]):
        self.total, self.total_epochs = total, total_epochs
        self.done, self.failed, self.epochs = 0, 0, {}

    def callback(self):
        from ray.tune import Callback

        progress = self

        class _Cb(Callback):
            def on_trial_result(self, iteration, trials, trial, result, **info):
                progress.epochs[trial.config["params"]["trial_id"]] = int(result.get("epoch", -1)) + 1
                if result.get("status") == FAILED:
                    progress.failed += 1
                progress.show()

            def on_trial_complete(self, iteration, trials, trial, **info):
                progress.done += 1
                progress.epochs.pop(trial.config["params"]["trial_id"], None)
                progress.show()

            def on_trial_error(self, iteration, trials, trial, **info):
                progress.done += 1
                progress.epochs.pop(trial.config["params"]["trial_id"], None)
                progress.show()

        return _Cb()

    def show(self) -> None:
        running = ", ".join(f"{tid[:6]} epoch {e}/{self.total_epochs[tid]}" for tid, e in sorted(self.epochs.items()))
        print(f"[dml] trials {self.done}/{self.total} done ({self.failed} failed) | {running or '-'}", file=sys.stderr, flush=True)


def trial_error(trial) -> str:
    """What ended a Tune trial's process, as "Type: message" (the pickled error if any)."""
    try:
        err = trial.get_pickled_error()
        if err is not None:
            return f"{type(err).__name__}: {err}"[:2000]
        text = trial.get_error()
    except Exception:  # noqa: BLE001 - the storage may be gone: fall back to a plain message
        text = None
    return (str(text).strip().splitlines()[-1] if text else "the trial's process failed")[:2000]


def outcome_from(rows: list[dict], error: str | None, method: str, cfg: TrialConfig, trial_id: str) -> TrialRecord:
    """The record of a trial of `method` from the results it reported (in order) and its
    process error."""
    rows = [{k: v for k, v in r.items() if not (isinstance(v, float) and math.isnan(v))} for r in rows]
    last = rows[-1] if rows else {}
    if error is not None:
        status = FAILED
    elif last.get("status") == FAILED:
        status, error = FAILED, last.get("error")
    elif last.get("status") == FINISHED:
        status, error = FINISHED, None
    else:
        status, error = FAILED, "the trial ended without reporting its final epoch"
    history = [{k: v for k, v in r.items() if k == "epoch" or "/" in k} for r in rows if "epoch" in r]
    metrics = {k[len("eval/"):]: v for k, v in last.items() if k.startswith("eval/")} if status == FINISHED else {}
    embeddings = last.get("embeddings_path")
    return record_of(method, cfg, trial_id, status, error=error, history=history, metrics=metrics,
                     embeddings_path=embeddings, model_path=str(Path(embeddings).with_name("model.pt")) if embeddings else None,
                     seconds=float(last.get("time_total_s", 0.0)))


def record_of(method: str, cfg: TrialConfig, trial_id: str, status: str, **fields) -> TrialRecord:
    """A TrialRecord of one trial of the grid; replicates pair across arms by (seed, partition)."""
    return TrialRecord(trial_id=trial_id, name=trial_name(cfg), method=method, seed=cfg.seed, partition=cfg.partition,
                       status=status, config=cfg.model_dump(mode="json"), **fields)


def run_grid(trials: list[tuple[str, TrialConfig]], ray_cfg: RayConfig, *, name: str, storage_path: str | None = None,
             progress: bool = True, on_trial_end: Callable[[TrialRecord], None] | None = None) -> list[TrialRecord]:
    """Run every (method, trial) on Ray Tune (each through Ray Train when ray.num_workers > 1);
    one record per trial, in the order given, failed trials included with their error.

    One Tune run holds the whole grid: a trial starts as soon as a core is free, and
    ``on_trial_end(record)`` runs in this process as each trial ends (the flow records it
    in MLflow there), not when a group of trials does. Single-worker trials reuse their Ray
    actors, so torch, FAISS and the data stay loaded from one trial to the next."""
    import ray
    from ray import tune
    from ray.tune import Callback

    storage = os.path.abspath(storage_path or ray_cfg.storage_path or "ray_results")
    init_ray(ray_cfg)
    plan = plan_resources(ray_cfg, ray.cluster_resources(), len(trials))
    # Ray runs each trial in its own directory: a relative dataset path means the driver's.
    methods = [m for m, _ in trials]
    trials = [t if os.path.isabs(t.dataset) else t.model_copy(update={"dataset": os.path.abspath(t.dataset)}) for _, t in trials]
    ids = [make_id(t) for t in trials]
    if len(set(ids)) != len(ids):
        raise ValueError("the grid holds the same trial twice (equal configs); remove the duplicate")
    base = {
        "ray": ray_cfg.model_dump(), "threads": plan.threads, "cpus_per_worker": plan.cpus_per_worker,
        "train_storage": os.path.join(storage, name, "train"), "artifacts": os.path.join(storage, name, "artifacts"),
    }
    space = [{**base, "trial": t.model_dump(mode="json"), "trial_id": i} for t, i in zip(trials, ids)]
    config_of = dict(zip(ids, trials))
    method_of = dict(zip(ids, methods))
    fn = tune_trial if ray_cfg.num_workers == 1 else train_driver
    rows: dict[str, list[dict]] = {}
    outcomes: dict[str, TrialRecord] = {}

    class Record(Callback):
        def on_trial_result(self, iteration, trials, trial, result, **info):
            rows.setdefault(trial.trial_id, []).append(dict(result))

        def on_trial_complete(self, iteration, trials, trial, **info):
            self.ended(trial, None)

        def on_trial_error(self, iteration, trials, trial, **info):
            self.ended(trial, trial_error(trial))

        def ended(self, trial, error):
            tid = trial.config["params"]["trial_id"]
            outcomes[tid] = outcome_from(rows.pop(trial.trial_id, []), error, method_of[tid], config_of[tid], tid)
            if on_trial_end is not None:
                on_trial_end(outcomes[tid])

    callbacks = [Record()]
    if progress:
        callbacks.append(Progress(len(trials), {i: t.train.epochs for t, i in zip(trials, ids)}).callback())
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # with verbose=0: no banner boxes
    tuner = tune.Tuner(
        tune.with_resources(fn, plan.trial_resources),
        param_space={"params": tune.grid_search(space)},
        tune_config=tune.TuneConfig(max_concurrent_trials=plan.max_concurrent, reuse_actors=ray_cfg.num_workers == 1),
        run_config=tune.RunConfig(
            name=name, storage_path=storage, verbose=0, callbacks=callbacks,
            failure_config=tune.FailureConfig(max_failures=ray_cfg.max_failures if ray_cfg.num_workers == 1 else 0),
        ),
    )
    tuner.fit()
    missing = [tid for tid in ids if tid not in outcomes]
    if missing:
        # Ray Tune answers SIGINT by stopping the run and returning from fit(). These trials
        # never ended: a record saying they failed would keep a resumed sweep from running
        # them, and a report of the rest would judge a grid with holes.
        raise GridInterrupted(
            f"the grid stopped before {len(missing)} of its {len(ids)} trial(s) ended ({len(outcomes)} ended and "
            "are recorded); run the same sweep again: it resumes from the finished trials")
    return [outcomes[tid] for tid in ids]


class GridInterrupted(RuntimeError):
    """The Tune run of a grid ended (interrupted) before every trial had."""
