"""Tuning every method on the validation classes: one Ray Tune run, Optuna's TPE, ASHA.

Imports Ray and Optuna: dml_core itself never imports this module, the sweep does.

Each method has its own seeded ``OptunaSearch`` (TPE: Bergstra et al., "Algorithms for
Hyper-Parameter Optimization", NeurIPS 2011) and its own ASHA scheduler (Li et al., "A
System for Massively Parallel Hyperparameter Tuning", MLSys 2020), so a method's trials are
only ever compared with each other. All methods share one Tune run: a core that frees up
starts the next trial of any method with budget left, so no core waits for a group to end.
A method has at most one trial in flight, so its search sees its trials in a fixed order and
the same seed gives the same chosen configuration whatever the timing of the others.

A tuning trial trains on the training classes and is scored on the validation classes
only: its config has ``eval.split = None``, so the evaluation classes are never opened.
Finished tuning trials of an earlier attempt are replayed into a new search
(``replay``): it proposes each one's values again, in order, from the same seed, and is told
its recorded score, so its sampler stands where the first attempt's stood and a resumed
sweep neither repeats a finished trial nor redraws the first attempt's start-up points.

Works with Optuna 5.0 through ``ray.tune.search.optuna`` (checked: Ray 2.60, Optuna 5.0.0).
"""
from __future__ import annotations

import logging
import math
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from dml_core.training.config import TrialConfig

from ..resources import RayConfig, plan_resources
from ..record import FAILED, FINISHED, STOPPED, TuningResult, TuningTrial
from ..runner import failure_report, flat_metrics, init_ray, trial_error
from .space import Distribution, TuneSettings, tuning_config
from dml_core.training.trial import Trial, TrialError

SCORE = "score"  # what a tuning trial reports: the validation metric after each epoch
log = logging.getLogger(__name__)


@dataclass
class MethodSearch:
    """What is tuned for one method: its trial config (a TrialConfig dict, dataset
    resolved), its space, and the trials an earlier attempt finished."""

    method: str
    trial: dict[str, Any]
    space: dict[str, Distribution]
    done: list[TuningTrial] = field(default_factory=list)


def optuna_distribution(d: Distribution):
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if d.uniform is not None:
        return FloatDistribution(*d.uniform)
    if d.loguniform is not None:
        return FloatDistribution(*d.loguniform, log=True)
    if d.int is not None:
        return IntDistribution(*d.int)
    return CategoricalDistribution(list(d.choice))


# -- inside Ray ------------------------------------------------------------------------------
def tuning_trial(config: dict) -> None:
    """One tuning trial: report the validation score after every epoch; no checkpoint (a
    tuning trial is short: a crashed one is recorded as failed, not resumed)."""
    from ray import tune

    params = config["params"]
    cfg = TrialConfig.model_validate(params["trial"])
    cfg.train.num_threads = cfg.train.num_threads or params["threads"]
    metric, worst = params["metric"], params["worst"]
    try:
        trial = Trial(cfg)

        def on_epoch(row: dict, t: Trial, epoch: int) -> None:
            out = flat_metrics(row)
            score = out.get(metric)
            if score is None:
                known = ", ".join(sorted(k for k in out if k.startswith("val/")))
                raise TrialError(f"tune metric {metric!r} is not among the validation metrics ({known})")
            out[SCORE] = score if math.isfinite(score) else worst
            if epoch == cfg.train.epochs - 1:
                out["status"] = FINISHED
            tune.report(out)

        trial.run(on_epoch)
    except (TrialError, ValueError) as e:
        # A diverged configuration is a bad one: the search learns that from the worst score.
        tune.report({**failure_report(e), SCORE: worst})


# -- the search --------------------------------------------------------------------------------
def replay(ops, method: str, done: list[TuningTrial], worst: float) -> None:
    """Tell a fresh seeded search the trials an earlier attempt of it finished, by asking it
    again: each ask draws what that attempt drew (same seed, same history), and is told the
    recorded score. Given back as evaluated points instead, the sampler would restart its
    random stream and propose the first attempt's start-up points again, trial for trial.
    Where a proposal differs from its record (a record from another code or attempt), that
    ask is told FAILED, which TPE ignores, and the record is added as an evaluated point; a
    warning says so."""
    for t in sorted(done, key=lambda t: t.index):
        key = f"replay-{method}-{t.index}"
        drawn = ops.suggest(key)
        if same_values(drawn, t.values):
            result = None if t.score is None else {SCORE: t.score if math.isfinite(t.score) else worst}
            ops.on_trial_complete(key, result=result, error=result is None)
            continue
        ops.on_trial_complete(key, result=None, error=True)
        ops.add_evaluated_point(t.values, worst if t.score is None else t.score,
                                error=t.status == FAILED and t.score is None)
        log.warning(
            "%s tuning trial #%d: the resumed search proposed %s, its record holds %s; the record is kept as an "
            "evaluated point and the search goes on from there", method, t.index, drawn, t.values)


def same_values(a: dict[str, Any] | None, b: dict[str, Any]) -> bool:
    """The same keys, and floats equal to rounding (a record went through JSON)."""
    if not isinstance(a, dict) or a.keys() != b.keys():
        return False
    return all(math.isclose(a[k], b[k], rel_tol=1e-12, abs_tol=0.0) if isinstance(b[k], float) else a[k] == b[k] for k in b)


def make_searcher(searches: dict[str, MethodSearch], settings: TuneSettings, base: dict[str, Any]):
    import optuna
    from ray.tune.search import Searcher
    from ray.tune.search.optuna import OptunaSearch

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    budget = settings.budget.trials
    worst = 0.0 if settings.mode == "max" else math.inf

    class PerMethodSearch(Searcher):
        """One seeded TPE per method, one trial in flight per method; methods take turns."""

        def __init__(self):
            super().__init__(metric=SCORE, mode=settings.mode)
            self.searchers, self.started, self.owner = {}, {}, {}
            for name, s in searches.items():
                # TPE starts with random trials; Optuna's default of 10 would make a small
                # budget pure random search, so a third of the budget is random here.
                sampler = optuna.samplers.TPESampler(seed=settings.search_seed(name), n_startup_trials=max(2, budget // 3))
                ops = OptunaSearch(space={k: optuna_distribution(d) for k, d in s.space.items()},
                                   metric=SCORE, mode=settings.mode, sampler=sampler)
                replay(ops, name, s.done, worst)
                self.searchers[name] = ops
                self.started[name] = len(s.done)
            self.in_flight: set[str] = set()

        def set_search_properties(self, metric, mode, config, **spec) -> bool:
            return True

        def suggest(self, trial_id: str):
            left = [m for m in searches if self.started[m] < budget]
            if not left:
                return Searcher.FINISHED
            free = [m for m in left if m not in self.in_flight]
            if not free:
                return None  # every method with budget left has its trial running
            method = min(free, key=lambda m: self.started[m])  # ties: the profile's order
            values = self.searchers[method].suggest(trial_id)
            if values is None or values == Searcher.FINISHED:
                return None
            index = self.started[method]
            self.started[method] += 1
            self.in_flight.add(method)
            self.owner[trial_id] = method
            cfg = tuning_config(searches[method].trial, settings, settings.with_ties(method, values))
            return {"params": {**base, "method": method, "index": index, "values": values, "trial": cfg,
                               "metric": settings.val_metric_of(method), "worst": worst}}

        def on_trial_result(self, trial_id: str, result: dict) -> None:
            self.searchers[self.owner[trial_id]].on_trial_result(trial_id, result)

        def on_trial_complete(self, trial_id: str, result=None, error: bool = False) -> None:
            method = self.owner.get(trial_id)
            if method is None:
                return
            self.in_flight.discard(method)
            self.searchers[method].on_trial_complete(trial_id, result=result, error=error)

    return PerMethodSearch()


def make_scheduler(settings: TuneSettings, done: dict[str, list[TuningTrial]] | None = None):
    """ASHA within each method (FIFO without early stopping). `done`: per method, the trials
    an earlier attempt finished, replayed into its ASHA (``replay_rungs``) so its rungs hold
    what they held and a resumed search stops the trials an uninterrupted one would."""
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    if settings.early_stop is None:
        return FIFOScheduler()

    class PerMethodASHA(FIFOScheduler):
        """ASHA within each method: a trial is stopped only for trailing its own method."""

        def __init__(self):
            super().__init__()
            self.children: dict[str, ASHAScheduler] = {}

        def child(self, trial) -> ASHAScheduler:
            method = trial.config["params"]["method"]
            if method not in self.children:
                self.children[method] = ASHAScheduler(
                    time_attr="training_iteration", metric=SCORE, mode=settings.mode, max_t=settings.budget.epochs,
                    grace_period=min(settings.early_stop.grace_period, settings.budget.epochs),
                    reduction_factor=settings.early_stop.reduction_factor,
                )
            return self.children[method]

        def set_search_properties(self, metric, mode, **spec) -> bool:
            return True

        def on_trial_add(self, tune_controller, trial):
            self.child(trial).on_trial_add(tune_controller, trial)

        def on_trial_result(self, tune_controller, trial, result):
            return self.child(trial).on_trial_result(tune_controller, trial, result)

        def on_trial_complete(self, tune_controller, trial, result):
            self.child(trial).on_trial_complete(tune_controller, trial, result)

        def on_trial_remove(self, tune_controller, trial):
            self.child(trial).on_trial_remove(tune_controller, trial)

        def debug_string(self) -> str:
            return "per-method ASHA: " + "; ".join(f"{m}: {c.debug_string()}" for m, c in self.children.items())

    scheduler = PerMethodASHA()
    worst = 0.0 if settings.mode == "max" else math.inf
    for method, trials in (done or {}).items():
        replay_rungs(scheduler, method, trials, settings.val_metric_of(method), worst)
    return scheduler


@dataclass
class Replayed:
    """A finished trial of an earlier attempt, as a scheduler sees a trial: an id and its config."""

    trial_id: str
    config: dict[str, Any]


def replay_rungs(scheduler, method: str, done: list[TuningTrial], metric: str, worst: float) -> None:
    """Feed a scheduler each finished trial's per-epoch scores, in the order the trials ran,
    through its public trial callbacks: an ASHA's rungs then hold the scores they held when
    the attempt stopped. A new one would judge the next trials against empty rungs and let
    every one of them run the whole horizon."""
    for t in sorted(done, key=lambda t: t.index):
        trial = Replayed(f"replay-{method}-{t.index}", {"params": {"method": method}})
        scheduler.on_trial_add(None, trial)
        result = None
        for i, row in enumerate(t.history):
            score = row.get(metric)
            score = score if isinstance(score, (int, float)) and math.isfinite(score) else worst
            result = {"training_iteration": i + 1, SCORE: score}
            scheduler.on_trial_result(None, trial, result)
        if result is None:
            scheduler.on_trial_remove(None, trial)
        else:
            scheduler.on_trial_complete(None, trial, result)


def tuning_record(trial, budget_epochs: int, rows: list[dict], error: str | None = None) -> TuningTrial:
    """The TuningTrial of a Tune trial that ended (finished, stopped by ASHA, or failed)."""
    p = trial.config["params"]
    last = trial.last_result or {}
    epochs = sum(1 for r in rows if "epoch" in r)
    if error is not None or last.get("status") == FAILED:
        status, error = FAILED, error or last.get("error")
    elif epochs >= budget_epochs:
        status = FINISHED
    else:
        status = STOPPED
    history = [{k: v for k, v in r.items() if k == "epoch" or k.startswith("val/")} for r in rows]
    score = last.get(SCORE) if status != FAILED or SCORE in last else None
    return TuningTrial(method=p["method"], index=int(p["index"]), values=dict(p["values"]),
                       score=None if score is None else float(score), epochs=epochs, status=status, error=error,
                       history=history, seconds=float(last.get("time_total_s", 0.0) or 0.0), trial_id=trial.trial_id)


def run_tuning(searches: dict[str, MethodSearch], settings: TuneSettings, ray_cfg: RayConfig, *, name: str,
               storage_path: str, on_trial_end: Callable[[TuningTrial], None] | None = None,
               progress: bool = True, trainable: Callable[[dict], None] = tuning_trial) -> dict[str, TuningResult]:
    """Tune every method within its budget; returns each method's TuningResult: its trials
    (earlier attempts' included) in the order its search proposed them, and the chosen one. ``on_trial_end`` runs in
    this process as each trial ends (the flow records it in MLflow there). ``trainable`` is
    the Tune function of one trial (``tuning_trial``; a test passes a synthetic objective)."""
    import ray
    from ray import tune
    from ray.tune import Callback

    if settings.budget.epochs is None:
        raise ValueError("tune.budget.epochs: no horizon given; a profile sets it to its final runs' (TuneSettings.at_horizon)")
    results = {m: sorted(s.done, key=lambda t: t.index) for m, s in searches.items()}
    todo = {m: s for m, s in searches.items() if len(s.done) < settings.budget.trials}
    total = sum(settings.budget.trials - len(s.done) for s in todo.values())
    if total == 0:
        return results_of(results, settings)
    init_ray(ray_cfg)
    plan = plan_resources(ray_cfg.model_copy(update={"num_workers": 1, "use_gpu": ray_cfg.use_gpu}), ray.cluster_resources(), total)
    for s in todo.values():
        if not os.path.isabs(s.trial["dataset"]):
            s.trial = {**s.trial, "dataset": os.path.abspath(s.trial["dataset"])}
    base = {"threads": plan.threads}
    budget_epochs = settings.budget.epochs
    counts = {"done": 0}

    histories: dict[str, list[dict]] = {}

    class Record(Callback):
        def on_trial_result(self, iteration, trials, trial, result, **info):
            histories.setdefault(trial.trial_id, []).append(dict(result))

        def on_trial_complete(self, iteration, trials, trial, **info):
            self.ended(trial)

        def on_trial_error(self, iteration, trials, trial, **info):
            self.ended(trial, error=trial_error(trial))

        def ended(self, trial, error=None):
            rec = tuning_record(trial, budget_epochs, histories.pop(trial.trial_id, []), error)
            results[rec.method].append(rec)
            counts["done"] += 1
            if progress:
                score = "-" if rec.score is None else f"{rec.score:.4f}"
                print(f"[dml] tuning {counts['done']}/{total}: {rec.method} #{rec.index} {rec.status} after "
                      f"{rec.epochs} epoch(s), {settings.val_metric_of(rec.method)} {score}", file=sys.stderr, flush=True)
            if on_trial_end is not None:
                on_trial_end(rec)

    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    tuner = tune.Tuner(
        tune.with_resources(trainable, plan.trial_resources),
        tune_config=tune.TuneConfig(
            search_alg=make_searcher(todo, settings, base),
            scheduler=make_scheduler(settings, {m: s.done for m, s in todo.items()}), num_samples=total,
            max_concurrent_trials=plan.max_concurrent, reuse_actors=True,
        ),
        run_config=tune.RunConfig(name=f"{name}-{int(time.time())}", storage_path=storage_path, verbose=0,
                                  callbacks=[Record()], failure_config=tune.FailureConfig(max_failures=0)),
    )
    tuner.fit()
    short = {m: len(results[m]) for m in todo if len(results[m]) < settings.budget.trials}
    if short:
        # Ray Tune answers SIGINT by stopping the experiment and returning from fit(): the
        # budget was not spent, so no value may be chosen from the trials that did end.
        raise TuningInterrupted(
            f"tuning stopped before its budget of {settings.budget.trials} trials a method: "
            + ", ".join(f"{m} {n}" for m, n in short.items())
            + " trial(s) ended; run the same sweep again: it resumes from the finished trials")
    return results_of(results, settings)


class TuningInterrupted(RuntimeError):
    """The Tune run ended (interrupted) before every method had spent its budget."""


def results_of(trials: dict[str, list[TuningTrial]], settings: TuneSettings) -> dict[str, TuningResult]:
    return {m: TuningResult.of(m, t, settings.budget.epochs, settings.mode) for m, t in trials.items()}
