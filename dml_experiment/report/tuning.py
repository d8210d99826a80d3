"""The tuning section of a sweep's report: per method its search space, the budget it used,
the values chosen, and its validation metric over its tuning trials (one plot).

Reads the document the flow writes as tuning.json (flows.tuning.tuning_document)."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from .labels import label

TUNING_FILE = "tuning.json"


def read_tuning(out_dir: Path) -> dict[str, Any] | None:
    """The tuning.json a sweep wrote into its report directory, if any."""
    path = Path(out_dir) / TUNING_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def _fmt_value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)


def _score(v: Any) -> str:
    return "-" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{100 * float(v):.1f}"


def panels(n: int, cols: int, width: float, height: float):
    """(figure, its first n axes) of a grid of n panels, cols a row; the spare ones hidden."""
    from matplotlib.ticker import MaxNLocator

    from .plots import Figure

    cols = min(cols, n)
    fig = Figure(figsize=(width * cols, height * math.ceil(n / cols)))
    axes = list(fig.subplots(math.ceil(n / cols), cols, squeeze=False).flat)
    for ax in axes[n:]:
        ax.axis("off")
    for ax in axes[:n]:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return fig, axes[:n]


def finish_panel(ax, title: str, xlabel: str, ylabel: str, size: int) -> None:
    ax.set_title(title, fontsize=size)
    ax.tick_params(labelsize=size - 1)
    ax.set_xlabel(xlabel, fontsize=size - 1)
    ax.set_ylabel(ylabel, fontsize=size - 1)


def save_panels(fig, path: Path) -> Path:
    from .plots import save

    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    return save(fig, path, dpi=90)


def tuning_plot(doc: dict[str, Any], path: Path) -> Path | None:
    """One panel per method: the validation metric of each tuning trial in the order the
    search proposed them (full budget: dots; stopped early: crosses; failed: red x at 0)."""
    methods = list(doc.get("methods") or {})
    if not methods:
        return None
    fig, axes = panels(len(methods), 4, 3.2, 2.4)
    for ax, m in zip(axes, methods):
        metric = label(doc["methods"][m].get("metric", doc["metric"]).removeprefix("val/"))
        trials = doc["methods"][m]["trials"]
        best = (doc["methods"][m].get("chosen") or {}).get("index")
        for status, marker, color in (("finished", "o", "C0"), ("stopped", "x", "C1"), ("failed", "x", "C3")):
            pts = [(t["index"], 100 * (t["score"] or 0.0)) for t in trials if t["status"] == status]
            if pts:
                ax.scatter(*zip(*pts), marker=marker, color=color, s=18, label=status)
        running = [100 * t["score"] for t in trials if t["score"] is not None]
        if running:
            ax.plot([t["index"] for t in trials if t["score"] is not None], [max(running[: i + 1]) for i in range(len(running))],
                    color="0.6", lw=0.8, zorder=0)
        if best is not None:
            b = next(t for t in trials if t["index"] == best)
            ax.scatter([best], [100 * b["score"]], s=70, facecolors="none", edgecolors="k", label="chosen")
        finish_panel(ax, m, "tuning trial", f"val {metric} (x100)", 8)
    axes[0].legend(fontsize=6)
    return save_panels(fig, path)


def validation_curves_plot(doc: dict[str, Any], path: Path) -> Path | None:
    """One panel per method: the validation metric after each epoch of its chosen tuning
    trial, which is its final configuration trained to the final runs' horizon with their
    schedule (the tuning seed, the prepared split). Where a curve still rises at its end, the
    horizon is short for that method."""
    curves = {}
    for m, d in (doc.get("methods") or {}).items():
        best = (d.get("chosen") or {}).get("index")
        trial = next((t for t in d["trials"] if t["index"] == best), None)
        metric = d.get("metric", doc["metric"])
        points = [(row["epoch"] + 1, 100 * row[metric]) for row in (trial or {}).get("history", [])
                  if "epoch" in row and isinstance(row.get(metric), (int, float))]
        if points:
            curves[m] = (label(metric.removeprefix("val/")), points)
    if not curves:
        return None
    fig, axes = panels(len(curves), 6, 2.4, 1.9)
    for ax, (m, (metric, points)) in zip(axes, curves.items()):
        ax.plot(*zip(*points), marker="o", ms=2.5, lw=1)
        finish_panel(ax, m, "epoch", f"val {metric} (x100)", 7)
    return save_panels(fig, path)


def asha_rungs(epochs: int, grace: int, factor: float) -> list[int]:
    """The epochs at which ASHA compares a method's trials: grace x factor^k below the
    budget, and the budget's end, where the survivors are ranked."""
    rungs, r = [], float(min(grace, epochs))
    while r < epochs:
        rungs.append(int(r))
        r *= factor
    return rungs + [epochs]


def _chosen_text(ch: dict[str, Any]) -> str:
    """The chosen values, each marked where it sits at a bound or at its ceiling."""
    flags, ceil = ch.get("at_bound") or {}, ch.get("at_ceiling") or {}
    parts = []
    for k, v in ch["values"].items():
        mark = f" **at {flags[k]} bound**" if k in flags else f" (at its ceiling {ceil[k]:g})" if k in ceil else ""
        parts.append(f"`{k}` = {_fmt_value(v)}{mark}")
    if ch.get("tied"):
        return ", ".join(parts) + " (every trial tied)"
    shared = ch.get("ties") or 1
    return ", ".join(parts) + (f" ({shared} trials tied at this score)" if shared > 1 else "")


def _bounds_text(flagged: list[str], tied: list[str], ceiling: list[str], top_ties: list[str]) -> str:
    """What the table's marks mean, and whether any chosen value asks for a wider space."""
    names = lambda ms: ", ".join(f"`{m}`" for m in ms)  # noqa: E731
    if flagged:
        text = (f"**{len(flagged)} method(s) chose a value within 5% of a bound of its space** ({names(flagged)}; on "
                "the log scale for log-uniform ranges): their optimum may lie outside it, so their verdicts compare a "
                "method held at the edge of its search. Widen the space and tune again.")
    else:
        text = "No chosen value lies within 5% of a bound of its space that could hide a better one."
    if ceiling:
        text += (f" {names(ceiling)} chose a margin at its ceiling, the span of its distance on its embeddings "
                 "(2 for D or 1 - cos on the unit sphere, 4 for D^2): past it every triplet is active and the "
                 "gradient no longer depends on the margin, so nothing outside the space trains differently.")
    if tied:
        text += (f" Every trial of {names(tied)} scored the same: the values changed nothing, so where the choice "
                 "fell in its space means nothing and is not flagged.")
    if top_ties:
        text += (f" In {names(top_ties)} several trials share the best score: the search cannot tell them apart, so "
                 "a chosen value is flagged only where every one of them sits at that bound.")
    return text


def tuning_section(doc: dict[str, Any] | None, plots_dir: Path | None = None) -> str:
    """The report's "Tuning" section; a sweep without tuning says so."""
    lines = ["## Tuning (validation classes)", ""]
    if not doc:
        return "\n".join(lines + [
            "Not tuned: this profile has `tune: null`, so every method ran with the options written in "
            "params.yaml. Its verdicts compare those fixed settings, not the methods at their best.", ""])
    b, es = doc["budget"], doc.get("early_stop")
    steps = f"{b['epochs']} epoch(s) x {b['max_batches_per_epoch']} batches" if b.get("max_batches_per_epoch") else f"{b['epochs']} epoch(s)"
    stop = "no early stopping"
    if es:
        horizon = b["epochs"]
        rungs = ", ".join(f"{r}/{horizon}" for r in asha_rungs(horizon, es["grace_period"], es["reduction_factor"]))
        stop = (f"ASHA per method (reduction factor {es['reduction_factor']:g}; a trial is judged against its "
                f"method's others after {rungs} of the horizon's epochs)")
    took = f" Tuning took {doc['seconds'] / 60:.1f} min." if doc.get("seconds") else ""
    if doc.get("seconds") and doc.get("resumed"):
        took = (f" The attempt that ran its last trials took {doc['seconds'] / 60:.1f} min of tuning; earlier parts "
                f"of the sweep had finished {doc['resumed']} of its trials (the wall time counts every part).")
    lines += [
        f"Every method had the same budget: {b['trials']} trials of at most {steps}, searched by Optuna's TPE "
        f"(each method's own seed, from {doc['seed']} and its name) on Ray Tune with {stop}. Each tuning trial trained on the training classes and was "
        f"scored on the validation classes ({doc['metric']}); the evaluation classes were not opened until a "
        f"method's values were chosen. The chosen values are the best trial that trained the whole budget; the "
        f"final runs below use them.{took}", "",
        "| method | space | trials (full / stopped / failed) | epochs used | chosen | validation score (x100) |",
        "|---|---|---|---|---|---|",
    ]
    flagged, tied, ceiling, top_ties = [], [], [], []
    for m, d in doc["methods"].items():
        trials = d["trials"]
        counts = " / ".join(str(sum(t["status"] == s for t in trials)) for s in ("finished", "stopped", "failed"))
        space = "; ".join(f"`{k}` {v}" for k, v in d["space"].items())
        ch = d.get("chosen") or {}
        values = _chosen_text(ch) if ch else "none (no trial scored)"
        flagged += [m] if ch.get("at_bound") else []
        tied += [m] if ch.get("tied") else []
        ceiling += [m] if ch.get("at_ceiling") else []
        top_ties += [m] if (ch.get("ties") or 1) > 1 and not ch.get("tied") else []
        metric = label(d.get("metric", doc["metric"]).removeprefix("val/"))
        lines.append(f"| `{m}` | {space} | {counts} | {d['epochs_used']} | {values} | {metric} {_score(ch.get('score'))} |")
    lines.append("")
    lines += [_bounds_text(flagged, tied, ceiling, top_ties), ""]
    if plots_dir is not None:
        plot = tuning_plot(doc, Path(plots_dir) / "tuning.png")
        if plot is not None:
            lines += [f"![validation metric over each method's tuning trials](plots/{plot.name})", ""]
        curves = validation_curves_plot(doc, Path(plots_dir) / "validation_curves.png")
        if curves is not None:
            lines += ["Validation curves: each method's chosen configuration, trained to the final runs' horizon "
                      "with their schedule during tuning (the tuning seed, the prepared split), scored on the "
                      "validation classes after every epoch. A curve still rising at its end says the horizon is "
                      "short for that method.", "", f"![validation curve of each method's chosen configuration](plots/{curves.name})", ""]
    return "\n".join(lines)
