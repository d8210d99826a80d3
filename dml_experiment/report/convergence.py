"""The report's convergence section: each loss family at the horizon H and at factor x H
(dml_experiment.convergence), and the families whose verdicts are marked "not converged"."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..convergence import CONVERGENCE_FILE, unconverged_families
from .labels import label


def read_convergence(out_dir: Path) -> dict[str, Any] | None:
    """The convergence.json a sweep wrote into its report directory, if any."""
    path = Path(out_dir) / CONVERGENCE_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def _points(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}"


def convergence_section(doc: dict[str, Any] | None) -> str:
    """The table of the study and what it says; a profile without a study says so."""
    lines = ["## Convergence (validation classes)", ""]
    if not doc:
        return "\n".join(lines + [
            "No convergence study in this profile (`convergence: null`): nothing here shows whether its horizon "
            "is long enough for each loss, so its verdicts may measure how fast a loss starts rather than what "
            "it reaches.", ""])
    factor, tol = doc["factor"], doc["tolerance"]
    lines += [
        f"One arm of each loss family trained its final configuration (tuned values, the first replicate) at the "
        f"horizon H and at {factor} x H, the schedule stretched to each, scored on the validation classes. A family "
        f"that gains more than {100 * tol:g} points from {factor} x H is **not converged**, and every verdict it "
        "takes part in is marked so.", "",
        f"| family | method | steps (H / {factor}H) | validation score at H | at {factor}H | gain | |",
        "|---|---|---|---|---|---|---|",
    ]
    for m, d in doc["methods"].items():
        steps = " / ".join(str(s) for s in d["steps"]) or "-"
        scores = list(d["scores"]) + [None] * (2 - len(d["scores"]))
        state = {True: "converged", False: "**not converged**", None: "not measured"}[d["converged"]]
        if d.get("errors"):
            state += f" ({'; '.join(str(e) for e in d['errors'])[:200]})"
        lines.append(f"| {d['family']} | `{m}` | {steps} | {label(d['metric'])} {_points(scores[0])} | {_points(scores[1])} "
                     f"| {_points(d['gain'])} | {state} |")
    flagged = unconverged_families(doc)
    lines += ["", f"Not converged: {', '.join(sorted(flagged))}." if flagged else
              f"Every measured family is within {100 * tol:g} points of its {factor} x H score.", ""]
    return "\n".join(lines)


def not_converged_note(methods, profile, flagged: dict[str, str]) -> dict[str, str]:
    """{family: why} of the flagged families among a comparison's methods."""
    families = {profile.methods[m].loss.name for m in methods if m in profile.methods}
    return {f: why for f, why in flagged.items() if f in families}
