"""The tuning stage of the sweep in MLflow and on disk.

In MLflow, each method gets one tuning run (a child of the sweep's run, ``dml.role=tuning``)
whose params are the search space and budget, and, when its budget is spent, the chosen
values (``chosen.<path>``). Each tuning trial is a run nested under it (``dml.role=
tuning_trial``) with its values as params and its validation metric per epoch. A resumed
sweep reads the finished tuning trials back from there and does not run them again.

On disk, ``tuning.json`` in the report directory holds the same, for the report.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param, RunStatus

from dml_experiment.provenance import write_atomic
from dml_experiment.report.tuning import TUNING_FILE
from dml_experiment.tuning.bounds import at_ceiling, shared_bound_flags
from dml_experiment.tuning.space import TuneSettings
from dml_experiment.record import FAILED, TuningResult, TuningTrial
from dml_experiment.tuning.search import SCORE
from flows.tracking import PARENT, ROLE, SWEEP, SweepTracker, metric_key, now_ms, param_value, tag_value

TUNING, TUNING_TRIAL = "tuning", "tuning_trial"
RECORD = "dml.tuning_trial"  # the TuningTrial (without its history) as JSON, read back on resume


class TuningTracker:
    """The tuning runs of one sweep (``tracker`` is its open SweepTracker)."""

    def __init__(self, tracker: SweepTracker, settings: TuneSettings):
        self.tracker, self.settings = tracker, settings
        self.runs: dict[str, str] = {}

    def _tuning_runs(self) -> dict[str, Any]:
        t = self.tracker
        found = t.search_runs(f"tags.`{PARENT}` = '{t.parent_run_id}' AND tags.`{ROLE}` = '{TUNING}'",
                          order_by=["attributes.start_time ASC"])
        return {r.data.tags.get("dml.method"): r for r in found}

    def open(self, methods: dict[str, dict[str, Any]]) -> dict[str, list[TuningTrial]]:
        """Open (or reopen) each method's tuning run; returns the trials already finished.
        ``methods`` maps a method to its space as text ({path: "uniform [a, b]"})."""
        t, s = self.tracker, self.settings
        existing = self._tuning_runs()
        done: dict[str, list[TuningTrial]] = {}
        for method, space in methods.items():
            run = existing.get(method)
            if run is None:
                tags = {PARENT: t.parent_run_id, SWEEP: t.sweep_name, ROLE: TUNING, "dml.method": method}
                run_id = t.client.create_run(t.experiment_id, tags={k: tag_value(v) for k, v in tags.items()},
                                             run_name=f"{method}-tuning").info.run_id
                params = {f"space.{k}": v for k, v in space.items()}
                params.update({f"budget.{k}": v for k, v in s.budget.model_dump().items()})
                params.update({"metric": s.val_metric_of(method), "seed": s.seed,
                               "early_stop": json.dumps(s.early_stop.model_dump() if s.early_stop else None)})
                t.log_batch(run_id, params=[Param(k, param_value(v)) for k, v in params.items()])
                done[method] = []
            else:
                run_id = run.info.run_id
                if run.info.status != "FINISHED":
                    t.client.update_run(run_id, status=RunStatus.to_string(RunStatus.RUNNING))
                done[method] = self.finished(run_id)
            self.runs[method] = run_id
        return done

    def finished(self, tuning_run_id: str) -> list[TuningTrial]:
        t = self.tracker
        runs = t.search_runs(f"tags.`{PARENT}` = '{tuning_run_id}' AND tags.`{ROLE}` = '{TUNING_TRIAL}' "
                         "AND attributes.status != 'RUNNING' AND attributes.status != 'KILLED'")
        out = {}
        for r in runs:
            if RECORD in r.data.tags:
                rec = TuningTrial(**json.loads(r.data.tags[RECORD]))
                out[rec.index] = rec
        return [out[i] for i in sorted(out)]

    def log_trial(self, rec: TuningTrial) -> str:
        """One tuning trial as a run nested under its method's tuning run. Idempotent, as
        SweepTracker.log_trial: a complete run of this trial (method, index) is returned as it
        is, a half-logged one is ended KILLED and deleted and the trial logged anew."""
        t = self.tracker
        parent = self.runs[rec.method]
        sent = t.complete_run(t.search_runs(f"tags.`{PARENT}` = '{parent}' AND tags.`{ROLE}` = '{TUNING_TRIAL}' "
                                            f"AND tags.`dml.tuning_index` = '{rec.index}'"))
        if sent is not None:
            return sent
        tags = {PARENT: parent, SWEEP: t.sweep_name, ROLE: TUNING_TRIAL, "dml.method": rec.method,
                "dml.tuning_index": rec.index, "dml.tuning_status": rec.status,
                RECORD: json.dumps({**rec.row(), "history": []})}
        if rec.error:
            tags["dml.error"] = rec.error
        return t.log_run(now_ms() - int(rec.seconds * 1000), {k: tag_value(v) for k, v in tags.items()},
                         f"{rec.method}-tune{rec.index}", lambda run_id: self._log_data(run_id, rec),
                         failed=rec.status == FAILED)

    def _log_data(self, run_id: str, rec: TuningTrial) -> None:
        """The trial's history as step-wise metrics, its score, and its values as params."""
        ts = now_ms()
        metrics = [Metric(metric_key(k), float(v), ts, int(row.get("epoch", i)))
                   for i, row in enumerate(rec.history) for k, v in row.items() if k != "epoch" and isinstance(v, (int, float))]
        if rec.score is not None:
            metrics.append(Metric(SCORE, float(rec.score), ts, max(rec.epochs - 1, 0)))
        self.tracker.log_batch(run_id, metrics=metrics, params=[Param(k, param_value(v)) for k, v in rec.values.items()])

    def close(self, result: TuningResult) -> None:
        """End a method's tuning run, with its chosen values as params where a trial scored."""
        t, method, best = self.tracker, result.method, result.chosen
        run_id = self.runs[method]
        run = t.client.get_run(run_id)
        if best is not None and not any(k.startswith("chosen.") for k in run.data.params):
            t.log_batch(run_id, params=[Param(f"chosen.{k}", param_value(v)) for k, v in best.values.items()],
                         metrics=[Metric(f"best/{metric_key(self.settings.val_metric_of(method))}", float(best.score), now_ms(), 0)],
                         tags={"dml.chosen_trial": str(best.index)})
        status = RunStatus.FINISHED if best is not None else RunStatus.FAILED
        t.client.set_terminated(run_id, RunStatus.to_string(status))


def tuning_document(settings: TuneSettings, spaces: dict[str, dict[str, str]], results: dict[str, TuningResult],
                    runs: dict[str, str], seconds: float | None,
                    ceilings: dict[str, dict[str, float]] | None = None, resumed: int = 0) -> dict[str, Any]:
    """What tuning.json holds: per method its space, budget, trials, choice and MLflow run.
    `ceilings`: per method, the options past which it trains as at them (bounds.ceilings).
    `seconds`: the wall time of the attempt that ran the last trials; `resumed`: how many
    trials earlier attempts (parts) had finished, whose time the sweep's parts count."""
    methods = {}
    for m, result in results.items():
        methods[m] = {
            "space": spaces[m], "run_id": runs.get(m), "trials": [t.row() for t in result.trials],
            "metric": settings.val_metric_of(m),
            "chosen": chosen_row(settings, result, (ceilings or {}).get(m, {})),
            "epochs_used": sum(t.epochs for t in result.trials),
        }
    return {"metric": settings.val_metric, "mode": settings.mode, "seed": settings.seed,
            "budget": settings.budget.model_dump(),
            "early_stop": settings.early_stop.model_dump() if settings.early_stop else None,
            "seconds": seconds, "resumed": resumed, "methods": methods}


def chosen_row(settings: TuneSettings, result: TuningResult, ceiling: dict[str, float]) -> dict[str, Any] | None:
    """The chosen trial for tuning.json: its values and score, the values within 5% of a bound
    (`at_bound`), those at a ceiling (`at_ceiling`), whether every trial tied (`tied`: then
    no bound is flagged, since the values changed nothing) and how many trials share the best
    score (`ties`: a bound is flagged only where all of them sit at it)."""
    best = result.chosen
    if best is None:
        return None
    space = settings.space_of(result.method)
    ties = result.best_ties
    flags = {} if result.tied else shared_bound_flags(space, [t.values for t in ties], ceiling)
    return {"index": best.index, "values": best.values, "score": best.score, "at_bound": flags,
            "at_ceiling": at_ceiling(space, best.values, ceiling), "tied": result.tied, "ties": len(ties)}


def write_tuning(out_dir: Path, doc: dict[str, Any]) -> Path:
    path = Path(out_dir) / TUNING_FILE
    write_atomic(path, json.dumps(doc, indent=1, default=str) + "\n")
    return path
