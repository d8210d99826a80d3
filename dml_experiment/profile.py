"""params.yaml: named sweep profiles, validated before any work starts.

A profile holds the shared protocol (model, sampler, optimizer, train, eval: the same for
every method, as a fair comparison needs), the methods (a loss, a miner, a distance, on a
dataset), the comparisons that group them, an optional grid (losses x miners x distances),
the seeds, and where it runs (ray) and is tracked (mlflow). `extends: NAME` starts from
another profile. Overrides use dotted keys (`train.epochs=2`) and are applied before
validation, so a bad key or value is reported with its full path.
"""
from __future__ import annotations

import copy
import logging
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, model_validator

from dml_core.training.config import (
    Strict,
    ComponentConfig,
    EvalConfig,
    ModelConfig,
    OptimizerConfig,
    SamplerConfig,
    TrainConfig,
    TrialConfig,
)

from dml_core.training.precision import cpu_bf16_flags, device_type, resolve_precision

from .convergence import ConvergenceConfig
from .grid import GridConfig, expand_grid
from .report.baselines import BASELINES
from .resources import RayConfig
from .tuning.space import TuneSettings, apply_values


log = logging.getLogger(__name__)
_logged_precisions: set[tuple[str, str]] = set()


def resolved(trials: list[TrialConfig]) -> list[TrialConfig]:
    """The trials with train.precision `auto` made concrete for this machine, before any
    trial id is computed: the precision is part of a trial's identity, so a resumed sweep on
    another machine never mixes precisions silently. The choice is logged once a process."""
    out = []
    for t in trials:
        r = resolve_precision(t)
        key = (t.train.device, r.train.precision)
        if t.train.precision == "auto" and key not in _logged_precisions:
            _logged_precisions.add(key)
            why = ""
            if device_type(t.train.device) == "cpu":
                why = f" (CPU bf16 flags: {', '.join(cpu_bf16_flags()) or 'none'})"
            log.info("train.precision auto -> %s on %s%s; set train.precision to force one", r.train.precision,
                     t.train.device, why)
        out.append(r)
    return out


class MethodConfig(Strict):
    """One method of a comparison: what differs between methods, and nothing else."""

    dataset: str = "default"
    loss: ComponentConfig
    miner: ComponentConfig | None = None
    distance: str | None = None
    labels: str = "class"
    sampler: dict[str, Any] = Field(default_factory=dict)  # e.g. the class ratio of S4
    # Model keys this method changes, e.g. {normalize: false} for C3's unnormalised embeddings.
    model: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def short_forms(cls, data):
        if isinstance(data, dict):
            data = dict(data)
            for key in ("loss", "miner"):
                if isinstance(data.get(key), str):
                    data[key] = {"name": data[key]}
        return data


# C9's fixed metrics on raw inputs (dml_experiment.report.baselines): claim names besides methods.
BASELINE_METHODS = tuple(BASELINES)


class ComparisonConfig(Strict):
    """One comparison of a sweep, written down before it runs (Musgrave et al., ECCV 2020):
    the factor it changes, the claim it tests and the one metric it is judged on."""

    claim: str
    methods: list[str] = Field(min_length=1)
    metric: str = "map@r"  # the primary metric: the only one the verdicts judge
    factor: str = ""  # the one factor under test (the loss, the miner, the distance, a margin form)
    quote: str = ""  # what the seed paper claims, quoted
    departs: str = ""  # where this setup departs from the paper's: scale, backbone, data
    # Equivalence margin of "A ~ B" (and of "A != B"'s equivalence reading), in metric units:
    # 0.01 is ±1 point of MAP@R×100.
    margin: float = Field(0.01, gt=0)
    secondary: list[str] = Field(default_factory=list)  # metrics reported beside it, never judged
    baselines: bool = False  # C9: also score fixed metrics on raw inputs
    # The claims the verdicts test (dml_experiment.report.verdict), each "A > B" (A beats B), "A < B",
    # "A != B" (they differ) or "A ~ B" (equivalent within ±margin); A and B are methods of the
    # comparison (or, with baselines, one of BASELINE_METHODS).
    expect: list[str] = Field(default_factory=list)
    # A 2 x 2 design ([[a1, b1], [a2, b2]], four methods of the comparison): the report shows
    # the interaction (a1 - b1) - (a2 - b2), e.g. the distance's effect without and with
    # normalisation (C3). Reported with its interval, never judged.
    interaction: list[list[str]] | None = None
    # Show the published numbers of Song et al. (CVPR 2017) beside ours, with the ranking
    # agreement (Kendall tau): for a comparison of the four losses of that paper (C5).
    published: bool = False

    @model_validator(mode="after")
    def expected_claims(self) -> "ComparisonConfig":
        known = list(self.methods) + (list(BASELINE_METHODS) if self.baselines else [])
        for i, text in enumerate(self.expect):
            m = re.fullmatch(r"\s*([\w.\-]+)\s*(>|<|!=|~)\s*([\w.\-]+)\s*", text)
            if m is None:
                raise ValueError(f"expect[{i}]: {text!r} is not 'A > B', 'A < B', 'A != B' or 'A ~ B' with method names A and B")
            a, _, b = m.groups()
            for name in (a, b):
                if name not in known:
                    hint = "" if self.baselines or name not in BASELINE_METHODS else " (raw_* baselines need `baselines: true`)"
                    raise ValueError(f"expect[{i}]: {name!r} is not a method of this comparison{hint}; known: {', '.join(known)}")
            if a == b:
                raise ValueError(f"expect[{i}]: {text!r} compares a method with itself")
        if self.interaction is not None:
            flat = [m for pair in self.interaction for m in pair]
            if [len(p) for p in self.interaction] != [2, 2] or len(set(flat)) != 4 or not set(flat) <= set(self.methods):
                raise ValueError(f"interaction: {self.interaction!r} is not [[a1, b1], [a2, b2]] of four distinct methods "
                                 f"of this comparison ({', '.join(self.methods)})")
        if self.metric in self.secondary:
            raise ValueError(f"secondary: {self.metric!r} is the primary metric")
        return self


class MlflowConfig(Strict):
    experiment: str = "dml-sweep"
    registered_model: str = "dml-embedder"
    # How long the sweep, once its trials are done, waits for a tracking server that went
    # away before it ends Failed with the unsent trials named (they stay on disk, and the
    # next run of the same sweep sends them). While trials run, sending is retried anyway.
    outage_seconds: float = Field(600.0, ge=0)


class Profile(Strict):
    description: str = ""
    datasets: dict[str, str] = Field(default_factory=lambda: {"default": "prepared/fashion_mnist"})
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    # The replicates are (seed, class partition) pairs, seeds[i] with partitions[i]: partition
    # p > 0 re-folds the training classes into train / validation (the evaluation classes stay
    # fixed; TrialConfig.partition). None: every seed on partition 0, the prepared split.
    partitions: list[int] | None = None
    # What a partition p > 0 re-deals (TrialConfig.partition_scope): "training" keeps the
    # evaluation classes fixed; "all" draws each replicate's train, val and eval classes.
    partition_scope: Literal["training", "all"] = "training"
    model: ModelConfig = Field(default_factory=ModelConfig)
    sampler: SamplerConfig = Field(default_factory=SamplerConfig)
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    methods: dict[str, MethodConfig] = Field(default_factory=dict)
    comparisons: dict[str, ComparisonConfig] = Field(default_factory=dict)
    grid: GridConfig | None = None
    ray: RayConfig = Field(default_factory=RayConfig)
    mlflow: MlflowConfig = Field(default_factory=MlflowConfig)
    # Each method tuned on the validation classes before its final runs (null: no tuning;
    # the methods run with the options written here, and the report says so).
    tune: TuneSettings | None = None
    # One arm per loss family trained at the horizon and at factor x it (dml_experiment.convergence).
    convergence: ConvergenceConfig | None = None
    # The wall-time budget a sweep of this profile is held to; the report says whether it kept it.
    target_minutes: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def tuning_horizon(self) -> "Profile":
        """A budget without a horizon trains each tuning trial as long as a final run."""
        if self.tune is not None:
            self.tune = self.tune.at_horizon(self.train.epochs, self.train.max_batches_per_epoch)
        return self

    @model_validator(mode="after")
    def one_space_per_comparison(self) -> "Profile":
        """The arms of a comparison search one range for every option they share (an option
        of the same loss or miner, or of the optimizer): unequal ranges would make the search
        space a second factor of the comparison, as an unequal budget would."""
        if self.tune is None:
            return self
        for cid, comp in self.comparisons.items():
            arms = [m for m in comp.methods if m in self.methods]
            for i, a in enumerate(arms):
                for b in arms[i + 1:]:
                    self.check_same_space(cid, a, b)
        return self

    def check_same_space(self, cid: str, a: str, b: str) -> None:
        space_a, space_b = self.tune.space_of(a), self.tune.space_of(b)
        for path in sorted(space_a.keys() & space_b.keys()):
            owner = path.split(".")[0]
            if owner in ("loss", "miner"):
                ca, cb = getattr(self.methods[a], owner), getattr(self.methods[b], owner)
                if ca is None or cb is None or ca.name != cb.name:
                    continue  # e.g. a triplet margin and a lifted margin: two different options
            if space_a[path] != space_b[path]:
                raise ValueError(
                    f"comparisons.{cid}: {a} searches {path} over {space_a[path].text()} but {b} over "
                    f"{space_b[path].text()}; the arms of a comparison search one range for an option they share"
                )

    @model_validator(mode="after")
    def references(self) -> "Profile":
        if self.partitions is not None and len(self.partitions) != len(self.seeds):
            raise ValueError(f"partitions: {len(self.partitions)} given for {len(self.seeds)} seeds; a replicate is "
                             "seeds[i] with partitions[i], so give one partition per seed (or none)")
        for name, method in self.methods.items():
            if method.dataset not in self.datasets:
                raise ValueError(f"methods.{name}.dataset: unknown dataset {method.dataset!r}; known: {', '.join(self.datasets)}")
        for cid, comp in self.comparisons.items():
            for m in comp.methods:
                if m not in self.methods:
                    raise ValueError(f"comparisons.{cid}.methods: unknown method {m!r}; known: {', '.join(self.methods)}")
        for i, m in enumerate(self.convergence.methods if self.convergence else []):
            if m not in self.methods:
                raise ValueError(f"convergence.methods[{i}]: unknown method {m!r}; known: {', '.join(self.methods)}")
        if not self.methods and self.grid is None:
            raise ValueError("a profile needs methods or a grid")
        return self

    def protocol(self, dataset: str) -> dict[str, Any]:
        return {
            "dataset": self.datasets[dataset],
            "model": self.model.model_dump(),
            "sampler": self.sampler.model_dump(),
            "optimizer": self.optimizer.model_dump(),
            "train": self.train.model_dump(),
            "eval": self.eval.model_dump(),
        }

    def method_trials(self, name: str, values: dict[str, Any] | None = None) -> list[TrialConfig]:
        """The method's trial per seed; `values` ({"loss.margin": 0.3, ...}) are its tuned
        options, set over the ones written in the profile."""
        m = self.methods[name]
        base = self.protocol(m.dataset)
        base["model"] = {**base["model"], **m.model}
        base["sampler"] = {**base["sampler"], **m.sampler}
        if m.sampler and any(k in m.sampler for k in ("m_per_class", "classes_per_batch", "class_ratio")):
            # A method that sets its own batch composition replaces the protocol's, not adds to it.
            for k in ("m_per_class", "classes_per_batch", "class_ratio"):
                if k not in m.sampler:
                    base["sampler"][k] = None
        base["labels"] = m.labels
        grid = GridConfig(losses=[m.loss], miners=[m.miner], distances=[m.distance], seeds=self.seeds)
        trials = expand_grid(base, grid)
        if self.partitions is not None:  # expand_grid keeps the order of the seeds
            trials = [t.model_copy(update={"partition": p, "partition_scope": self.partition_scope})
                      for t, p in zip(trials, self.partitions)]
        if values:
            trials = [TrialConfig.model_validate(apply_values(t.model_dump(mode="json"), values)) for t in trials]
        return resolved(trials)

    def trials(self, values: dict[str, dict[str, Any]] | None = None) -> list[tuple[str, TrialConfig]]:
        """(method name, trial) for every method x seed, then the grid; duplicates once.
        `values` maps a method to its tuned options."""
        out, seen = [], set()
        from dml_core.training.identity import trial_id

        for name in self.methods:
            for t in self.method_trials(name, (values or {}).get(name)):
                if trial_id(t) not in seen:
                    seen.add(trial_id(t))
                    out.append((name, t))
        if self.grid is not None:
            grid = self.grid.model_copy(update={"seeds": self.grid.seeds if "seeds" in self.grid.model_fields_set else self.seeds})
            for t in resolved(expand_grid(self.protocol("default"), grid)):
                if trial_id(t) not in seen:
                    seen.add(trial_id(t))
                    out.append(("grid", t))
        return out


def parse_override(text: str) -> tuple[list[str], Any]:
    if "=" not in text:
        raise ValueError(f"override {text!r} is not KEY=VALUE (e.g. train.epochs=2)")
    key, value = text.split("=", 1)
    if not key or any(not p for p in key.split(".")):
        raise ValueError(f"override {text!r}: bad key {key!r}")
    return key.split("."), yaml.safe_load(value)


def apply_overrides(data: dict, overrides: dict[str, Any] | list[str] | None) -> dict:
    """Set dotted keys in a copy of data: {"train.epochs": 2} or ["train.epochs=2"]."""
    data = copy.deepcopy(data)
    items = []
    if isinstance(overrides, dict):
        items = [(k.split("."), v) for k, v in overrides.items()]
    elif overrides:
        items = [parse_override(o) for o in overrides]
    for path, value in items:
        node = data
        for i, part in enumerate(path[:-1]):
            nxt = node.get(part) if isinstance(node, dict) else None
            if nxt is None:
                nxt = {}
                node[part] = nxt
            if not isinstance(nxt, dict):
                raise ValueError(f"override {'.'.join(path)}: {'.'.join(path[: i + 1])} is not a mapping")
            node = nxt
        node[path[-1]] = value
    return data


def resolve_profile_dict(profiles: dict[str, Any], name: str, _chain: tuple = ()) -> dict:
    if name not in profiles:
        raise ValueError(f"unknown profile {name!r}; known profiles: {', '.join(profiles)}")
    if name in _chain:
        raise ValueError(f"profiles.{name}: extends makes a cycle ({' -> '.join(_chain + (name,))})")
    raw = dict(profiles[name] or {})
    parent = raw.pop("extends", None)
    if parent is None:
        return raw
    return deep_merge(resolve_profile_dict(profiles, parent, _chain + (name,)), raw)


def deep_merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def format_validation_error(e: ValidationError, prefix: str) -> str:
    lines = []
    for err in e.errors():
        loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-"))
        msg = err["msg"].removeprefix("Value error, ")
        lines.append(f"{prefix}.{loc}: {msg}" if loc else f"{prefix}: {msg}")
    return "invalid params: " + "; ".join(lines)


def load_profile(params: str | Path | dict = "params.yaml", profile: str | None = None, overrides=None) -> tuple[str, Profile]:
    """Read params.yaml, pick the profile (default: sweep.profile), apply overrides, validate.
    Every error is a ValueError naming the key path, e.g. profiles.quick.train.epochs."""
    if isinstance(params, dict):
        data = params
    else:
        path = Path(params)
        if not path.is_file():
            raise ValueError(f"params file {str(path)!r} does not exist")
        data = yaml.safe_load(path.read_text()) or {}
    profiles = data.get("profiles")
    if not isinstance(profiles, dict) or not profiles:
        raise ValueError("params: no `profiles:` mapping")
    name = profile or (data.get("sweep") or {}).get("profile") or "quick"
    resolved = apply_overrides(resolve_profile_dict(profiles, name), overrides)
    try:
        prof = Profile.model_validate(resolved)
    except ValidationError as e:
        raise ValueError(format_validation_error(e, f"profiles.{name}")) from None
    # Build every trial now: a bad loss, miner or option fails here, before any work starts.
    for method in prof.methods:
        try:
            prof.method_trials(method)
        except ValidationError as e:
            raise ValueError(format_validation_error(e, f"profiles.{name}.methods.{method}")) from None
    if prof.tune is not None:
        try:
            prof.tune.check(prof.methods, lambda m: prof.method_trials(m)[0])
        except ValueError as e:
            raise ValueError(f"profiles.{name}.{e}") from None
    if prof.grid is not None:
        try:
            prof.trials()
        except ValidationError as e:
            raise ValueError(format_validation_error(e, f"profiles.{name}.grid")) from None
    return name, prof
