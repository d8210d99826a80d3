"""The records of the experiment, each defined once.

``TrialRecord``: one trial's outcome as the runner returns it, the tracker logs it, a sweep
stores it (a row of results.json) and the report and the resume logic read it. Final trials,
C9's raw-pixel baselines and the sanity gate's references all become this record.

``TuningTrial`` and ``TuningResult``: one tuning trial as it ended, and a method's tuning
trials with the values chosen from them (computed once, when the result is made).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from pydantic import Field

from dml_core.training.config import Strict, TrialConfig

FAILED = "failed"
FINISHED = "finished"
STOPPED = "stopped"  # a tuning trial ASHA stopped before its budget


class TrialRecord(Strict):
    """A trial (or a fixed baseline: ``seed`` None) and how it ended."""

    trial_id: str
    name: str
    method: str  # the profile's method name (or the baseline's)
    seed: int | None = None  # None: deterministic, one value (a raw-pixel baseline)
    # The class partition of the dataset it ran on (a replicate is a (seed, partition) pair;
    # None: the dataset has one split, or the record predates partitions).
    partition: int | None = None
    status: Literal["finished", "failed"] | str = FINISHED
    error: str | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)
    history: list[dict[str, Any]] = Field(default_factory=list)
    embeddings_path: str | None = None
    model_path: str | None = None
    seconds: float = 0.0
    config: dict[str, Any] = Field(default_factory=dict)

    @property
    def trial_config(self) -> TrialConfig:
        """The TrialConfig the trial ran (validated again from the stored JSON)."""
        return TrialConfig.model_validate(self.config)

    @classmethod
    def fixed(cls, method: str, metrics: dict | None = None, *, error: str | None = None, seconds: float = 0.0,
              config: dict | None = None, seed: int | None = None, partition: int | None = None) -> "TrialRecord":
        """A record that no trial produced: a baseline or reference, finished or failed."""
        return cls(
            trial_id=method if seed is None else f"{method}-{seed}", name=method if seed is None else f"{method}-seed{seed}",
            method=method, seed=seed, partition=partition, status=FAILED if error else FINISHED, error=error,
            metrics={} if error else dict(metrics or {}), seconds=seconds, config=dict(config or {}),
        )

    def row(self) -> dict[str, Any]:
        """The results.json row (plain JSON types)."""
        return self.model_dump(mode="json")


def as_rows(records) -> list[dict[str, Any]]:
    """Rows of records given as TrialRecord or dict; a malformed row is a ValueError naming it."""
    rows = []
    for i, r in enumerate(records):
        if isinstance(r, TrialRecord):
            rows.append(r.row())
            continue
        try:
            rows.append(TrialRecord.model_validate(r).row())
        except Exception as e:  # noqa: BLE001 - pydantic's error, re-raised with the row named
            name = r.get("name") if isinstance(r, dict) else None
            raise ValueError(f"results row {i} ({name!r}) is not a trial record: {e}") from None
    return rows


@dataclass
class TuningTrial:
    """One tuning trial as it ended: its values, its last validation score, how far it got."""

    method: str
    index: int  # 0, 1, ... in the order the method's search proposed them
    values: dict[str, Any]
    score: float | None  # the validation metric at its last epoch (None: failed before one)
    epochs: int  # epochs trained (fewer than the budget: stopped early by ASHA)
    status: str  # finished | stopped | failed
    error: str | None = None
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    trial_id: str = ""

    def row(self) -> dict[str, Any]:
        return asdict(self)


def choose(trials: list[TuningTrial], budget_epochs: int, mode: str = "max") -> TuningTrial | None:
    """The best trial that trained the whole budget (a stopped trial's score is from fewer
    epochs, so it is not comparable); failing that, the best scored trial."""
    scored = [t for t in trials if t.score is not None and math.isfinite(t.score) and t.status != FAILED]
    full = [t for t in scored if t.epochs >= budget_epochs] or scored
    if not full:
        return None
    key = (lambda t: (t.score, -t.index)) if mode == "max" else (lambda t: (-t.score, -t.index))
    return max(full, key=key)


@dataclass(frozen=True)
class TuningResult:
    """A method's tuning: its trials in the order its search proposed them, and the chosen
    one (None: no trial scored), chosen once here by ``choose``."""

    method: str
    trials: tuple[TuningTrial, ...]
    chosen: TuningTrial | None

    @classmethod
    def of(cls, method: str, trials, budget_epochs: int, mode: str = "max") -> "TuningResult":
        ordered = tuple(sorted(trials, key=lambda t: t.index))
        return cls(method, ordered, choose(list(ordered), budget_epochs, mode))

    @property
    def tied(self) -> bool:
        """True when two or more trials scored and every one scored exactly what the chosen
        one did: the searched values changed nothing (C2's easy triplets carry no loss, so
        the network never moves), and where in its space the choice fell means nothing."""
        scores = [t.score for t in self.trials if t.score is not None and math.isfinite(t.score) and t.status != FAILED]
        return len(scores) >= 2 and max(scores) == min(scores)

    @property
    def best_ties(self) -> tuple[TuningTrial, ...]:
        """The trials that scored exactly what the chosen one did, the chosen one included:
        the search cannot tell them apart (in C2, every easy-triplet trial whose network never
        moves scores the untrained network's MAP@R), so which of them it chose means nothing."""
        if self.chosen is None:
            return ()
        return tuple(t for t in self.trials if t.status != FAILED and t.score == self.chosen.score)

    @property
    def values(self) -> dict[str, Any] | None:
        """The chosen values, or None."""
        return None if self.chosen is None else dict(self.chosen.values)
