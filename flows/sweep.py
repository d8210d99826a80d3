"""The Prefect 3 flow `dml-sweep`: validate -> prepare -> expand -> run on Ray -> track -> report.

    prefect deployment run dml-sweep/default -p profile=smoke
    dml sweep --profile smoke --set train.epochs=1

Each task only wires dml_core (and flows.tracking for MLflow). Without PREFECT_API_URL the
flow runs on Prefect's ephemeral API; without RAY_ADDRESS on a local Ray; without
MLFLOW_TRACKING_URI on a SQLite store in the project directory.

No trial starts on damaged data: `prepare-data` checks every shard against the checksums of
its dataset card (and prepares it again, or stops naming the file). A sweep whose every
trial failed ends Failed (`dml sweep` exits 1) with each distinct cause said once.
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_link_artifact, create_markdown_artifact
from prefect.states import Failed

from dml_experiment.paths import PROJECT_DIR, project_path
from dml_experiment.report import markdown_table
from dml_experiment.provenance import git_commit, now_utc, write_atomic
from dml_experiment.profile import Profile, load_profile
from dml_experiment.record import FINISHED, TrialRecord, as_rows
from flows.errors import SweepFailed

def sweep_name(profile: str, resolved: Profile) -> str:
    """The profile and a hash of its resolved config: a re-run of the same config resumes
    the same sweep; an override starts a new one."""
    digest = hashlib.sha1(resolved.model_dump_json().encode()).hexdigest()[:8]
    return f"{profile}-{digest}"


@task(name="validate-config")
def validate_config(profile: str, overrides: dict[str, Any] | None, params_path: str) -> tuple[str, Profile]:
    return load_profile(project_path(params_path), profile, overrides)


def unless_value_error(task, task_run, state) -> bool:
    """Retry a task, except for a ValueError (bad data, bad config): a retry cannot fix it."""
    return not isinstance(state.data, ValueError)


@task(name="prepare-data", retries=1, retry_delay_seconds=2, retry_condition_fn=unless_value_error)
def prepare_data(params_path: str, profile: Profile) -> dict[str, str]:
    """Prepare what is missing and check every dataset against its recorded checksums:
    damaged data is prepared again or stops the sweep here, before any trial."""
    from flows.data import ensure_prepared

    dirs = {alias: str(project_path(p)) for alias, p in profile.datasets.items()}
    return ensure_prepared(project_path(params_path), dirs, PROJECT_DIR, logger=get_run_logger())


@task(name="expand-grid")
def expand(profile: Profile, values: dict[str, dict[str, Any]] | None = None) -> list[tuple[str, Any]]:
    """Every final trial (method x seed), with each method's tuned values."""
    trials = []
    for method, t in profile.trials(values):
        t.dataset = str(project_path(t.dataset))
        trials.append((method, t))
    return trials


@task(name="tune")
def tune(profile: Profile, name: str, tracker, out_dir: Path) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """Tune every method on the validation classes (Ray Tune, Optuna TPE, ASHA), each tuning
    trial recorded in MLflow as it ends; returns ({method: chosen values}, {method: tuning
    run id}). Tuning trials an earlier attempt finished are not run again."""
    from dml_experiment.tuning.search import MethodSearch, run_tuning
    from flows.tuning import TuningTracker, tuning_document, write_tuning

    logger = get_run_logger()
    settings = profile.tune
    started = time.perf_counter()
    spaces = {m: {k: d.text() for k, d in settings.space_of(m).items()} for m in profile.methods}
    runs = TuningTracker(tracker, settings)
    done = runs.open(spaces)
    searches = {}
    for m in profile.methods:
        base = profile.method_trials(m)[0]
        trial = base.model_copy(update={"dataset": str(project_path(base.dataset))}).model_dump(mode="json")
        searches[m] = MethodSearch(m, trial, settings.space_of(m), done[m])
    left = sum(settings.budget.trials - len(d) for d in done.values())
    logger.info(f"tuning {len(searches)} methods x {settings.budget.trials} trials: {left} to run")
    storage = project_path(profile.ray.storage_path or "ray_results")
    results = run_tuning(searches, settings, profile.ray, name=f"{name}-tune", storage_path=str(storage),
                         on_trial_end=runs.log_trial)
    values = {}
    for m, result in results.items():
        runs.close(result)
        if result.chosen is None:
            # Not fatal: the method's final runs use the options written in the profile, and
            # the report's tuning table says no trial scored.
            first = next((t.error for t in result.trials if t.error), "no error recorded")
            logger.warning(f"tuning of method {m!r}: none of its {len(result.trials)} trials scored ({first}); "
                           "its final runs use the options written in the profile")
            continue
        values[m] = settings.with_ties(m, result.values)
        logger.info(f"tuned {m}: {result.values}")
    # A resumed sweep that ran no tuning trial keeps the time the one that did measured.
    from dml_experiment.report.tuning import read_tuning

    seconds = round(time.perf_counter() - started, 1) if left else (read_tuning(out_dir) or {}).get("seconds")
    write_tuning(out_dir, tuning_document(settings, spaces, results, runs.runs, seconds))
    return values, runs.runs


@task(name="train-final")
def run_on_ray(trials, profile: Profile, name: str, record=None):
    """The final runs (each method's tuned config x replicates) in one Tune run: a trial
    starts when a core is free and `record(trial_record)` runs as it ends."""
    from dml_experiment.runner import run_grid

    storage = project_path(profile.ray.storage_path or "ray_results")
    # A fresh Tune experiment name per attempt: Tune refuses to reuse a finished one.
    return run_grid(trials, profile.ray, name=f"{name}-{int(time.time())}", storage_path=str(storage),
                    on_trial_end=record)


def remaining(trials, tracker, force: bool):
    """The trials not yet recorded as finished in MLflow (all of them with force)."""
    from dml_core.training.identity import trial_id

    done = {} if force else tracker.finished_trials()
    return [(m, t) for m, t in trials if trial_id(t) not in done], done


@task(name="track-trial", retries=2, retry_delay_seconds=2)
def track(tracker, record: TrialRecord, tags: dict[str, str], run_name: str) -> str:
    return tracker.log_trial(record, tags=tags, run_name=run_name)


def failure_summary(records: list[dict]) -> str | None:
    """None if any trial finished; else every distinct error once, most frequent first,
    with how many trials it stopped."""
    if not records or any(r["status"] == "finished" for r in records):
        return None
    counts: dict[str, int] = {}
    for r in records:
        cause = r.get("error") or f"ended {r['status']} without an error message"
        counts[cause] = counts.get(cause, 0) + 1
    if len(counts) == 1:
        return f"all {len(records)} trials failed with the same error: {next(iter(counts))}"
    causes = sorted(counts.items(), key=lambda kv: -kv[1])
    return f"all {len(records)} trials failed; causes: " + "; ".join(f"[{n} trial(s)] {c}" for c, n in causes)


def previous_records(report_dir: Path, trial_ids: set[str]) -> list[dict]:
    """Records of trials a resumed sweep skips, from the sweep's last results.json."""
    path = report_dir / "results.json"
    if not path.is_file():
        return []
    return [r for r in as_rows(json.loads(path.read_text())) if r["trial_id"] in trial_ids]


@task(name="write-report")
def write_report(out_dir: Path, name: str, profile_name: str, profile: Profile, records: list[dict], versions: dict, seconds: float) -> Path:
    from flows.report import write_sweep_report

    return write_sweep_report(out_dir, name, profile_name, profile, records, versions, seconds)


def final_runs(prof: Profile, name: str, tracker, trials, force: bool, versions: dict, tuning_runs: dict) -> tuple[list[TrialRecord], list, dict]:
    """Run the final trials not yet finished in MLflow, each recorded there as it ends;
    returns (the new records, the trials run, {trial_id: run_id} of those finished before)."""
    from flows.tracking import dataset_partitions, trial_run_names

    logger = get_run_logger()
    run_name_of = trial_run_names(trials, dataset_partitions({t.dataset for _, t in trials}))
    todo, done = remaining(trials, tracker, force)
    logger.info(f"sweep {name}: {len(trials)} final trials, {len(trials) - len(todo)} already finished, {len(todo)} to run")
    version_of = {str(project_path(p)): versions[alias] for alias, p in prof.datasets.items()}
    records: list[TrialRecord] = []

    def record(r: TrialRecord) -> None:
        records.append(r)
        tags = {"dml.method": r.method, "dml.data_version": version_of.get(r.config["dataset"], "")}
        if r.method in tuning_runs:
            tags["dml.tuning_run"] = tuning_runs[r.method]
        track(tracker, r, tags, run_name_of[r.trial_id])

    if todo:
        run_on_ray(todo, prof, name, record)
    logger.info(f"sweep {name}: {len(done) + len(records)}/{len(trials)} trials recorded")
    return records, todo, done


def write_sweep_meta(out_dir: Path, meta: dict[str, Any], ran: bool) -> None:
    """sweep.json says when, on which commit and in how long the results were computed. A
    call that ran no trial (all resumed) keeps the one of the run that did, and its report
    says so, not that these results are from now."""
    if ran or not (out_dir / "sweep.json").is_file():
        write_atomic(out_dir / "sweep.json", json.dumps({**meta, "date": now_utc(), "commit": git_commit(PROJECT_DIR)}, indent=1))


@flow(name="dml-sweep", log_prints=True)
def dml_sweep(
    profile: str = "quick",
    overrides: dict[str, Any] | None = None,
    force: bool = False,
    params_path: str = "params.yaml",
    report_dir: str | None = None,
) -> str:
    """Run a sweep profile of params.yaml end to end; returns the report's path."""
    from flows.tracking import SweepTracker, tracking_uri

    started = time.perf_counter()
    logger = get_run_logger()
    profile_name, prof = validate_config(profile, overrides, params_path)
    name = sweep_name(profile_name, prof)
    versions = prepare_data(params_path, prof)
    out_dir = project_path(report_dir) if report_dir else PROJECT_DIR / "reports" / name
    out_dir.mkdir(parents=True, exist_ok=True)
    tracker = SweepTracker(
        prof.mlflow.experiment, name, profile_name, prof.model_dump(mode="json"),
        uri=tracking_uri(PROJECT_DIR), tags={"dml.data_version." + k: v for k, v in versions.items()},
    )
    with tracker:
        tracker.mark_interrupted()
        values, tuning_runs = tune(prof, name, tracker, out_dir) if prof.tune is not None else ({}, {})
        trials = expand(prof, values)
        new, todo, done = final_runs(prof, name, tracker, trials, force, versions, tuning_runs)
        records = previous_records(out_dir, set(done)) + [r.row() for r in new]
        finished = [r for r in new if r.status == FINISHED]
        if finished:
            tracker.log_best_model(max(finished, key=lambda r: r.metrics.get("map@r", 0.0)), prof.mlflow.registered_model)
        seconds = round(time.perf_counter() - started, 1) if todo else None
        write_sweep_meta(out_dir, {"sweep": name, "profile": profile_name, "overrides": overrides or {}, "params": params_path,
                                   "versions": versions, "seconds": seconds, "trials": len(trials), "trials_run": len(todo),
                                   "mlflow_parent": tracker.parent_url()}, bool(todo))
        report = write_report(out_dir, name, profile_name, prof, records, versions, seconds or 0.0)
        tracker.log_report(report.parent)
        create_markdown_artifact(key="dml-sweep-results", markdown=markdown_table(records), description=f"sweep {name}")
        create_link_artifact(key="dml-sweep-mlflow", link=tracker.parent_url(), description="the sweep's MLflow parent run")
        logger.info(f"report: {report}; {sum(r['status'] != FINISHED for r in records)} failed trial(s)")
        summary = failure_summary(records)
        if summary:
            tracker.fail(summary)
    if summary:
        # A Failed state, not a raise: Prefect then says the cause once, without a traceback
        # of this function; a direct call (dml sweep) still raises SweepFailed.
        message = f"sweep {name}: {summary} (report: {report})"
        return Failed(message=message, data=SweepFailed(message))
    return str(report)
