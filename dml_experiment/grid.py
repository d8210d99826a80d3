"""The grid: losses x miners x distances x seeds, expanded into validated trial configs."""
from __future__ import annotations

import itertools
from typing import Any

from pydantic import Field, field_validator

from dml_core.training.config import ComponentConfig, Strict, TrialConfig


def as_component(value: str | dict | ComponentConfig | None) -> ComponentConfig | None:
    if value is None or isinstance(value, ComponentConfig):
        return value
    if isinstance(value, str):
        return ComponentConfig(name=value)
    return ComponentConfig.model_validate(value)


class GridConfig(Strict):
    """Each axis a list; a loss or miner is a name or {name, options}; `null` = no miner or
    the loss's own distance."""


    losses: list[ComponentConfig]
    miners: list[ComponentConfig | None] = Field(default_factory=lambda: [None])
    distances: list[str | None] = Field(default_factory=lambda: [None])
    seeds: list[int] = Field(default_factory=lambda: [0])

    @field_validator("losses", "miners", mode="before")
    @classmethod
    def components(cls, values):
        if not isinstance(values, list) or not values:
            raise ValueError("must be a non-empty list")
        return [as_component(v) for v in values]

    @field_validator("distances", "seeds")
    @classmethod
    def non_empty(cls, values):
        if not values:
            raise ValueError("must be a non-empty list")
        return values


def expand_grid(base: dict[str, Any], grid: GridConfig | dict) -> list[TrialConfig]:
    """base: the shared protocol (a TrialConfig without loss/miner/distance/seed). Every
    combination is validated now, so a bad option fails before any trial starts."""
    grid = grid if isinstance(grid, GridConfig) else GridConfig.model_validate(grid)
    trials = []
    for loss, miner, distance, seed in itertools.product(grid.losses, grid.miners, grid.distances, grid.seeds):
        cfg = {**base, "loss": loss.model_dump(), "miner": miner.model_dump() if miner else None, "distance": distance, "seed": seed}
        trials.append(TrialConfig.model_validate(cfg))
    return trials
