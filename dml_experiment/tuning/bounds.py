"""Whether a chosen value says the optimum may lie outside its space.

A value within 5% of a bound of its range (on the log scale for a log-uniform range) is
flagged: the search may have stopped at the edge of a better region, so the space must be
widened and the method tuned again. Two cases are not flagged, because there nothing lies
past the edge:

- a ceiling: an option past which the method trains exactly as at it, such as a triplet
  margin at the span of a bounded distance (``TripletMarginLoss.margin_ceiling``). A high
  bound at or past the ceiling holds every value that can differ.
- a tie: every trial scored the same, so the values changed nothing and the choice is the
  search's first, wherever it fell.
- a tie at the top: where several trials share the best score, a value is flagged only if
  every one of them sits at that bound. One of them inside the space scores as well, so the
  score does not rise toward the edge.
"""
from __future__ import annotations

from typing import Any

from dml_core.losses import build_loss
from dml_core.miners import MINERS
from dml_core.training.config import TrialConfig, accepted_options

from .space import Distribution


def ceilings(trial: TrialConfig) -> dict[str, float]:
    """{path: value} for the options of `trial` past which its training no longer changes:
    the triplet margin (and a miner's margin tied to it) at the span of the loss's distance
    on the trial's embeddings (unit norm where the model normalises)."""
    loss = build_loss(trial.loss.name, **trial.loss_options())
    ceiling = getattr(loss, "margin_ceiling", None)
    span = ceiling(unit=trial.model.normalize) if ceiling is not None else None
    if span is None:
        return {}
    out = {"loss.margin": span}
    if trial.miner is not None and "margin" in accepted_options(MINERS, trial.miner.name):
        out["miner.margin"] = span
    return out


def bound_flags(space: dict[str, Distribution], values: dict[str, Any],
                ceiling: dict[str, float] | None = None) -> dict[str, str]:
    """{path: "low" | "high"} for each chosen value within 5% of a bound of its space, less
    those at their ceiling (past it the method trains as at it: nothing better lies outside)."""
    exempt = at_ceiling(space, values, ceiling or {})
    flags = {p: space[p].near_bound(v) for p, v in values.items() if p in space and p not in exempt}
    return {p: f for p, f in flags.items() if f}


def shared_bound_flags(space: dict[str, Distribution], choices: list[dict[str, Any]],
                       ceiling: dict[str, float] | None = None) -> dict[str, str]:
    """bound_flags of a choice among values that scored the same: {path: side} where every
    one of `choices` sits within 5% of that same bound."""
    first, *rest = [bound_flags(space, values, ceiling) for values in choices]
    return {p: side for p, side in first.items() if all(other.get(p) == side for other in rest)}


def at_ceiling(space: dict[str, Distribution], values: dict[str, Any], ceiling: dict[str, float]) -> dict[str, float]:
    """{path: ceiling} for each chosen value within 5% of a high bound that lies at or past its
    ceiling: the method chose (nearly) every triplet active, which the report says."""
    return {p: c for p, c in ceiling.items()
            if p in values and p in space and space[p].near_bound(values[p]) == "high" and space[p].high() >= c}
