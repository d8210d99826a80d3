"""Two (or more) sweeps' verdicts side by side, claim by claim: what a cheaper profile decides
that the published one decides too, and what it cannot.

Each sweep is read from its report directory's `verdicts.json`. A row is one claim of one
comparison (`C5`, `facility_location > npair`); a cell is that sweep's verdict with its mean
difference (x100, in the claim's metric) and its number of replicates, and "(not converged)"
where one of the claim's two arms is of a loss family that still gained from twice the steps. The last
column says whether every sweep reached the same verdict.
"""
from __future__ import annotations

import json
from pathlib import Path

DECIDED = ("holds", "reversed", "equivalent")


def read_verdicts(directory: str | Path) -> dict:
    path = Path(directory) / "verdicts.json"
    if not path.is_file():
        raise ValueError(f"{path}: no verdicts.json (not a sweep's report directory?)")
    try:
        data = json.loads(path.read_text())
    except ValueError as e:
        raise ValueError(f"{path}: not JSON ({e})") from None
    if not isinstance(data.get("comparisons"), dict):
        raise ValueError(f"{path}: no 'comparisons' object")
    return data


def claims(data: dict) -> dict[tuple[str, str], dict]:
    """{(comparison id, claim): its verdict row, with the not-converged families of the claim's
    arms (the comparison's, in a verdicts.json written before claims carried their own)}."""
    out = {}
    for cid, comp in data["comparisons"].items():
        for row in comp.get("verdicts", []):
            late = row["not_converged"] if "not_converged" in row else sorted(comp.get("not_converged") or {})
            out[(cid, row["claim"])] = dict(row, not_converged=late)
    return out


def cell(row: dict | None) -> str:
    if row is None:
        return "—"
    verdict = f"**{row['verdict']}**" if row["verdict"] in DECIDED else row["verdict"]
    diff = "" if row.get("diff") is None else f" {100 * row['diff']:+.1f}"
    late = " (not converged)" if row["not_converged"] else ""
    return f"{verdict}{diff}, n={row.get('n', '?')}{late}"


def side_by_side(directories: dict[str, str | Path]) -> str:
    """Markdown: {label: report directory} -> one row per claim, one column per sweep, and a
    closing line counting the claims on which the first sweep agrees with the last."""
    if len(directories) < 2:
        raise ValueError("side_by_side needs at least two report directories")
    data = {label: read_verdicts(d) for label, d in directories.items()}
    rows = {label: claims(v) for label, v in data.items()}
    keys = list(dict.fromkeys(k for r in rows.values() for k in r))
    heads = [f"{label} (`{data[label].get('sweep', '?')}`)" for label in data]
    lines = [
        "| comparison | claim tested | " + " | ".join(heads) + " | same verdict |",
        "|---|---|" + "---|" * len(heads) + "---|",
    ]
    for cid, claim in keys:
        got = [rows[label].get((cid, claim)) for label in data]
        verdicts = {g["verdict"] for g in got if g is not None}
        same = "yes" if None not in got and len(verdicts) == 1 else "no"
        lines.append(f"| {cid} | `{claim}` | " + " | ".join(cell(g) for g in got) + f" | {same} |")
    first, last = list(data)[0], list(data)[-1]
    both = [k for k in keys if k in rows[first] and k in rows[last]]
    agree = sum(rows[first][k]["verdict"] == rows[last][k]["verdict"] for k in both)
    decided = [k for k in both if rows[last][k]["verdict"] in DECIDED]
    caught = sum(rows[first][k]["verdict"] == rows[last][k]["verdict"] for k in decided)
    lines += ["", f"{first} reaches {last}'s verdict on {agree} of {len(both)} claims, and on {caught} of the "
                  f"{len(decided)} that {last} decides (holds, reversed or equivalent)."]
    return "\n".join(lines)
