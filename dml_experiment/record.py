"""One trial's result as a sweep stores it (a row of results.json), and what reports read.

Trials, C9's raw-pixel baselines and the sanity gate's references all become this record,
so the flow, the report writer and the report builder agree on one shape.
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class TrialRecord(BaseModel):
    """A trial (or a fixed baseline: ``seed`` None) and how it ended."""

    model_config = ConfigDict(extra="forbid")

    trial_id: str
    name: str
    method: str  # the profile's method name (or the baseline's)
    seed: int | None = None  # None: deterministic, one value (a raw-pixel baseline)
    # The class partition of the dataset it ran on (a replicate is a (seed, partition) pair;
    # None: the dataset has one split, or the record predates partitions).
    partition: int | None = None
    status: Literal["finished", "failed"] | str = "finished"
    error: str | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)
    history: list[dict[str, Any]] = Field(default_factory=list)
    embeddings_path: str | None = None
    model_path: str | None = None
    seconds: float = 0.0
    config: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def from_outcome(cls, outcome, method: str, partition: int | None = None) -> "TrialRecord":
        """From a ``ray_runner.TrialOutcome`` of the profile's ``method`` (on class `partition`)."""
        return cls(
            trial_id=outcome.trial_id, name=outcome.name, method=method, seed=outcome.config.seed, partition=partition,
            status=outcome.status, error=outcome.error, metrics=outcome.metrics, history=outcome.history,
            embeddings_path=outcome.embeddings_path, model_path=outcome.model_path, seconds=outcome.seconds,
            config=outcome.config.model_dump(mode="json"),
        )

    @classmethod
    def fixed(cls, method: str, metrics: dict | None = None, *, error: str | None = None, seconds: float = 0.0,
              config: dict | None = None, seed: int | None = None, partition: int | None = None) -> "TrialRecord":
        """A record that no trial produced: a baseline or reference, finished or failed."""
        return cls(
            trial_id=method if seed is None else f"{method}-{seed}", name=method if seed is None else f"{method}-seed{seed}",
            method=method, seed=seed, partition=partition, status="failed" if error else "finished", error=error,
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
