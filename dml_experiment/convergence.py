"""The convergence study: is the horizon H long enough for each loss family?

A verdict between two losses stopped early measures how fast each starts, not what it
reaches. So a profile names one method per loss family (contrastive, triplet, lifted
structured, N-pair, facility location, InfoNCE, NCE, log-ratio); each trains one replicate
of its final configuration (tuned values included) at H and at ``factor`` x H, with the
schedule stretched to each length, and both are scored on the validation classes. A family
whose validation metric gains more than ``tolerance`` from the longer run is "not
converged": every verdict it takes part in is marked so in the report.

The runs are the profile's first replicate (its seed and partition), trained on the
training classes and scored on the validation classes only (``eval.split`` None): the
evaluation classes stay closed, as in tuning.
"""
from __future__ import annotations

import math
from typing import Any

from pydantic import Field

from dml_core.training.config import Strict, TrialConfig

from .record import FINISHED
from .tuning.space import apply_values

CONVERGENCE_FILE = "convergence.json"


class ConvergenceConfig(Strict):
    """A profile's `convergence:` section."""

    methods: list[str] = Field(min_length=1)  # one arm per loss family
    factor: int = Field(2, ge=2)  # the longer run trains factor x H steps
    tolerance: float = Field(0.02, gt=0)  # in metric units: 0.02 is 2 points of MAP@R x 100
    # Validation items scored (class-stratified); None: the profile's eval.max_items.
    val_items: int | None = Field(None, ge=2)


def study_config(trial: TrialConfig, values: dict[str, Any] | None, epochs: int, val_items: int | None) -> TrialConfig:
    """One run of the study: the method's final trial with its tuned values, trained for
    `epochs` epochs (the schedule stretches with them), scored on the validation split only."""
    data = apply_values(trial.model_dump(mode="json"), values or {})
    data["train"] = {**data["train"], "epochs": epochs}
    ev = {**data["eval"], "split": None, "val_split": "val", "every_epoch": False}
    if val_items is not None:
        ev["max_items"] = val_items
    data["eval"] = ev
    return TrialConfig.model_validate(data)


def study_trials(profile, values: dict[str, dict[str, Any]] | None) -> list[tuple[str, TrialConfig]]:
    """(method, config) of every run of the profile's study: each method at H, then at factor x H."""
    conv = profile.convergence
    if conv is None:
        return []
    out = []
    for m in conv.methods:
        first = profile.method_trials(m, (values or {}).get(m))[0]
        for epochs in (first.train.epochs, conv.factor * first.train.epochs):
            out.append((m, study_config(first, None, epochs, conv.val_items)))
    return out


def is_study(row: dict) -> bool:
    """A record of the study: scored on the validation split only (no evaluation split)."""
    return (row.get("config") or {}).get("eval", {}).get("split", "eval") is None


def final_score(row: dict, metric: str) -> float | None:
    """The validation metric after a finished run's last epoch."""
    if row.get("status") != FINISHED or not row.get("history"):
        return None
    value = row["history"][-1].get(f"val/{metric}")
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def study_document(profile, rows: list[dict], metric_of) -> dict[str, Any]:
    """What convergence.json holds: per method its family (the loss), the steps and the
    validation score at H and at factor x H, the gain and whether it converged (None: a run
    missing or failed). ``metric_of(method)`` names the metric the method is judged on."""
    conv = profile.convergence
    out = {"factor": conv.factor, "tolerance": conv.tolerance, "methods": {}}
    for m in conv.methods:
        runs = sorted((r for r in rows if r.get("method") == m and is_study(r)), key=lambda r: r["config"]["train"]["epochs"])
        metric = metric_of(m)
        scores = [final_score(r, metric) for r in runs]
        steps = [int(sum(h.get("train/steps", 0) for h in r.get("history", []))) for r in runs]
        gain = scores[1] - scores[0] if len(scores) == 2 and None not in scores else None
        out["methods"][m] = {
            "family": profile.methods[m].loss.name, "metric": metric, "steps": steps, "scores": scores, "gain": gain,
            "converged": None if gain is None else gain <= conv.tolerance,
            "errors": [r.get("error") for r in runs if r.get("status") != FINISHED],
        }
    return out


def unconverged_families(doc: dict[str, Any] | None) -> dict[str, str]:
    """{loss family: why} for every family whose study did not show a plateau."""
    out = {}
    for m, d in ((doc or {}).get("methods") or {}).items():
        if d.get("converged") is False:
            out[d["family"]] = (f"{m} gained {100 * d['gain']:.1f} points of validation {d['metric']} from "
                                f"{doc['factor']}x the steps ({d['steps'][0]} -> {d['steps'][1]})")
    return out
