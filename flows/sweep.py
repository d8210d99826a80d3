"""The Prefect 3 flow `dml-sweep`: validate -> prepare -> expand -> run on Ray -> track -> report.

    prefect deployment run dml-sweep/default -p profile=smoke
    dml sweep --profile smoke --set train.epochs=1

Each task only wires dml_core (and flows.tracking for MLflow). Without PREFECT_API_URL the
flow runs on Prefect's ephemeral API; without RAY_ADDRESS on a local Ray; without
MLFLOW_TRACKING_URI on a SQLite store in the project directory.

No trial starts on damaged data: `prepare-data` checks every shard against the checksums of
its dataset card (and prepares it again, or stops naming the file). A sweep whose every
trial failed ends Failed (`dml sweep` exits 1) with each distinct cause said once.

Faults a long sweep survives:

* The tracking server going away. Every trial's record is written atomically into the
  sweep's directory (flows.records) before it is sent to MLflow, and sending happens on a
  background thread (flows.outbox) that retries with backoff, so a failure of MLflow never
  reaches Ray Tune's event loop. When the trials are done the sweep waits at most
  `mlflow.outage_seconds` for the server; if it is still away, the report is written from
  the records on disk and the sweep ends Failed naming the tracking URI and the trials
  MLflow lacks. Running the same sweep again sends them without training them again.
* A full disk. Every write is atomic; ENOSPC stops the sweep with DiskFull (the path and
  the free space), removes what Ray Tune left half-written (flows.disk), and a later run
  resumes from the records of the finished trials.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_link_artifact, create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.states import Failed

from dml_experiment.parts import PartLog
from dml_experiment.paths import PROJECT_DIR, project_path
from dml_experiment.report import markdown_table
from dml_experiment.provenance import git_commit, now_utc, write_atomic
from dml_experiment.profile import Profile, load_profile
from dml_experiment.record import FAILED, FINISHED, TrialRecord, as_rows
from flows.errors import SweepFailed
from flows.outbox import Outbox
from flows.records import RecordStore


def sweep_name(profile: str, resolved: Profile) -> str:
    """The profile and a hash of its resolved config: a re-run of the same config resumes
    the same sweep; an override starts a new one."""
    digest = hashlib.sha1(resolved.model_dump_json().encode()).hexdigest()[:8]
    return f"{profile}-{digest}"


@dataclass
class Sweep:
    """What the tasks of one sweep share: its profile and name, where its results go, its
    MLflow tracker and the outbox that sends to it."""

    profile: Profile
    name: str
    out_dir: Path
    store: RecordStore
    tracker: Any  # flows.tracking.SweepTracker
    outbox: Outbox
    versions: dict[str, str]
    started_at: float  # Unix time: the Ray Tune runs of this attempt are named after it

    @property
    def storage(self) -> Path:
        return project_path(self.profile.ray.storage_path or "ray_results")


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
    """Every final trial (method x seed), with each method's tuned values, then the runs of
    the convergence study (dml_experiment.convergence), which share the final runs' pool."""
    from dml_experiment.convergence import study_trials

    trials = []
    for method, t in profile.trials(values) + study_trials(profile, values):
        t.dataset = str(project_path(t.dataset))
        trials.append((method, t))
    return trials


def judged_metric(profile: Profile, method: str) -> str:
    """The metric a method is judged on: its tuning metric, else its first comparison's."""
    if profile.tune is not None:
        return profile.tune.val_metric_of(method).removeprefix("val/")
    return next((c.metric for c in profile.comparisons.values() if method in c.methods), "map@r")


def write_convergence(sweep: Sweep, rows: list[dict]) -> list[dict]:
    """Write convergence.json from the study's records; returns the final trials' rows."""
    from dml_experiment.convergence import CONVERGENCE_FILE, is_study, study_document

    study = [r for r in rows if is_study(r)]
    if sweep.profile.convergence is not None:
        doc = study_document(sweep.profile, study, lambda m: judged_metric(sweep.profile, m))
        write_atomic(sweep.out_dir / CONVERGENCE_FILE, json.dumps(doc, indent=1) + "\n")
    return [r for r in rows if not is_study(r)]


def tuning_done(sweep: Sweep, runs, spaces: dict[str, dict[str, str]], keys: dict[str, str]) -> dict[str, list]:
    """Each method's tuning trials finished before, by MLflow or by their records on disk
    (those MLflow lacks are queued for it); opens the methods' tuning runs. A record on disk
    counts for the method's search with key keys[method], whichever sweep wrote it."""
    in_mlflow = runs.open(spaces)
    done, unsent = {}, 0
    for m, trials in in_mlflow.items():
        known = {t.index: t for t in trials}
        stamped = sweep.store.key_tuning(m, keys[m])
        if stamped:
            get_run_logger().info(f"{m}: {stamped} tuning record(s) of this sweep given their search key {keys[m]}")
        on_disk = sweep.store.tuning(m, keys[m])
        for index, t in sorted(on_disk.items()):
            if index not in known:
                unsent += 1
                sweep.outbox.put(f"{m} tuning trial #{index}", lambda t=t: runs.log_trial(t))
        # The disk's copy wins: it has the history that the MLflow tag leaves out.
        done[m] = sorted({**known, **on_disk}.values(), key=lambda t: t.index)
    if unsent:
        get_run_logger().info(f"{unsent} tuning trial(s) finished earlier are not in MLflow yet: sending them (not run again)")
    return done


@task(name="tune", cache_policy=NO_CACHE)
def tune(sweep: Sweep) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """Tune every method on the validation classes (Ray Tune, Optuna TPE, ASHA), each tuning
    trial kept on disk and sent to MLflow as it ends; returns ({method: chosen values},
    {method: tuning run id}). Tuning trials an earlier attempt finished are not run again."""
    from dml_experiment.tuning.search import MethodSearch, run_tuning
    from flows.tuning import TuningTracker, tuning_document, write_tuning

    logger, profile = get_run_logger(), sweep.profile
    settings = profile.tune
    started = time.perf_counter()
    spaces = {m: {k: d.text() for k, d in settings.space_of(m).items()} for m in profile.methods}
    runs = TuningTracker(sweep.tracker, settings)
    bases = {m: profile.method_trials(m)[0] for m in profile.methods}
    keys = {m: settings.search_key(m, base.model_dump(mode="json")) for m, base in bases.items()}
    done = tuning_done(sweep, runs, spaces, keys)
    searches = {}
    for m, base in bases.items():
        trial = base.model_copy(update={"dataset": str(project_path(base.dataset))}).model_dump(mode="json")
        searches[m] = MethodSearch(m, trial, settings.space_of(m), done[m])
    left = sum(settings.budget.trials - len(d) for d in done.values())
    before = sum(len(d) for d in done.values())
    logger.info(f"tuning {len(searches)} methods x {settings.budget.trials} trials: {left} to run")

    def on_trial_end(rec) -> None:
        sweep.store.write_tuning(rec, keys[rec.method])  # on disk first: MLflow may be away
        sweep.outbox.put(f"{rec.method} tuning trial #{rec.index}", lambda: runs.log_trial(rec))

    results = run_tuning(searches, settings, profile.ray, name=f"{sweep.name}-tune", storage_path=str(sweep.storage),
                         on_trial_end=on_trial_end)
    values = {}
    for m, result in results.items():
        sweep.outbox.put(f"the tuning run of {m}", lambda result=result: runs.close(result))
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

    earlier = {} if left else read_tuning(sweep.out_dir) or {}
    seconds = round(time.perf_counter() - started, 1) if left else earlier.get("seconds")
    resumed = before if left else earlier.get("resumed", 0)
    from dml_experiment.tuning.bounds import ceilings

    limits = {m: ceilings(base) for m, base in bases.items()}
    write_tuning(sweep.out_dir, tuning_document(settings, spaces, results, runs.runs, seconds, limits, resumed))
    return values, runs.runs


@task(name="train-final", cache_policy=NO_CACHE)
def run_on_ray(trials, profile: Profile, run_name: str, record=None):
    """The final runs (each method's tuned config x replicates) in one Tune run: a trial
    starts when a core is free and `record(trial_record)` runs as it ends."""
    from dml_experiment.runner import run_grid

    storage = project_path(profile.ray.storage_path or "ray_results")
    return run_grid(trials, profile.ray, name=run_name, storage_path=str(storage), on_trial_end=record)


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


def trial_sender(sweep: Sweep, trials, tuning_runs: dict[str, str]):
    """send(record): queue a final trial's record for MLflow, tagged and named for its arm."""
    from flows.tracking import dataset_partitions, trial_run_names

    run_name_of = trial_run_names(trials, dataset_partitions({t.dataset for _, t in trials}))
    version_of = {str(project_path(p)): sweep.versions[alias] for alias, p in sweep.profile.datasets.items()}

    def send(r: TrialRecord) -> None:
        tags = {"dml.method": r.method, "dml.data_version": version_of.get(r.config["dataset"], "")}
        if r.method in tuning_runs:
            tags["dml.tuning_run"] = tuning_runs[r.method]
        name = run_name_of.get(r.trial_id, r.name)
        sweep.outbox.put(f"{name} ({r.trial_id})", lambda: sweep.tracker.log_trial(r, tags=tags, run_name=name))

    return send


def final_runs(sweep: Sweep, trials, force: bool, in_mlflow: tuple[dict, set], tuning_runs: dict) -> tuple[list[dict], list]:
    """Run the final trials not finished yet (in MLflow, or by their records on disk), each
    kept on disk and queued for MLflow as it ends, after the records an earlier attempt kept
    that MLflow lacks. Returns (the rows of every trial of the sweep that has one, the
    trials run now)."""
    from dml_core.training.identity import trial_id
    from flows.disk import trial_disk_full
    from flows.tracking import record_digest

    logger = get_run_logger()
    finished_in_mlflow, sent = in_mlflow
    ids = [trial_id(t) for _, t in trials]
    on_disk = sweep.store.trials(set(ids))
    done = set() if force else {i for i in ids if i in finished_in_mlflow or (i in on_disk and on_disk[i].status == FINISHED)}
    todo = [(m, t) for (m, t), i in zip(trials, ids) if i not in done]
    logger.info(f"sweep {sweep.name}: {len(trials)} final trials, {len(done)} already finished, {len(todo)} to run")
    send = trial_sender(sweep, trials, tuning_runs)
    unsent = [on_disk[i] for i in ids if i in done and i in on_disk and record_digest(on_disk[i]) not in sent]
    if unsent:
        logger.info(f"{len(unsent)} finished trial(s) kept on disk are not in MLflow yet: sending them (not trained again)")
    for r in unsent:
        send(r)

    def record(r: TrialRecord) -> None:
        if r.status == FAILED:
            # ENOSPC inside Ray is a failed trial: stop here rather than record a failure that is the disk's.
            full = trial_disk_full(r.error, [sweep.storage, sweep.out_dir])
            if full is not None:
                raise full
        sweep.store.write_trial(r)  # on disk first: MLflow may be away
        on_disk[r.trial_id] = r
        send(r)

    if todo:
        # A fresh Tune run per attempt (Tune refuses to reuse a finished one), named so that
        # flows.disk finds it.
        run_on_ray(todo, sweep.profile, f"{sweep.name}-{int(time.time())}", record)
    previous = {r["trial_id"]: r for r in previous_records(sweep.out_dir, done - set(on_disk))}
    rows = [on_disk[i].row() if i in on_disk else previous[i] for i in ids if i in on_disk or i in previous]
    logger.info(f"sweep {sweep.name}: {sum(r['status'] == FINISHED for r in rows)}/{len(trials)} trials finished")
    return rows, todo


def write_sweep_meta(out_dir: Path, meta: dict[str, Any], ran: bool) -> None:
    """sweep.json says when, on which commit and in how long the results were computed. A
    call that ran no trial (all resumed) keeps the one of the run that did, and its report
    says so, not that these results are from now."""
    if ran or not (out_dir / "sweep.json").is_file():
        write_atomic(out_dir / "sweep.json", json.dumps({**meta, "date": now_utc(), "commit": git_commit(PROJECT_DIR)}, indent=1))


def send_best_model(sweep: Sweep, rows: list[dict], ran: bool) -> None:
    """Queue the best finished trial's model for the registry: when trials ran now, or when
    the parent run has none yet (an earlier attempt that ended before it)."""
    finished = [TrialRecord.model_validate(r) for r in rows if r["status"] == FINISHED]
    if finished and (ran or "dml.best_trial_id" not in sweep.tracker.previous_tags):
        best = max(finished, key=lambda r: r.metrics.get("map@r", 0.0))
        model = sweep.profile.mlflow.registered_model
        sweep.outbox.put(f"the best model ({best.trial_id})", lambda: sweep.tracker.log_best_model(best, model))


def unsent_message(sweep: Sweep, pending: list[str]) -> str:
    """What the sweep says when MLflow did not get everything: the URI, the outage, the
    items (at most 20 named), where they are kept and how to send them."""
    outbox = sweep.outbox
    named = ", ".join(pending[:20]) + (f" and {len(pending) - 20} more" if len(pending) > 20 else "")
    text = f"{len(pending)} record(s) not sent: {named}" if pending else ""
    if outbox.refused:
        refused = "; ".join(f"{label}: {answer}" for label, answer in outbox.refused[:5])
        text += ("; " if text else "") + f"{len(outbox.refused)} refused by the server ({refused})"
    cause = outbox.outage_text() if pending else f"MLflow at {outbox.uri}"
    where = ", ".join(str(d) for d in (sweep.store.trials_dir, sweep.store.tuning_dir) if d.is_dir())
    return (f"{cause}: {text}. Every trial's result is on disk ({where}) and in the report; run the same "
            "sweep again once MLflow answers to send them (nothing is trained again)")


@contextlib.contextmanager
def tracked(sweep: Sweep):
    """The sweep's MLflow parent run open for the block (SweepFailed naming the URI when the
    server does not answer at the start: nothing has run yet). When the block fails, what
    can be sent in 30 s is sent, the parent run ends FAILED if MLflow answers, and on a
    full disk the half-written files are removed."""
    from flows.tracking import redacted_uri

    try:
        sweep.tracker.start()
    except Exception as e:  # noqa: BLE001 - any failure to reach MLflow at the start
        raise SweepFailed(f"MLflow at {redacted_uri(sweep.tracker.uri)} does not answer ({type(e).__name__}: "
                          f"{' '.join(str(e).split())[:300]}); nothing was run") from e
    try:
        yield
    except BaseException as e:
        full = clean_after(sweep, e)
        sweep.tracker.__exit__(type(e), e, e.__traceback__)
        if full is not None and full is not e:
            raise full from e
        raise
    sweep.outbox.close()
    sweep.tracker.__exit__(None, None, None)


def clean_after(sweep: Sweep, error: BaseException):
    """After `error` stopped the sweep: send what can be sent in a short while, and on a
    full disk remove what was left half-written. Returns the error as DiskFull, or None."""
    from flows.disk import as_disk_full, discard_tune_attempts, remove_partials

    if not isinstance(error, KeyboardInterrupt):
        sweep.outbox.outage_seconds = min(sweep.outbox.outage_seconds, 30.0)
        sweep.outbox.flush()
    sweep.outbox.close()
    full = as_disk_full(error, [sweep.storage, sweep.out_dir]) if isinstance(error, Exception) else None
    if full is not None:
        keep = {i for i, r in sweep.store.trials().items() if r.status == FINISHED}
        removed = discard_tune_attempts(sweep.storage, sweep.name, sweep.started_at, keep)
        removed += remove_partials(sweep.out_dir) + remove_partials(sweep.storage)
        get_run_logger().error(f"{full}; removed {len(removed)} partial file(s) and Ray Tune's bookkeeping of this "
                               "attempt; free some space and run the same sweep again: it resumes from the finished trials")
    return full


def finish(sweep: Sweep, profile_name: str, overrides, params_path: str, rows: list[dict], todo: list, seconds) -> tuple[Path, str | None]:
    """Write sweep.json and the report from the records, send the report and the best
    model, wait for MLflow (at most `mlflow.outage_seconds` into an outage); returns (the
    report, the message of a sweep that must end Failed, or None)."""
    prof, tracker, logger = sweep.profile, sweep.tracker, get_run_logger()
    send_best_model(sweep, rows, bool(todo))
    write_sweep_meta(sweep.out_dir, {
        "sweep": sweep.name, "profile": profile_name, "overrides": overrides or {}, "params": params_path,
        "versions": sweep.versions, "seconds": seconds, "trials": len(rows), "trials_run": len(todo),
        "mlflow_parent": tracker.parent_url()}, bool(todo))
    report = write_report(sweep.out_dir, sweep.name, profile_name, prof, rows, sweep.versions, seconds or 0.0)
    sweep.outbox.put("the report", lambda: tracker.log_report(report.parent))
    create_markdown_artifact(key="dml-sweep-results", markdown=markdown_table(rows), description=f"sweep {sweep.name}")
    create_link_artifact(key="dml-sweep-mlflow", link=tracker.parent_url(), description="the sweep's MLflow parent run")
    logger.info(f"report: {report}; {sum(r['status'] != FINISHED for r in rows)} failed trial(s)")
    summary = failure_summary(rows)
    if summary:
        sweep.outbox.put("the sweep's failure", lambda: tracker.fail(summary))
    pending = sweep.outbox.flush()
    problems = [summary] if summary else []
    if pending or sweep.outbox.refused:
        problems.append(unsent_message(sweep, pending))
        if pending:
            tracker.leave_open("MLflow is away; the next run of this sweep reopens it and sends what is missing")
        else:
            tracker.best_effort(lambda: tracker.fail(problems[-1]))
    return report, "; ".join(problems) or None


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

    started_at = time.time()
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
    store = RecordStore(out_dir, name)
    outbox = Outbox(tracker.uri, prof.mlflow.outage_seconds, logger, kept_in=str(out_dir))
    sweep = Sweep(prof, name, out_dir, store, tracker, outbox, versions, started_at)
    # This attempt is one part of the sweep: a sweep killed and resumed reports the sum.
    with PartLog(out_dir, project_dir=PROJECT_DIR, started=started_at) as parts, tracked(sweep):
        # What MLflow holds, read once while it answers: the sweep never needs to read it again.
        in_mlflow = (tracker.finished_trials(), tracker.logged_digests())
        values, tuning_runs = tune(sweep) if prof.tune is not None else ({}, {})
        trials = expand(prof, values)
        rows, todo = final_runs(sweep, trials, force, in_mlflow, tuning_runs)
        rows = write_convergence(sweep, rows)
        parts.end()
        seconds = round(parts.total, 1) if todo else None
        report, problem = finish(sweep, profile_name, overrides, params_path, rows, todo, seconds)
    if problem:
        # A Failed state, not a raise: Prefect then says the cause once, without a traceback
        # of this function; a direct call (dml sweep) still raises SweepFailed.
        message = f"sweep {name}: {problem} (report: {report})"
        return Failed(message=message, data=SweepFailed(message))
    return str(report)
