"""The `tune:` section of a profile: what each method's search may change, and its budget.

Musgrave, Belongie and Lim ("A Metric Learning Reality Check", ECCV 2020, sec. 4) show that
most published gaps between losses vanish once every method gets the same hyperparameter
budget on validation classes. So a profile states, per method, a search space over the
options of its loss and miner (``loss.margin``, ``miner.margin``, ``loss.temperature``, ...)
plus a space shared by every method (e.g. ``optimizer.lr``), and one budget: the number of
tuning trials and the training steps of each. Validation refuses a method whose budget
differs from the others'. No Ray here: dml_experiment.tuning.search runs the search.
"""
from __future__ import annotations

import builtins
import copy
import hashlib
import json
import math
from typing import Any, Literal

from pydantic import Field, model_validator

from dml_core.losses import LOSSES
from dml_core.miners import MINERS
from dml_core.training.config import Strict


class Distribution(Strict):
    """One parameter's range: ``{uniform: [a, b]}``, ``{loguniform: [a, b]}``,
    ``{int: [a, b]}`` (inclusive) or ``{choice: [x, y, ...]}``."""

    uniform: tuple[float, float] | None = None
    loguniform: tuple[float, float] | None = None
    int: tuple[builtins.int, builtins.int] | None = None  # the builtin: this field shadows the name
    choice: list[Any] | None = None

    @model_validator(mode="after")
    def exactly_one(self) -> "Distribution":
        given = [k for k in ("uniform", "loguniform", "int", "choice") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of uniform, loguniform, int, choice (got {given or 'none'})")
        kind = given[0]
        if kind == "choice":
            if not self.choice:
                raise ValueError("choice needs at least one value")
            return self
        low, high = getattr(self, kind)
        if not (math.isfinite(low) and math.isfinite(high)) or low >= high:
            raise ValueError(f"{kind}: [{low}, {high}] is not a range with low < high")
        if kind == "loguniform" and low <= 0:
            raise ValueError(f"loguniform: the low end {low} must be > 0")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in ("uniform", "loguniform", "int", "choice") if getattr(self, k) is not None)

    def text(self) -> str:
        v = getattr(self, self.kind)
        return f"{self.kind} {list(v)}"

    def high(self) -> float | None:
        """The range's upper end (None for a choice)."""
        return None if self.kind == "choice" else float(getattr(self, self.kind)[1])

    def near_bound(self, value: Any, within: float = 0.05) -> str | None:
        """"low" or "high" when `value` lies within `within` of the range's width from that
        end (on the log scale for a log-uniform range), else None. A chosen value there says
        the optimum may lie outside the space: widen it and tune again. Choices have no bounds."""
        if self.kind == "choice":
            return None
        low, high = getattr(self, self.kind)
        if self.kind == "loguniform":
            value, low, high = math.log(value), math.log(low), math.log(high)
        position = (float(value) - low) / (high - low)
        return "low" if position <= within else "high" if position >= 1 - within else None


class Budget(Strict):
    """What one method may spend: `trials` tuning trials of at most `epochs` x
    `max_batches_per_epoch` training steps (an early-stopped trial spends less). Without
    `epochs`, a tuning trial trains to the final runs' horizon (the profile's `train`), with
    the same schedule: a configuration is chosen for the length it will be trained for."""

    trials: int = Field(ge=1)
    epochs: int | None = Field(None, ge=1)
    max_batches_per_epoch: int | None = Field(None, ge=1)

    def steps(self) -> int | None:
        return None if self.max_batches_per_epoch is None else self.epochs * self.max_batches_per_epoch


class EarlyStop(Strict):
    """ASHA (Li et al., "A System for Massively Parallel Hyperparameter Tuning", MLSys 2020):
    after `grace_period` epochs, a trial below the top 1/`reduction_factor` of its method's
    trials at the same epoch stops."""

    grace_period: int = Field(1, ge=1)
    reduction_factor: float = Field(2.0, gt=1)


class MethodTuning(Strict):
    space: dict[str, Distribution] = Field(default_factory=dict)
    budget: Budget | None = None  # None: the profile's budget; any other value must equal it
    # Options that take another's tuned value, {"miner.margin": "loss.margin"}: a miner's
    # semi-hard band is the loss's margin, not a second dimension of the search.
    tie: dict[str, str] = Field(default_factory=dict)
    # The method's own validation metric, where the profile's does not apply (ndcg@8 for
    # C7's continuous labels, which have no classes to compute MAP@R on).
    metric: str | None = None


class TuneSettings(Strict):
    """A profile's `tune:` section."""

    metric: str = "map@r"  # judged on the validation classes: val/<metric>
    mode: Literal["max", "min"] = "max"
    seed: int = 0  # the training seed of every tuning trial; each method's TPE seed derives from it (search_seed)
    budget: Budget
    early_stop: EarlyStop | None = Field(default_factory=EarlyStop)  # null: every trial runs its whole budget
    # The number of validation items scored after each tuning epoch (class-stratified).
    val_items: int | None = Field(None, ge=2)
    shared: dict[str, Distribution] = Field(default_factory=dict)  # every method's space includes these
    methods: dict[str, MethodTuning] = Field(default_factory=dict)

    def at_horizon(self, epochs: int, max_batches_per_epoch: int | None) -> "TuneSettings":
        """These settings with a budget that gives no horizon set to the final runs' one."""
        if self.budget.epochs is not None:
            return self
        budget = self.budget.model_copy(update={"epochs": epochs, "max_batches_per_epoch": max_batches_per_epoch})
        methods = {m: mt.model_copy(update={"budget": None}) if mt.budget == self.budget else mt for m, mt in self.methods.items()}
        return self.model_copy(update={"budget": budget, "methods": methods})

    def search_seed(self, method: str) -> int:
        """The seed of `method`'s search: sha256 of the profile's tuning seed and the method's
        name, so two methods never draw the same start-up points, and a rerun draws the same."""
        digest = hashlib.sha256(f"{int(self.seed)}:{method}".encode()).digest()
        return int.from_bytes(digest[:4], "big")

    def search_key(self, method: str, trial: dict[str, Any]) -> str:
        """A hash of everything `method`'s search depends on: its space and ties, its metric
        and mode, the budget and early stop, the tuning and search seeds, the validation items,
        and `trial`, the trial it tunes (the method's first final trial as JSON, its dataset as
        the profile writes it). Two sweeps that give a method the same key run the same
        tuning trials (one in flight per method, a seeded TPE), so the records of one serve
        the other: widening one method's space re-tunes that method alone."""
        what = {
            "space": {k: d.model_dump(mode="json", exclude_none=True) for k, d in self.space_of(method).items()},
            "tie": self.methods[method].tie if method in self.methods else {},
            "metric": self.val_metric_of(method), "mode": self.mode, "seed": self.seed,
            "search_seed": self.search_seed(method), "budget": self.budget.model_dump(mode="json"),
            "early_stop": self.early_stop.model_dump(mode="json") if self.early_stop else None,
            "val_items": self.val_items, "trial": trial,
        }
        return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()[:16]

    @property
    def val_metric(self) -> str:
        return f"val/{self.metric}"

    def val_metric_of(self, method: str) -> str:
        own = self.methods[method].metric if method in self.methods else None
        return f"val/{own or self.metric}"

    def space_of(self, method: str) -> dict[str, Distribution]:
        own = self.methods[method].space if method in self.methods else {}
        return {**self.shared, **own}

    def with_ties(self, method: str, values: dict[str, Any]) -> dict[str, Any]:
        """The values a trial of `method` gets: the searched ones plus their tied copies."""
        tie = self.methods[method].tie if method in self.methods else {}
        return {**values, **{dst: values[src] for dst, src in tie.items() if src in values}}

    def check(self, methods: dict[str, Any], trial_of) -> None:
        """Every tuned method exists, has the profile's budget and a space over options its
        loss, miner or optimizer takes. ``trial_of(method)`` gives a TrialConfig of it."""
        for name, mt in self.methods.items():
            if name not in methods:
                raise ValueError(f"tune.methods.{name}: not a method of this profile; known: {', '.join(methods)}")
            if mt.budget is not None and mt.budget != self.budget:
                raise ValueError(
                    f"tune.methods.{name}.budget: {mt.budget.model_dump()} differs from the budget of the other methods "
                    f"(tune.budget: {self.budget.model_dump()}); every method gets the same tuning budget"
                )
        for name in methods:
            space = self.space_of(name)
            if not space:
                raise ValueError(f"tune.methods.{name}: no space to search (and no tune.shared space): every method is tuned")
            cfg = trial_of(name)
            for dst, src in (self.methods[name].tie if name in self.methods else {}).items():
                if src not in space:
                    raise ValueError(f"tune.methods.{name}.tie.{dst}: {src!r} is not in the method's space")
                check_path(dst, cfg, f"tune.methods.{name}.tie.{dst}")
            for path in space:
                where = f"tune.shared.{path}" if path in self.shared and path not in self.methods.get(name, MethodTuning()).space else f"tune.methods.{name}.space.{path}"
                check_path(path, cfg, where)


TUNABLE_OPTIMIZER = ("lr", "weight_decay", "momentum")


def check_path(path: str, cfg, where: str) -> None:
    """`path` is loss.<option>, miner.<option> or optimizer.<field> of the trial config."""
    head, _, key = path.partition(".")
    if head == "loss":
        known = set(LOSSES.options(cfg.loss.name)) - {"reduction", "distance", "seed"}
        what = f"loss {cfg.loss.name!r}"
    elif head == "miner":
        if cfg.miner is None:
            raise ValueError(f"{where}: the method has no miner")
        known = set(MINERS.options(cfg.miner.name)) - {"distance", "seed"}
        what = f"miner {cfg.miner.name!r}"
    elif head == "optimizer":
        known, what = set(TUNABLE_OPTIMIZER), "the optimizer"
    else:
        raise ValueError(f"{where}: {path!r} is not loss.<option>, miner.<option> or optimizer.<{'|'.join(TUNABLE_OPTIMIZER)}>")
    if key not in known:
        raise ValueError(f"{where}: {key!r} is not a tunable option of {what}; known: {', '.join(sorted(known)) or 'none'}")


def apply_values(trial: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """A copy of a TrialConfig dict with the values set: {"loss.margin": 0.3, "optimizer.lr": 1e-3}."""
    out = copy.deepcopy(trial)
    for path, value in values.items():
        head, _, key = path.partition(".")
        if head in ("loss", "miner"):
            out[head].setdefault("options", {})[key] = value
        else:
            out[head][key] = value
    return out


def tuning_config(trial: dict[str, Any], tune: TuneSettings, values: dict[str, Any]) -> dict[str, Any]:
    """The TrialConfig dict of one tuning trial: the method's protocol on the budget's
    steps, trained with the tuning seed, scored on the validation classes only. The
    evaluation split is None, so the trial never opens the evaluation classes."""
    cfg = apply_values(trial, values)
    cfg["seed"] = tune.seed
    cfg["partition"] = 0  # the prepared split: its validation classes are the ones tuned on
    cfg["train"] = {**cfg["train"], "epochs": tune.budget.epochs, "max_batches_per_epoch": tune.budget.max_batches_per_epoch}
    ev = {**cfg["eval"], "split": None, "every_epoch": False}
    if not ev.get("val_split"):
        ev["val_split"] = "val"
    if tune.val_items is not None:
        ev["max_items"] = tune.val_items
    cfg["eval"] = ev
    return cfg
